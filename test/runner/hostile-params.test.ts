/**
 * Issue 28, items 13 and 16: hostile or huge params files. A YAML alias bomb is refused with one
 * line naming the file (exit 2, not "internal error"); a params file with many keys is read
 * correctly (its speed is measured by bench/params-scale.ts, BENCHMARKS.md).
 */
import { describe, expect, it } from "vitest";
import { cli, makeProject } from "./helpers.ts";

const PIPELINE = "stages:\n  s:\n    cmd: echo ${x} > o.txt\n    params: [x]\n    outs: [o.txt]\n";

/** 9^7 (4.8 million) strings from 60 lines: the "billion laughs" of YAML. */
function aliasBomb(): string {
  const lines = ["x: 1", `a: &a [${Array(9).fill('"lol"').join(",")}]`];
  const names = "abcdefg";
  for (let i = 1; i < names.length; i++) lines.push(`${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(",")}]`);
  return lines.join("\n") + "\n";
}

describe("hostile params files", () => {
  it("a YAML alias bomb in params.yaml: exit 2, one line naming the file", async () => {
    const dir = makeProject({ "pipeline.yaml": PIPELINE, "params.yaml": aliasBomb() });
    for (const cmd of ["status", "repro"]) {
      const r = await cli(dir, [cmd]);
      expect(r.code, r.out).toBe(2);
      expect(r.stderr).toMatch(/^error: params\.yaml: .*alias/m);
      expect(r.out).not.toMatch(/internal error/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  it("a YAML alias bomb in a profile file names that file", async () => {
    const dir = makeProject({ "pipeline.yaml": PIPELINE, "params.yaml": "x: 1\n", "params/big.yaml": aliasBomb() });
    const r = await cli(dir, ["-P", "params/big.yaml", "status"]);
    expect(r.code, r.out).toBe(2);
    expect(r.stderr).toMatch(/params\/big\.yaml: .*alias/);
  });
});
