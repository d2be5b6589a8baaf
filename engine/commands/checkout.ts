/**
 * `checkout [targets]`: make the cached outs of the targets (default: all stages) match the lock,
 * from the cache: after a `git checkout` of an older commit, the outputs of that commit come back
 * in seconds. Outs already matching are not touched; an out whose objects the cache lacks is
 * named (and left as it is); `cache: false` outs are the user's. Exit 0 when every out matches,
 * 1 when something was missing from the cache.
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { buildGraph, selectStages, type Graph } from "../graph.ts";
import { Hasher } from "../hashing.ts";
import { readLock } from "../lock.ts";
import { ReproMutex } from "../mutex.ts";
import type { LockFile } from "../types.ts";
import { Linker } from "../cache/link.ts";
import { lockedOuts, type OutRef } from "../cache/outs.ts";
import { cacheSettings, type CacheSettings } from "../cache/settings.ts";
import { CacheStore } from "../cache/store.ts";
import { checkoutOut } from "../cache/workspace.ts";

export interface Selection {
  graph: Graph;
  selected: string[];
  lock: LockFile;
  settings: CacheSettings;
  store: CacheStore;
}

export async function loadSelection(ctx: ProjectContext, targets: string[]): Promise<Selection> {
  const project = await loadProject(ctx);
  const graph = buildGraph(project.stages, (p) => fs.existsSync(path.join(ctx.root, p)));
  // the targets themselves (`capture` = all its instances), not their upstream stages, as in DVC
  const named = new Set(targets.flatMap((t) => selectStages(graph, [t], {}).filter((n) => n === t || graph.stages.get(n)!.group === t)));
  const selected = targets.length ? graph.order.filter((n) => named.has(n)) : [...graph.order];
  const settings = cacheSettings(ctx);
  return { graph, selected, lock: readLock(ctx.lockFile), settings, store: new CacheStore(settings.dir, new Linker(settings.link)) };
}

/** Check out these outs; prints one line per out restored or missing. Returns the paths missing from the cache. */
export async function checkoutRefs(store: CacheStore, hasher: Hasher, root: string, outs: OutRef[], say: (m: string) => void): Promise<{ restored: number; current: number; missing: string[] }> {
  let restored = 0;
  let current = 0;
  const missing: string[] = [];
  const now = await hasher.hashPaths(outs.map((o) => o.ph.path));
  for (const ref of outs) {
    const r = await checkoutOut(store, hasher, root, ref.ph, ref.writable, now.get(ref.ph.path) ?? null);
    if (r.state === "current") current++;
    else if (r.state === "restored") {
      restored++;
      say(`restored ${ref.ph.path}${ref.ph.isdir ? ` (${r.files} of ${ref.ph.nfiles ?? "?"} files placed)` : ""}`);
    } else {
      missing.push(ref.ph.path);
      say(`not in the cache: ${ref.ph.path} (${ref.stage}; ${r.objects.length} object${r.objects.length === 1 ? "" : "s"} missing): left as it is; \`tsx run.ts pull\` or \`repro\` it`);
    }
  }
  return { restored, current, missing };
}

export async function checkout(ctx: ProjectContext, targets: string[]): Promise<number> {
  const sel = await loadSelection(ctx, targets);
  const say = (m: string) => process.stdout.write(m + "\n");
  const mutex = await ReproMutex.acquire(ctx, { say, command: process.argv.slice(2).join(" ") });
  try {
    const hasher = new Hasher(ctx);
    const { outs, uncached, unlocked } = lockedOuts(sel.graph, sel.selected, sel.lock);
    const r = await checkoutRefs(sel.store, hasher, ctx.root, outs, say);
    await hasher.save();
    const used = sel.store.linker.used();
    const parts = [`${r.restored} restored${used ? ` (${used})` : ""}`, `${r.current} already current`];
    if (r.missing.length) parts.push(`${r.missing.length} not in the cache`);
    if (sel.store.corrupt.length) parts.push(`${sel.store.corrupt.length} corrupt cache object(s) moved aside: ${sel.store.corrupt.join(", ")}`);
    if (uncached.length) parts.push(`${uncached.length} not cached (cache: false): ${uncached.join(", ")}`);
    if (unlocked.length) parts.push(`${unlocked.length} stage${unlocked.length === 1 ? "" : "s"} not in the lock: ${unlocked.join(", ")}`);
    say(`checkout: ${parts.join("; ")}`);
    return r.missing.length ? 1 : 0;
  } finally {
    mutex.release();
  }
}
