/**
 * Pure planning: a stage + its lock entry + current hashes -> the reasons it must run; and over a
 * graph, the propagation of "will run" to downstream stages. No file access here.
 */
import crypto from "node:crypto";
import type { Graph } from "./graph.ts";
import { overlaps } from "./graph.ts";
import type { LockEntry, PathHash, Reason, Stage, StageStatus } from "./types.ts";
import { deepEqual, leafChanges } from "./param-leaves.ts";

type ManifestLookup = (hash: string) => Record<string, { hash: string; size: number }> | null;

/** At most this many changed files are named per directory; the rest is summarized. */
export const MAX_FILES_PER_DIR = 20;

/** Structural equality of YAML-like values (mappings compared regardless of key order). */
function sortedKeys(...objs: Record<string, unknown>[]): string[] {
  return [...new Set(objs.flatMap((o) => Object.keys(o)))].sort();
}

/** Which files of a directory changed between two manifests (as dep/out reasons). */
function dirChanges(
  kind: "dep" | "out",
  dir: string,
  before: Record<string, { hash: string; size: number }>,
  after: Record<string, { hash: string; size: number }>,
): Reason[] {
  const changes: { path: string; change: "modified" | "added" | "removed" }[] = [];
  for (const f of sortedKeys(before, after)) {
    const b = before[f];
    const a = after[f];
    if (b && a) {
      if (b.hash !== a.hash) changes.push({ path: `${dir}/${f}`, change: "modified" });
    } else if (a) changes.push({ path: `${dir}/${f}`, change: "added" });
    else changes.push({ path: `${dir}/${f}`, change: "removed" });
  }
  const shown = changes.slice(0, MAX_FILES_PER_DIR).map((c) => ({ kind, ...c }) as Reason);
  if (changes.length > MAX_FILES_PER_DIR) {
    shown.push({ kind, path: `${dir}/ (${changes.length - MAX_FILES_PER_DIR} more files)`, change: "modified" } as Reason);
  }
  return shown;
}

/** Compare recorded vs current hashes of deps or outs. Paths absent from `current` are unknown (skipped). */
function pathReasons(
  kind: "dep" | "out",
  declared: string[],
  recorded: PathHash[],
  current: Map<string, PathHash | null>,
  manifest?: ManifestLookup,
): Reason[] {
  const reasons: Reason[] = [];
  const rec = new Map(recorded.map((r) => [r.path, r]));
  for (const p of declared) {
    if (!current.has(p)) continue;
    const now = current.get(p) ?? null;
    const old = rec.get(p);
    if (now === null) reasons.push({ kind, path: p, change: "missing" });
    else if (!old) reasons.push({ kind, path: p, change: "added" });
    else if (old.hash !== now.hash) {
      const mb = old.isdir && now.isdir && manifest ? manifest(old.hash) : null;
      const ma = mb ? manifest!(now.hash) : null;
      const detail = mb && ma ? dirChanges(kind, p, mb, ma) : [];
      if (detail.length > 0) reasons.push(...detail);
      else reasons.push({ kind, path: p, change: "modified" });
    }
  }
  for (const r of recorded) if (!declared.includes(r.path)) reasons.push({ kind, path: r.path, change: "removed" });
  return reasons;
}

export function stageReasons(
  stage: Stage,
  entry: LockEntry | undefined,
  deps: Map<string, PathHash | null>,
  outs: Map<string, PathHash | null>,
  oldManifest?: ManifestLookup,
): Reason[] {
  // DVC's `frozen`: deps and params never make the stage stale (a changed cmd or out still does).
  const missingParams: Reason[] = stage.frozen
    ? []
    : Object.entries(stage.missingParams ?? {}).map(([key, message]) => ({ kind: "param-missing", key, message }));
  const always: Reason[] = stage.alwaysChanged ? [{ kind: "always" }] : [];
  if (!entry) {
    const missingDeps: Reason[] = stage.frozen ? [] : stage.deps.filter((d) => deps.has(d) && deps.get(d) === null).map((path) => ({ kind: "dep", path, change: "missing" }));
    return [{ kind: "new" }, ...missingDeps, ...missingParams];
  }
  const reasons: Reason[] = [...always, ...missingParams];
  if (!deepEqual(stage.cmd, entry.cmd)) reasons.push({ kind: "cmd", before: entry.cmd, after: stage.cmd });
  for (const k of stage.frozen ? [] : sortedKeys(stage.params, entry.params)) {
    const has = Object.hasOwn(stage.params, k);
    const had = Object.hasOwn(entry.params, k);
    const after = stage.params[k];
    const before = entry.params[k];
    if (has && had) {
      // a change inside a mapping: one reason per changed leaf (generation.temperature 0.7 -> 0.8)
      for (const c of leafChanges(k, before, after)) reasons.push({ kind: "param", key: c.key, before: c.before, after: c.after, change: c.change });
    } else if (has) reasons.push({ kind: "param", key: k, before: undefined, after, change: "added" });
    else reasons.push({ kind: "param", key: k, before, after: undefined, change: "removed" });
  }
  for (const k of sortedKeys(stage.env, entry.env)) {
    const after = stage.env[k];
    const before = entry.env[k];
    if (after !== before) {
      const r: Reason = { kind: "env", key: k };
      if (before !== undefined) r.before = before;
      if (after !== undefined) r.after = after;
      reasons.push(r);
    }
  }
  if (!stage.frozen) reasons.push(...pathReasons("dep", stage.deps, entry.deps, deps, oldManifest));
  reasons.push(...pathReasons("out", stage.outs.map((o) => o.path), entry.outs, outs, oldManifest));
  return reasons;
}

