/**
 * What is stale and why: hashes the deps and outs of the selected stages (stat cache first) and
 * compares them with the lock.
 *
 * Stages are visited in waves of the topological order (all stages whose upstream stages are
 * settled form one wave, hashed together). A stage whose upstream stage will run is not hashed
 * where it cannot matter: deps that upstream stage writes are reported as `upstream X will run`,
 * and its outs are only checked for existence (it will run anyway). Its own cmd, params, env and
 * other deps are still reported.
 */
import fs from "node:fs";
import path from "node:path";
import type { Project } from "./config.ts";
import { overlaps, type Graph } from "./graph.ts";
import { Hasher } from "./hashing.ts";
import { readLock } from "./lock.ts";
import { planStatuses, stageReasons } from "./plan.ts";
import type { LockFile, PathHash, Reason, StageStatus } from "./types.ts";

export interface StatusOptions {
  force?: boolean;
  forceTargets?: Set<string>;
  interrupted?: Set<string>;
  /** Reuse a hasher (its stat cache); otherwise one is made and saved here. */
  hasher?: Hasher;
  /** Use this lock instead of reading ctx.lockFile. */
  lock?: LockFile;
}

export async function computeStatus(project: Project, graph: Graph, selected: string[], opts: StatusOptions = {}): Promise<StageStatus[]> {
  const hasher = opts.hasher ?? new Hasher(project.ctx);
  const lock = opts.lock ?? readLock(project.ctx.lockFile);
  const sel = new Set(selected);
  const order = graph.order.filter((n) => sel.has(n));

  // Waves: depth = 1 + max depth of selected upstream stages.
  const depth = new Map<string, number>();
  for (const n of order) {
    const ups = (graph.upstream.get(n) ?? []).filter((u) => sel.has(u));
    depth.set(n, ups.length === 0 ? 0 : Math.max(...ups.map((u) => depth.get(u)!)) + 1);
  }
  const waves: string[][] = [];
  for (const n of order) {
    const d = depth.get(n)!;
    waves[d] ??= [];
    waves[d].push(n);
  }

  const own = new Map<string, Reason[]>();
  const willRun = new Set<string>();
  const manifest = (h: string) => hasher.manifestSync(h);
  for (const wave of waves) {
    const plans = wave.map((name) => {
      const stage = graph.stages.get(name)!;
      const running = stage.frozen ? [] : (graph.upstream.get(name) ?? []).filter((u) => willRun.has(u));
      const runningOuts = running.flatMap((u) => graph.stages.get(u)!.outs.map((o) => o.path));
      const forced = !!opts.force || !!opts.forceTargets?.has(name) || !!opts.interrupted?.has(name);
      const runsAnyway = running.length > 0 || forced;
      const depPaths = stage.deps.filter((d) => !runningOuts.some((o) => overlaps(d, o)));
      const outPaths = runsAnyway ? [] : stage.outs.map((o) => o.path);
      return { name, stage, depPaths, outPaths, runsAnyway };
    });
    const hashes = await hasher.hashPaths(plans.flatMap((p) => [...p.depPaths, ...p.outPaths]));
    for (const p of plans) {
      const deps = new Map<string, PathHash | null>(p.depPaths.map((d) => [d, hashes.get(d) ?? null]));
      const outs = new Map<string, PathHash | null>(p.outPaths.map((o) => [o, hashes.get(o) ?? null]));
      if (p.runsAnyway) {
        // Outs of a stage that runs anyway: only say which are missing (no hashing).
        for (const o of p.stage.outs) if (!fs.existsSync(path.join(project.ctx.root, o.path))) outs.set(o.path, null);
      }
      const reasons = stageReasons(p.stage, lock.stages[p.name], deps, outs, manifest);
      own.set(p.name, reasons);
    }
    // Which stages of this wave will run (same rule as planStatuses).
    for (const s of planStatuses(graph, order, own, opts)) if (wave.includes(s.stage) && s.reasons.length > 0) willRun.add(s.stage);
  }
  if (!opts.hasher) await hasher.save();
  return planStatuses(graph, order, own, opts);
}
