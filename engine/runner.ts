/**
 * Running stages safely: recovery of interrupted attempts, the scheduling loop, and per stage the
 * staging of outs, execution, verification and promotion into pipeline.lock.
 *
 * One attempt of a stage (every step journaled first, see journal.ts):
 *  1. its deps are hashed now; if it was to run only because upstream stages ran, it is
 *     re-planned and skipped when current after all (they reproduced what it already used);
 *  2. persist outs: kept in place only for the identity (cmd, dep hashes, params, env) of the
 *     interrupted attempt they come from, or of the lock entry that recorded them; otherwise they
 *     are moved to `.pipeline/stale/<stage>/<n>/` (and we say so);
 *  3. other outs that exist are moved (rename: same file system, no copy) to
 *     `<profileStateDir>/backup/<stage>/`; their parent directories are created;
 *  4. the executor runs the cmds;
 *  5. success = exit 0, no signal, every declared out exists. Then the outs are hashed, the lock
 *     entry journaled (phase promote), pipeline.lock rewritten atomically (read-modify-write of
 *     this one entry, serialized within the process; the mutex excludes other processes), the
 *     backups deleted, the journal removed;
 *  6. failure or Ctrl-C: the outs it wrote are removed and the backups moved back (persist outs
 *     stay, with a journal "interrupted" naming their identity); nothing enters the lock.
 *
 * After a kill -9 of the runner, `recover()` (next repro, mutex held) rolls back attempts that
 * had not succeeded (stopping their orphaned process group first if it still runs, or
 * re-attaching to a scheduler job that is still active), and rolls forward those that had.
 *
 * Fail-fast without -k: after a failure nothing new starts; running stages finish and are
 * recorded normally.
 */
import fs from "node:fs";
import path from "node:path";
import type { Project } from "./config.ts";
import type { Graph } from "./graph.ts";
import type { Hasher } from "./hashing.ts";
import { lockEntry } from "./lock.ts";
import { LockStore } from "./lock-store.ts";
import { formatReason, stageIdentity, stageReasons } from "./plan.ts";
import { computeStatus } from "./status.ts";
import { Scheduler, checkGpuNeeds, type SchedStage } from "./scheduler.ts";
import { PipelineError, explainExit } from "./errors.ts";
import { readJournalFile, removeJournal, writeJournal, type Journal } from "./journal.ts";
import { recover } from "./recovery.ts";
import { removeRunning, writeRunning } from "./running.ts";
import { crashPoint, deleteBackups, prepareOuts, rollback } from "./staging.ts";
import { safeName, tailLines, type Terminal } from "./output.ts";
import type { Provenance } from "./provenance.ts";
import type { CacheHooks } from "./cache/hooks.ts";
import type { Executor, JobResult, JobSpec, Reason, Stage, StageStatus } from "./types.ts";

export type StageOutcome = "ok" | "current" | "failed" | "interrupted";

export interface RunnerOptions {
  project: Project;
  graph: Graph;
  /** Selected stages in topological order. */
  selected: string[];
  force: boolean;
  forceTargets: Set<string>;
  keepGoing: boolean;
  jobs: number;
  /** The executor of a stage (its own `executor:` or the CLI default), by name. */
  executorName(stage: Stage): string;
  executor(name: string): Promise<Executor>;
  hasher: Hasher;
  terminal: Terminal;
  provenance: Provenance;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal: AbortSignal;
  /** Content-addressed cache and run-cache (engine/cache/); absent = no caching. */
  cache?: CacheHooks;
}

export interface RunSummary {
  ran: string[];
  current: string[];
  /** Current at launch time after their upstream stages ran (re-plan). */
  currentAfterUpstream: string[];
  failed: string[];
  /** Not run because an upstream stage failed. */
  blocked: string[];
  /** Not started: fail-fast after a failure (without -k) or Ctrl-C. */
  notStarted: string[];
  interrupted: string[];
  aborted: boolean;
}

interface AttachPlan {
  journal: Journal;
}

export class Runner {
  private readonly ctx;
  private readonly interrupted = new Set<string>();
  private readonly attach = new Map<string, AttachPlan>();
  private readonly lock: LockStore;
  /** Stages promoted in memory whose journal goes once the lock write that holds them is done. */
  private readonly finishing = new Set<Promise<void>>();
  /** The first failed write of pipeline.lock (its stages stay journaled: the next repro records them). */
  private lockError: Error | null = null;
  private readonly summary: RunSummary = {
    ran: [],
    current: [],
    currentAfterUpstream: [],
    failed: [],
    blocked: [],
    notStarted: [],
    interrupted: [],
    aborted: false,
  };

