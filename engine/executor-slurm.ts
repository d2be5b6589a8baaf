/**
 * The SLURM executor: runs each stage as a batch job (`sbatch --parsable`) and waits for it on
 * the login node.
 *
 * - The batch script (`<profileStateDir>/slurm/<stage>.sbatch`, see slurm/sbatch.ts) cds into
 *   the project (shared filesystem), exports the stage env and runs the cmds in order; SLURM
 *   writes its output to the attempt's log file, which is tailed to `io.onOutput`.
 * - One poller per executor asks squeue about all jobs it follows at once, every
 *   PIPELINE_SLURM_POLL_MS (default 5000 ms): 100 foreach instances cost one squeue call per
 *   interval, not 100. State changes (PENDING (reason), RUNNING on node...) go to `io.onState`.
 * - When squeue no longer lists a job as active, its final record comes from sacct (state, exit
 *   code, elapsed, MaxRSS of its steps), or from `scontrol show job` where accounting is off.
 * - `io.signal` aborted (Ctrl-C): `scancel`, wait until the job is gone, return a failure.
 * - `isActive`/`attach`: a runner restarted after a crash follows the job it had submitted
 *   instead of submitting it twice (the job name `pl-<project tag>-<stage>` guards against a job
 *   id that now belongs to someone else).
 */
import fs from "node:fs/promises";
import fsSync from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import type { Executor, ExecutorIO, JobResult, JobSpec } from "./types.ts";
import { InputError, PipelineError } from "./errors.ts";
import { type CommandResult, slurmCommand } from "./slurm/commands.ts";
import { LogTail } from "./slurm/log-tail.ts";
import {
  SACCT_FIELDS,
  SQUEUE_FORMAT,
  parseSacct,
  parseScontrolJob,
  parseSqueue,
  type SacctRecord,
  type SqueueEntry,
} from "./slurm/accounting.ts";
import { explainRecord, isFinalState } from "./slurm/states.ts";
import {
  jobName,
  jobNamePrefix,
  parseSbatchOutput,
  renderBatchScript,
  sbatchArgs,
  sbatchEnv,
  scriptFileName,
  validateStageForSlurm,
} from "./slurm/sbatch.ts";

export interface SlurmExecutorOptions {
  /** squeue/sacct interval (default: PIPELINE_SLURM_POLL_MS or 5000). */
  pollMs?: number;
  /** Log tail interval (default: PIPELINE_SLURM_TAIL_MS or min(1000, pollMs)). */
  tailMs?: number;
  /** How long to wait for sacct to record a job squeue no longer lists (default 120 s). */
  accountingWaitMs?: number;
}

/** A job of this project that squeue lists (for a restarted runner or a user). */
export interface ProjectJob {
  jobId: string;
  stage: string;
  state: string;
  identity: string;
}

function envMs(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new PipelineError(`${name}=${v}: expected a positive number of milliseconds`, 2);
  return n;
}

function isoOf(slurmTime: string | undefined, fallback: Date): string {
  if (slurmTime) {
    const d = new Date(slurmTime); // sacct prints the login node's local time, as does Date
    if (!Number.isNaN(d.getTime())) return d.toISOString();
  }
  return fallback.toISOString();
}

