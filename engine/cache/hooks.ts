/**
 * What the runner calls (two hooks, see runner.ts):
 *  - `restore(stage, identity)` in place of running the command: true when the run-cache had the
 *    outs of this identity and they were checked out (the runner then records them as a run);
 *  - `afterRun(stage, identity, outs)` once the lock records a run: its cached outs are stored
 *    in the cache and the run in the run-cache. A failure here is a warning: the run stands.
 */
import type { ProjectContext } from "../context.ts";
import type { Hasher } from "../hashing.ts";
import type { PathHash, Stage } from "../types.ts";
import { Linker } from "./link.ts";
import { lookupRun, recordRun, runCacheable } from "./run-cache.ts";
import { cacheSettings } from "./settings.ts";
import { CacheStore } from "./store.ts";
import { checkoutOut, missingObjects, saveOut } from "./workspace.ts";

export interface CacheHookOptions {
  /** Restore from the run-cache (false: `repro --no-run-cache`). */
  runCache: boolean;
  /** Before restoring: fetch a missing run-cache entry and its objects (`repro --pull`). */
  fetchRun?: (stage: Stage, identity: string) => Promise<void>;
  say(msg: string): void;
}

export class CacheHooks {
  readonly store: CacheStore;
  /** Stages restored from the run-cache in this repro (for the summary). */
  readonly restored = new Set<string>();

  constructor(
    private readonly ctx: ProjectContext,
    private readonly hasher: Hasher,
    private readonly opts: CacheHookOptions,
  ) {
    const s = cacheSettings(ctx);
    this.store = new CacheStore(s.dir, new Linker(s.link));
  }

  async restore(stage: Stage, identity: string): Promise<boolean> {
    if (!this.opts.runCache || !runCacheable(stage)) return false;
    if (this.opts.fetchRun) {
      try {
        await this.opts.fetchRun(stage, identity);
      } catch (e) {
        this.opts.say(`${stage.name}: could not fetch from the remote's run-cache: ${(e as Error).message}`);
      }
    }
    const entry = await lookupRun(this.store, stage, identity);
    if (!entry) return false;
    for (const o of entry.outs) if ((await missingObjects(this.store, o)).length) return false;
    for (const o of entry.outs) {
      const r = await checkoutOut(this.store, this.hasher, this.ctx.root, o, false, null);
      if (r.state === "missing") return false;
    }
    this.restored.add(stage.name);
    return true;
  }

  async afterRun(stage: Stage, identity: string, outs: PathHash[]): Promise<void> {
    try {
      const byPath = new Map(stage.outs.map((o) => [o.path, o]));
      for (const ph of outs) {
        const o = byPath.get(ph.path);
        if (!o || o.cache === false) continue;
        await saveOut(this.store, this.hasher, this.ctx.root, ph, o.persist);
      }
      if (runCacheable(stage)) await recordRun(this.store, stage, identity, outs);
    } catch (e) {
      this.opts.say(`warning: ${stage.name}: its outs were recorded in the lock but not stored in the cache: ${(e as Error).message} (\`tsx run.ts push\` stores them later)`);
    }
  }
}
