/**
 * `repro [targets...]`: bring targets up to date.
 *
 * Order: load and check everything (pipeline.yaml, params, targets, flags, GPU pool) -> take the
 * project mutex -> recover what a killed runner left -> plan -> check GPU needs of what will run
 * -> run -> summary. `--dry` plans (taking no mutex, changing nothing) and prints what would run
 * and why.
 *
 * Exit codes: 0 all selected stages current or ran; 1 a stage failed (or another repro holds the
 * project); 2 bad input; 130 interrupted (Ctrl-C / SIGTERM).
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { pipelineLocator, type Locate } from "../locate.ts";
import { buildGraph, missingDepError, selectStages, type Graph } from "../graph.ts";
import { Hasher } from "../hashing.ts";
import { formatReason } from "../plan.ts";
import { computeStatus } from "../status.ts";
import { InputError, PipelineError } from "../errors.ts";
import { resolveGpuPool } from "../gpus.ts";
import { listInterrupted } from "../journal.ts";
import { watchLaunchers } from "../launcher.ts";
import { guardSharedOuts } from "../profile-guard.ts";
import { ReproMutex } from "../mutex.ts";
import { Terminal } from "../output.ts";
import { Provenance } from "../provenance.ts";
import { Runner, type RunSummary } from "../runner.ts";
import { LocalExecutor, killAllLocalJobs } from "../executor-local.ts";
import type { Executor, Stage, StageStatus } from "../types.ts";
import { CacheHooks } from "../cache/hooks.ts";

export interface ReproOptions {
  force?: boolean;
  dry?: boolean;
  downstream?: boolean;
  singleItem?: boolean;
  keepGoing?: boolean;
  jobs?: number;
  gpus?: string;
  executor?: "local" | "slurm";
  wait?: boolean;
  /** false: `--no-run-cache` (always run the command). */
  runCache?: boolean;
  /** `--pull`: fetch what the cache lacks from the remote first. */
  pull?: boolean;
  remote?: string;
}

/** The stages the targets name (`capture` = all its instances), for -f. */
function targetStages(graph: Graph, targets: string[]): Set<string> {
  const out = new Set<string>();
  for (const t of targets) for (const [n, s] of graph.stages) if (n === t || s.group === t) out.add(n);
  return out;
}

/** The SLURM executor's module, once a run has loaded it (for the forced-exit scancel). */
let slurmModule: typeof import("../executor-slurm.ts") | undefined;

function executorFactory(ctx: ProjectContext): (name: string) => Promise<Executor> {
  const cache = new Map<string, Promise<Executor>>();
  return (name) => {
    let p = cache.get(name);
    if (!p) {
      p = (async (): Promise<Executor> => {
        if (name === "local") return new LocalExecutor();
        if (name === "slurm") {
          // Loaded lazily (only runs that use SLURM pay for it); a plain import, so the bundle carries it.
          slurmModule = await import("../executor-slurm.ts");
          return slurmModule.createSlurmExecutor(ctx);
        }
        throw new InputError(`unknown executor ${JSON.stringify(name)}; expected local or slurm`);
      })();
      cache.set(name, p);
    }
    return p;
  };
}

function list(names: string[], max = 8): string {
  return names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")}, ... (${names.length - max} more)`;
}

function printDry(term: Terminal, statuses: StageStatus[]): void {
  const run = statuses.filter((s) => s.reasons.length > 0);
  for (const s of run) {
    term.info(`would run ${s.stage}:`);
    for (const r of s.reasons) term.info(`  - ${formatReason(r)}`);
  }
  const cur = statuses.length - run.length;
  term.info(run.length === 0 ? `all ${statuses.length} selected stages are current; nothing would run` : `${run.length} stage${run.length === 1 ? "" : "s"} would run, ${cur} current`);
}