export function planStatuses(
  graph: Graph,
  selected: string[],
  own: Map<string, Reason[]>,
  opts: { force?: boolean; forceTargets?: Set<string>; interrupted?: Set<string> } = {},
): StageStatus[] {
  const sel = new Set(selected);
  const willRun = new Set<string>();
  const result: StageStatus[] = [];
  for (const name of graph.order) {
    if (!sel.has(name)) continue;
    const stage = graph.stages.get(name)!;
    const reasons: Reason[] = [];
    if (opts.force || opts.forceTargets?.has(name)) reasons.push({ kind: "forced" });
    if (opts.interrupted?.has(name)) reasons.push({ kind: "interrupted" });
    const running = stage.frozen ? [] : (graph.upstream.get(name) ?? []).filter((u) => willRun.has(u));
    // Deps produced by an upstream stage that will run are going to change: their current
    // state says nothing, so those reasons are replaced by "upstream X will run".
    const runningOuts = running.flatMap((u) => graph.stages.get(u)!.outs.map((o) => o.path));
    for (const r of own.get(name) ?? []) {
      if (r.kind === "dep" && runningOuts.some((o) => overlaps(r.path.replace(/\/ \(\d+ more files\)$/, ""), o))) continue;
      reasons.push(r);
    }
    for (const u of running) reasons.push({ kind: "upstream", stage: u });
    if (reasons.length > 0) willRun.add(name);
    result.push({ stage: stage.name, reasons });
  }
  return result;
}

function show(v: unknown): string {
  const s = v === undefined ? "undefined" : typeof v === "bigint" ? String(v) : canonicalJson(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function formatReason(r: Reason): string {
  switch (r.kind) {
    case "new":
      return "new stage (not in the lock)";
    case "forced":
      return "forced (-f)";
    case "interrupted":
      return r.runningBy ? `running now, by ${r.runningBy} (not recorded until it succeeds)` : "interrupted (a previous run did not finish)";
    case "cmd":
      return "cmd changed";
    case "dep":
      return `deps: ${r.path} ${r.change}`;
    case "out":
      return `outs: ${r.path} ${r.change}`;
    case "param":
      if (r.change === "modified") return `params: ${r.key} ${show(r.before)} -> ${show(r.after)}`;
      if (r.change === "added") return `params: ${r.key} added (${show(r.after)})`;
      return `params: ${r.key} removed (was ${show(r.before)})`;
    case "env":
      if (r.before === undefined) return `env: ${r.key} added (${show(r.after)})`;
      if (r.after === undefined) return `env: ${r.key} removed (was ${show(r.before)})`;
      return `env: ${r.key} ${show(r.before)} -> ${show(r.after)}`;
    case "upstream":
      return `upstream ${r.stage} will run`;
    case "always":
      return "always changed (always_changed: true)";
    case "param-missing": {
      const hint = /\(did you mean [^)]*\?\)/.exec(r.message)?.[0];
      return `params: ${r.key} missing${hint ? ` ${hint}` : ""}`;
    }
  }
}

/** Canonical JSON (sorted mapping keys) of a value. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  if (typeof v === "bigint") return String(v); // an integer beyond 2^53, exact
  return JSON.stringify(v) ?? "null";
}

/** sha256 of what defines a run: cmd, dep hashes, params, env (for persist outs and SLURM job tags). */
export function stageIdentity(stage: Stage, deps: Map<string, PathHash | null>): string {
  const body = canonicalJson({
    cmd: stage.cmd,
    deps: [...stage.deps].sort().map((p) => [p, deps.get(p)?.hash ?? null]),
    params: stage.params,
    env: stage.env,
  });
  return crypto.createHash("sha256").update(body).digest("hex");
}