async function userName(uid: number): Promise<string | undefined> {
  try {
    const passwd = await fs.readFile("/etc/passwd", "utf8");
    const line = passwd.split("\n").find((l) => l.split(":")[2] === String(uid));
    return line?.split(":")[0];
  } catch {
    return undefined;
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

/** After an abort, how long to wait for SLURM to confirm that the cancelled job ended. */
const CANCEL_CONFIRM_MS = 60_000;

/** Jobs submitted or attached by this process and not yet seen ending. */
const liveJobs = new Set<string>();

/**
 * Last resort on a forced exit (second Ctrl-C): scancel every job this process still follows,
 * synchronously. The normal path (first Ctrl-C) cancels through `io.signal` and waits.
 */
export function cancelAllSlurmJobsSync(): void {
  if (liveJobs.size === 0) return;
  spawnSync("scancel", [...liveJobs], { stdio: "ignore", timeout: 30_000 });
  liveJobs.clear();
}

/** One job being waited for. */
interface Follower {
  jobId: string;
  /** Last squeue entry seen (undefined before the first answer). */
  last?: SqueueEntry;
  /** Ticks since squeue stopped listing it as active without sacct knowing its end. */
  missingSince?: number;
  done: (rec: SacctRecord | undefined, note?: string) => void;
  onEntry: (e: SqueueEntry) => void;
  onUnreachable: (why: string) => void;
}

export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  readonly pollMs: number;
  readonly tailMs: number;
  readonly accountingWaitMs: number;
  private readonly followers = new Map<string, Follower>();
  private polling = false;
  private wake?: () => void;

  constructor(
    readonly ctx: ProjectContext,
    opts: SlurmExecutorOptions = {},
  ) {
    this.pollMs = opts.pollMs ?? envMs("PIPELINE_SLURM_POLL_MS") ?? 5000;
    this.tailMs = opts.tailMs ?? envMs("PIPELINE_SLURM_TAIL_MS") ?? Math.min(1000, this.pollMs);
    this.accountingWaitMs = opts.accountingWaitMs ?? 120_000;
  }

  async run(job: JobSpec, io: ExecutorIO): Promise<JobResult> {
    const { stage } = job;
    validateStageForSlurm(stage);
    const submittedAt = new Date();
    if (io.signal.aborted) {
      return { ok: false, exitCode: null, signal: "SIGINT", startedAt: submittedAt.toISOString(), endedAt: submittedAt.toISOString(), state: "CANCELLED", message: "interrupted before submission" };
    }
    const dir = path.join(this.ctx.profileStateDir, "slurm");
    await fs.mkdir(dir, { recursive: true });
    await fs.mkdir(path.dirname(job.logFile), { recursive: true });
    const script = path.join(dir, scriptFileName(stage.name));
    await fs.writeFile(script, renderBatchScript(job), { mode: 0o755 });
    // A fresh log per attempt, as the local executor writes; SLURM appends to it (--open-mode=append).
    await fs.writeFile(job.logFile, "");

    const args = sbatchArgs(job, script, this.ctx.root, this.ctx.profile);
    // sbatch retries by itself while the controller is busy; killing it early could leave a
    // submitted job we don't know about (and a duplicate on the next run): give it time.
    const res = await slurmCommand("sbatch", args, { env: sbatchEnv(job.env), timeoutMs: 15 * 60_000 });
    if (res.code !== 0) {
      const err = (res.stderr || res.stdout).trim();
      throw new PipelineError(
        `stage ${stage.name}: sbatch refused the job: ${err}\n` +
          `  command: sbatch ${args.join(" ")}\n` +
          `  check resources (gpus, cpus, memory, time) and slurm (partition, account, qos, extra_args) of the stage in pipeline.yaml`,
        1,
      );
    }
    const jobId = parseSbatchOutput(res.stdout);
    job.onSubmitted?.(jobId);
    io.onState?.(`SUBMITTED (job ${jobId})`);
    // The runner already printed each cmd; the script's `$ cmd` lines are for the log file only.
    const echoed = stage.cmd.flatMap((c) => `$ ${c}`.split("\n"));
    return this.follow(jobId, job, io, 0, submittedAt, echoed);
  }

  async isActive(jobId: string): Promise<boolean> {
    const e = await this.queueEntry(jobId);
    return !!e && !isFinalState(e.state) && e.name.startsWith(jobNamePrefix(this.ctx.root, this.ctx.profile));
  }

  /** scancel a job no runner follows, then wait (up to a minute) until squeue shows it ended. */
  async cancel(jobId: string): Promise<void> {
    const r = await slurmCommand("scancel", [jobId]);
    if (r.code !== 0 && !/Invalid job id|already completing or completed/i.test(r.stderr)) {
      throw new PipelineError(`scancel ${jobId} failed: ${r.stderr.trim()}`, 1);
    }
    const deadline = Date.now() + CANCEL_CONFIRM_MS;
    while (Date.now() < deadline && (await this.isActive(jobId))) await new Promise((res) => setTimeout(res, Math.min(this.pollMs, 1000)));
  }

  async attach(jobId: string, job: JobSpec, io: ExecutorIO): Promise<JobResult> {
    const e = await this.queueEntry(jobId);
    const want = jobName(this.ctx.root, job.stage.name, this.ctx.profile);
    if (e && e.name !== want) {
      throw new PipelineError(`stage ${job.stage.name}: SLURM job ${jobId} is "${e.name}", not this stage's job "${want}"; not attaching`, 1);
    }
    io.onState?.(`ATTACHED (job ${jobId}; earlier output is in ${job.logFile})`);
    return this.follow(jobId, job, io, await fileSize(job.logFile), new Date());
  }

  /** Jobs of this project squeue lists for the current user (any state it still shows). */
  async projectJobs(): Promise<ProjectJob[]> {
    const res = await slurmCommand("squeue", ["--me", "-h", "-o", SQUEUE_FORMAT]);
    if (res.code !== 0) throw new PipelineError(`squeue failed: ${res.stderr.trim()}`, 1);
    const prefix = jobNamePrefix(this.ctx.root, this.ctx.profile);
    return parseSqueue(res.stdout)
      .filter((e) => e.name.startsWith(prefix))
      .map((e) => ({ jobId: e.jobId, stage: e.name.slice(prefix.length), state: e.state, identity: e.comment }));
  }

  /** squeue's entry for one job; undefined when squeue no longer knows it; throws when squeue fails. */
  private async queueEntry(jobId: string): Promise<SqueueEntry | undefined> {
    const res = await slurmCommand("squeue", ["-h", "-j", jobId, "-o", SQUEUE_FORMAT]);
    if (res.code !== 0) {
      if (/Invalid job id/i.test(res.stderr)) return undefined;
      throw new PipelineError(`squeue -j ${jobId} failed: ${res.stderr.trim()}`, 1);
    }
    return parseSqueue(res.stdout).find((x) => x.jobId === jobId);
  }

  /** Wait for `jobId` to end while tailing its log; then explain its final record. */
  private async follow(jobId: string, job: JobSpec, io: ExecutorIO, offset: number, since: Date, echoed: string[] = []): Promise<JobResult> {
    let skip = 0;
    const tail = new LogTail(job.logFile, offset, (l) => {
      if (skip < echoed.length && l === echoed[skip]) {
        skip++;
        return;
      }
      io.onOutput(l);
    });
    const tailTimer = setInterval(() => void tail.poll(), this.tailMs);
    let cancelledByRunner = false;
    let reported = "";
    const report = (s: string) => {
      if (s !== reported) {
        reported = s;
        io.onState?.(s);
      }
    };
    let cancelling: Promise<unknown> | undefined;
    let giveUp: NodeJS.Timeout | undefined;
    const onAbort = () => {
      cancelledByRunner = true;
      report(`CANCELLING (scancel ${jobId})`);
      cancelling = slurmCommand("scancel", [jobId])
        .then((r) => {
          if (r.code !== 0 && !/Invalid job id|already completing or completed/i.test(r.stderr)) {
            io.onOutput(`scancel ${jobId} failed: ${r.stderr.trim()}`);
          }
        })
        .catch((e: Error) => io.onOutput(`scancel ${jobId} failed: ${e.message}`));
      // Interrupted: wait for SLURM to confirm the end, but not forever (controller unreachable).
      giveUp = setTimeout(() => {
        this.followers.get(jobId)?.done(undefined, `scancel sent, but SLURM did not confirm the end within ${Math.round(CANCEL_CONFIRM_MS / 1000)} s (check squeue -j ${jobId})`);
      }, CANCEL_CONFIRM_MS);
      this.wake?.();
    };
    if (io.signal.aborted) onAbort();
    else io.signal.addEventListener("abort", onAbort, { once: true });

    let outcome: { rec: SacctRecord | undefined; note?: string };
    liveJobs.add(jobId);
    try {
      outcome = await new Promise((resolve) => {
        this.followers.set(jobId, {
          jobId,
          onEntry: (e) => {
            if (e.state === "PENDING") report(`PENDING${e.where && e.where !== "None" ? ` (${e.where})` : ""}`);
            else if (e.state === "RUNNING") report(`RUNNING${e.where ? ` on ${e.where}` : ""}`);
            else report(e.state);
          },
          onUnreachable: (why) => report(`UNKNOWN (squeue failed: ${why}; still waiting)`),
          done: (rec, note) => resolve({ rec, note }),
        });
        this.startPolling();
      });
    } finally {
      clearTimeout(giveUp);
      liveJobs.delete(jobId);
      this.followers.delete(jobId);
      io.signal.removeEventListener("abort", onAbort);
      clearInterval(tailTimer);
      await cancelling;
      await tail.flush();
    }

    const now = new Date();
    const { rec, note } = outcome;
    if (!rec) {
      return {
        ok: false,
        exitCode: null,
        signal: cancelledByRunner ? "SIGINT" : null,
        startedAt: since.toISOString(),
        endedAt: now.toISOString(),
        jobId,
        state: cancelledByRunner ? "CANCELLED" : "UNKNOWN",
        message: `SLURM job ${jobId}: ${note ?? "its end was not recorded"}${cancelledByRunner ? " (cancelled on interrupt)" : ""}`,
      };
    }
    const cancelledBy = rec.cancelledByUid !== undefined ? await userName(rec.cancelledByUid) : undefined;
    const o = explainRecord(rec, {
      stageName: job.stage.name,
      memory: job.stage.resources.memory,
      time: job.stage.resources.time,
      logTail: tail.lastLines(),
      cancelledBy,
      cancelledByRunner,
    });
    report(o.state);
    const result: JobResult = {
      ok: o.ok,
      exitCode: o.exitCode,
      signal: o.signal,
      startedAt: isoOf(rec.start, since),
      endedAt: isoOf(rec.end, now),
      jobId,
      state: o.state,
      message: o.message,
    };
    if (rec.maxRssKb !== undefined) result.peakRssKb = rec.maxRssKb;
    return result;
  }

  private startPolling(): void {
    if (this.polling) {
      this.wake?.();
      return;
    }
    this.polling = true;
    void (async () => {
      try {
        while (this.followers.size > 0) {
          try {
            await this.tick();
          } catch {
            // unexpected squeue/sacct output: try again next round rather than spin or give up
          }
          if (this.followers.size === 0) break;
          await new Promise<void>((r) => {
            const t = setTimeout(r, this.pollMs);
            this.wake = () => {
              clearTimeout(t);
              r();
            };
          });
          this.wake = undefined;
        }
      } finally {
        this.polling = false;
        if (this.followers.size > 0) this.startPolling();
      }
    })();
  }

  /** One round: squeue for all followed jobs, then sacct for those no longer active. */
  private async tick(): Promise<void> {
    const ids = [...this.followers.keys()];
    if (ids.length === 0) return;
    let res: CommandResult;
    try {
      res = await slurmCommand("squeue", ["-h", "-j", ids.join(","), "-o", SQUEUE_FORMAT]);
    } catch {
      return;
    }
    let listed: SqueueEntry[];
    if (res.code === 0) listed = parseSqueue(res.stdout);
    else if (/Invalid job id/i.test(res.stderr)) listed = [];
    else {
      // controller busy or restarting: the jobs go on; say so once, ask again next round
      const why = (res.stderr || res.stdout).trim().split("\n")[0];
      for (const f of this.followers.values()) f.onUnreachable(why);
      return;
    }
    const byId = new Map(listed.map((e) => [e.jobId, e]));
    const ended: Follower[] = [];
    for (const f of this.followers.values()) {
      const e = byId.get(f.jobId);
      if (e) {
        f.last = e;
        f.onEntry(e);
      }
      if (!e || isFinalState(e.state)) ended.push(f);
    }
    if (ended.length === 0) return;
    const records = await this.finalRecords(ended.map((f) => f.jobId));
    const now = Date.now();
    for (const f of ended) {
      const rec = records.get(f.jobId);
      if (rec && isFinalState(rec.state)) {
        f.done(rec);
        continue;
      }
      // Accounting lags the controller a little: wait for the record, but not forever.
      f.missingSince ??= now;
      if (now - f.missingSince > this.accountingWaitMs) {
        f.done(undefined, `squeue no longer lists it and sacct has no final record after ${Math.round(this.accountingWaitMs / 1000)} s (last state seen: ${f.last?.state ?? "none"})`);
      }
    }
  }

  /** Final records from sacct, or from scontrol where accounting is disabled. */
  private async finalRecords(ids: string[]): Promise<Map<string, SacctRecord>> {
    const out = new Map<string, SacctRecord>();
    const res = await slurmCommand("sacct", ["-j", ids.join(","), "-n", "-P", "-o", SACCT_FIELDS.join(",")]).catch(() => undefined);
    if (res && res.code === 0) {
      for (const id of ids) {
        const rec = parseSacct(res.stdout, id);
        if (rec) out.set(id, rec);
      }
      return out;
    }
    for (const id of ids) {
      const sc = await slurmCommand("scontrol", ["show", "job", "-o", id]).catch(() => undefined);
      const rec = sc && sc.code === 0 ? parseScontrolJob(sc.stdout, id) : undefined;
      if (rec) out.set(id, rec);
    }
    return out;
  }
}

/** Is `bin` an executable file in one of the PATH directories? */
function onPath(bin: string, pathEnv = process.env.PATH ?? ""): boolean {
  return pathEnv.split(path.delimiter).some((d) => {
    if (!d) return false;
    try {
      fsSync.accessSync(path.join(d, bin), fsSync.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Entry point the runner imports dynamically for `--executor slurm` / `executor: slurm`.
 * Throws InputError (exit 2, before any stage runs) when the SLURM client tools are missing.
 */
export function createSlurmExecutor(ctx: ProjectContext, opts: SlurmExecutorOptions = {}): SlurmExecutor {
  const missing = ["sbatch", "squeue", "scancel"].filter((b) => !onPath(b));
  if (!onPath("sacct") && !onPath("scontrol")) missing.push("sacct");
  if (missing.length) {
    throw new InputError(
      `the slurm executor needs the SLURM client tools, but ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not on PATH. ` +
        `Run repro --executor slurm on a SLURM login node (or drop --executor slurm / executor: slurm to run locally; ` +
        `for a single-node test cluster on Debian: sudo bash scripts/slurm/start.sh)`,
    );
  }
  return new SlurmExecutor(ctx, opts);
}
