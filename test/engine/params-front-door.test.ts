/** The real CLI on a throw-away git project: `params diff` against git revisions, leaf by leaf; a misspelt key's nearest neighbour; nested-command usage hints. */
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tmpProject } from "./helpers.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const tsx = path.join(repo, "node_modules/.bin/tsx");
const cli = (dir: string, ...args: string[]) => execa(tsx, [path.join(repo, "run.ts"), "-C", dir, ...args], { reject: false, cwd: repo, stripFinalNewline: false });
const git = (dir: string, ...args: string[]) => execa("git", ["-C", dir, ...args]);

const PIPELINE = `stages:
  train:
    cmd: echo \${generation.temperature} > out.txt
    params: [generation, model.name]
    outs: [out.txt]
`;

let p: ReturnType<typeof tmpProject>;
beforeAll(async () => {
  p = tmpProject({ "pipeline.yaml": PIPELINE, "params.yaml": "generation: {temperature: 0.7, top_p: 0.9, seed: 1}\nmodel: {name: a}\n" });
  await git(p.root, "init", "-q");
  await git(p.root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one", "--allow-empty");
  await git(p.root, "add", "-A");
  await git(p.root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "two");
  p.write("params.yaml", "generation: {temperature: 0.8, top_p: 0.9, seed: 1}\nmodel: {name: b}\n");
  await git(p.root, "add", "-A");
  await git(p.root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "three");
  p.write("params.yaml", "generation: {temperature: 0.8, top_p: 0.95}\nmodel: {name: b}\n");
});
afterAll(() => p.cleanup());

describe("params diff with git revisions", () => {
  it("HEAD~1 against the workspace, and A B, one line per changed leaf key", async () => {
    const w = await cli(p.root, "params", "diff", "HEAD~1");
    expect(w.exitCode).toBe(0);
    expect(w.stdout).toBe(
      [
        "generation.seed: removed (was 1)  (train)",
        "generation.temperature: 0.7 -> 0.8  (train)",
        "generation.top_p: 0.9 -> 0.95  (train)",
        'model.name: "a" -> "b"  (train)',
        "",
      ].join("\n"),
    );
    const ab = await cli(p.root, "params", "diff", "HEAD~1", "HEAD", "--json");
    expect(JSON.parse(ab.stdout).changes).toEqual([
      { key: "generation.temperature", change: "modified", old: 0.7, new: 0.8, stages: ["train"] },
      { key: "model.name", change: "modified", old: "a", new: "b", stages: ["train"] },
    ]);
    const none = await cli(p.root, "params", "diff", "HEAD", "HEAD");
    expect(none.stdout).toBe("no params changed since HEAD in HEAD\n");
    // a revision without params.yaml: every key was added since
    const first = await cli(p.root, "params", "diff", "HEAD~2", "HEAD~1");
    expect(first.stdout).toContain("generation: added");
  });

  it("a revision that does not exist or too many: exit 2, one line", async () => {
    const bad = await cli(p.root, "params", "diff", "nosuchrev");
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("nosuchrev is not a git revision");
    const many = await cli(p.root, "params", "diff", "a", "b", "c");
    expect(many.exitCode).toBe(2);
    expect(many.stderr).toContain("at most two git revisions");
  });

  it("a usage error of a nested command points at that command's help", async () => {
    const r = await cli(p.root, "params", "diff", "--nosuch");
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("(see run.ts params diff --help)");
  });
});

describe("a misspelt params key", () => {
  it("status and repro name the missing key and the nearest one the file has", async () => {
    const q = tmpProject({
      "pipeline.yaml": "stages:\n  s:\n    cmd: echo hi > o.txt\n    params: [generation.temperature]\n    outs: [o.txt]\n",
      "params.yaml": "generation: {temprature: 0.7, top_p: 0.9}\n",
    });
    try {
      const st = await cli(q.root, "status");
      expect(st.stdout).toContain("params: generation.temperature missing (did you mean generation.temprature?)");
      const r = await cli(q.root, "repro");
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain("params key generation.temperature is not defined in params.yaml");
      expect(r.stderr).toContain("(did you mean generation.temprature?)");
      // an unrelated key gets no guess
      q.write("params.yaml", "generation: {top_p: 0.9}\n");
      const far = await cli(q.root, "status");
      expect(far.stdout).not.toContain("did you mean");
    } finally {
      q.cleanup();
    }
  });
});
