/**
 * Output of running stages: splitting a job's byte stream into lines and progress-bar states,
 * writing the per-stage log without flooding it, and printing to the terminal prefixed with the
 * stage name (`[capture@base] ...`).
 *
 * Progress bars (tqdm and friends) redraw a line with '\r'. We treat text ended by '\r' (or
 * still pending after one) as a transient *progress state*:
 * - executors pass it to `ExecutorIO.onOutput` with a trailing "\r" (a line without it is a
 *   normal line);
 * - the log gets a progress state at most every `logIntervalMs` (default 30 s), and always
 *   the state a bar ended with (tqdm ends with '\n', so that one is a normal line anyway);
 * - the terminal: on a TTY, one status line at the bottom shows the latest state of every
 *   running stage (redrawn at most 5 times a second, cleared before normal lines); without a
 *   TTY, a stage's progress is printed as a normal prefixed line at most every
 *   `PIPELINE_PROGRESS_INTERVAL_MS` (default 10 s).
 */
import fs from "node:fs";
import crypto from "node:crypto";

export interface OutputEvent {
  text: string;
  progress: boolean;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences start with ESC
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Splits a stream of text into lines ('\n') and progress states ('\r'). */
export class LineSplitter {
  private buf = "";
  private afterCr = false;
  private lastPartial: string | null = null;

  push(chunk: string): OutputEvent[] {
    const out: OutputEvent[] = [];
    this.buf += chunk;
    for (;;) {
      const m = /[\r\n]/.exec(this.buf);
      if (!m) break;
      const i = m.index;
      // a '\r' at the very end may be the first half of "\r\n": wait for the next chunk
      if (this.buf[i] === "\r" && i === this.buf.length - 1) break;
      const crlf = this.buf[i] === "\r" && this.buf[i + 1] === "\n";
      const seg = this.buf.slice(0, i);
      if (this.buf[i] === "\n" || crlf) {
        this.emitSegment(seg, false, out);
        this.afterCr = false;
        this.buf = this.buf.slice(i + (crlf ? 2 : 1));
      } else {
        this.emitSegment(seg, true, out);
        this.afterCr = true;
        this.buf = this.buf.slice(i + 1);
      }
    }
    // show the latest progress state right away, even before the next '\r'
    const pending = this.buf.endsWith("\r") ? this.buf.slice(0, -1) : this.buf;
    if ((this.afterCr || pending !== this.buf) && pending.length > 0) {
      const t = clean(pending);
      if (t.trim() && t !== this.lastPartial) {
        out.push({ text: t, progress: true });
        this.lastPartial = t;
      }
    }
    return out;
  }

  /** End of stream: whatever is left. */
  flush(): OutputEvent[] {
    const out: OutputEvent[] = [];
    if (this.buf.endsWith("\r")) this.emitSegment(this.buf.slice(0, -1), true, out);
    else if (this.buf.length) this.emitSegment(this.buf, this.afterCr, out);
    this.buf = "";
    return out;
  }

  private emitSegment(seg: string, progress: boolean, out: OutputEvent[]): void {
    const t = clean(seg);
    if (progress) {
      if (t.trim() && t !== this.lastPartial) out.push({ text: t, progress: true });
      this.lastPartial = null;
      return;
    }
    this.lastPartial = null;
    out.push({ text: t, progress: false });
  }
}

function clean(s: string): string {
  return s.replace(ANSI, "");
}

/**
 * A stage's log file: normal lines as they come, progress states throttled. Synchronous appends
 * (lines are small, and a crash then loses nothing).
 */
export class LogWriter {
  private fd: number;
  private lastProgressAt = 0;
  private pendingProgress: string | null = null;

  constructor(
    readonly file: string,
    private readonly logIntervalMs = 30_000,
    append = false,
  ) {
    this.fd = fs.openSync(file, append ? "a" : "w");
  }

  line(text: string): void {
    this.pendingProgress = null;
    this.write(text + "\n");
  }

  progress(text: string, now = Date.now()): void {
    if (now - this.lastProgressAt >= this.logIntervalMs) {
      this.lastProgressAt = now;
      this.pendingProgress = null;
      this.write(text + "\n");
    } else {
      this.pendingProgress = text;
    }
  }

  event(e: OutputEvent): void {
    if (e.progress) this.progress(e.text);
    else this.line(e.text);
  }

  close(): void {
    if (this.fd < 0) return;
    if (this.pendingProgress !== null) this.write(this.pendingProgress + "\n");
    this.pendingProgress = null;
    try {
      fs.closeSync(this.fd);
    } catch (e) {
      this.error ??= e as NodeJS.ErrnoException; // e.g. a delayed write error reported at close (NFS)
    }
    this.fd = -1;
  }

  /** The first write that failed (a full disk, a read-only file system): nothing more is written. */
  error: NodeJS.ErrnoException | null = null;

  private write(s: string): void {
    if (this.fd < 0 || this.error) return;
    try {
      fs.writeSync(this.fd, s);
    } catch (e) {
      this.error = e as NodeJS.ErrnoException;
      this.onError?.(this.error);
    }
  }

