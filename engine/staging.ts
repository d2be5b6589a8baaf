/**
 * Staging of a stage's outs around an attempt (steps 2, 3 and 6 of runner.ts): persist outs kept
 * or moved to `.pipeline/stale/`, other outs moved to backups before the command runs, and put
 * back (rollback) or deleted (after promotion) afterwards. Every planned move is journaled first.
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import { newJournal, readJournalFile, writeJournal, type Journal, type JournalOut } from "./journal.ts";
import { safeName } from "./output.ts";
import { stageIdentity } from "./plan.ts";
import type { LockEntry, PathHash, Stage } from "./types.ts";

export interface StagingDeps {
  ctx: ProjectContext;
  say(msg: string): void;
  /** The stage's entry in pipeline.lock (what its recorded outs were produced with). */
  lockEntry(stage: string): LockEntry | undefined;
}

export interface Prepared {
  journal: Journal;
  /** The stage had an interrupted attempt (persist outs) before this one. */
  wasInterrupted: boolean;
}

/** Steps 2 and 3: persist outs checked against identities, other outs moved to backups. */
export function prepareOuts(d: StagingDeps, stage: Stage, identity: string, execName: string, gpus: string[]): Prepared {
  const ctx = d.ctx;
  const root = ctx.root;
  const prev = readJournalFile(ctx, stage.name);
  const j = newJournal(stage.name, identity, execName, gpus);
  const backupRoot = backupDir(ctx, stage.name);
  setAsideLeftovers(d, stage.name, backupRoot);
  for (const o of stage.outs) {
    const abs = path.join(root, o.path);
    const existed = exists(abs);
    const jo: JournalOut = { path: o.path, persist: o.persist, existed };
    if (o.persist && existed) {
      const keep = prev ? prev.identity === identity : lockIdentity(d.lockEntry(stage.name), stage) === identity;
      if (!keep) {
        const where = moveStale(ctx, stage.name, o.path);
        d.say(
          `${stage.name}: moved persist out ${o.path} to ${path.relative(root, where)}: it comes from a run with another cmd, deps, params or env` +
            (prev ? " (an interrupted attempt)" : ""),
        );
        jo.existed = false;
      } else {
        d.say(`${stage.name}: keeping persist out ${o.path} to resume (same cmd, deps, params and env)`);
      }
    } else if (!o.persist && existed) {
      jo.backup = path.join(backupRoot, o.path);
    }
    j.outs.push(jo);
  }
  writeJournal(ctx, j, { durable: j.outs.some((x) => x.backup) }); // planned backups are journaled before any rename
  crashPoint("prepare", stage.name);
  for (const jo of j.outs) {
    if (!jo.backup) continue;
    const abs = path.join(root, jo.path);
    fs.mkdirSync(path.dirname(jo.backup), { recursive: true });
    try {
      fs.renameSync(abs, jo.backup);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
      // the out lives on another file system (e.g. a symlinked scratch dir): back up next to it
      jo.backup = path.join(path.dirname(abs), `.${path.basename(abs)}.pipeline-backup`);
      fs.rmSync(jo.backup, { recursive: true, force: true });
      writeJournal(ctx, j);
      fs.renameSync(abs, jo.backup);
    }
  }
  crashPoint("backup", stage.name);
  for (const o of stage.outs) fs.mkdirSync(path.dirname(path.join(root, o.path)), { recursive: true });
  return { journal: j, wasInterrupted: !!prev && prev.phase === "interrupted" };
}

export function backupDir(ctx: ProjectContext, stage: string): string {
  return path.join(ctx.profileStateDir, "backup", safeName(stage));
}

/**
 * A backup folder should be empty when an attempt starts (recovery put back or deleted every
 * backup its journal accounted for). Files still there are accounted for by nothing: never
 * delete them; move them to `.pipeline/stale/<stage>/<n>/` and say so. Empty folders are removed.
 */
function setAsideLeftovers(d: StagingDeps, stage: string, backupRoot: string): void {
  if (!exists(backupRoot)) return;
  if (!hasFiles(backupRoot)) {
    fs.rmSync(backupRoot, { recursive: true, force: true });
    return;
  }
  const base = path.join(d.ctx.stateDir, "stale", safeName(stage));
  fs.mkdirSync(base, { recursive: true });
  const n = Math.max(0, ...fs.readdirSync(base).map((x) => Number(x)).filter((x) => Number.isInteger(x))) + 1;
  const dest = path.join(base, String(n), "backup");
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.renameSync(backupRoot, dest);
  d.say(`warning: ${stage}: moved earlier backups that no journal accounts for to ${path.relative(d.ctx.root, dest)} (check them; nothing was deleted)`);
}

function hasFiles(dir: string): boolean {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) return true;
    if (hasFiles(path.join(dir, e.name))) return true;
  }
  return false;
}

/** Identity of the lock entry of a stage (what its recorded outs were produced with), or null. */
function lockIdentity(entry: LockEntry | undefined, stage: Stage): string | null {
  if (!entry) return null;
  const pseudo: Stage = { ...stage, cmd: entry.cmd, params: entry.params, env: entry.env, deps: entry.deps.map((d) => d.path) };
  return stageIdentity(pseudo, new Map<string, PathHash | null>(entry.deps.map((d) => [d.path, d])));
}

function moveStale(ctx: ProjectContext, stage: string, out: string): string {
  const base = path.join(ctx.stateDir, "stale", safeName(stage));
  fs.mkdirSync(base, { recursive: true });
  const n = Math.max(0, ...fs.readdirSync(base).map((x) => Number(x)).filter((x) => Number.isInteger(x))) + 1;
  const dest = path.join(base, String(n), out);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const abs = path.join(ctx.root, out);
  try {
    fs.renameSync(abs, dest);
    return dest;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    const sib = `${abs}.stale-${n}`;
    fs.renameSync(abs, sib);
    return sib;
  }
}

/** Remove what the attempt wrote to non-persist outs and put the last good versions back (idempotent). */
export function rollback(ctx: ProjectContext, j: Journal): void {
  for (const o of j.outs) {
    if (o.persist) continue;
    const abs = path.join(ctx.root, o.path);
    if (o.backup && exists(o.backup)) {
      fs.rmSync(abs, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.renameSync(o.backup, abs);
    } else if (!o.existed) {
      fs.rmSync(abs, { recursive: true, force: true });
    }
  }
  removeEmptyDirs(backupDir(ctx, j.stage));
}

/** After promotion: the backups are no longer needed (their emptied folders go too). */
export function deleteBackups(ctx: ProjectContext, j: Journal): void {
  for (const o of j.outs) if (o.backup) fs.rmSync(o.backup, { recursive: true, force: true });
  removeEmptyDirs(backupDir(ctx, j.stage));
}

/** Remove a directory tree that holds no files (a folder with files anywhere below stays). */
function removeEmptyDirs(dir: string): void {
  try {
    if (!hasFiles(dir)) fs.rmSync(dir, { recursive: true, force: true });
    fs.rmdirSync(path.dirname(dir)); // `backup/` itself, when no other stage has backups (fails otherwise)
  } catch {
    /* missing, or not empty */
  }
}

/**
 * Fault injection for tests of crash safety: `PIPELINE_CRASH_AT=<point>:<stage>` makes the runner
 * SIGKILL itself at that point of that stage's attempt (points: prepare, backup, promote, locked).
 */
export function crashPoint(point: string, stage: string): void {
  const v = process.env.PIPELINE_CRASH_AT;
  if (v && v === `${point}:${stage}`) process.kill(process.pid, "SIGKILL");
}

export function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
