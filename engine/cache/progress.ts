/**
 * Progress of a transfer on stderr: on a terminal one line redrawn at most 5 times a second; else
 * a line every PIPELINE_PROGRESS_INTERVAL_MS (default 10 s). The final summary is the caller's.
 */
export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export class Progress {
  private files = 0;
  private bytes = 0;
  private last = 0;
  private readonly tty: boolean;
  private readonly interval: number;
  private readonly t0 = Date.now();

  constructor(
    private readonly label: string,
    private readonly totalFiles: number,
    private readonly totalBytes: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY) && process.env.TERM !== "dumb";
    const env = Number(process.env.PIPELINE_PROGRESS_INTERVAL_MS);
    this.interval = this.tty ? 200 : Number.isFinite(env) && process.env.PIPELINE_PROGRESS_INTERVAL_MS ? env : 10_000;
    this.last = Date.now();
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.maybeDraw();
  }

  fileDone(): void {
    this.files++;
    this.maybeDraw();
  }

  private line(): string {
    const secs = (Date.now() - this.t0) / 1000;
    const rate = secs > 0 ? `${formatBytes(this.bytes / secs)}/s` : "";
    return `${this.label}: ${this.files}/${this.totalFiles} files, ${formatBytes(this.bytes)}/${formatBytes(this.totalBytes)} ${rate}`;
  }

  private maybeDraw(): void {
    const now = Date.now();
    if (now - this.last < this.interval) return;
    this.last = now;
    this.stream.write(this.tty ? `\r\x1b[K${this.line()}` : `${this.line()}\n`);
  }

  end(): void {
    if (this.tty) this.stream.write("\r\x1b[K");
  }
}
