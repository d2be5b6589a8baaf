/**
 * SLURM job states: which are final, and what a final state means for the user (pure).
 */
import { explainExit } from "../errors.ts";
import type { SacctRecord } from "./accounting.ts";

/** States after which a job never runs again (slurm's job_state_string for finished jobs). */
const FINAL_STATES = new Set([
  "BOOT_FAIL",
  "CANCELLED",
  "COMPLETED",
  "DEADLINE",
  "FAILED",
  "NODE_FAIL",
  "OUT_OF_MEMORY",
  "PREEMPTED",
  "TIMEOUT",
  "REVOKED",
  "SPECIAL_EXIT",
]);

export function isFinalState(state: string): boolean {
  return FINAL_STATES.has(state.split(/\s+/)[0].replace(/\+$/, ""));
}

const SIGNALS: Record<number, string> = {
  1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
  10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
};

function signalName(n: number): string {
  return SIGNALS[n] ?? `signal ${n}`;
}

/** Hints in the job's log that SLURM's memory enforcement killed it (without cgroups the state stays FAILED). */
const MEMORY_KILL = /exceeded (job )?memory limit|oom[-_ ]kill|out of memory|Out Of Memory/i;

export interface ExplainContext {
  stageName: string;
  /** resources.memory / resources.time of the stage, to say what to raise. */
  memory?: string;
  time?: string;
  /** Last lines of the job's log. */
  logTail?: string[];
  /** Name of the user who cancelled, when known (uid resolved). */
  cancelledBy?: string;
  /** We cancelled it ourselves (Ctrl-C on the runner). */
  cancelledByRunner?: boolean;
}

export interface Outcome {
  ok: boolean;
  /** Exit code of the stage's commands; null when SLURM stopped it (signal, time limit, cancel). */
  exitCode: number | null;
  signal: string | null;
  /** The final state, with OUT_OF_MEMORY when the log shows SLURM's memory kill. */
  state: string;
  message: string;
}

/** What a finished job's accounting record means: success or a failure explained for the user. */
export function explainRecord(rec: SacctRecord, cx: ExplainContext): Outcome {
  const id = `SLURM job ${rec.jobId}`;
  const node = rec.nodeList ? ` on ${rec.nodeList}` : "";
  const after = Number.isFinite(rec.elapsedSeconds) ? ` after ${rec.elapsed}` : "";
  const memKilled = (cx.logTail ?? []).some((l) => MEMORY_KILL.test(l));
  const memHint = `raise resources.memory${cx.memory ? ` (now ${cx.memory})` : ""}`;
  const sig = rec.exitSignal || rec.stepExitSignal || 0;
  switch (rec.state) {
    case "COMPLETED":
      return { ok: true, exitCode: 0, signal: null, state: "COMPLETED", message: `${id} COMPLETED${node}${after}` };
    case "FAILED": {
      if (memKilled) {
        return {
          ok: false, exitCode: null, signal: null, state: "OUT_OF_MEMORY",
          message: `${id} ran out of memory${node}${after}: SLURM killed it for exceeding its memory limit; ${memHint}`,
        };
      }
      if (rec.exitSignal) {
        const name = signalName(rec.exitSignal);
        return {
          ok: false, exitCode: null, signal: name, state: "FAILED",
          message: `signal ${name} (${id} FAILED${node}${after}): ${explainExit(null, name)}`,
        };
      }
      return {
        ok: false, exitCode: rec.exitCode, signal: null, state: "FAILED",
        message: `exit code ${rec.exitCode} (${id} FAILED${node}${after}): ${explainExit(rec.exitCode)}`,
      };
    }
    case "OUT_OF_MEMORY":
      return {
        ok: false, exitCode: null, signal: null, state: "OUT_OF_MEMORY",
        message: `${id} ran out of memory (OUT_OF_MEMORY)${node}${after}: ${memHint}`,
      };
    case "TIMEOUT":
      return {
        ok: false, exitCode: null, signal: null, state: "TIMEOUT",
        message:
          `${id} was killed by its time limit (TIMEOUT${rec.timelimit ? `, limit ${rec.timelimit}` : ""})${node}${after}: ` +
          `raise resources.time${cx.time ? ` (now ${cx.time})` : ""}; persist: true outs let the next run resume`,
      };
    case "CANCELLED": {
      const who = cx.cancelledByRunner
        ? "by this runner (interrupted)"
        : cx.cancelledBy
          ? `by ${cx.cancelledBy}`
          : rec.cancelledByUid !== undefined
            ? `by uid ${rec.cancelledByUid}`
            : "";
      return {
        ok: false, exitCode: null, signal: null, state: "CANCELLED",
        message: `${id} was CANCELLED${who ? ` ${who}` : ""}${node}${after}`,
      };
    }
    case "NODE_FAIL":
      return {
        ok: false, exitCode: null, signal: null, state: "NODE_FAIL",
        message: `${id} failed because its node${rec.nodeList ? ` ${rec.nodeList}` : ""} failed (NODE_FAIL)${after}: rerun repro; if it repeats, ask the cluster admins or avoid the node (slurm.extra_args: ["--exclude=${rec.nodeList ?? "NODE"}"])`,
      };
    case "PREEMPTED":
      return {
        ok: false, exitCode: null, signal: null, state: "PREEMPTED",
        message: `${id} was PREEMPTED by a higher-priority job${node}${after}: rerun repro (persist: true outs resume), or use a partition/qos without preemption`,
      };
    case "BOOT_FAIL":
      return { ok: false, exitCode: null, signal: null, state: "BOOT_FAIL", message: `${id} failed: its node${node} did not boot (BOOT_FAIL); rerun repro` };
    case "DEADLINE":
      return { ok: false, exitCode: null, signal: null, state: "DEADLINE", message: `${id} reached its --deadline before finishing (DEADLINE)` };
    default:
      return {
        ok: false, exitCode: rec.exitCode || null, signal: sig ? signalName(sig) : null, state: rec.state,
        message: `${id} ended in state ${rec.rawState}${node}${after} (exit code ${rec.exitCode}:${rec.exitSignal})`,
      };
  }
}
