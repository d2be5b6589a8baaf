/**
 * The paper_data stage through the real runner, in a temporary project made of the project's own
 * stage (its pipeline.yaml entry, stages/, the Python module, the manifest) and params.yaml with only
 * `out` and the source moved: it fetches and verifies the paper's data (../shared/assistant-axis as a
 * local directory, then as a tarball), a re-run with the same manifest is a no-op, a new source re-runs
 * it with byte-identical role data, and a tampered source fails (exit 2) keeping the last good output.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { cli, makeProject, REPO } from "../runner/helpers.ts";

const SHARED = path.resolve(REPO, "..", "shared", "assistant-axis");
const hasShared = fs.existsSync(path.join(SHARED, "roles", "instructions", "default.json"));

function project(source: string): string {
  const pipeline = YAML.parse(fs.readFileSync(path.join(REPO, "pipeline.yaml"), "utf8"));
  const params = YAML.parse(fs.readFileSync(path.join(REPO, "params.yaml"), "utf8"));
  const old = params.out as string;
  for (const k of ["roles_dir", "questions_file"]) params[k] = (params[k] as string).replace(old, "out/study");
  params.out = "out/study";
  params.paper_data.source = source;
  const dir = makeProject({
    "pipeline.yaml": YAML.stringify({ stages: { paper_data: pipeline.stages.paper_data } }),
    "profile.yaml": YAML.stringify(params),
  });
  // the stage's own declared deps (derived from its code), plus package.json
  const deps = (pipeline.stages.paper_data.deps as string[]).filter((d) => !d.startsWith("stages/"));
  for (const f of ["package.json", ...deps]) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.copyFileSync(path.join(REPO, f), path.join(dir, f));
  }
  fs.cpSync(path.join(REPO, "stages"), path.join(dir, "stages"), { recursive: true });
  for (const l of ["node_modules", ".venv"]) fs.symlinkSync(path.join(REPO, l), path.join(dir, l));
  return dir;
}

const setSource = (dir: string, source: string) => {
  const p = YAML.parse(fs.readFileSync(path.join(dir, "profile.yaml"), "utf8"));
  p.paper_data.source = source;
  fs.writeFileSync(path.join(dir, "profile.yaml"), YAML.stringify(p));
};
const pirate = (dir: string) => fs.readFileSync(path.join(dir, "out/study/paper_data/roles/instructions/pirate.json"));

describe.skipIf(!hasShared)("paper_data stage", () => {
  it("fetches and verifies; same manifest = no-op; new source = rerun with identical data; tampered = exit 2, last good output kept", async () => {
    const dir = project(SHARED);
    const r1 = await cli(dir, ["-P", "profile.yaml", "repro"]);
    expect(r1.code, r1.out).toBe(0);
    expect(r1.out).toContain("277 files of safety-research/assistant-axis@a98961956072 verified");
    expect(fs.readdirSync(path.join(dir, "out/study/paper_data/roles/instructions")).length).toBe(276);
    expect(pirate(dir).equals(fs.readFileSync(path.join(SHARED, "roles/instructions/pirate.json")))).toBe(true);

    const r2 = await cli(dir, ["-P", "profile.yaml", "repro"]);
    expect(r2.code, r2.out).toBe(0);
    expect(r2.out).not.toMatch(/^running /m);

    // the same data as a tarball laid out like GitHub's: reruns (the source changed), same bytes
    const tree = path.join(dir, "tree", "assistant-axis-x");
    fs.mkdirSync(tree, { recursive: true });
    fs.cpSync(SHARED, path.join(tree, "data"), { recursive: true });
    execFileSync("tar", ["-czf", path.join(dir, "aa.tar.gz"), "-C", path.join(dir, "tree"), "assistant-axis-x"]);
    const before = pirate(dir);
    setSource(dir, "aa.tar.gz");
    const r3 = await cli(dir, ["-P", "profile.yaml", "repro"]);
    expect(r3.code, r3.out).toBe(0);
    expect(r3.out).toMatch(/^running paper_data: params: paper_data\.source/m);
    expect(pirate(dir).equals(before)).toBe(true);

    // a tampered copy: exit 2 naming the file; the last good output stays
    fs.chmodSync(path.join(tree, "data/roles/instructions"), 0o755);
    const victim = path.join(tree, "data/roles/instructions/pirate.json");
    fs.chmodSync(victim, 0o644);
    fs.appendFileSync(victim, " ");
    setSource(dir, "tree/assistant-axis-x");
    const r4 = await cli(dir, ["-P", "profile.yaml", "repro"]);
    expect(r4.code).not.toBe(0);
    expect(r4.out).toMatch(/roles\/instructions\/pirate\.json: sha256 [0-9a-f]{64} differs from the manifest's [0-9a-f]{64}/);
    expect(pirate(dir).equals(before)).toBe(true);
  });
});
