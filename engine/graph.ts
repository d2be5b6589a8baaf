/**
 * The stage DAG, built from outs and deps (pure: the only outside knowledge is `exists`).
 *
 * An edge a -> b exists when a dep of b is an out of a, lies inside an out directory of a, or is a
 * directory that contains an out of a. Errors (InputError): two stages with the same out, an out
 * inside another out, a cycle (reported in order: `a -> b -> c -> a`). A dep that is neither an
 * existing path nor any stage's out is not an error here (planning works on a fresh clone, before
 * the data is there, as `dvc dag` does): it is listed in `missingDeps`, `status` reports it and
 * `repro` refuses to run that stage ({@link missingDepError}).
 */
import { InputError } from "./errors.ts";
import type { Stage } from "./types.ts";

export interface Graph {
  stages: Map<string, Stage>;
  /** stage -> the stages it depends on (sorted by declaration order). */
  upstream: Map<string, string[]>;
  /** stage -> the stages that depend on it (sorted by declaration order). */
  downstream: Map<string, string[]>;
  /** Topological order; among ready stages, declaration order wins (stable). */
  order: string[];
  /** stage -> its deps that no stage writes and that do not exist (only stages that have some). */
  missingDeps: Map<string, string[]>;
}

/** The error `repro` gives for a stage whose dep is neither on disk nor written by any stage. */
export function missingDepError(stage: string, dep: string, where = ""): InputError {
  return new InputError(
    (where ? `${where}: ` : "") +
      `stage ${stage}: dep ${dep} is neither an existing file or directory nor an out of any stage (check the path, or add the stage that writes it)`,
  );
}

/** True when `p` is `dir` or lies inside it (project-relative normalized paths). */
function isWithin(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir + "/");
}

/** Paths overlap when one is the other or lies inside it. */
export function overlaps(a: string, b: string): boolean {
  return isWithin(a, b) || isWithin(b, a);
}

/**
 * `locate` (see locate.ts) prefixes errors about an out or dep with where pipeline.yaml writes it.
 */
export function buildGraph(stages: Stage[], exists: (relPath: string) => boolean, locate?: (group: string, field: "outs" | "deps", item?: string) => string): Graph {
  const at = (stage: string, field: "outs" | "deps", item: string) => {
    const s = byName.get(stage);
    return locate && s ? `${locate(s.group, field, item)}: ` : "";
  };
  const byName = new Map<string, Stage>();
  const index = new Map<string, number>();
  for (const s of stages) {
    if (byName.has(s.name)) throw new InputError(`two stages are named ${s.name}; stage names must be unique`);
    byName.set(s.name, s);
    index.set(s.name, index.size);
  }

  // Outs: sorted so that overlapping paths are neighbours or prefix-related.
  const outs: { path: string; stage: string }[] = [];
  for (const s of stages) for (const o of s.outs) outs.push({ path: o.path, stage: s.name });
  outs.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (let i = 0; i < outs.length; i++) {
    for (let j = i + 1; j < outs.length && outs[j]!.path.startsWith(outs[i]!.path); j++) {
      const a = outs[i]!;
      const b = outs[j]!;
      if (a.path === b.path) {
        throw new InputError(
          at(b.stage, "outs", b.path) +
            (a.stage === b.stage
              ? `stage ${a.stage} lists the out ${a.path} twice`
              : `two stages write the same out ${a.path}: ${a.stage} and ${b.stage}; each out must belong to one stage` +
                (a.stage !== b.stage && locate ? ` (${a.stage}: ${locate(byName.get(a.stage)!.group, "outs", a.path)})` : "")),
        );
      }
      if (isWithin(b.path, a.path)) {
        throw new InputError(
          at(b.stage, "outs", b.path) +
            `out ${b.path} (stage ${b.stage}) is inside the out directory ${a.path} (stage ${a.stage}` +
            (locate ? `, ${locate(byName.get(a.stage)!.group, "outs", a.path)}` : "") +
            `); outs must not overlap`,
        );
      }
    }
  }

  const up = new Map<string, Set<string>>();
  const down = new Map<string, Set<string>>();
  for (const s of stages) {
    up.set(s.name, new Set());
    down.set(s.name, new Set());
  }
  const missingDeps = new Map<string, string[]>();
  for (const s of stages) {
    // a declared params file written by a stage links them too (DVC's params are deps)
    const paramsFiles = (s.paramsFiles ?? []).filter((f) => !s.deps.includes(f));
    for (const dep of [...s.deps, ...paramsFiles]) {
      const producers = outs.filter((o) => overlaps(dep, o.path));
      if (producers.length === 0) {
        if (!exists(dep) && s.deps.includes(dep)) missingDeps.set(s.name, [...(missingDeps.get(s.name) ?? []), dep]);
        continue;
      }
      for (const p of producers) {
        if (p.stage === s.name) {
          throw new InputError(at(s.name, "deps", dep) + `cycle: ${s.name} -> ${s.name} (its dep ${dep} overlaps its own out ${p.path})`);
        }
        up.get(s.name)!.add(p.stage);
        down.get(p.stage)!.add(s.name);
      }
    }
  }

  const byDecl = (a: string, b: string) => index.get(a)! - index.get(b)!;
  const upstream = new Map<string, string[]>();
  const downstream = new Map<string, string[]>();
  for (const s of stages) {
    upstream.set(s.name, [...up.get(s.name)!].sort(byDecl));
    downstream.set(s.name, [...down.get(s.name)!].sort(byDecl));
  }

  const cycle = findCycle(stages.map((s) => s.name), upstream);
  if (cycle) throw new InputError(`cycle in the pipeline: ${cycle.join(" -> ")} (a stage depends, through its deps, on its own outs)`);

  // Kahn's algorithm; the ready set is kept in declaration order.
  const indeg = new Map<string, number>();
  for (const s of stages) indeg.set(s.name, upstream.get(s.name)!.length);
  const ready = stages.filter((s) => indeg.get(s.name) === 0).map((s) => s.name);
  const order: string[] = [];
  while (ready.length > 0) {
    const n = ready.shift()!;
    order.push(n);
    for (const d of downstream.get(n)!) {
      const k = indeg.get(d)! - 1;
      indeg.set(d, k);
      if (k === 0) {
        let i = 0;
        while (i < ready.length && index.get(ready[i]!)! < index.get(d)!) i++;
        ready.splice(i, 0, d);
      }
    }
  }
  return { stages: byName, upstream, downstream, order, missingDeps };
}

