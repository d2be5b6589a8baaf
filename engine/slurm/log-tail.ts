/**
 * Follows a log file that another machine (the SLURM job) appends to: each `poll()` reads the
 * bytes added since the last one and hands over lines and progress states as the local executor
 * does (output.ts LineSplitter: a progress state is passed with a trailing "\r"); `flush()` at
 * the end also hands over a last line without its newline. Keeps the last lines for failure
 * messages.
 */
import fs from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { LineSplitter, type OutputEvent } from "../output.ts";

export class LogTail {
  private readonly splitter = new LineSplitter();
  private readonly decoder = new StringDecoder("utf8");
  private busy: Promise<void> = Promise.resolve();
  private readonly recent: string[] = [];

  constructor(
    readonly file: string,
    /** Byte offset to start from (what was in the file before this job wrote to it). */
    private offset: number,
    private readonly onLine: (line: string) => void,
    private readonly keep = 30,
  ) {}

  /** Read what was appended since the last call (calls never overlap). */
  poll(): Promise<void> {
    this.busy = this.busy.then(() => this.read()).catch(() => {});
    return this.busy;
  }

  /** Read the rest and emit a final unterminated line. */
  async flush(): Promise<void> {
    await this.poll();
    const rest = this.decoder.end();
    if (rest) this.emit(this.splitter.push(rest));
    this.emit(this.splitter.flush());
  }

  /** The last lines seen (up to `keep`). */
  lastLines(): string[] {
    return [...this.recent];
  }

  private async read(): Promise<void> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(this.file, "r");
    } catch {
      return; // not created yet (job pending)
    }
    try {
      const { size } = await fh.stat();
      if (size < this.offset) this.offset = 0; // truncated: start over
      while (this.offset < size) {
        const buf = Buffer.alloc(Math.min(size - this.offset, 1 << 20));
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        this.emit(this.splitter.push(this.decoder.write(buf.subarray(0, bytesRead))));
      }
    } finally {
      await fh.close();
    }
  }

  private emit(events: OutputEvent[]): void {
    for (const e of events) {
      if (e.progress) {
        this.onLine(`${e.text}\r`);
        continue;
      }
      this.recent.push(e.text);
      if (this.recent.length > this.keep) this.recent.shift();
      this.onLine(e.text);
    }
  }
}
