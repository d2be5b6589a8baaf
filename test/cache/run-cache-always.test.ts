/**
 * Issue 28, item 9: an `always_changed: true` stage runs on every repro; the run-cache never
 * restores it (nor records it: no entry exists to restore from), as in DVC.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cli, filesUnder, gitProject, runs } from "./helpers.ts";

const PIPELINE = `stages:
  clock:
    cmd: echo clock >> runs.log; echo \${x} > now.txt
    params: [x]
    always_changed: true
    outs: [now.txt]
`;

describe("always_changed and the run-cache", () => {
  it("an always_changed stage runs on every repro, even when its identity is in the run-cache", async () => {
    const dir = gitProject("a", { "pipeline.yaml": PIPELINE });
    for (const x of ["a", "b", "a", "a"]) {
      fs.writeFileSync(path.join(dir, "params.yaml"), `x: ${x}\n`);
      const r = await cli(dir, ["repro"]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).not.toContain("restored from run-cache");
    }
    expect(runs(dir)).toEqual(["clock", "clock", "clock", "clock"]);
    // nothing was recorded for it in the run-cache (its outs are still stored for checkout)
    expect(filesUnder(path.join(dir, ".pipeline/cache/runs"))).toEqual([]);
    expect(filesUnder(path.join(dir, ".pipeline/cache/files")).length).toBeGreaterThan(0);
  });
});
