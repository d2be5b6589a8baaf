/**
 * Issue 28, item 11: a closed stdout (`tsx run.ts checkout | true`: EPIPE on the first write) never
 * stops checkout, pull, push or gc mid-work. The command finishes its work, releases the repro
 * mutex, says once on stderr that its output was lost, and exits with the code the work earned (0
 * when everything was done): the reader going away is not a failure of the work.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { filesUnder, tempDir } from "../cache/helpers.ts";
import { cli, exists, makeProject, read, REPO } from "./helpers.ts";

const N = 10;
const OUTS = Array.from({ length: N }, (_, i) => `o${i}.txt`);
const PIPELINE = `stages:\n  make:\n    cmd: for i in ${OUTS.map((_, i) => i).join(" ")}; do echo "\${x}-$i" > o$i.txt; done\n    params: [x]\n    outs: [${OUTS.join(", ")}]\n`;

/** `run.ts -C dir ARGS | true` in bash: the reader exits at once; returns the CLI's own exit code. */
function piped(dir: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const cmd = `"${process.execPath}" --import tsx run.ts -C "${dir}" ${args.map((a) => `'${a}'`).join(" ")} | true; exit \${PIPESTATUS[0]}`;
  return new Promise((resolve) => {
    execFile("bash", ["-c", cmd], { cwd: REPO, env: { ...process.env, PIPELINE_PROGRESS_INTERVAL_MS: "0" } }, (err, _out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stderr });
    });
  });
}

function project(): string {
  return makeProject({ "pipeline.yaml": PIPELINE, "params.yaml": "x: a\n" });
}

function outsMissing(dir: string): string[] {
  return OUTS.filter((o) => !exists(dir, o));
}

const mutex = (dir: string) => path.join(dir, ".pipeline/repro.mutex.json");

describe("closed stdout", () => {
  it("checkout | true restores every out, releases the mutex, exits 0", async () => {
    const dir = project();
    expect((await cli(dir, ["repro"])).code).toBe(0);
    for (const o of OUTS) fs.rmSync(path.join(dir, o));
    const r = await piped(dir, ["checkout"]);
    expect(r.code, r.stderr).toBe(0);
    expect(outsMissing(dir)).toEqual([]);
    expect(read(dir, "o9.txt")).toBe("a-9\n");
    expect(fs.existsSync(mutex(dir))).toBe(false);
    expect(r.stderr).toContain("stdout was closed");
    expect(r.stderr).not.toMatch(/internal error|EPIPE.*\n\s+at /);
    expect((await cli(dir, ["status"])).code).toBe(0);
  });

  it("push | true and pull | true transfer every object and restore every out", async () => {
    const dir = project();
    expect((await cli(dir, ["repro"])).code).toBe(0);
    const remote = path.join(tempDir("remote-"), "r");
    const p = await piped(dir, ["push", "-r", remote]);
    expect(p.code, p.stderr).toBe(0);
    expect(filesUnder(path.join(remote, "files"))).toHaveLength(N);

    fs.rmSync(path.join(dir, ".pipeline/cache"), { recursive: true });
    for (const o of OUTS) fs.rmSync(path.join(dir, o));
    const pl = await piped(dir, ["pull", "-r", remote]);
    expect(pl.code, pl.stderr).toBe(0);
    expect(outsMissing(dir)).toEqual([]);
    expect(fs.existsSync(mutex(dir))).toBe(false);
    expect((await cli(dir, ["status"])).code).toBe(0);
  });

  it("gc | true and gc --dry | true finish and release the mutex", async () => {
    const dir = project();
    expect((await cli(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    const files = path.join(dir, ".pipeline/cache/files");
    expect(filesUnder(files)).toHaveLength(2 * N);
    const dry = await piped(dir, ["gc", "--dry"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(filesUnder(files)).toHaveLength(2 * N);
    const gc = await piped(dir, ["gc"]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(filesUnder(files)).toHaveLength(N);
    expect(fs.existsSync(mutex(dir))).toBe(false);
  });
});
