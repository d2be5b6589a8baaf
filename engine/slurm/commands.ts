/**
 * Running the SLURM client tools (sbatch, squeue, sacct, scancel, scontrol) as real processes.
 * Missing tools give a PipelineError that says how to get them; everything else is returned
 * (exit code + output) for the caller to judge, because squeue/sacct failures while waiting are
 * often transient (controller busy or restarting) and must not fail a job that is still running.
 */
import { execa } from "execa";
import { PipelineError } from "../errors.ts";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  env?: Record<string, string>;
  /** Kill the command after this many ms (default 60 s: a stuck controller must not hang us). */
  timeoutMs?: number;
}

export async function slurmCommand(bin: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const timeout = opts.timeoutMs ?? 60_000;
  const r = await execa(bin, args, {
    env: opts.env ?? process.env,
    extendEnv: false,
    timeout,
    maxBuffer: 64 * 1024 * 1024,
    reject: false,
    stripFinalNewline: false,
  });
  if ((r as { code?: string }).code === "ENOENT") {
    throw new PipelineError(
      `${bin} not found: the SLURM client tools are not installed here or not on PATH. ` +
        `Run repro --executor slurm on a SLURM login node (for a local single-node test cluster: sudo bash scripts/slurm/start.sh)`,
      2,
    );
  }
  let stderr = String(r.stderr ?? "");
  if (r.timedOut) stderr = `${stderr}\n${bin} timed out after ${timeout} ms`;
  const code = r.failed ? (typeof r.exitCode === "number" ? r.exitCode : 1) : 0;
  return { code, stdout: String(r.stdout ?? ""), stderr };
}
