/**
 * Run-cache: which outs a stage produced for a given identity (cmd, dep hashes, params, env, see
 * plan.ts stageIdentity) and out paths. A stage about to run whose identity ran before, with every
 * out still in the cache, gets those outs checked out instead of running its command
 * ("restored from run-cache"); `repro --no-run-cache` or `-f` runs it anyway.
 *
 *   <cache>/runs/ab/cdef....json   {"identity": ..., "outs": [PathHash...]}
 *
 * Stages with `persist` outs (which resume from what is there), `cache: false` outs (not in the
 * cache) or `always_changed: true` (they must run every time) are never restored nor recorded.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { atomicWrite, sha256 } from "../hashing.ts";
import type { PathHash, Stage } from "../types.ts";
import type { CacheStore } from "./store.ts";

export interface RunEntry {
  identity: string;
  outs: PathHash[];
}

export function runKey(identity: string, stage: Stage): string {
  return sha256(`${identity}\n${[...stage.outs.map((o) => o.path)].sort().join("\n")}`);
}

export function runEntryRelPath(key: string): string {
  return `runs/${key.slice(0, 2)}/${key.slice(2)}.json`;
}

export function runEntryPath(store: CacheStore, key: string): string {
  return path.join(store.dir, runEntryRelPath(key));
}

/**
 * Can this stage's outs be restored from (or recorded in) the run-cache at all? Not with `persist`
 * or `cache: false` outs, nor for `always_changed` stages (they must run every time, as in DVC).
 */
export function runCacheable(stage: Stage): boolean {
  return !stage.alwaysChanged && stage.outs.length > 0 && stage.outs.every((o) => !o.persist && o.cache !== false);
}

export async function recordRun(store: CacheStore, stage: Stage, identity: string, outs: PathHash[]): Promise<void> {
  const body: RunEntry = { identity, outs: outs.map((o) => ({ ...o })) };
  await atomicWrite(runEntryPath(store, runKey(identity, stage)), JSON.stringify(body, null, 1) + "\n");
}

export async function lookupRun(store: CacheStore, stage: Stage, identity: string): Promise<RunEntry | null> {
  try {
    const e = JSON.parse(await fsp.readFile(runEntryPath(store, runKey(identity, stage)), "utf8")) as RunEntry;
    const want = new Set(stage.outs.map((o) => o.path));
    if (e.identity !== identity || !Array.isArray(e.outs) || e.outs.length !== want.size || !e.outs.every((o) => want.has(o.path))) return null;
    return e;
  } catch {
    return null;
  }
}
