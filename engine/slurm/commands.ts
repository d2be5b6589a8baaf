/**
 * Running the SLURM client tools (sbatch, squeue, sacct, scancel, scontrol) as real processes.
 * Missing tools give a PipelineError that says how to get them; everything else is returned
 * (exit code + output) for the caller to judge, because squeue/sacct failures while waiting are
 * often transient (controller busy or restarting) and must not fail a job that is still running.
 */
import { execFile } from "node:child_process";
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

export function slurmCommand(bin: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === "ENOENT") {
          reject(
            new PipelineError(
              `${bin} not found: the SLURM client tools are not installed here or not on PATH. ` +
                `Run repro --executor slurm on a SLURM login node (for a local single-node test cluster: sudo bash scripts/slurm/start.sh)`,
              2,
            ),
          );
          return;
        }
        let code = 0;
        if (err) {
          const c = (err as { code?: unknown }).code;
          code = typeof c === "number" ? c : 1;
          if ((err as { killed?: boolean }).killed) stderr = `${stderr}\n${bin} timed out after ${opts.timeoutMs ?? 60_000} ms`;
        }
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}
