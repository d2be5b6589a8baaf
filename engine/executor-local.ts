/**
 * Runs a stage on this machine: each cmd in order with `bash -c` in the project directory, in
 * its own process group (detached), stdout and stderr merged (so their lines stay in order),
 * split into lines and progress states (output.ts), written to the stage's log and handed to
 * the runner through `io.onOutput`.
 *
 * - Abort (Ctrl-C, fail-fast): SIGTERM to the whole process group, SIGKILL after a grace period
 *   (`PIPELINE_KILL_GRACE_MS`, default 10 s).
 * - Peak memory: the sum of the resident memory of all processes of the group, sampled from
 *   /proc every 0.5 s (Linux; absent elsewhere). It is a sampled lower bound of the true peak.
 * - PYTHONUNBUFFERED=1 is added unless set, so Python output streams instead of arriving in
 *   4 KiB blocks; it is not part of the stage's identity.
 */
import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";
import { explainExit } from "./errors.ts";
import { LineSplitter, LogWriter } from "./output.ts";
import type { Executor, ExecutorIO, JobResult, JobSpec } from "./types.ts";
import { allPids, procEnded, procStart, procStat } from "./proc.ts";

const live = new Set<number>();

/** SIGKILL every process group this process started and that still runs (last resort on exit). */
export function killAllLocalJobs(): void {
  for (const pgid of live) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

function killGrace(): number {
  const v = Number(process.env.PIPELINE_KILL_GRACE_MS);
  return Number.isFinite(v) && v >= 0 && process.env.PIPELINE_KILL_GRACE_MS ? v : 10_000;
}

/** Resident memory (KiB) of all processes whose process group is `pgid`, or null if unknown. */
function groupRssKb(pgid: number): number | null {
  const pids = allPids();
  if (pids === null) return null;
  const pageKb = 4; // x86-64 and aarch64 default page size
  let total = 0;
  for (const pid of pids) {
    const st = procStat(pid);
    if (st?.pgrp === pgid) total += st.rssPages * pageKb;
  }
  return total;
}

/** Job id of a local process group: `host:pgid:start time of its leader`. */
function localJobId(pgid: number): string {
  return `${os.hostname()}:${pgid}:${procStart(pgid) ?? ""}`;
}

function parseJobId(jobId: string): { host: string; pgid: number; start: string } | null {
  const m = /^(.*):(\d+):(\d*)$/.exec(jobId);
  return m ? { host: m[1]!, pgid: Number(m[2]), start: m[3]! } : null;
}

/** Does any process of the group still run? Zombies (exited, not yet reaped) do not count. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (allPids() === null) return true; // no /proc: trust kill(0)
  return groupPids(pgid).length > 0;
}

/** Live (not zombie) processes of a process group. */
function groupPids(pgid: number): number[] {
  return (allPids() ?? [])
    .filter((pid) => {
      const st = procStat(pid);
      return st?.pgrp === pgid && !procEnded(st);
    })
    .map(Number);
}

/** SIGTERM to a process group, SIGKILL after the grace period if anything of it still runs. */
async function stopGroup(pgid: number): Promise<void> {
  try {
    process.kill(-pgid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + killGrace();
  while (Date.now() < deadline && groupAlive(pgid)) await new Promise((r) => setTimeout(r, 50));
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    /* gone */
  }
}

export class LocalExecutor implements Executor {
  readonly name = "local";

  /**
   * Is the process group of a job started by an earlier (crashed) runner still alive on this
   * host? It cannot be re-attached (its output pipe went with the runner), so the runner stops
   * it with `cancel` before rolling back.
   */
  async isActive(jobId: string): Promise<boolean> {
    const j = parseJobId(jobId);
    if (!j || j.host !== os.hostname() || !groupAlive(j.pgid)) return false;
    const leader = procStart(j.pgid);
    // the leader may have exited while children of the group still run; if it lives, it must be the same process
    return leader === undefined || j.start === "" || leader === j.start;
  }

  /** Stop an orphaned job's process group: SIGTERM, then SIGKILL after the grace period. */
  async cancel(jobId: string): Promise<void> {
    const j = parseJobId(jobId);
    if (!j || !(await this.isActive(jobId))) return;
    try {
      process.kill(-j.pgid, "SIGTERM");
    } catch {
      return;
    }
    const deadline = Date.now() + killGrace();
    while (Date.now() < deadline && groupAlive(j.pgid)) await new Promise((r) => setTimeout(r, 50));
    try {
      process.kill(-j.pgid, "SIGKILL");
    } catch {
      /* gone */
    }
  }

  async run(job: JobSpec, io: ExecutorIO): Promise<JobResult> {
    const startedAt = new Date().toISOString();
    const log = new LogWriter(job.logFile);
    // a log that cannot be written (full disk, read-only file system) stops the stage: its output
    // would be lost, and the runner must not die of it (issue 14)
    const logStop = new AbortController();
    let logFailure: string | null = null;
    log.onError = (e) => {
      logFailure = `${e.code === "ENOSPC" ? "no space left on device" : e.code === "EROFS" ? "read-only file system" : e.message} while writing ${job.logFile}`;
      logStop.abort();
    };
    const cmdIo: ExecutorIO = { ...io, signal: AbortSignal.any([io.signal, logStop.signal]) };
    let peak: number | undefined;
    try {
      for (const cmd of job.stage.cmd) {
        if (io.signal.aborted) return { ok: false, exitCode: null, signal: "SIGTERM", startedAt, endedAt: new Date().toISOString(), peakRssKb: peak, message: "aborted before it started" };
        log.line(`$ ${cmd}`);
        const r = await this.runOne(cmd, job, cmdIo, log);
        if (r.peak !== undefined) peak = Math.max(peak ?? 0, r.peak);
        if (r.submitError !== undefined) throw r.submitError;
        if (logFailure) {
          return { ok: false, exitCode: r.code, signal: r.signal ?? "SIGTERM", startedAt, endedAt: new Date().toISOString(), peakRssKb: peak, message: `stopped: ${logFailure}` };
        }
        if (r.code !== 0 || r.signal) {
          const message = `${r.signal ? `signal ${r.signal}` : `exit code ${r.code}`}: ${explainExit(r.code, r.signal)}` + (job.stage.cmd.length > 1 ? ` (in: ${cmd})` : "");
          log.line(`# ${message}`);
          return { ok: false, exitCode: r.code, signal: r.signal, startedAt, endedAt: new Date().toISOString(), peakRssKb: peak, message };
        }
      }
      return { ok: true, exitCode: 0, signal: null, startedAt, endedAt: new Date().toISOString(), peakRssKb: peak };
    } finally {
      log.close();
    }
  }

  private runOne(cmd: string, job: JobSpec, io: ExecutorIO, log: LogWriter): Promise<{ code: number | null; signal: string | null; peak?: number; submitError?: unknown }> {
    return new Promise((resolve) => {
      const env = { ...job.env };
      if (env.PYTHONUNBUFFERED === undefined) env.PYTHONUNBUFFERED = "1";
      let child: ChildProcess;
      try {
        child = spawn("bash", ["-c", `exec 2>&1\n${cmd}`], { cwd: job.cwd, env, detached: true, stdio: ["ignore", "pipe", "ignore"] });
      } catch (e) {
        log.line(`# could not start bash: ${(e as Error).message}`);
        resolve({ code: 127, signal: null });
        return;
      }
      const pgid = child.pid!;
      let submitError: unknown;
      if (pgid) {
        live.add(pgid);
        // lets a runner restarted after a crash find (and stop) this process group
        try {
          job.onSubmitted?.(localJobId(pgid));
        } catch (e) {
          // unrecorded (a full disk): a group no runner could find again must not run on
          submitError = e;
          try {
            process.kill(-pgid, "SIGKILL");
          } catch {
            /* gone */
          }
        }
      }
      const splitter = new LineSplitter();
      const emit = (evs: { text: string; progress: boolean }[]) => {
        for (const e of evs) {
          log.event(e);
          io.onOutput(e.progress ? e.text + "\r" : e.text);
        }
      };
      child.stdout!.setEncoding("utf8");
      child.stdout!.on("data", (d: string) => emit(splitter.push(d)));

      let peak: number | undefined;
      const sample = () => {
        const kb = groupRssKb(pgid);
        if (kb !== null && kb > 0) peak = Math.max(peak ?? 0, kb);
      };
      const first = setTimeout(sample, 100);
      const poll = setInterval(sample, 500);

      let killTimer: NodeJS.Timeout | null = null;
      const onAbort = () => {
        try {
          process.kill(-pgid, "SIGTERM");
        } catch {
          /* already gone */
        }
        killTimer = setTimeout(() => {
          try {
            process.kill(-pgid, "SIGKILL");
          } catch {
            /* gone */
          }
        }, killGrace());
      };
      if (io.signal.aborted) onAbort();
      else io.signal.addEventListener("abort", onAbort, { once: true });

      let exit: { code: number | null; signal: string | null } | null = null;
      let closed = false;
      let streamClosed = false;
      const finish = () => {
        if (closed || !exit) return;
        closed = true;
        clearTimeout(first);
        clearInterval(poll);
        io.signal.removeEventListener("abort", onAbort);
        emit(splitter.flush());
        if (io.signal.aborted) {
          // make sure nothing of the group survives an abort
          try {
            process.kill(-pgid, "SIGKILL");
          } catch {
            /* gone */
          }
        }
        if (killTimer) clearTimeout(killTimer);
        live.delete(pgid);
        resolve({ ...exit, peak, submitError });
      };
      child.on("error", (e) => {
        log.line(`# could not start bash: ${e.message}`);
        exit = { code: 127, signal: null };
        streamClosed = true;
        finish();
      });
      /** The command's exit is known: finish once its output is read, or a second later at most. */
      const exited = (code: number | null, signal: NodeJS.Signals | null) => {
        exit = { code, signal };
        if (streamClosed) return finish();
        // background processes may keep the pipe open: don't wait for them forever
        setTimeout(() => {
          child.stdout?.destroy();
          finish();
        }, 1000).unref();
      };
      child.on("exit", (code, signal) => {
        sample();
        if (!io.signal.aborted) {
          // what is left of the group was started in the background by the command: it could write
          // into outs after they were hashed, so it is stopped (and the runner says so)
          const left = groupPids(pgid);
          if (left.length) {
            io.onState?.(`warning: the command exited but left ${left.length} background process${left.length > 1 ? "es" : ""} running (pid ${left.slice(0, 5).join(", ")}${left.length > 5 ? ", ..." : ""}); stopping them`);
            void stopGroup(pgid).then(() => exited(code, signal));
            return;
          }
        }
        exited(code, signal);
      });
      child.stdout!.on("close", () => {
        streamClosed = true;
        finish();
      });
    });
  }
}