function printSummary(term: Terminal, s: RunSummary, restoredFromRunCache = new Set<string>()): void {
  const parts: string[] = [];
  const ran = s.ran.filter((n) => !restoredFromRunCache.has(n));
  const restored = s.ran.filter((n) => restoredFromRunCache.has(n));
  if (ran.length) parts.push(`ran ${ran.length} (${list(ran)})`);
  if (restored.length) parts.push(`restored from run-cache ${restored.length} (${list(restored)})`);
  const cur = s.current.length + s.currentAfterUpstream.length;
  if (cur) parts.push(`current ${cur}${s.currentAfterUpstream.length ? ` (${s.currentAfterUpstream.length} found current after their upstream ran)` : ""}`);
  if (s.failed.length) parts.push(`FAILED ${s.failed.length} (${list(s.failed)})`);
  if (s.blocked.length) parts.push(`not run because an upstream stage failed: ${s.blocked.length} (${list(s.blocked)})`);
  if (s.interrupted.length) parts.push(`interrupted ${s.interrupted.length} (${list(s.interrupted)})`);
  if (s.notStarted.length) {
    const why = s.aborted ? "interrupted before starting" : "not started after the failure (use -k to keep going with independent stages)";
    parts.push(`${why}: ${s.notStarted.length} (${list(s.notStarted)})`);
  }
  const nothingElse = parts.length === (cur ? 1 : 0);
  term.info(`summary: ${parts.join("; ") || "nothing selected"}${nothingElse && cur ? " (nothing to run)" : ""}`);
}

/**
 * Planning works without the data (a fresh clone); running does not: a selected stage whose dep
 * is neither on disk nor written by any stage, or whose declared params are absent, stops repro
 * before anything runs. Frozen stages never run for their deps, so they are not checked.
 */
function refuseMissingInputs(graph: Graph, selected: string[], locate?: Locate): void {
  for (const name of selected) {
    const stage = graph.stages.get(name)!;
    if (stage.frozen) continue;
    const dep = graph.missingDeps.get(name)?.[0];
    if (dep !== undefined) throw missingDepError(name, dep, locate?.(stage.group, "deps", dep));
    const missing = Object.values(stage.missingParams ?? {});
    if (missing.length > 0) throw new InputError(`${missing[0]} (stage ${name} cannot run without it)`);
  }
}