  constructor(private readonly o: RunnerOptions) {
    this.ctx = o.project.ctx;
    this.lock = new LockStore(this.ctx.lockFile);
  }

  private say(msg: string): void {
    this.o.terminal.info(msg);
  }

  // ---------------------------------------------------------------- planning

  /** Status of the selection now (after recovery). */
  async plan(): Promise<StageStatus[]> {
    return computeStatus(this.o.project, this.o.graph, this.o.selected, {
      force: this.o.force,
      forceTargets: this.o.forceTargets,
      interrupted: this.interrupted,
      hasher: this.o.hasher,
    });
  }

  /** Does a stage that will run need GPUs of the pool (so the pool must be known)? */
  needsGpuPool(statuses: StageStatus[]): boolean {
    return this.schedNodesUnchecked(statuses).some((n) => n.ownGpus && n.gpus > 0);
  }

  /** Scheduler nodes of the stages that will run; InputError when one needs more GPUs than the pool. */
  schedNodes(statuses: StageStatus[], gpuPool: string[]): SchedStage[] {
    const nodes = this.schedNodesUnchecked(statuses);
    checkGpuNeeds(nodes, gpuPool);
    return nodes;
  }

  private schedNodesUnchecked(statuses: StageStatus[]): SchedStage[] {
    const toRun = new Set(statuses.filter((s) => s.reasons.length > 0).map((s) => s.stage));
    const nodes = [...toRun].map((name) => {
      const stage = this.o.graph.stages.get(name)!;
      return {
        name,
        upstream: (this.o.graph.upstream.get(name) ?? []).filter((u) => toRun.has(u)),
        gpus: stage.resources?.gpus ?? 0,
        ownGpus: this.o.executorName(stage) === "local",
      };
    });
    return nodes;
  }

  /** Finish or undo what a killed runner left (journals; see recovery.ts). Call with the mutex held. */
  async recover(): Promise<void> {
    const r = await recover({
      ctx: this.ctx,
      graph: this.o.graph,
      executor: (n) => this.o.executor(n),
      promote: async (j) => {
        await (await this.promote(this.o.graph.stages.get(j.stage)!, j)).written;
      },
      say: (m) => this.say(m),
    });
    for (const s of r.interrupted) this.interrupted.add(s);
    for (const [k, v] of r.attach) this.attach.set(k, v);
  }

  // ---------------------------------------------------------------- the loop

  async run(statuses: StageStatus[], gpuPool: string[]): Promise<RunSummary> {
    const nodes = this.schedNodes(statuses, gpuPool);
    const reasons = new Map(statuses.map((s) => [s.stage, s.reasons]));
    this.summary.current = statuses.filter((s) => s.reasons.length === 0).map((s) => s.stage);
    const sched = new Scheduler(nodes, { jobs: this.o.jobs, gpuPool, keepGoing: this.o.keepGoing });
    const onAbort = () => sched.stop();
    this.o.signal.addEventListener("abort", onAbort, { once: true });
    if (this.o.signal.aborted) sched.stop();

    await new Promise<void>((resolveAll) => {
      const pump = () => {
        for (const l of sched.launchable()) {
          void this.runStage(l.stage, l.gpus, reasons.get(l.stage) ?? []).then((outcome) => {
            if (outcome === "ok") this.summary.ran.push(l.stage);
            else if (outcome === "current") this.summary.currentAfterUpstream.push(l.stage);
            else if (outcome === "failed") this.summary.failed.push(l.stage);
            else this.summary.interrupted.push(l.stage);
            sched.finish(l.stage, outcome === "ok" || outcome === "current" ? "ok" : "failed");
            pump();
          });
        }
        if (sched.done()) resolveAll();
      };
      pump();
    });
    this.o.signal.removeEventListener("abort", onAbort);
    // entries of stages removed from pipeline.yaml would stay in the lock forever
    let dropped: string[] = [];
    try {
      dropped = Object.keys(this.lock.get().stages).filter((n) => !this.o.graph.stages.has(n));
    } catch {
      /* an unreadable lock was reported when planning */
    }
    for (const n of dropped) this.lock.drop(n).catch((e: Error) => (this.lockError ??= e));
    if (dropped.length) this.say(`dropped the lock entr${dropped.length > 1 ? "ies" : "y"} of ${dropped.join(", ")} (no longer in pipeline.yaml)`);
    await this.lock.flush();
    await Promise.all([...this.finishing]);
    if (this.lockError) {
      throw new PipelineError(
        `could not write ${path.basename(this.ctx.lockFile)}: ${describeFsError(this.lockError)}; ` +
          `the stages that ran (${this.summary.ran.join(", ")}) stay journaled with their outputs, and the next repro records them once it can write`,
        1,
      );
    }
    for (const [name, st] of sched.states()) {
      if (st === "blocked" && !this.o.signal.aborted) this.summary.blocked.push(name);
      else if (st === "blocked" || st === "cancelled" || st === "pending") this.summary.notStarted.push(name);
    }
    this.summary.aborted = this.o.signal.aborted;
    return this.summary;
  }

