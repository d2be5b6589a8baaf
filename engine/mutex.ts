/**
 * One repro at a time per project + profile: `<profileStateDir>/repro.mutex.json`, created with
 * O_EXCL and holding {host, pid, process start time, start time, command}.
 *
 * - Held by a live process: refuse, naming the holder, or (--wait) poll until it is released.
 * - Left by a dead process on this host (pid gone, or the pid now belongs to a process started at
 *   another time: pid reuse) is taken over, and we say so. Takeover is serialized by a second,
 *   short-lived O_EXCL file (`repro.mutex.json.takeover`): the taker re-reads the mutex under it
 *   and removes it only if it still names the same dead holder, then competes with O_EXCL like
 *   everyone else. A takeover file older than 30 s is itself left by a crash and is removed.
 * - Held from another host (shared file system): the holder refreshes the file's mtime every 10 s
 *   (heartbeat); a holder silent for longer than PIPELINE_MUTEX_STALE_S (120 s) is taken for dead
 *   and taken over; otherwise we refuse, saying how old its heartbeat is.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import type { ProjectContext } from "./context.ts";
import { PipelineError } from "./errors.ts";
import { procStart } from "./proc.ts";

export interface MutexHolder {
  host: string;
  pid: number;
  /** Kernel start time of the process (/proc/<pid>/stat field 22), to detect pid reuse. */
  procStart?: string;
  startedAt: string;
  command: string;
  token: string;
}

export function mutexFile(ctx: ProjectContext): string {
  return path.join(ctx.profileStateDir, "repro.mutex.json");
}


/** Is the holder certainly dead? (only decidable on the same host) */
export function holderIsDead(h: MutexHolder): boolean {
  if (h.host !== os.hostname()) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return true;
    // EPERM: exists (another user's process)
  }
  if (h.procStart !== undefined) {
    const now = procStart(h.pid);
    if (now !== undefined && now !== h.procStart) return true; // pid reused by another process
  }
  return false;
}

/** The holder a mutex file names, or null when it is missing, being written, or holds anything else. */
function readHolder(file: string): MutexHolder | null {
  try {
    if (fs.lstatSync(file).isSymbolicLink()) return fromLink(fs.readlinkSync(file), fs.lstatSync(file).mtime);
    const h = JSON.parse(fs.readFileSync(file, "utf8")) as MutexHolder;
    const ok = h !== null && typeof h === "object" && typeof h.host === "string" && Number.isInteger(h.pid) && h.pid > 0 && typeof h.token === "string";
    return ok ? h : null;
  } catch {
    return null;
  }
}

/**
 * With zero free bytes (a full disk) a file with content cannot be written, but a short symlink
 * (its target kept in the inode: tmpfs, ext4, xfs) still can: the holder is then encoded in the
 * target, so a repro can take the mutex and recover on a full disk.
 */
const LINK_PREFIX = "pipeline-mutex:1:";

function toLink(h: MutexHolder): string {
  return `${LINK_PREFIX}${h.pid}:${h.procStart ?? ""}:${h.token}:${h.host}`;
}

function fromLink(target: string, mtime: Date): MutexHolder | null {
  if (!target.startsWith(LINK_PREFIX)) return null;
  const m = /^(\d+):(\d*):([0-9a-f]+):(.+)$/.exec(target.slice(LINK_PREFIX.length));
  if (!m) return null;
  return { pid: Number(m[1]), procStart: m[2] || undefined, token: m[3]!, host: m[4]!, startedAt: mtime.toISOString(), command: "" };
}

/** The start of a file's content, for messages. */
function snippet(file: string): string {
  try {
    const t = fs.readFileSync(file, "utf8").replace(/\s+/g, " ").trim();
    return t ? JSON.stringify(t.length > 60 ? t.slice(0, 60) + "..." : t) : "empty";
  } catch {
    return "unreadable";
  }
}

export function describeHolder(h: MutexHolder): string {
  return `pid ${h.pid} on ${h.host}, started ${h.startedAt}${h.command ? ` (${h.command})` : ""}`;
}

export interface AcquireOptions {
  wait?: boolean;
  /** Poll interval while waiting (ms). */
  pollMs?: number;
  /** Messages for the user (takeover, waiting). */
  say?: (msg: string) => void;
  command?: string;
  /** Aborts a wait. */
  signal?: AbortSignal;
}

/** How often a holder refreshes the mutex's mtime (its heartbeat). */
const HEARTBEAT_MS = 10_000;

/**
 * A holder on another host whose heartbeat is older than this is taken for dead (a login node that
 * died): `PIPELINE_MUTEX_STALE_S`, default 120 s. On this host, liveness is checked directly.
 */
function staleAfterMs(): number {
  const v = Number(process.env.PIPELINE_MUTEX_STALE_S);
  return (Number.isFinite(v) && v > 0 && process.env.PIPELINE_MUTEX_STALE_S ? v : 120) * 1000;
}

/** Seconds since the holder last refreshed the mutex (null: gone). */
function heartbeatAgeS(file: string): number | null {
  const st = lstatOrNull(file);
  return st ? Math.max(0, Math.round((Date.now() - st.mtimeMs) / 1000)) : null;
}