export async function repro(ctx: ProjectContext, targets: string[], opts: ReproOptions): Promise<number> {
  const jobs = opts.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1) throw new InputError(`-j/--jobs must be a whole number >= 1 (got ${opts.jobs})`);
  const defaultExecutor = opts.executor ?? "local";
  if (defaultExecutor !== "local" && defaultExecutor !== "slurm") throw new InputError(`--executor must be local or slurm (got ${defaultExecutor})`);

  const term = new Terminal();
  const project = await loadProject(ctx);
  const locate = pipelineLocator(ctx);
  const graph = buildGraph(project.stages, (rel) => fs.existsSync(path.join(ctx.root, rel)), locate);
  const selected = selectStages(graph, targets, { downstream: opts.downstream, single: opts.singleItem });
  if (!opts.dry) refuseMissingInputs(graph, selected, locate);
  const forceTargets = opts.force ? (targets.length ? targetStages(graph, targets) : new Set(selected)) : new Set<string>();
  // the flag / CUDA_VISIBLE_DEVICES are checked now; nvidia-smi only if a stage that runs needs GPUs
  const poolNoDetect = await resolveGpuPool(opts.gpus, process.env, false);
  const gpuPool = async (runner: Runner, statuses: StageStatus[]) =>
    poolNoDetect.source === "none" && runner.needsGpuPool(statuses) ? resolveGpuPool(opts.gpus) : poolNoDetect;
  const executorName = (stage: Stage): string => stage.executor ?? defaultExecutor;
  const executor = executorFactory(ctx);
  // an unavailable executor is bad input: fail before anything runs
  for (const n of new Set(selected.map((s) => executorName(graph.stages.get(s)!)))) await executor(n);

  const hasher = new Hasher(ctx);
  if (opts.dry) {
    const statuses = await computeStatus(project, graph, selected, { force: false, forceTargets, interrupted: await listInterrupted(ctx, graph.stages.keys()), hasher });
    const runner = new Runner({
      project, graph, selected, force: false, forceTargets, keepGoing: !!opts.keepGoing, jobs,
      executorName, executor, hasher, terminal: term, provenance: new Provenance(ctx), signal: new AbortController().signal,
    });
    runner.schedNodes(statuses, (await gpuPool(runner, statuses)).ids); // GPU needs: same error as a real run
    printDry(term, statuses);
    await hasher.save();
    return 0;
  }

  const ac = new AbortController();
  let mutex: ReproMutex | null = null;
  let signals = 0;
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // one Ctrl-C can arrive twice (from the terminal's process group and relayed by a launcher)
    if (signals > 0 && Date.now() - firstSignalAt < 1000) return;
    if (signals === 0) firstSignalAt = Date.now();
    signals++;
    if (signals === 1) {
      term.info(`\n${sig}: stopping running stages (again to kill them at once)...`);
      ac.abort();
      return;
    }
    killAllLocalJobs();
    releaseClaim?.();
    slurmModule?.cancelAllSlurmJobsSync();
    mutex?.release();
    process.exit(130);
  };
  let releaseClaim: (() => void) | null = null;
  const releaseOnExit = () => {
    releaseClaim?.();
    mutex?.release();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  process.on("exit", releaseOnExit);
  // npx, tsx and an npm script's shell may die of a signal without passing it on (launcher.ts)
  const stopWatch = watchLaunchers((what) => {
    if (signals > 0) return;
    signals++;
    term.info(`\nthe launcher ${what} ended: stopping running stages...`);
    ac.abort();
  });
  try {
    mutex = await ReproMutex.acquire(ctx, {
      wait: opts.wait,
      say: (m) => term.info(m),
      command: process.argv.slice(2).join(" "),
      signal: ac.signal,
    });
    const selectedOuts = [...new Set(selected.flatMap((n) => graph.stages.get(n)!.outs.map((o) => o.path)))];
    releaseClaim = await guardSharedOuts(ctx, mutex.holder.token, selectedOuts, { wait: opts.wait, say: (m) => term.info(m), signal: ac.signal });
    const provenance = new Provenance(ctx);
    const say = (m: string) => term.info(m);
    const fetchRun = opts.pull ? (await import("../cache/pull-for-repro.ts")).pullForRepro(ctx, hasher, selected, graph, opts.remote, say) : undefined;
    if (fetchRun) await fetchRun.pullOuts();
    const cache = new CacheHooks(ctx, hasher, { runCache: opts.runCache !== false, fetchRun: fetchRun?.fetchRun, say });
    const runner = new Runner({
      project, graph, selected, force: false, forceTargets, keepGoing: !!opts.keepGoing, jobs,
      executorName, executor, hasher, terminal: term, provenance, signal: ac.signal, cache,
    });
    await runner.recover();
    const statuses = await runner.plan();
    const pool = await gpuPool(runner, statuses);
    if (pool.ids.length && pool.source !== "--gpus" && runner.needsGpuPool(statuses)) term.info(`GPUs: ${pool.ids.join(",")} (from ${pool.source})`);
    provenance.record.gpuPool = pool.ids;
    const summary = await runner.run(statuses, pool.ids);
    await hasher.save();
    printSummary(term, summary, cache.restored);
    const code = summary.aborted ? 130 : summary.failed.length ? 1 : 0;
    if (provenance.record.stages.length) provenance.finish(code);
    return code;
  } catch (e) {
    if (ac.signal.aborted && !(e instanceof InputError)) throw new PipelineError(`interrupted: ${(e as Error).message}`, 130);
    throw e;
  } finally {
    stopWatch();
    term.close();
    releaseClaim?.();
    mutex?.release();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
    process.off("exit", releaseOnExit);
  }
}