  // ---------------------------------------------------------------- one stage

  private async runStage(name: string, gpus: string[], planned: Reason[]): Promise<StageOutcome> {
    const stage = this.o.graph.stages.get(name)!;
    let journal: Journal | null = null;
    try {
      if (this.o.signal.aborted) return "interrupted";
      const attach = this.attach.get(name);
      let reasons = planned;
      // deps are hashed once, now (after upstream stages ran): for the re-plan, the identity and the lock entry
      const deps = await this.o.hasher.hashPaths(stage.deps);
      if (!attach && planned.length > 0 && planned.every((r) => r.kind === "upstream")) {
        // re-plan: it ran only because upstream stages ran; they may have reproduced exactly what it used
        const outs = await this.o.hasher.hashPaths(stage.outs.map((x) => x.path));
        const entry = this.lock.entry(name);
        const own = stageReasons(stage, entry, deps, outs, (h) => this.o.hasher.manifestSync(h));
        if (own.length === 0) {
          this.say(`${name}: current after all (its upstream stages reproduced the same outputs); skipped`);
          return "current";
        }
        reasons = own;
      }
      const missingDep = stage.deps.filter((d) => !deps.get(d));
      if (missingDep.length) {
        this.fail(name, `missing dep${missingDep.length > 1 ? "s" : ""} ${missingDep.join(", ")} (deleted, or an upstream stage did not produce it)`);
        return "failed";
      }
      const identity = stageIdentity(stage, deps);
      const execName = this.o.executorName(stage);
      const executor = await this.o.executor(execName);

      let attachJobId: string | undefined;
      if (attach && attach.journal.identity === identity && attach.journal.jobId && executor.attach) {
        journal = attach.journal;
        attachJobId = attach.journal.jobId;
      } else {
        if (attach) await this.cancelAttach(name, attach, await this.o.executor(attach.journal.executor));
        // the previous log is about to be replaced: free its space first (it may be what filled the disk)
        fs.rmSync(path.join(this.ctx.profileStateDir, "logs", `${safeName(name)}.log`), { force: true });
        const p = prepareOuts({ ctx: this.ctx, say: (m) => this.say(m), lockEntry: (n) => this.lock.entry(n) }, stage, identity, execName, gpus);
        journal = p.journal;
        if (p.wasInterrupted) this.interrupted.add(name);
      }

      const logDir = path.join(this.ctx.profileStateDir, "logs");
      fs.mkdirSync(logDir, { recursive: true });
      const logFile = path.join(logDir, `${safeName(name)}.log`);
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
      delete env.PIPELINE_RELAYED; // the runner's own launch detail (launcher.ts), not the stage's
      Object.assign(env, stage.env);
      // Where the command finds its params (DVC-style scripts read them themselves): the params file
      // in force (params.yaml, or the -P profile that replaces it), the profile's name, the stage and
      // the params it tracks (a command that reads only these cannot depend on an untracked one).
      env.PIPELINE_ROOT = this.ctx.root;
      env.PIPELINE_PARAMS_FILES = this.ctx.profileFile ?? this.ctx.paramsFile;
      env.PIPELINE_PROFILE = this.ctx.profile;
      env.PIPELINE_STAGE = name;
      // the params this stage tracks (integers beyond 2^53 as strings of digits, exact)
      env.PIPELINE_STAGE_PARAMS = JSON.stringify(stage.params, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
      if (gpus.length) env.CUDA_VISIBLE_DEVICES = gpus.join(",");
      const j = journal;
      const job: JobSpec = {
        stage,
        cwd: stage.wdir ? path.join(this.ctx.root, stage.wdir) : this.ctx.root, // DVC's wdir
        env,
        gpus,
        logFile,
        identity,
        onSubmitted: (id) => {
          writeRunning(this.ctx, name, execName, id); // first: found even if the journal is lost
          j.jobId = id;
          writeJournal(this.ctx, j, { durable: execName !== "local" }); // a scheduler's job outlives this machine
        },
      };
      j.phase = "running";
      j.gpus = gpus;
      // a local job writes it with its id at once (onSubmitted); recovery treats prepare and running alike
      if (execName !== "local" || attachJobId) writeJournal(this.ctx, j, { durable: false });

      // run-cache: an earlier run with this identity left its outs in the cache -> check them out instead
      const restored = !attachJobId && !this.o.force && !this.o.forceTargets.has(name) && !!(await this.o.cache?.restore(stage, identity));
      if (restored) this.say(`${name}: restored from run-cache (an earlier run had the same cmd, deps, params and env)`);
      const shown = reasons.slice(0, 3).map(formatReason).join("; ") + (reasons.length > 3 ? `; and ${reasons.length - 3} more (see repro --dry)` : "");
      const why = attachJobId ? `re-attaching to job ${attachJobId}` : shown;
      if (!restored) this.say(`running ${name}${gpus.length ? ` on GPU ${gpus.join(",")}` : ""}${execName !== "local" ? ` (${execName})` : ""}: ${why}`);
      if (!attachJobId && !restored) for (const c of stage.cmd) this.say(c.split("\n").map((l, i) => `[${name}] ${i === 0 ? "$" : ">"} ${l}`).join("\n"));

      const t0 = Date.now();
      const io = {
        onOutput: (line: string) => this.o.terminal.stageOutput(name, line),
        signal: this.o.signal,
        onState: (s: string) => this.say(`${name}: ${s}`),
      };
      let res: JobResult;
      try {
        const at = new Date(t0).toISOString();
        res = restored ? { ok: true, exitCode: 0, startedAt: at, endedAt: new Date().toISOString() } : attachJobId ? await executor.attach!(attachJobId, job, io) : await executor.run(job, io);
      } catch (e) {
        const now = new Date().toISOString();
        res = { ok: false, exitCode: null, signal: null, startedAt: new Date(t0).toISOString(), endedAt: now, message: fsErrorText(e) ?? `the ${execName} executor failed: ${(e as Error).message}` };
      }
      removeRunning(this.ctx, name);
      this.o.terminal.stageEnded(name);
      const record = (outcome: "ok" | "failed", message?: string) =>
        this.o.provenance.addStage({
          stage: name,
          identity,
          outcome,
          startedAt: res.startedAt,
          endedAt: res.endedAt,
          exitCode: res.exitCode,
          signal: res.signal ?? null,
          gpus,
          peakRssKb: res.peakRssKb,
          executor: execName,
          jobId: res.jobId ?? j.jobId,
          state: res.state,
          message,
        });

      if (this.o.signal.aborted) {
        this.undo(j);
        this.say(`${name}: interrupted; its outputs were rolled back${j.outs.some((x) => x.persist) ? " (persist outs kept for resuming)" : ""}, nothing recorded`);
        return "interrupted";
      }
      if (!res.ok) {
        const code = res.signal ? `signal ${res.signal}` : res.exitCode === null ? "no exit code" : `exit code ${res.exitCode}`;
        const meaning = res.message ?? `${code}: ${explainExit(res.exitCode, res.signal)}`;
        this.undo(j);
        record("failed", meaning);
        this.fail(name, meaning.startsWith(code) || (res.exitCode === null && !res.signal) ? meaning : `${code}: ${meaning}`, logFile);
        return "failed";
      }
      const outs = await this.o.hasher.hashPaths(stage.outs.map((x) => x.path));
      const missing = stage.outs.filter((x) => !outs.get(x.path)).map((x) => x.path);
      if (missing.length) {
        this.undo(j);
        const msg = `exit code 0, but it did not produce its declared out${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`;
        record("failed", msg);
        this.fail(name, msg + " (check the paths in pipeline.yaml against what the command writes)", logFile);
        return "failed";
      }
      const depsAfter = await this.o.hasher.hashPaths(stage.deps);
      const changed = stage.deps.filter((d) => depsAfter.get(d)?.hash !== deps.get(d)?.hash);
      if (changed.length) {
        this.say(
          `warning: ${name} changed its own dep${changed.length > 1 ? "s" : ""} ${changed.join(", ")} while running: ` +
            `it is recorded with the deps it started from, so it will run again at every repro (make ${changed.length > 1 ? "them outs" : "it an out"}, or stop writing ${changed.length > 1 ? "them" : "it"})`,
        );
      }
      j.phase = "promote";
      j.entry = lockEntry(stage, deps, outs);
      writeJournal(this.ctx, j);
      crashPoint("promote", name);
      const done = (await this.promote(stage, j)).written.catch((e: Error) => {
        this.lockError ??= e;
      });
      this.finishing.add(done);
      void done.finally(() => this.finishing.delete(done));
      this.interrupted.delete(name);
      record("ok");
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      this.say(`done ${name} in ${secs} s${res.peakRssKb ? `, peak memory ${formatKb(res.peakRssKb)}` : ""}`);
      return "ok";
    } catch (e) {
      // prepare() may have failed half-way: its journal is on disk already
      journal ??= ((x) => (x && x.pid === process.pid && x.phase === "prepare" ? x : null))(readJournalFile(this.ctx, name));
      if (journal) {
        try {
          this.undo(journal);
        } catch (e2) {
          this.say(`warning: could not roll back ${name}: ${(e2 as Error).message} (the next repro retries from the journal)`);
        }
      }
      const fsErr = fsErrorText(e);
      this.fail(name, e instanceof PipelineError ? e.message : fsErr ?? `internal error: ${(e as Error).stack ?? e}`);
      return "failed";
    }
  }

  /** After a failure/interruption: roll back outs; keep a journal only for persist outs. */
  private undo(j: Journal): void {
    rollback(this.ctx, j);
    if (j.outs.some((x) => x.persist)) {
      j.phase = "interrupted";
      delete j.entry;
      writeJournal(this.ctx, j);
      this.interrupted.add(j.stage);
    } else {
      removeJournal(this.ctx, j.stage);
    }
  }

  /** A scheduler job of an interrupted attempt with another identity: cancel it and roll back. */
  private async cancelAttach(name: string, a: AttachPlan, executor: Executor): Promise<void> {
    this.say(`${name}: the still active job ${a.journal.jobId} ran with another cmd, deps, params or env; cancelling it`);
    try {
      await executor.cancel(a.journal.jobId!);
    } catch (e) {
      this.say(`${name}: ${(e as Error).message}`);
    }
    rollback(this.ctx, a.journal);
    this.attach.delete(name);
  }

  /**
   * The one way a successful attempt is finished, by a run and by recovery (roll forward) alike:
   * its journal is at phase promote with the lock entry. The outs go into the cache and the run
   * into the run-cache first (awaited), then the entry into the lock (in memory at once, so
   * downstream stages go on); the returned promise resolves once a lock write holds it, and only
   * then are the backups and the journal removed.
   */
  private async promote(stage: Stage, j: Journal): Promise<{ written: Promise<void> }> {
    const entry = j.entry!;
    await this.o.cache?.afterRun(stage, j.identity, entry.outs);
    const written = this.lock.set(stage.name, entry).then(() => {
      crashPoint("locked", stage.name);
      deleteBackups(this.ctx, j);
      removeJournal(this.ctx, stage.name);
    });
    return { written };
  }

  private fail(name: string, what: string, logFile?: string): void {
    const persist = this.o.graph.stages.get(name)?.outs.filter((o) => o.persist).map((o) => o.path) ?? [];
    const lines = [`FAILED ${name}: ${what}`];
    if (logFile) {
      lines.push(`  log: ${displayPath(logFile)}`);
      const tail = tailLines(logFile, 20);
      if (tail.length) {
        lines.push(`  last ${tail.length} lines of the log:`);
        for (const l of tail) lines.push(`  | ${l}`);
      }
    }
    lines.push(
      `  its last good outputs were kept; nothing of this run was recorded in the lock` +
        (persist.length ? ` (persist outs ${persist.join(", ")} stay as the command left them, to resume)` : ""),
    );
    this.say(lines.join("\n"));
  }
}

/** A path relative to the working directory when inside it, else absolute. */
function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : abs;
}

/** "no space left on device" rather than "ENOSPC: no space left on device, open '/x/y.tmp-1-ab'". */
function describeFsError(e: Error): string {
  const m = /^(E[A-Z]+): ([^,]+)/.exec(e.message);
  return m ? m[2]! : e.message;
}

/** "no space left on device while writing .pipeline/journal/a.json" for a file-system error, else null. */
function fsErrorText(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException;
  if (!err || typeof err.code !== "string" || !/^E[A-Z]+$/.test(err.code) || !err.syscall) return null;
  const file = err.path ? displayPath(err.path.replace(/\.tmp-\d+-[0-9a-f]+$/, "")) : "";
  return `${describeFsError(err)}${file ? ` while writing ${file}` : ""} (free space or fix the file system, then rerun: the last good outputs were kept)`;
}

function formatKb(kb: number): string {
  if (kb >= 1024 * 1024) return `${(kb / 1024 / 1024).toFixed(1)} GiB`;
  if (kb >= 1024) return `${(kb / 1024).toFixed(0)} MiB`;
  return `${kb} KiB`;
}
