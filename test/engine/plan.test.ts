import { describe, expect, it } from "vitest";
import { buildGraph } from "../../engine/graph.ts";
import { formatReason, planStatuses, stageIdentity, stageReasons } from "../../engine/plan.ts";
import type { LockEntry, PathHash, Reason } from "../../engine/types.ts";
import { stage } from "./helpers.ts";

const H = (c: string) => c.repeat(64);
const file = (path: string, c: string, size = 10): PathHash => ({ path, hash: H(c), size });
const dir = (path: string, c: string, nfiles = 2): PathHash => ({ path, hash: H(c), size: 20, nfiles, isdir: true });

const gen = stage("generate", {
  cmd: ["python gen.py --t 0.7"],
  deps: ["gen.py", "data/roles"],
  outs: ["out/t"],
  params: { "generation.temperature": 0.7, roles: ["a", "b"] },
  env: { SEED: "1" },
});
const entry: LockEntry = {
  cmd: ["python gen.py --t 0.7"],
  deps: [file("gen.py", "a"), dir("data/roles", "b")],
  outs: [dir("out/t", "c")],
  params: { "generation.temperature": 0.7, roles: ["a", "b"] },
  env: { SEED: "1" },
  hash: "sha256",
};
const depsNow = () => new Map<string, PathHash | null>([["gen.py", file("gen.py", "a")], ["data/roles", dir("data/roles", "b")]]);
const outsNow = () => new Map<string, PathHash | null>([["out/t", dir("out/t", "c")]]);

describe("stageReasons", () => {
  it("is empty for a stage that matches its lock entry", () => {
    expect(stageReasons(gen, entry, depsNow(), outsNow())).toEqual([]);
  });

  it("says new when the lock has no entry", () => {
    expect(stageReasons(gen, undefined, depsNow(), outsNow())).toEqual([{ kind: "new" }]);
  });

  it("finds cmd, params, env, dep and out changes", () => {
    const s = { ...gen, cmd: ["python gen.py --t 0.8"], params: { "generation.temperature": 0.8, "generation.top_p": 0.9 }, env: { SEED: "2", NEW: "x" } };
    const deps = depsNow();
    deps.set("gen.py", file("gen.py", "d"));
    const outs = new Map<string, PathHash | null>([["out/t", null]]);
    const r = stageReasons(s, entry, deps, outs).map(formatReason);
    expect(r).toEqual([
      "cmd changed",
      "params: generation.temperature 0.7 -> 0.8",
      "params: generation.top_p added (0.9)",
      'params: roles removed (was ["a","b"])',
      'env: NEW added ("x")',
      'env: SEED "1" -> "2"',
      "deps: gen.py modified",
      "outs: out/t missing",
    ]);
  });

  it("names the files of a directory dep that changed, from the stored manifests", () => {
    const manifests: Record<string, Record<string, { hash: string; size: number }>> = {
      [H("b")]: { "pirate.json": { hash: H("1"), size: 1 }, "poet.json": { hash: H("2"), size: 1 }, "old.json": { hash: H("3"), size: 1 } },
      [H("e")]: { "pirate.json": { hash: H("9"), size: 1 }, "poet.json": { hash: H("2"), size: 1 }, "new.json": { hash: H("4"), size: 1 } },
    };
    const deps = depsNow();
    deps.set("data/roles", dir("data/roles", "e"));
    const r = stageReasons(gen, entry, deps, outsNow(), (h) => manifests[h] ?? null).map(formatReason);
    expect(r).toEqual(["deps: data/roles/new.json added", "deps: data/roles/old.json removed", "deps: data/roles/pirate.json modified"]);
    // without the old manifest: the directory as a whole
    expect(stageReasons(gen, entry, deps, outsNow(), () => null).map(formatReason)).toEqual(["deps: data/roles modified"]);
  });

  it("reports deps added to or removed from the stage, and skips paths it was not given", () => {
    const s = { ...gen, deps: ["gen.py", "extra.txt"] };
    const deps = new Map<string, PathHash | null>([["extra.txt", file("extra.txt", "f")]]); // gen.py: not hashed = unknown
    expect(stageReasons(s, entry, deps, outsNow()).map(formatReason)).toEqual(["deps: extra.txt added", "deps: data/roles removed"]);
  });

  it("compares param values structurally, regardless of key order", () => {
    const s = { ...gen, params: { ...gen.params, model: { b: 1, a: [1, { x: 2 }] } } };
    const e = { ...entry, params: { ...entry.params, model: { a: [1, { x: 2 }], b: 1 } } };
    expect(stageReasons(s, e, depsNow(), outsNow())).toEqual([]);
  });
});

