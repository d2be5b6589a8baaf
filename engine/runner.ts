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
import { readLock, writeLock, lockEntry } from "./lock.ts";
import { formatReason, stageIdentity, stageReasons } from "./plan.ts";
import { computeStatus } from "./status.ts";
import { Scheduler, checkGpuNeeds, type SchedStage } from "./scheduler.ts";
import { PipelineError, explainExit } from "./errors.ts";
import { newJournal, readJournals, removeJournal, writeJournal, type Journal, type JournalOut } from "./journal.ts";
import { safeName, tailLines, type Terminal } from "./output.ts";
import type { Provenance } from "./provenance.ts";
import type { Executor, JobResult, JobSpec, LockEntry, PathHash, Reason, Stage, StageStatus } from "./types.ts";

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
  private lockQueue: Promise<void> = Promise.resolve();
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
  }

  private say(msg: string): void {
    this.o.terminal.info(msg);
  }

  // ---------------------------------------------------------------- recovery

  /** Finish or undo what a killed runner left (journals). Call with the mutex held. */
  async recover(): Promise<void> {
    const journals = readJournals(this.ctx, (file, why) => this.say(`warning: ignoring unreadable journal ${file}: ${why}`));
    for (const j of journals) {
      const who = `pid ${j.pid} on ${j.host}, started ${j.startedAt}`;
      if (j.phase === "interrupted") {
        this.interrupted.add(j.stage);
        continue;
      }
      if (j.phase === "promote" && j.entry) {
        // (a stage since removed from pipeline.yaml gets no lock entry)
        if (this.o.graph.stages.has(j.stage)) await this.updateLock(j.stage, j.entry);
        this.deleteBackups(j);
        removeJournal(this.ctx, j.stage);
        this.say(`recovered ${j.stage}: its run (${who}) had succeeded; recorded it in the lock`);
        continue;
      }
      // prepare / running
      if (j.jobId) {
        const ex = await this.o.executor(j.executor).catch(() => null);
        let active = false;
        if (ex?.isActive) {
          try {
            active = await ex.isActive(j.jobId);
          } catch (e) {
            // rolling back under a job that still writes its outs would be worse than stopping here
            throw new PipelineError(
              `cannot tell whether job ${j.jobId} of the interrupted stage ${j.stage} still runs: ${(e as Error).message}\n` +
                `retry when the ${j.executor} executor answers again (nothing was changed)`,
              1,
            );
          }
        }
        // A scheduler job that finished while no runner watched is attached to as well: attach returns
        // its recorded result at once, so 12 hours of capture are recorded, not resubmitted.
        const scheduled = j.executor !== "local";
        if ((active || scheduled) && ex?.attach && this.o.graph.stages.has(j.stage)) {
          this.attach.set(j.stage, { journal: j });
          this.interrupted.add(j.stage);
          this.say(`${j.stage}: job ${j.jobId} of an interrupted run (${who}) is ${active ? "still active" : "finished"}; will re-attach to it`);
          continue;
        }
        if (active && ex) {
          this.say(`${j.stage}: stopping job ${j.jobId} left running by an interrupted run (${who})`);
          await ex.cancel(j.jobId);
        }
      }
      this.rollback(j);
      const persist = j.outs.some((x) => x.persist);
      if (persist) {
        j.phase = "interrupted";
        writeJournal(this.ctx, j);
        this.interrupted.add(j.stage);
      } else {
        removeJournal(this.ctx, j.stage);
      }
      this.say(
        `recovered ${j.stage}: its run (${who}) was interrupted; restored its last good outputs` +
          (persist ? ` (persist outs kept for resuming: ${j.outs.filter((x) => x.persist).map((x) => x.path).join(", ")})` : ""),
      );
    }
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
    await this.lockQueue;
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
        const entry = readLock(this.ctx.lockFile).stages[name];
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
        journal = this.prepare(stage, identity, execName, gpus);
      }

      const logDir = path.join(this.ctx.profileStateDir, "logs");
      fs.mkdirSync(logDir, { recursive: true });
      const logFile = path.join(logDir, `${safeName(name)}.log`);
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
      Object.assign(env, stage.env);
      // Where the command finds its params (DVC-style scripts read them themselves): the params file
      // in force (params.yaml, or the -P profile that replaces it), the profile's name, the stage and
      // the params it tracks (a command that reads only these cannot depend on an untracked one).
      env.PIPELINE_ROOT = this.ctx.root;
      env.PIPELINE_PARAMS_FILES = this.ctx.profileFile ?? this.ctx.paramsFile;
      env.PIPELINE_PROFILE = this.ctx.profile;
      env.PIPELINE_STAGE = name;
      env.PIPELINE_STAGE_PARAMS = JSON.stringify(stage.params); // the params this stage tracks
      if (gpus.length) env.CUDA_VISIBLE_DEVICES = gpus.join(",");
      const j = journal;
      const job: JobSpec = {
        stage,
        cwd: this.ctx.root,
        env,
        gpus,
        logFile,
        identity,
        onSubmitted: (id) => {
          j.jobId = id;
          writeJournal(this.ctx, j);
        },
      };
      j.phase = "running";
      j.gpus = gpus;
      writeJournal(this.ctx, j);

      const shown = reasons.slice(0, 3).map(formatReason).join("; ") + (reasons.length > 3 ? `; and ${reasons.length - 3} more (see repro --dry)` : "");
      const why = attachJobId ? `re-attaching to job ${attachJobId}` : shown;
      this.say(`running ${name}${gpus.length ? ` on GPU ${gpus.join(",")}` : ""}${execName !== "local" ? ` (${execName})` : ""}: ${why}`);
      if (!attachJobId) for (const c of stage.cmd) this.say(c.split("\n").map((l, i) => `[${name}] ${i === 0 ? "$" : ">"} ${l}`).join("\n"));

      const t0 = Date.now();
      const io = {
        onOutput: (line: string) => this.o.terminal.stageOutput(name, line),
        signal: this.o.signal,
        onState: (s: string) => this.say(`${name}: ${s}`),
      };
      let res: JobResult;
      try {
        res = attachJobId ? await executor.attach!(attachJobId, job, io) : await executor.run(job, io);
      } catch (e) {
        const now = new Date().toISOString();
        res = { ok: false, exitCode: null, signal: null, startedAt: new Date(t0).toISOString(), endedAt: now, message: `the ${execName} executor failed: ${(e as Error).message}` };
      }
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
        this.fail(name, meaning.startsWith(code) ? meaning : `${code}: ${meaning}`, logFile);
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
      const entry = lockEntry(stage, deps, outs);
      j.phase = "promote";
      j.entry = entry;
      writeJournal(this.ctx, j);
      crashPoint("promote", name);
      await this.updateLock(name, entry);
      crashPoint("locked", name);
      this.deleteBackups(j);
      removeJournal(this.ctx, name);
      this.interrupted.delete(name);
      record("ok");
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      this.say(`done ${name} in ${secs} s${res.peakRssKb ? `, peak memory ${formatKb(res.peakRssKb)}` : ""}`);
      return "ok";
    } catch (e) {
      // prepare() may have failed half-way: its journal is on disk already
      journal ??= readJournals(this.ctx).find((x) => x.stage === name && x.pid === process.pid && x.phase === "prepare") ?? null;
      if (journal) {
        try {
          this.undo(journal);
        } catch (e2) {
          this.say(`warning: could not roll back ${name}: ${(e2 as Error).message} (the next repro retries from the journal)`);
        }
      }
      this.fail(name, e instanceof PipelineError ? e.message : `internal error: ${(e as Error).stack ?? e}`);
      return "failed";
    }
  }

  /** Steps 2 and 3: persist outs checked against identities, other outs moved to backups. */
  private prepare(stage: Stage, identity: string, execName: string, gpus: string[]): Journal {
    const root = this.ctx.root;
    const prev = readJournals(this.ctx).find((x) => x.stage === stage.name) ?? null;
    const j = newJournal(stage.name, identity, execName, gpus);
    const backupRoot = path.join(this.ctx.profileStateDir, "backup", safeName(stage.name));
    fs.rmSync(backupRoot, { recursive: true, force: true }); // leftovers of a finished attempt
    for (const o of stage.outs) {
      const abs = path.join(root, o.path);
      const existed = exists(abs);
      const jo: JournalOut = { path: o.path, persist: o.persist, existed };
      if (o.persist && existed) {
        const keep = prev ? prev.identity === identity : this.lockIdentity(stage) === identity;
        if (!keep) {
          const where = this.moveStale(stage.name, o.path);
          this.say(
            `${stage.name}: moved persist out ${o.path} to ${path.relative(root, where)}: it comes from a run with another cmd, deps, params or env` +
              (prev ? " (an interrupted attempt)" : ""),
          );
          jo.existed = false;
        } else {
          this.say(`${stage.name}: keeping persist out ${o.path} to resume (same cmd, deps, params and env)`);
        }
      } else if (!o.persist && existed) {
        jo.backup = path.join(backupRoot, o.path);
      }
      j.outs.push(jo);
    }
    writeJournal(this.ctx, j); // planned backups are journaled before any rename
    crashPoint("prepare", stage.name);
    for (const jo of j.outs) {
      if (!jo.backup) continue;
      const abs = path.join(root, jo.path);
      fs.mkdirSync(path.dirname(jo.backup), { recursive: true });
      try {
        fs.renameSync(abs, jo.backup);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
        // the out lives on another file system (e.g. a symlinked scratch dir): back up next to it
        jo.backup = path.join(path.dirname(abs), `.${path.basename(abs)}.pipeline-backup`);
        fs.rmSync(jo.backup, { recursive: true, force: true });
        writeJournal(this.ctx, j);
        fs.renameSync(abs, jo.backup);
      }
    }
    crashPoint("backup", stage.name);
    for (const o of stage.outs) fs.mkdirSync(path.dirname(path.join(root, o.path)), { recursive: true });
    if (prev && prev.phase === "interrupted") this.interrupted.add(stage.name);
    return j;
  }

  /** Identity of the lock entry of a stage (what its recorded outs were produced with), or null. */
  private lockIdentity(stage: Stage): string | null {
    const entry = readLock(this.ctx.lockFile).stages[stage.name];
    if (!entry) return null;
    const pseudo: Stage = { ...stage, cmd: entry.cmd, params: entry.params, env: entry.env, deps: entry.deps.map((d) => d.path) };
    return stageIdentity(pseudo, new Map<string, PathHash | null>(entry.deps.map((d) => [d.path, d])));
  }

  private moveStale(stage: string, out: string): string {
    const base = path.join(this.ctx.stateDir, "stale", safeName(stage));
    fs.mkdirSync(base, { recursive: true });
    const n = Math.max(0, ...fs.readdirSync(base).map((x) => Number(x)).filter((x) => Number.isInteger(x))) + 1;
    const dest = path.join(base, String(n), out);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const abs = path.join(this.ctx.root, out);
    try {
      fs.renameSync(abs, dest);
      return dest;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
      const sib = `${abs}.stale-${n}`;
      fs.renameSync(abs, sib);
      return sib;
    }
  }

  /** After a failure/interruption: roll back outs; keep a journal only for persist outs. */
  private undo(j: Journal): void {
    this.rollback(j);
    if (j.outs.some((x) => x.persist)) {
      j.phase = "interrupted";
      delete j.entry;
      writeJournal(this.ctx, j);
      this.interrupted.add(j.stage);
    } else {
      removeJournal(this.ctx, j.stage);
    }
  }

  /** Remove what the attempt wrote to non-persist outs and put the last good versions back (idempotent). */
  private rollback(j: Journal): void {
    for (const o of j.outs) {
      if (o.persist) continue;
      const abs = path.join(this.ctx.root, o.path);
      if (o.backup && exists(o.backup)) {
        fs.rmSync(abs, { recursive: true, force: true });
        fs.mkdirSync(path.dirname(abs), { recursive: true });
        fs.renameSync(o.backup, abs);
      } else if (!o.existed) {
        fs.rmSync(abs, { recursive: true, force: true });
      }
    }
  }

  private deleteBackups(j: Journal): void {
    for (const o of j.outs) if (o.backup) fs.rmSync(o.backup, { recursive: true, force: true });
  }

  /** A scheduler job of an interrupted attempt with another identity: cancel it and roll back. */
  private async cancelAttach(name: string, a: AttachPlan, executor: Executor): Promise<void> {
    this.say(`${name}: the still active job ${a.journal.jobId} ran with another cmd, deps, params or env; cancelling it`);
    try {
      await executor.cancel(a.journal.jobId!);
    } catch (e) {
      this.say(`${name}: ${(e as Error).message}`);
    }
    this.rollback(a.journal);
    this.attach.delete(name);
  }

  /** Read-modify-write of this stage's lock entry, serialized within the process. */
  private updateLock(name: string, entry: LockEntry): Promise<void> {
    const next = this.lockQueue.then(async () => {
      const lock = readLock(this.ctx.lockFile);
      lock.stages[name] = entry;
      await writeLock(this.ctx.lockFile, lock);
    });
    this.lockQueue = next.catch(() => {});
    return next;
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

/**
 * Fault injection for tests of crash safety: `PIPELINE_CRASH_AT=<point>:<stage>` makes the runner
 * SIGKILL itself at that point of that stage's attempt (points: prepare, backup, promote, locked).
 */
function crashPoint(point: string, stage: string): void {
  const v = process.env.PIPELINE_CRASH_AT;
  if (v && v === `${point}:${stage}`) process.kill(process.pid, "SIGKILL");
}

function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** A path relative to the working directory when inside it, else absolute. */
export function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : abs;
}

export function formatKb(kb: number): string {
  if (kb >= 1024 * 1024) return `${(kb / 1024 / 1024).toFixed(1)} GiB`;
  if (kb >= 1024) return `${(kb / 1024).toFixed(0)} MiB`;
  return `${kb} KiB`;
}
