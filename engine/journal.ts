/**
 * The journal of in-flight stages: one small JSON per stage attempt under
 * `<profileStateDir>/journal/`, rewritten atomically (temp + fsync + rename) at every step, so that
 * after a kill -9 of the runner at any moment the next run knows what to undo or finish:
 *
 *   prepare   outs are being moved to their backups (each planned backup is journaled BEFORE the
 *             rename, so a backup path that exists is the last good out)
 *   running   the command runs (outs may be partial); jobId is set as soon as a scheduler knows it
 *   promote   the command succeeded and its outs were hashed: `entry` is the lock entry to write;
 *             what remains is writing the lock and deleting the backups (roll forward)
 *   interrupted  an attempt of a stage with persist outs failed or was interrupted; its outs were
 *             left in place to resume, valid only for the same `identity`
 *
 * A journal exists exactly while a stage is not known to be complete, so `status` reports these
 * stages as interrupted (listInterrupted) instead of current.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import type { ProjectContext } from "./context.ts";
import type { LockEntry } from "./types.ts";
import { safeName } from "./output.ts";

export type JournalPhase = "prepare" | "running" | "promote" | "interrupted";

export interface JournalOut {
  /** Project-relative out path. */
  path: string;
  persist: boolean;
  /** Did the out exist before the attempt (and so has a last good version)? */
  existed: boolean;
  /** Absolute path its last good version is (or is being) moved to; non-persist outs that existed. */
  backup?: string;
}

export interface Journal {
  version: 1;
  stage: string;
  phase: JournalPhase;
  host: string;
  pid: number;
  startedAt: string;
  /** stageIdentity() of the attempt: cmd, dep hashes, params, env. */
  identity: string;
  executor: string;
  jobId?: string;
  gpus: string[];
  outs: JournalOut[];
  /** Phase promote: the lock entry to record. */
  entry?: LockEntry;
}

export function journalDir(ctx: ProjectContext): string {
  return path.join(ctx.profileStateDir, "journal");
}

export function journalFile(ctx: ProjectContext, stage: string): string {
  return path.join(journalDir(ctx), `${safeName(stage)}.json`);
}

/** Atomic + durable small-file write (temp, fsync, rename). */
export function writeFileAtomicSync(file: string, data: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export function writeJournal(ctx: ProjectContext, j: Journal): void {
  writeFileAtomicSync(journalFile(ctx, j.stage), JSON.stringify(j, null, 2) + "\n");
}

export function removeJournal(ctx: ProjectContext, stage: string): void {
  fs.rmSync(journalFile(ctx, stage), { force: true });
}

export function newJournal(stage: string, identity: string, executor: string, gpus: string[]): Journal {
  return {
    version: 1,
    stage,
    phase: "prepare",
    host: os.hostname(),
    pid: process.pid,
    startedAt: new Date().toISOString(),
    identity,
    executor,
    gpus,
    outs: [],
  };
}

/** Every journal of this project+profile (unreadable ones are reported through `onBad`). */
export function readJournals(ctx: ProjectContext, onBad?: (file: string, why: string) => void): Journal[] {
  const dir = journalDir(ctx);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Journal[] = [];
  for (const n of names.sort()) {
    if (!n.endsWith(".json")) continue;
    const file = path.join(dir, n);
    try {
      const j = JSON.parse(fs.readFileSync(file, "utf8")) as Journal;
      if (j.version !== 1 || typeof j.stage !== "string" || !Array.isArray(j.outs)) throw new Error("not a journal of this version");
      out.push(j);
    } catch (e) {
      onBad?.(file, (e as Error).message);
    }
  }
  return out;
}

/**
 * Stages whose last attempt did not complete (a journal exists): `status` must not call them
 * current, and `repro` reruns (or resumes) them.
 */
export async function listInterrupted(ctx: ProjectContext): Promise<Set<string>> {
  return new Set(readJournals(ctx).map((j) => j.stage));
}
