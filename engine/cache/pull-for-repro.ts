/**
 * `repro --pull`: before planning, fetch and check out the recorded outs of the selected stages
 * that the remote has; while running, a stale stage first looks for its run-cache entry on the
 * remote. What the remote lacks is simply reproduced.
 */
import type { ProjectContext } from "../context.ts";
import type { Graph } from "../graph.ts";
import type { Hasher } from "../hashing.ts";
import { readLock } from "../lock.ts";
import type { Stage } from "../types.ts";
import { checkoutRefs } from "../commands/checkout.ts";
import { Linker } from "./link.ts";
import { lockedOuts } from "./outs.ts";
import { openRemote } from "./remote.ts";
import { lookupRun } from "./run-cache.ts";
import { cacheSettings } from "./settings.ts";
import { CacheStore } from "./store.ts";
import { fetch, fetchRun as fetchRunEntry } from "./transfer.ts";

export function pullForRepro(ctx: ProjectContext, hasher: Hasher, selected: string[], graph: Graph, remoteOpt: string | undefined, say: (m: string) => void) {
  const settings = cacheSettings(ctx);
  const remote = openRemote(remoteOpt ?? settings.remote, settings.s3);
  const store = new CacheStore(settings.dir, new Linker(settings.link));
  return {
    async pullOuts(): Promise<void> {
      const { outs } = lockedOuts(graph, selected, readLock(ctx.lockFile));
      const s = await fetch(store, remote, outs, { jobs: 8, label: "pull" });
      const bad = new Set(s.incomplete.map((x) => x.path));
      const r = await checkoutRefs(store, hasher, ctx.root, outs.filter((o) => !bad.has(o.ph.path)), () => {});
      say(`--pull: ${s.transferred} objects downloaded from ${remote.url}; ${r.restored} outs restored${bad.size ? `; not on the remote: ${[...bad].join(", ")}` : ""}`);
    },
    async fetchRun(stage: Stage, identity: string): Promise<void> {
      if (!(await fetchRunEntry(store, remote, stage, identity))) return;
      const e = await lookupRun(store, stage, identity);
      if (e) await fetch(store, remote, e.outs.map((ph) => ({ stage: stage.name, ph, writable: false })), { jobs: 8, label: `pull ${stage.name}` });
    },
  };
}
