/**
 * kill -9 of the runner at every step of a stage's attempt (fault injection through
 * PIPELINE_CRASH_AT, which makes the runner SIGKILL itself there): the next `status` must not call
 * the stage current, and the next `repro` must finish the job with the right outputs and lock, and
 * with what a run that was not killed leaves in the cache: every out of the lock stored (checkout
 * brings it back) and the run in the run-cache (the same inputs again are restored, not rerun).
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { cli, inproc, makeProject, read } from "./helpers.ts";

describe("crash safety at every step", () => {
  it("prepare, backup, promote, locked: status says interrupted; repro completes", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "src.txt": "v0\n",
      "pipeline.yaml": `stages:
  make:
    cmd: cat src.txt > o.txt && rm -rf od && mkdir od && cat src.txt > od/f
    deps: [src.txt]
    outs: [o.txt, od]
  use:
    cmd: cat o.txt od/f > n.txt
    deps: [o.txt, od]
    outs: [n.txt]
`,
    });
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    let v = 0;
    for (const point of ["prepare", "backup", "promote", "locked"]) {
      v++;
      fs.writeFileSync(path.join(dir, "src.txt"), `v${v}\n`);
      const crashed = await cli(dir, ["repro"], { PIPELINE_CRASH_AT: `${point}:make` });
      expect(crashed.signal, `${point}: ${crashed.out}`).toBe("SIGKILL");
      const st = await inproc(dir, ["status", "make"]);
      expect(st.code, `${point}: ${st.out}`).toBe(1);
      expect(st.out).toMatch(/interrupted/);
      const r = await inproc(dir, ["repro"]);
      expect(r.code, `${point}: ${r.out}`).toBe(0);
      expect(r.out).toMatch(/recovered make/);
      expect(read(dir, "o.txt")).toBe(`v${v}\n`);
      expect(read(dir, "od/f")).toBe(`v${v}\n`);
      expect(fs.readdirSync(path.join(dir, "od"))).toEqual(["f"]);
      expect(read(dir, "n.txt")).toBe(`v${v}\nv${v}\n`);
      expect(fs.readdirSync(path.join(dir, ".pipeline/journal"))).toEqual([]);
      expect(fs.existsSync(path.join(dir, ".pipeline/backup/make"))).toBe(false); // no empty backup folder left
      const ok = await inproc(dir, ["status"]);
      expect(ok.code, `${point}: ${ok.out}`).toBe(0);
      // the cache holds this version: checkout brings the outs back from it alone
      fs.rmSync(path.join(dir, "o.txt"));
      fs.rmSync(path.join(dir, "od"), { recursive: true });
      const co = await cli(dir, ["checkout"]);
      expect(co.code, `${point}: ${co.out}`).toBe(0);
      expect(read(dir, "o.txt")).toBe(`v${v}\n`);
      expect(read(dir, "od/f")).toBe(`v${v}\n`);
    }
    // every recovered run is in the run-cache: going back to its inputs restores it without running
    for (let w = 1; w <= v; w++) {
      fs.writeFileSync(path.join(dir, "src.txt"), `v${w}\n`);
      const r = await inproc(dir, ["repro"]);
      expect(r.code, r.out).toBe(0);
      expect(r.out, `v${w}`).toMatch(/make: restored from run-cache/);
      expect(read(dir, "o.txt")).toBe(`v${w}\n`);
    }
  });
});