/** A cycle as `[a, b, c, a]` (a depends on ... on a), or undefined. Deterministic. */
function findCycle(names: string[], upstream: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1 = on the stack, 2 = done
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    state.set(n, 1);
    stack.push(n);
    for (const u of upstream.get(n) ?? []) {
      const st = state.get(u);
      if (st === 1) {
        // The stack from u to n is a dependency chain (each depends on the next) and n depends on
        // u. We report `x -> y` as "x feeds y", so reverse it: n -> ... -> u -> n.
        const fwd = stack.slice(stack.indexOf(u)).reverse();
        return [...fwd, fwd[0]!];
      }
      if (st === undefined) {
        const c = visit(u);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of names) {
    if (!state.has(n)) {
      const c = visit(n);
      if (c) return rotateToFirst(c, names);
    }
  }
  return undefined;
}

/** Rotate a closed cycle so it starts at its earliest-declared stage. */
function rotateToFirst(closed: string[], names: string[]): string[] {
  const cyc = closed.slice(0, -1);
  let best = 0;
  for (let i = 1; i < cyc.length; i++) if (names.indexOf(cyc[i]!) < names.indexOf(cyc[best]!)) best = i;
  const rot = [...cyc.slice(best), ...cyc.slice(0, best)];
  return [...rot, rot[0]!];
}

/** All instance names of a target: `capture` -> every `capture@*` (or the stage itself). */
function resolveTarget(graph: Graph, t: string): string[] {
  if (graph.stages.has(t)) return [t];
  const inst = graph.order.filter((n) => graph.stages.get(n)!.group === t);
  if (inst.length > 0) return inst;
  const groups: string[] = [];
  for (const n of graph.stages.keys()) {
    const g = graph.stages.get(n)!.group;
    if (!groups.includes(g)) groups.push(g);
    if (g !== n && !groups.includes(n)) groups.push(n);
  }
  throw new InputError(`unknown stage ${JSON.stringify(t)}; known stages: ${groups.join(", ") || "(none)"}`);
}

export function selectStages(graph: Graph, targets: string[], opts: { downstream?: boolean; single?: boolean } = {}): string[] {
  if (targets.length === 0) return [...graph.order];
  if (opts.single) {
    // `--single-item`: the targets only, none of their upstream (or downstream) stages
    const picked = new Set(targets.flatMap((t) => resolveTarget(graph, t)));
    return graph.order.filter((n) => picked.has(n));
  }
  const picked = new Set<string>();
  const walk = (n: string, edges: Map<string, string[]>) => {
    if (picked.has(n)) return;
    picked.add(n);
    for (const m of edges.get(n) ?? []) walk(m, edges);
  };
  const roots = targets.flatMap((t) => resolveTarget(graph, t));
  for (const r of roots) walk(r, opts.downstream ? graph.downstream : graph.upstream);
  return graph.order.filter((n) => picked.has(n));
}