export class ReproMutex {
  private released = false;
  private readonly beat: NodeJS.Timeout;
  private constructor(
    readonly file: string,
    readonly holder: MutexHolder,
  ) {
    this.beat = setInterval(() => {
      try {
        const now = new Date();
        fs.lutimesSync(this.file, now, now);
      } catch {
        /* a full or read-only disk: others will see an old heartbeat after the timeout */
      }
    }, Number(process.env.PIPELINE_TEST_HEARTBEAT_MS) || HEARTBEAT_MS);
    this.beat.unref();
  }

  static async acquire(ctx: ProjectContext, opts: AcquireOptions = {}): Promise<ReproMutex> {
    const file = mutexFile(ctx);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.accessSync(path.dirname(file), fs.constants.W_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EROFS" && code !== "EACCES" && code !== "EPERM") throw e;
      throw new PipelineError(
        `cannot take the repro mutex in ${path.dirname(file)}: ${code === "EROFS" ? "read-only file system" : "permission denied"}; ` +
          `repro writes outputs and the lock there (status works read-only)`,
        2,
      );
    }
    const me: MutexHolder = {
      host: os.hostname(),
      pid: process.pid,
      procStart: procStart(process.pid),
      startedAt: new Date().toISOString(),
      command: opts.command ?? "",
      token: crypto.randomBytes(8).toString("hex"),
    };
    let announcedWait = false;
    for (;;) {
      if (tryCreate(file, me)) return new ReproMutex(file, me);
      const h = readHolder(file);
      if (h === null) {
        // being written right now, or garbage: give a writer a moment, then treat garbage as stale
        await sleep(50);
        const again = readHolder(file);
        const st = lstatOrNull(file);
        if (again === null && st) {
          const age = Date.now() - st.mtimeMs;
          if (age > 5000) {
            const what = snippet(file);
            if (takeOver(file, null)) {
              opts.say?.(`warning: the repro mutex ${file} held unexpected content (${what}), not a holder; removed it (a repro killed while writing it, or an edit by hand)`);
            }
          }
        }
        continue;
      }
      const remote = h.host !== os.hostname();
      const age = heartbeatAgeS(file);
      const silent = remote && age !== null && age * 1000 > staleAfterMs();
      if (holderIsDead(h) || silent) {
        if (takeOver(file, h)) {
          opts.say?.(
            silent
              ? `taking over the repro mutex of ${describeHolder(h)}: no heartbeat for ${age} s (over ${staleAfterMs() / 1000} s), so that host or process is gone`
              : `taking over the repro mutex left by a dead process (${describeHolder(h)})`,
          );
        } else await sleep(50);
        continue;
      }
      if (!opts.wait) {
        throw new PipelineError(
          `another repro is running on this project${ctx.profile !== "default" ? ` (profile ${ctx.profile})` : ""}: ${describeHolder(h)}.\n` +
            `Wait for it, or use --wait to queue behind it.` +
            (remote
              ? ` It runs on another host; its last heartbeat was ${age} s ago, and it is taken for dead after ${staleAfterMs() / 1000} s without one (PIPELINE_MUTEX_STALE_S).`
              : ""),
          1,
        );
      }
      if (!announcedWait) {
        opts.say?.(`waiting for the repro holding this project: ${describeHolder(h)}`);
        announcedWait = true;
      }
      if (opts.signal?.aborted) throw new PipelineError("interrupted while waiting for the repro mutex", 130);
      await sleep(opts.pollMs ?? 500);
    }
  }

  /** Release (only if the file is still ours). Synchronous so it also works in exit handlers. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.beat);
    const h = readHolder(this.file);
    if (h && h.token === this.holder.token) fs.rmSync(this.file, { force: true });
  }
}

function tryCreate(file: string, me: MutexHolder): boolean {
  // write to a temp file first and hard-link it into place: the mutex appears complete or not at all
  const tmp = `${file}.${me.pid}.${me.token}.tmp`;
  try {
    fs.writeFileSync(tmp, JSON.stringify(me, null, 2) + "\n");
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOSPC" && code !== "EDQUOT") throw e;
    try {
      fs.symlinkSync(toLink(me), file); // fails with EEXIST like O_EXCL
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e2;
    }
  }
  try {
    fs.linkSync(tmp, file); // fails with EEXIST like O_EXCL
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    if ((e as NodeJS.ErrnoException).code === "EPERM" || (e as NodeJS.ErrnoException).code === "ENOTSUP") {
      // file systems without hard links: plain O_EXCL
      try {
        const fd = fs.openSync(file, "wx");
        fs.writeSync(fd, JSON.stringify(me, null, 2) + "\n");
        fs.closeSync(fd);
        return true;
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw e2;
      }
    }
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Remove the mutex if it still names `dead` (null: still unreadable), serialized by a takeover file. */
function takeOver(file: string, dead: MutexHolder | null): boolean {
  const guard = `${file}.takeover`;
  let fd: number;
  try {
    fd = fs.openSync(guard, "wx");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    try {
      if (Date.now() - fs.statSync(guard).mtimeMs > 30_000) fs.rmSync(guard, { force: true });
    } catch {
      /* gone meanwhile */
    }
    return false;
  }
  try {
    const now = readHolder(file);
    const same = dead === null ? now === null && lstatOrNull(file) !== null : now !== null && now.token === dead.token && now.pid === dead.pid;
    if (!same) return false;
    fs.rmSync(file, { force: true });
    return true;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(guard, { force: true });
  }
}

function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file);
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
