/** Issue 14, fault 9: integers beyond 2^53 in params keep every digit (cmd, lock, status). */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { cli, inproc, makeProject, read } from "./helpers.ts";

describe("integers beyond 2^53 in params", () => {
  it("reach the cmd and the lock exactly; a change in the last digit makes the stage stale", async () => {
    const dir = makeProject({
      "params.yaml": "seed: 12345678901234567891\nsmall: 7\n",
      "pipeline.yaml": "stages:\n  s:\n    cmd: echo ${seed} ${small} > o.txt\n    outs: [o.txt]\n",
    });
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(read(dir, "o.txt")).toBe("12345678901234567891 7\n");
    expect(read(dir, "pipeline.lock")).toMatch(/seed: 12345678901234567891\n/);
    expect(read(dir, "pipeline.lock")).toMatch(/small: 7\n/);
    expect((await inproc(dir, ["status"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "params.yaml"), "seed: 12345678901234567892\nsmall: 7\n");
    const st = await inproc(dir, ["status"]);
    expect(st.code).toBe(1);
    expect(st.out).toContain("params: seed 12345678901234567891 -> 12345678901234567892");
    const js = await inproc(dir, ["status", "--json"]);
    expect(JSON.parse(js.stdout).stages[0].reasons.find((x: { kind: string }) => x.kind === "param")).toMatchObject({ key: "seed", before: "12345678901234567891", after: "12345678901234567892" });

    // killed after the stage succeeded: the journal carries the entry, the next repro records it exactly
    const killed = await cli(dir, ["repro"], { PIPELINE_CRASH_AT: "promote:s" });
    expect(killed.signal).toBe("SIGKILL");
    const r2 = await inproc(dir, ["repro"]);
    expect(r2.out).toMatch(/recovered s: .*had succeeded/);
    expect(read(dir, "pipeline.lock")).toMatch(/seed: 12345678901234567892\n/);
    expect((await inproc(dir, ["status"])).code).toBe(0);
  });
});
