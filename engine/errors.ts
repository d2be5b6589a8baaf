/**
 * Errors that explain themselves. A PipelineError carries the exit code the CLI returns and a
 * message that says what to fix (file:line:col, key path, stage name, log path...).
 */
export class PipelineError extends Error {
  constructor(
    message: string,
    /** 2 = bad input (nothing ran), 1 = a stage failed / stale, 130 = interrupted. */
    readonly exitCode: number = 2,
  ) {
    super(message);
    this.name = "PipelineError";
  }
}

/** Bad pipeline.yaml / params / flags / targets: exit 2 before anything runs. */
export class InputError extends PipelineError {
  constructor(message: string) {
    super(message, 2);
    this.name = "InputError";
  }
}

/**
 * Print an error for the user and return the exit code to use. Anything but a PipelineError is a
 * bug of the tool: exit 3, one line, the stack only with `debug` (--debug / PIPELINE_DEBUG=1).
 */
export function reportError(err: unknown, debug = !!process.env.PIPELINE_DEBUG): number {
  if (err instanceof PipelineError) {
    writeErr(`error: ${err.message}\n${debug && err.stack ? err.stack + "\n" : ""}`);
    return err.exitCode;
  }
  const e = err as Error;
  const msg = e instanceof Error ? e.message : String(err);
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && ["ENOSPC", "EDQUOT", "EROFS", "EIO"].includes(code)) {
    // the machine, not the tool: say what failed, in one line
    const file = (err as NodeJS.ErrnoException).path;
    writeErr(`error: ${msg.replace(/^E[A-Z]+: /, "").split(",")[0]}${file ? ` while writing ${file.replace(/\.tmp-\d+-[0-9a-f]+$/, "")}` : ""} (free space or fix the file system, then rerun)\n${debug && e.stack ? e.stack + "\n" : ""}`);
    return 1;
  }
  writeErr(
    debug
      ? `internal error: ${e?.stack ?? String(err)}\n`
      : `internal error (a bug of the pipeline tool): ${msg.split("\n")[0]} (rerun with --debug for the stack, and report it)\n`,
  );
  return 3;
}

/** stderr may be closed (`repro 2>&-`) or full: reporting must never throw. */
function writeErr(s: string): void {
  try {
    process.stderr.write(s);
  } catch {
    /* nowhere to report */
  }
}

/** What an exit code or signal usually means, for failure messages. */
export function explainExit(exitCode: number | null, signal?: string | null): string {
  if (signal) {
    const s: Record<string, string> = {
      SIGKILL: "killed (SIGKILL), often by the out-of-memory killer or a scheduler",
      SIGTERM: "terminated (SIGTERM)",
      SIGINT: "interrupted (SIGINT)",
      SIGSEGV: "crashed (segmentation fault)",
      SIGABRT: "aborted (SIGABRT), often a failed assertion in native code or CUDA",
    };
    return s[signal] ?? `killed by signal ${signal}`;
  }
  switch (exitCode) {
    case 0: return "success";
    case 1: return "the command reported an error (see the log)";
    case 2: return "usage error: the command rejected its arguments";
    case 126: return "the command was found but is not executable";
    case 127: return "command not found (check PATH and the cmd)";
    case 130: return "interrupted (Ctrl-C)";
    case 134: return "aborted (SIGABRT), often a failed assertion in native code or CUDA";
    case 137: return "killed (SIGKILL), often out of memory";
    case 139: return "crashed (segmentation fault)";
    case 143: return "terminated (SIGTERM)";
    default:
      if (exitCode !== null && exitCode > 128) return `killed by signal ${exitCode - 128}`;
      return "the command failed (see the log)";
  }
}
