/** The real CLI (`tsx run.ts ...`) on a throw-away project: status, dag, params diff, schema. */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { Hasher } from "../../engine/hashing.ts";
import { newJournal, removeJournal, writeJournal } from "../../engine/journal.ts";
import { lockEntry, writeLock } from "../../engine/lock.ts";
import type { LockFile } from "../../engine/types.ts";
import { tmpProject } from "./helpers.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const tsx = path.join(repo, "node_modules/.bin/tsx");
const cli = (dir: string, ...args: string[]) => execa(tsx, [path.join(repo, "run.ts"), "-C", dir, ...args], { reject: false, cwd: repo, stripFinalNewline: false });

const PIPELINE = `stages:
  prepare:
    cmd: mkdir -p out && echo \${name} > out/prep.txt
    deps: [src/prep.sh]
    outs: [out/prep.txt]
  train:
    foreach: [small, big]
    do:
      cmd: cat out/prep.txt data/* > out/model-\${item}.txt
      deps: [out/prep.txt, data]
      params: [model.temperature]
      outs:
        - out/model-\${item}.txt
`;

let p: ReturnType<typeof tmpProject>;

/** "Run" the stages by hand and record them in the lock through the engine's own API. */
async function recordLock() {
  const ctx = p.ctx();
  const project = await loadProject(ctx);
  const hasher = new Hasher(ctx, { racyWindowMs: 0 });
  const lock: LockFile = { schema: "1", stages: {} };
  for (const s of project.stages) {
    lock.stages[s.name] = lockEntry(s, await hasher.hashPaths(s.deps), await hasher.hashPaths(s.outs.map((o) => o.path)));
  }
  await hasher.save();
  await writeLock(ctx.lockFile, lock);
}

beforeAll(async () => {
  p = tmpProject({
    "pipeline.yaml": PIPELINE,
    "params.yaml": "name: demo\nmodel:\n  temperature: 0.7\n",
    "src/prep.sh": "echo\n",
    "data/pirate.json": '{"role": "pirate"}',
    "data/poet.json": '{"role": "poet"}',
  });
  p.write("out/prep.txt", "demo\n");
  p.write("out/model-small.txt", "s");
  p.write("out/model-big.txt", "b");
});
afterAll(() => p.cleanup());

