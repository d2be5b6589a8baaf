/**
 * A closed stdout or stderr (`tsx run.ts checkout | head`, `| true`, a terminal gone) must never
 * stop a command mid-work: an `error` event (EPIPE) without a listener would kill the process with
 * the repro mutex held and half of the outs placed. Installed once by run.ts: every later write to
 * the broken stream is dropped, the work goes on, and stderr (when it still works) says once that
 * the output was lost. The exit code stays the one the work earned (0 when it was all done).
 */
let installed = false;

export function survivePipeClosure(): void {
  if (installed) return;
  installed = true;
  let stdoutLost = false;
  let stderrLost = false;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (stdoutLost) return;
    stdoutLost = true;
    if (stderrLost) return;
    try {
      process.stderr.write(`warning: stdout was closed (${e.code ?? e.message}): the rest of this command's output is lost; the work goes on\n`);
    } catch {
      /* stderr is gone too */
    }
  });
  process.stderr.on("error", () => {
    stderrLost = true;
  });
}
