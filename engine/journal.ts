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

/** Params integers beyond 2^53 (BigInt) in a journal's lock entry: `{"$bigint": "digits"}`. */
function replaceBigInt(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? { $bigint: String(v) } : v;
}

function reviveBigInt(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const keys = Object.keys(v);
    const d = (v as { $bigint?: unknown }).$bigint;
    if (keys.length === 1 && typeof d === "string" && /^-?\d+$/.test(d)) return BigInt(d);
  }
  return v;
}

function journalDir(ctx: ProjectContext): string {
  return path.join(ctx.profileStateDir, "journal");
}

function journalFile(ctx: ProjectContext, stage: string): string {
  return path.join(journalDir(ctx), `${safeName(stage)}.json`);
}

/**
 * Atomic + durable small-file write (temp, fsync, rename). `durable: false` skips the fsync (for
 * records that matter only while this machine runs). The temp file never outlives a failure.
 */
export function writeFileAtomicSync(file: string, data: string, opts: { durable?: boolean } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  try {
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, data);
      if (opts.durable !== false) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    (e as NodeJS.ErrnoException).path ??= file; // writeSync's errors name no file
    throw e;
  }
}

/** The journal of one stage, or null when there is none (or it cannot be read: recovery dealt with those). */
export function readJournalFile(ctx: ProjectContext, stage: string): Journal | null {
  try {
    const j = JSON.parse(fs.readFileSync(journalFile(ctx, stage), "utf8"), reviveBigInt) as Journal;
    return j && j.version === 1 && j.stage === stage && Array.isArray(j.outs) ? j : null;
  } catch {
    return null;
  }
}

/**
 * `durable: false` (no fsync) where a power loss costs nothing the journal protects: no last good
 * output moved yet, or a local job that dies with the machine. A kill -9 of the runner loses no
 * page-cache write either way; a torn journal after a power loss is restored from the backups.
 */
export function writeJournal(ctx: ProjectContext, j: Journal, opts: { durable?: boolean } = {}): void {
  writeFileAtomicSync(journalFile(ctx, j.stage), JSON.stringify(j, replaceBigInt, 2) + "\n", opts);
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

/** A journal file that cannot be read: its stage is known only by the file name (safeName). */
export interface BadJournal {
  file: string;
  /** safeName() of the stage (the file name without .json). */
  safe: string;
  why: string;
}

/** Every journal of this project+profile, and the unreadable ones. */
export function scanJournals(ctx: ProjectContext): { journals: Journal[]; bad: BadJournal[] } {
  const dir = journalDir(ctx);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return { journals: [], bad: [] };
  }
  const journals: Journal[] = [];
  const bad: BadJournal[] = [];
  for (const n of names.sort()) {
    if (!n.endsWith(".json")) continue;
    const file = path.join(dir, n);
    try {
      const j = JSON.parse(fs.readFileSync(file, "utf8"), reviveBigInt) as Journal;
      if (j === null || typeof j !== "object" || j.version !== 1 || typeof j.stage !== "string" || !Array.isArray(j.outs) || typeof j.identity !== "string") {
        throw new Error("not a journal of this version");
      }
      if (safeName(j.stage) !== n.slice(0, -5)) throw new Error(`it names stage ${j.stage}, not the one of its file name`);
      journals.push(j);
    } catch (e) {
      bad.push({ file, safe: n.slice(0, -5), why: (e as Error).message });
    }
  }
  return { journals, bad };
}

/** Every readable journal of this project+profile (unreadable ones are reported through `onBad`). */
export function readJournals(ctx: ProjectContext, onBad?: (file: string, why: string) => void): Journal[] {
  const { journals, bad } = scanJournals(ctx);
  for (const b of bad) onBad?.(b.file, b.why);
  return journals;
}

/**
 * Stages whose last attempt did not complete (a journal exists, readable or not): `status` must
 * not call them current, and `repro` reruns (or resumes) them. `stages`: the pipeline's stage
 * names, to map an unreadable journal (known by its file name) to its stage.
 */
export async function listInterrupted(ctx: ProjectContext, stages: Iterable<string> = []): Promise<Set<string>> {
  const { journals, bad } = scanJournals(ctx);
  const out = new Set(journals.map((j) => j.stage));
  if (bad.length) {
    const badSafe = new Set(bad.map((b) => b.safe));
    for (const s of stages) if (badSafe.has(safeName(s))) out.add(s);
  }
  return out;
}
