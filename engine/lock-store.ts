/**
 * pipeline.lock held in memory by a repro: read once, entries set as stages succeed, written
 * atomically (temp + rename) and coalesced: at most one write at a time, the next one at least
 * `minIntervalMs` (default 250 ms, or 10 times the last write's duration when that is longer)
 * after the previous, covering every entry set meanwhile. So a stage costs the same whether the
 * lock holds 10 or 4,000 entries (issue 14: re-reading and re-writing the lock after every stage
 * made a first repro quadratic).
 *
 * Crash safety does not depend on the write's timing: a stage's journal (phase promote, holding
 * its entry) is removed only after a write that includes the entry, so a kill -9 before the write
 * is rolled forward by the next repro.
 */
import { readLock, writeLock } from "./lock.ts";
import type { LockEntry, LockFile } from "./types.ts";

export class LockStore {
  private lock: LockFile | undefined;
  /** Entries set since the last write started, with the callbacks waiting for a write that holds them. */
  private waiting: { resolve(): void; reject(e: unknown): void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private lastWriteEnd = 0;
  private lastWriteMs = 0;

  constructor(
    readonly file: string,
    private readonly minIntervalMs = 250,
  ) {}

  /** The lock as on disk when first needed (InputError when it does not parse), with the entries set since. */
  get(): LockFile {
    this.lock ??= readLock(this.file);
    return this.lock;
  }

  entry(stage: string): LockEntry | undefined {
    return this.get().stages[stage];
  }

  /** Record a stage's entry; resolves once a write that includes it is done (rejects if that write failed). */
  set(stage: string, entry: LockEntry): Promise<void> {
    this.get().stages[stage] = entry;
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Drop a stage's entry (a stage removed from pipeline.yaml); resolves once written. */
  drop(stage: string): Promise<void> {
    if (!(stage in this.get().stages)) return Promise.resolve();
    delete this.get().stages[stage];
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Write now whatever is pending, and wait for it. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.writing || this.waiting.length) {
      if (this.writing) await this.writing.catch(() => {});
      else await this.writeNow().catch(() => {});
    }
  }

  private schedule(): void {
    if (this.timer || this.writing) return; // the write in progress schedules the next one when it ends
    const gap = Math.max(this.minIntervalMs, 10 * this.lastWriteMs);
    const wait = Math.max(0, this.lastWriteEnd + gap - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.writeNow().catch(() => {});
    }, wait);
  }

  private writeNow(): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    const t0 = Date.now();
    const p = writeLock(this.file, this.get());
    this.writing = p.then(
      () => {
        for (const w of batch) w.resolve();
      },
      (e: unknown) => {
        for (const w of batch) w.reject(e);
        throw e;
      },
    ).finally(() => {
      this.writing = null;
      this.lastWriteEnd = Date.now();
      this.lastWriteMs = this.lastWriteEnd - t0;
      if (this.waiting.length) this.schedule();
    });
    return this.writing;
  }
}
