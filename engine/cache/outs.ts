/**
 * Which cached outs a command works on: the outs that the lock records for the selected stages
 * (the lock is the truth after a `git checkout`), minus those declared `cache: false`.
 */
import type { Graph } from "../graph.ts";
import { stageIdentity } from "../plan.ts";
import type { LockEntry, LockFile, PathHash, Stage } from "../types.ts";

export interface OutRef {
  stage: string;
  ph: PathHash;
  /** persist outs stay writable: never hardlinked. */
  writable: boolean;
}

export function lockedOuts(graph: Graph, selected: string[], lock: LockFile): { outs: OutRef[]; uncached: string[]; unlocked: string[] } {
  const outs: OutRef[] = [];
  const uncached: string[] = [];
  const unlocked: string[] = [];
  for (const name of selected) {
    const stage = graph.stages.get(name)!;
    const entry = lock.stages[name];
    if (!entry) {
      unlocked.push(name);
      continue;
    }
    for (const ph of entry.outs) {
      const decl = stage.outs.find((o) => o.path === ph.path);
      if (decl?.cache === false) uncached.push(ph.path);
      else outs.push({ stage: name, ph, writable: !!decl?.persist });
    }
  }
  return { outs, uncached, unlocked };
}

/** The identity of the run a lock entry records (what its outs were produced with). */
export function lockEntryIdentity(stage: Stage, entry: LockEntry): string {
  const pseudo: Stage = { ...stage, cmd: entry.cmd, params: entry.params, env: entry.env, deps: entry.deps.map((d) => d.path) };
  return stageIdentity(pseudo, new Map<string, PathHash | null>(entry.deps.map((d) => [d.path, d])));
}
