/**
 * `push` / `fetch` / `pull [targets]` against a remote (-r/--remote, PIPELINE_REMOTE or
 * `remote:` of pipeline.config.yaml). Exit 0 when every selected out was transferred (or was
 * there already), 1 when some could not be (named), 2 on bad input.
 */
import type { ProjectContext } from "../context.ts";
import { Hasher } from "../hashing.ts";
import { InputError } from "../errors.ts";
import { ReproMutex } from "../mutex.ts";
import { lockedOuts } from "../cache/outs.ts";
import { formatBytes } from "../cache/progress.ts";
import { openRemote } from "../cache/remote.ts";
import { fetch, push, pushAllRuns, pushRuns, type TransferSummary } from "../cache/transfer.ts";
import { checkoutRefs, loadSelection } from "./checkout.ts";

export interface TransferCliOptions {
  remote?: string;
  jobs?: number;
  /** push: every run-cache entry (and its objects), not only the lock's runs. */
  runCache?: boolean;
}

function line(verb: string, s: TransferSummary, secs: number): string {
  const parts = [`${s.transferred} object${s.transferred === 1 ? "" : "s"} ${verb} (${formatBytes(s.bytes)})`, `${s.present} already there`];
  if (s.corrupt) parts.push(`${s.corrupt} corrupt in the cache (moved to <cache>/corrupt/), fetched again`);
  if (s.resumed) parts.push(`${s.resumed} resumed from an interrupted transfer`);
  if (s.runs) parts.push(`${s.runs} run-cache entr${s.runs === 1 ? "y" : "ies"}`);
  return `${parts.join(", ")} in ${secs.toFixed(1)} s`;
}

export async function transfer(cmd: "push" | "fetch" | "pull", ctx: ProjectContext, targets: string[], opts: TransferCliOptions): Promise<number> {
  const jobs = opts.jobs ?? 8;
  if (!Number.isInteger(jobs) || jobs < 1) throw new InputError(`-j/--jobs must be a whole number >= 1 (got ${opts.jobs})`);
  const sel = await loadSelection(ctx, targets);
  const remote = openRemote(opts.remote ?? sel.settings.remote, sel.settings.s3);
  const say = (m: string) => process.stdout.write(m + "\n");
  const hasher = new Hasher(ctx);
  const { outs, uncached } = lockedOuts(sel.graph, sel.selected, sel.lock);
  const t0 = Date.now();
  let incomplete: { path: string; why: string }[];
  let missingAfterCheckout: string[] = [];
  if (cmd === "push") {
    const s = await push(sel.store, hasher, ctx.root, remote, outs, { jobs, label: "push" });
    await pushRuns(sel.store, remote, sel.graph, sel.selected, sel.lock, s);
    if (opts.runCache) await pushAllRuns(sel.store, hasher, ctx.root, remote, { jobs, label: "push run-cache" }, s);
    say(`push to ${remote.url}: ${line("uploaded", s, (Date.now() - t0) / 1000)}`);
    incomplete = s.incomplete;
  } else {
    const s = await fetch(sel.store, remote, outs, { jobs, label: cmd });
    say(`${cmd} from ${remote.url}: ${line("downloaded", s, (Date.now() - t0) / 1000)}`);
    incomplete = s.incomplete;
    if (cmd === "pull") {
      const bad = new Set(incomplete.map((x) => x.path));
      const mutex = await ReproMutex.acquire(ctx, { say, command: process.argv.slice(2).join(" ") });
      try {
        const r = await checkoutRefs(sel.store, hasher, ctx.root, outs.filter((o) => !bad.has(o.ph.path)), say);
        missingAfterCheckout = r.missing;
        say(`checkout: ${r.restored} restored${sel.store.linker.used() ? ` (${sel.store.linker.used()})` : ""}, ${r.current} already current`);
      } finally {
        mutex.release();
      }
    }
  }
  await hasher.save();
  for (const x of incomplete) say(`incomplete: ${x.path}: ${x.why}`);
  if (uncached.length) say(`not transferred (cache: false): ${uncached.join(", ")}`);
  return incomplete.length || missingAfterCheckout.length ? 1 : 0;
}
