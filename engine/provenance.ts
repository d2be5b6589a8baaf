/**
 * Provenance of runs, kept out of the lock (which has no timestamps): one JSON record per repro
 * invocation under `<profileStateDir>/runs/<start>-<pid>.json`, rewritten atomically after every
 * stage so a crash still leaves what happened so far. Per stage: start, end, exit code / signal,
 * GPU ids, peak memory, executor and job id, outcome.
 */
import { execaSync } from "execa";
import os from "node:os";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import { writeFileAtomicSync } from "./journal.ts";

export interface StageRunRecord {
  stage: string;
  identity: string;
  outcome: "ok" | "failed" | "interrupted" | "recovered";
  startedAt: string;
  endedAt: string;
  exitCode: number | null;
  signal?: string | null;
  gpus: string[];
  peakRssKb?: number;
  executor: string;
  jobId?: string;
  state?: string;
  message?: string;
}

export interface RunRecord {
  startedAt: string;
  endedAt?: string;
  host: string;
  pid: number;
  user: string;
  argv: string[];
  profile: string;
  gitCommit?: string;
  gitDirty?: boolean;
  gpuPool: string[];
  exitCode?: number;
  stages: StageRunRecord[];
}

function git(root: string, args: string[]): string | undefined {
  try {
    return execaSync("git", args, { cwd: root, stdin: "ignore", stderr: "ignore", timeout: 10_000 }).stdout.trim();
  } catch {
    return undefined;
  }
}

export class Provenance {
  readonly file: string;
  readonly record: RunRecord;

  private gitDone = false;
  private saveTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ctx: ProjectContext,
    gpuPool: string[] = [],
  ) {
    const startedAt = new Date().toISOString();
    this.file = path.join(ctx.profileStateDir, "runs", `${startedAt.replace(/[:.]/g, "-")}-${process.pid}.json`);
    let user = "";
    try {
      user = os.userInfo().username;
    } catch {
      /* no passwd entry */
    }
    this.record = {
      startedAt,
      host: os.hostname(),
      pid: process.pid,
      user,
      argv: process.argv.slice(2),
      profile: ctx.profile,
      gpuPool,
      stages: [],
    };
  }

  /** git commit (and whether tracked files differ from it), asked once, when the first stage is recorded. */
  private git(): void {
    if (this.gitDone) return;
    this.gitDone = true;
    const commit = git(this.ctx.root, ["rev-parse", "HEAD"]);
    if (!commit) return;
    this.record.gitCommit = commit;
    // tracked files changed? (untracked ones are ignored: outputs usually are)
    const dirty = git(this.ctx.root, ["status", "--porcelain", "--untracked-files=no"]);
    if (dirty !== undefined) this.record.gitDirty = dirty.length > 0;
  }

  /**
   * Record a stage's run. Saved at most once a second (rewriting the whole record after every one
   * of 4,000 stages would make a run quadratic); finish() saves at once.
   */
  addStage(r: StageRunRecord): void {
    this.git();
    this.record.stages.push(r);
    if (this.record.stages.length === 1) this.save();
    else this.saveTimer ??= setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, 1000).unref();
  }

  finish(exitCode: number): void {
    this.record.endedAt = new Date().toISOString();
    this.record.exitCode = exitCode;
    this.save();
  }

  save(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    try {
      writeFileAtomicSync(this.file, JSON.stringify(this.record, null, 2) + "\n");
    } catch (e) {
      // the record of the run is informative: a full disk must not stop the run over it
      process.stderr.write(`warning: could not save the run record ${this.file}: ${(e as Error).message}\n`);
    }
  }
}