describe("tsx run.ts status", () => {
  it("exit 1 with 'new stage' before anything is locked", async () => {
    const r = await cli(p.root, "status");
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain("prepare: stale\n    new stage (not in the lock)");
    expect(r.stdout).toContain("3 of 3 stages stale");
  });

  it("exit 0 when everything matches the lock; --json is stable", async () => {
    await recordLock();
    const r = await cli(p.root, "status");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("prepare: current\ntrain@small: current\ntrain@big: current\nall 3 stages current\n");
    expect(r.exitCode).toBe(0);
    const j = await cli(p.root, "status", "--json");
    expect(j.exitCode).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({
      stale: false,
      stages: [
        { stage: "prepare", current: true, reasons: [] },
        { stage: "train@small", current: true, reasons: [] },
        { stage: "train@big", current: true, reasons: [] },
      ],
    });
  });

  it("names the changed file of a directory dep and the changed param; targets limit the list", async () => {
    p.write("data/pirate.json", '{"role": "PIRATE"}');
    p.write("params.yaml", "name: demo\nmodel:\n  temperature: 0.8\n");
    const r = await cli(p.root, "status");
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe(
      [
        "prepare: current",
        "train@small: stale",
        "    params: model.temperature 0.7 -> 0.8",
        "    deps: data/pirate.json modified",
        "train@big: stale",
        "    params: model.temperature 0.7 -> 0.8",
        "    deps: data/pirate.json modified",
        "2 of 3 stages stale (run: tsx run.ts repro)",
        "",
      ].join("\n"),
    );
    const only = await cli(p.root, "status", "prepare");
    expect(only.exitCode).toBe(0);
    expect(only.stdout).toBe("prepare: current\nall 1 stage current\n");
    const j = JSON.parse((await cli(p.root, "status", "train@big", "--json")).stdout);
    expect(j.stale).toBe(true);
    expect(j.stages[1].reasons[1]).toEqual({ kind: "dep", path: "data/pirate.json", change: "modified", message: "deps: data/pirate.json modified" });
  });

  it("propagates: a changed upstream stage makes its downstream stages run", async () => {
    p.write("src/prep.sh", "echo changed\n");
    const r = await cli(p.root, "status", "train@small");
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe(
      [
        "prepare: stale",
        "    deps: src/prep.sh modified",
        "train@small: stale",
        "    params: model.temperature 0.7 -> 0.8",
        "    deps: data/pirate.json modified",
        "    upstream prepare will run",
        "2 of 2 stages stale (run: tsx run.ts repro)",
        "",
      ].join("\n"),
    );
  });

  it("reports a stage whose last run was interrupted (a journal of the runner is left)", async () => {
    const ctx = p.ctx();
    writeJournal(ctx, newJournal("prepare", "0".repeat(64), "local", []));
    try {
      const r = await cli(p.root, "status", "prepare");
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toContain("prepare: stale\n    interrupted (a previous run did not finish)\n");
    } finally {
      removeJournal(ctx, "prepare");
    }
  });

  it("exit 2 with a located message on bad input (nothing printed on stdout)", async () => {
    const bad = tmpProject({ "pipeline.yaml": "stages:\n  a:\n    cmd: x\n    resources:\n      gpus: -1\n" });
    try {
      const r = await cli(bad.root, "status");
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe("error: pipeline.yaml:5:13: stages.a.resources.gpus: expected a whole number >= 0\n");
      bad.write("pipeline.yaml", "stages:\n  a:\n    cmd: x\n    deps: [b.txt]\n    outs: [a.txt]\n  b:\n    cmd: y\n    deps: [a.txt]\n    outs: [b.txt]\n");
      const c = await cli(bad.root, "dag");
      expect(c.exitCode).toBe(2);
      expect(c.stderr).toBe("error: cycle in the pipeline: a -> b -> a (a stage depends, through its deps, on its own outs)\n");
      // planning works without the data; only repro of that stage refuses
      bad.write("pipeline.yaml", "stages:\n  a:\n    cmd: x\n    deps: [missing.txt]\n");
      const m = await cli(bad.root, "status");
      expect(m.exitCode).toBe(1);
      expect(m.stdout).toBe("a: stale\n    new stage (not in the lock)\n    deps: missing.txt missing\n1 of 1 stage stale (run: tsx run.ts repro)\n");
      expect((await cli(bad.root, "dag")).exitCode).toBe(0);
      expect((await cli(bad.root, "repro", "--dry")).exitCode).toBe(0);
      const rm = await cli(bad.root, "repro");
      expect(rm.exitCode).toBe(2);
      expect(rm.stderr).toBe("error: pipeline.yaml:4:12: stage a: dep missing.txt is neither an existing file or directory nor an out of any stage (check the path, or add the stage that writes it)\n");
      const u = await cli(p.root, "status", "nope");
      expect(u.exitCode).toBe(2);
      expect(u.stderr).toContain('error: unknown stage "nope"; known stages: prepare, train, train@small, train@big');
    } finally {
      bad.cleanup();
    }
  });
});

describe("tsx run.ts params diff", () => {
  it("shows old -> new per key against the lock; exit 0", async () => {
    const r = await cli(p.root, "params", "diff");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("model.temperature: 0.7 -> 0.8  (train@big, train@small)\n");
    const j = await cli(p.root, "params", "diff", "--json");
    expect(JSON.parse(j.stdout)).toEqual({
      changes: [{ key: "model.temperature", change: "modified", old: 0.7, new: 0.8, stages: ["train@big", "train@small"] }],
    });
  });
});

describe("tsx run.ts dag", () => {
  it("prints ascii, mermaid and dot", async () => {
    const a = await cli(p.root, "dag");
    expect(a.exitCode).toBe(0);
    expect(a.stdout).toBe(
      "3 stages in the order they can run (<- the stages whose outs it reads):\n  1. prepare\n  2. train@small  <- prepare\n  3. train@big    <- prepare\n",
    );
    const m = await cli(p.root, "dag", "--format", "mermaid");
    expect(m.stdout).toBe('flowchart TD\n  s0["prepare"]\n  s1["train@small"]\n  s2["train@big"]\n  s0 --> s1\n  s0 --> s2\n');
    const d = await cli(p.root, "dag", "--format", "dot");
    expect(d.stdout).toContain('digraph pipeline {');
    expect(d.stdout).toContain('  "prepare" -> "train@small";\n  "prepare" -> "train@big";\n}');
  });
});

describe("tsx run.ts schema", () => {
  it("prints the JSON Schema, identical to the committed pipeline.schema.json", async () => {
    const r = await execa(tsx, ["run.ts", "schema"], { cwd: repo });
    const committed = fs.readFileSync(path.join(repo, "pipeline.schema.json"), "utf8");
    expect(r.stdout + "\n", "pipeline.schema.json is out of date: run `tsx run.ts schema > pipeline.schema.json`").toBe(committed);
  });
});
