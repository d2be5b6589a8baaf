/**
 * Issue 14, fault 8: every bad input exits 2 with one clear line (the real CLI); exit 3 only for
 * a bug, its stack behind --debug; errors about outs and deps name pipeline.yaml:LINE; a mutex
 * file with unexpected content says so.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { cli, makeProject } from "./helpers.ts";

const OK = {
  "params.yaml": "{}\n",
  "src.txt": "x\n",
  "pipeline.yaml": "stages:\n  a:\n    cmd: cat src.txt > a.txt\n    deps: [src.txt]\n    outs: [a.txt]\n",
};

/** stderr is one line, and stdout is empty. */
function oneLine(r: { stdout: string; stderr: string }): string {
  expect(r.stdout).toBe("");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

describe("fault 8: exit codes and messages", () => {
  it("usage errors exit 2 with one line", async () => {
    const dir = makeProject(OK);
    const cases: [string[], RegExp][] = [
      [["--bogus", "status"], /^error: unknown option '--bogus' \(see run\.ts --help\)$/],
      [["bogus"], /^error: unknown command 'bogus'/],
      [["status", "--bogus"], /^error: unknown option '--bogus' \(see run\.ts status --help\)$/],
      [["params", "bogus"], /unknown command 'bogus'/],
      [["repro", "-j", "x"], /-j\/--jobs must be a whole number/],
      [["-P", "my profile.yaml", "status"], /profile file name my profile\.yaml: the name must be letters/],
      [["-P", "params/default.yaml", "status"], /a profile cannot be named 'default'/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(dir, args);
      expect(r.code, `${args.join(" ")}: ${r.out}`).toBe(2);
      expect(oneLine(r)).toMatch(re);
    }
  });

  it("-C to a missing directory exits 2 with one line", async () => {
    const r = await cli("/nonexistent/project", ["status"]);
    expect(r.code, r.out).toBe(2);
    expect(oneLine(r)).toMatch(/project directory \/nonexistent\/project does not exist .*-C/);
  });

  it("overlapping outs, a shared out and a missing dep name pipeline.yaml:LINE", async () => {
    const shared = makeProject({ ...OK, "pipeline.yaml": OK["pipeline.yaml"] + "  b:\n    cmd: echo > a.txt\n    outs:\n      - a.txt\n" });
    const r1 = await cli(shared, ["status"]);
    expect(r1.code).toBe(2);
    expect(oneLine(r1)).toMatch(/^error: pipeline\.yaml:9:\d+: two stages write the same out a\.txt: a and b; .*\(a: pipeline\.yaml:5:\d+\)$/);

    const nested = makeProject({ ...OK, "pipeline.yaml": "stages:\n  a:\n    cmd: mkdir -p d\n    outs: [d]\n  b:\n    cmd: echo > d/x\n    outs: [d/x]\n" });
    const r2 = await cli(nested, ["repro"]);
    expect(r2.code).toBe(2);
    expect(oneLine(r2)).toMatch(/^error: pipeline\.yaml:7:\d+: out d\/x \(stage b\) is inside the out directory d \(stage a, pipeline\.yaml:4:\d+\)/);

    const missing = makeProject({ ...OK, "pipeline.yaml": "stages:\n  a:\n    cmd: cat nope.txt > a.txt\n    deps:\n      - src.txt\n      - nope.txt\n    outs: [a.txt]\n" });
    expect((await cli(missing, ["status"])).code).toBe(1); // planning works without the data
    const r3 = await cli(missing, ["repro"]);
    expect(r3.code).toBe(2);
    expect(oneLine(r3)).toMatch(/^error: pipeline\.yaml:6:\d+: stage a: dep nope\.txt is neither/);
  });

  it("a mutex file with unexpected content is reported, then taken over", async () => {
    const dir = makeProject(OK);
    const m = path.join(dir, ".pipeline/repro.mutex.json");
    fs.mkdirSync(path.dirname(m), { recursive: true });
    fs.writeFileSync(m, '["not", "a holder"]\n');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(m, old, old);
    const r = await cli(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/repro mutex .* held unexpected content \("\[\\"not\\", \\"a holder\\"\]"\), not a holder; removed it/);
  });

  it("an internal error exits 3 with one line; --debug shows the stack", async () => {
    const dir = makeProject(OK);
    // the state directory is a file: not an input the tool validates, so it surfaces as an internal error
    fs.writeFileSync(path.join(dir, ".pipeline"), "");
    const r = await cli(dir, ["repro"]);
    expect(r.code, r.out).toBe(3);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^internal error \(a bug of the pipeline tool\): .*rerun with --debug/);
    const d = await cli(dir, ["--debug", "repro"]);
    expect(d.code).toBe(3);
    expect(d.stderr).toMatch(/^internal error: \w*Error: [\s\S]*\n\s+at /);
  });
});