describe("planStatuses", () => {
  const g = buildGraph(
    [
      stage("models", { outs: ["m"] }),
      stage("generate", { deps: ["m/final", "gen.py"], outs: ["t"] }),
      stage("capture@base", { deps: ["m/base", "t"], outs: ["a/base"] }),
      stage("capture@final", { deps: ["m/final", "t"], outs: ["a/final"] }),
      stage("report", { deps: ["a/final"], outs: ["r"] }),
    ],
    (p) => p === "gen.py",
  );
  const sel = g.order;

  it("marks stages downstream of a running stage, replacing reasons about its outs", () => {
    const own = new Map<string, Reason[]>([
      ["generate", [{ kind: "param", key: "generation.temperature", before: 0.7, after: 0.8, change: "modified" }]],
      ["capture@base", [{ kind: "dep", path: "t", change: "modified" }, { kind: "param", key: "capture.layers", before: [1], after: [2], change: "modified" }]],
    ]);
    const st = planStatuses(g, sel, own, {});
    const text = Object.fromEntries(st.map((s) => [s.stage, s.reasons.map(formatReason)]));
    expect(text).toEqual({
      models: [],
      generate: ["params: generation.temperature 0.7 -> 0.8"],
      "capture@base": ["params: capture.layers [1] -> [2]", "upstream generate will run"],
      "capture@final": ["upstream generate will run"],
      report: ["upstream capture@final will run"],
    });
  });

  it("adds forced and interrupted, and only within the selection", () => {
    const st = planStatuses(g, ["models", "generate"], new Map(), { forceTargets: new Set(["generate"]), interrupted: new Set(["models"]) });
    expect(st.map((s) => [s.stage, s.reasons.map((r) => r.kind)])).toEqual([
      ["models", ["interrupted"]],
      ["generate", ["forced", "upstream"]],
    ]);
    const all = planStatuses(g, sel, new Map(), { force: true });
    expect(all.every((s) => s.reasons[0]!.kind === "forced")).toBe(true);
  });

  it("leaves everything current when nothing changed", () => {
    expect(planStatuses(g, sel, new Map(), {}).every((s) => s.reasons.length === 0)).toBe(true);
  });
});

describe("formatReason", () => {
  it("words each kind of reason", () => {
    const cases: [Reason, string][] = [
      [{ kind: "new" }, "new stage (not in the lock)"],
      [{ kind: "forced" }, "forced (-f)"],
      [{ kind: "interrupted" }, "interrupted (a previous run did not finish)"],
      [{ kind: "cmd", before: ["a"], after: ["b"] }, "cmd changed"],
      [{ kind: "dep", path: "data/roles/pirate.json", change: "modified" }, "deps: data/roles/pirate.json modified"],
      [{ kind: "out", path: "outputs/x", change: "missing" }, "outs: outputs/x missing"],
      [{ kind: "param", key: "generation.temperature", before: 0.7, after: 0.8, change: "modified" }, "params: generation.temperature 0.7 -> 0.8"],
      [{ kind: "param", key: "judge.model", before: "a", after: "b", change: "modified" }, 'params: judge.model "a" -> "b"'],
      [{ kind: "env", key: "X", before: "1" }, 'env: X removed (was "1")'],
      [{ kind: "upstream", stage: "generate" }, "upstream generate will run"],
    ];
    for (const [r, s] of cases) expect(formatReason(r)).toBe(s);
  });
});

describe("stageIdentity", () => {
  it("changes with cmd, dep hashes, params and env, and not with key order", () => {
    const base = stageIdentity(gen, depsNow());
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(stageIdentity({ ...gen, params: { roles: ["a", "b"], "generation.temperature": 0.7 } }, depsNow())).toBe(base);
    expect(stageIdentity({ ...gen, cmd: ["x"] }, depsNow())).not.toBe(base);
    expect(stageIdentity({ ...gen, env: { SEED: "2" } }, depsNow())).not.toBe(base);
    expect(stageIdentity({ ...gen, params: { "generation.temperature": 0.8, roles: ["a", "b"] } }, depsNow())).not.toBe(base);
    const d = depsNow();
    d.set("gen.py", file("gen.py", "z"));
    expect(stageIdentity(gen, d)).not.toBe(base);
  });
});