  /** Called once, at the first failed write (the executor stops the stage: its output has nowhere to go). */
  onError?: (e: NodeJS.ErrnoException) => void;
}

/** A file-safe version of a stage name ("capture@base" stays; odd characters get a hash suffix). */
export function safeName(stage: string): string {
  const s = stage.replace(/[^A-Za-z0-9._@+=-]/g, "_");
  if (s === stage && !s.startsWith(".")) return s;
  const h = crypto.createHash("sha256").update(stage).digest("hex").slice(0, 8);
  return `${s.replace(/^\.+/, "_")}-${h}`;
}

/** The last `n` lines of a text file (reads at most the last 64 KiB). */
export function tailLines(file: string, n: number): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return [];
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString("utf8").split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.slice(-n);
  } finally {
    fs.closeSync(fd);
  }
}

export interface TerminalOptions {
  stream?: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean; columns?: number };
  /** Non-TTY: a stage's progress at most this often (ms). */
  progressIntervalMs?: number;
}

/** Prefixed, interleaving-safe terminal output of the runner and its stages. */
export class Terminal {
  private readonly stream: NonNullable<TerminalOptions["stream"]>;
  private readonly tty: boolean;
  private readonly progressIntervalMs: number;
  private readonly latest = new Map<string, string>();
  private readonly lastPrinted = new Map<string, number>();
  private statusShown = false;
  private redrawTimer: NodeJS.Timeout | null = null;
  private lastRedraw = 0;

  /** The stream failed (EPIPE from `repro | head`, a full disk): the run goes on, silently. */
  private broken = false;

  constructor(opts: TerminalOptions = {}) {
    this.stream = opts.stream ?? process.stdout;
    const s = this.stream as { on?: (ev: string, fn: (e: Error) => void) => void };
    // an error event without a listener would kill the runner (and orphan its stages)
    s.on?.("error", () => {
      this.broken = true;
    });
    this.tty = Boolean(this.stream.isTTY) && process.env.TERM !== "dumb";
    const env = Number(process.env.PIPELINE_PROGRESS_INTERVAL_MS);
    this.progressIntervalMs = opts.progressIntervalMs ?? (Number.isFinite(env) && env >= 0 && process.env.PIPELINE_PROGRESS_INTERVAL_MS ? env : 10_000);
  }

  private write(text: string): void {
    if (this.broken) return;
    try {
      this.stream.write(text);
    } catch {
      this.broken = true;
    }
  }

  /** A message of the runner itself. */
  info(text: string): void {
    this.clearStatus();
    this.write(text.endsWith("\n") ? text : text + "\n");
    this.drawStatus();
  }

  /** One line of a stage's output; a trailing "\r" marks a progress state (see ExecutorIO.onOutput). */
  stageOutput(stage: string, line: string): void {
    if (line.endsWith("\r")) {
      this.progress(stage, line.slice(0, -1));
      return;
    }
    this.latest.delete(stage);
    this.clearStatus();
    this.write(`[${stage}] ${line}\n`);
    this.drawStatus();
  }

  progress(stage: string, text: string, now = Date.now()): void {
    if (!this.tty) {
      const last = this.lastPrinted.get(stage) ?? -Infinity;
      if (now - last >= this.progressIntervalMs) {
        this.lastPrinted.set(stage, now);
        this.write(`[${stage}] ${text.trim()}\n`);
      }
      return;
    }
    this.latest.set(stage, text.trim());
    this.scheduleRedraw();
  }

  /** A stage ended: its progress state leaves the status line. */
  stageEnded(stage: string): void {
    this.latest.delete(stage);
    this.lastPrinted.delete(stage);
    if (this.tty) {
      this.clearStatus();
      this.drawStatus();
    }
  }

  close(): void {
    if (this.redrawTimer) clearTimeout(this.redrawTimer);
    this.redrawTimer = null;
    this.latest.clear();
    this.clearStatus();
  }

  private scheduleRedraw(): void {
    const wait = 200 - (Date.now() - this.lastRedraw);
    if (wait <= 0) {
      this.clearStatus();
      this.drawStatus();
      return;
    }
    if (!this.redrawTimer) {
      this.redrawTimer = setTimeout(() => {
        this.redrawTimer = null;
        this.clearStatus();
        this.drawStatus();
      }, wait);
      this.redrawTimer.unref?.();
    }
  }

  private clearStatus(): void {
    if (this.tty && this.statusShown) {
      this.write("\r\x1b[K");
      this.statusShown = false;
    }
  }

  private drawStatus(): void {
    if (!this.tty || this.latest.size === 0) return;
    const cols = (this.stream as { columns?: number }).columns ?? 120;
    let s = [...this.latest].map(([k, v]) => `[${k}] ${v}`).join(" | ");
    if (s.length > cols - 1) s = s.slice(0, Math.max(0, cols - 2)) + "…";
    this.write(s);
    this.statusShown = true;
    this.lastRedraw = Date.now();
  }
}
