/**
 * `gc [--rev R...] [--all-commits] [--dry]`: remove the cache objects that no lock references
 * (workspace locks of every profile, plus the locks of the given git revisions).
 */
import type { ProjectContext } from "../context.ts";
import { ReproMutex } from "../mutex.ts";
import { collectGarbage, lockedOutsFrom } from "../cache/gc.ts";
import { Linker } from "../cache/link.ts";
import { formatBytes } from "../cache/progress.ts";
import { cacheSettings } from "../cache/settings.ts";
import { CacheStore } from "../cache/store.ts";

export async function gc(ctx: ProjectContext, opts: { rev?: string[]; allCommits?: boolean; dry?: boolean }): Promise<number> {
  const settings = cacheSettings(ctx);
  const store = new CacheStore(settings.dir, new Linker(settings.link));
  const say = (m: string) => process.stdout.write(m + "\n");
  const mutex = opts.dry ? null : await ReproMutex.acquire(ctx, { say, command: process.argv.slice(2).join(" ") });
  try {
    const { outs, sources } = await lockedOutsFrom(ctx.root, opts.rev ?? [], !!opts.allCommits);
    const r = await collectGarbage(store, outs, !!opts.dry);
    const bytes = r.removed.reduce((a, x) => a + x.size, 0);
    if (opts.dry) for (const x of r.removed) say(`would remove ${x.file} (${formatBytes(x.size)})`);
    say(
      `gc${opts.dry ? " --dry" : ""}: ${opts.dry ? "would remove" : "removed"} ${r.removed.length} object${r.removed.length === 1 ? "" : "s"} (${formatBytes(bytes)}) and ${r.runsRemoved} run-cache entr${r.runsRemoved === 1 ? "y" : "ies"}; ` +
        `kept ${r.kept}, referenced by ${sources.join(", ") || "no lock"} (cache: ${settings.dir})`,
    );
    return 0;
  } finally {
    mutex?.release();
  }
}
