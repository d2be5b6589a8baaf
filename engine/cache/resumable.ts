/**
 * Resumable, verified writes of a cache object from any byte source (a file, an HTTP body): the
 * bytes go to `<final>.partial`, appended to from where an interrupted transfer stopped, hashed as
 * they stream (after re-reading the bytes already there), and the partial is renamed to `final`
 * only when the sha256 matches. A half-written object is never visible under its final name.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import crypto from "node:crypto";
import { pipeline } from "node:stream/promises";
import { Transform, type Readable } from "node:stream";

export interface TransferInfo {
  /** Bytes found already transferred by an earlier, interrupted attempt. */
  resumedAt: number;
}

/** Read/write size of transfers (fs streams default to 64 KiB: too many round trips for GB objects). */
export const CHUNK = 1 << 20;

/** Test hook: SIGKILL this process once this many bytes were written by transfers (interrupted-transfer tests). */
export const killAfter = Number(process.env.PIPELINE_TRANSFER_KILL_AFTER_BYTES ?? "") || 0;
let written = 0;

/**
 * Count `n` bytes about to be written against the kill hook: how many of them may still be
 * written; when that is fewer than `n`, the process is killed right after (as a crash would).
 */
function allowWrite(n: number): number {
  if (!crossesKill(n)) return n;
  setImmediate(() => process.kill(process.pid, "SIGKILL"));
  return n - (written - killAfter);
}

/** Count `n` bytes against the kill hook: true when they reach it (the caller then kills the process itself). */
export function crossesKill(n: number): boolean {
  if (!killAfter) return false;
  written += n;
  return written >= killAfter;
}

function counting(onBytes: (n: number) => void, hash: crypto.Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      onBytes(chunk.length);
      const ok = allowWrite(chunk.length);
      cb(null, ok < chunk.length ? chunk.subarray(0, ok) : chunk);
    },
  });
}

export function mismatch(what: string, digest: string, expect: string, why: string): Error {
  return new Error(`${what}: sha256 ${digest.slice(0, 12)}... does not match ${expect.slice(0, 12)}... (${why})`);
}

/**
 * Write `size` bytes from `open(start)` (a stream of the source from byte `start` on) to `final`,
 * resuming `final.partial`; verified against `expect` (null: not content-addressed). A resumed
 * prefix that turns out wrong is discarded and the object fetched again whole, once.
 */
export async function resumeInto(
  what: string,
  final: string,
  size: number,
  expect: string | null,
  open: (start: number) => Promise<Readable>,
  onBytes: (n: number) => void,
): Promise<TransferInfo> {
  const partial = `${final}.partial`;
  await fsp.mkdir(path.dirname(final), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    const hash = crypto.createHash("sha256");
    let have = 0;
    try {
      have = (await fsp.stat(partial)).size;
    } catch {
      have = 0;
    }
    if (have > size) {
      await fsp.rm(partial, { force: true });
      have = 0;
    }
    if (have > 0) {
      // what an interrupted attempt left: hash it (it counts only if the whole matches at the end)
      for await (const chunk of fs.createReadStream(partial, { end: have - 1, highWaterMark: CHUNK })) hash.update(chunk as Buffer);
      onBytes(have);
    }
    const resumedAt = have;
    if (have < size) {
      await pipeline(await open(have), counting(onBytes, hash), fs.createWriteStream(partial, { flags: have > 0 ? "a" : "w", highWaterMark: CHUNK }));
    } else if (size === 0) {
      await fsp.writeFile(partial, "");
    }
    const digest = hash.digest("hex");
    if (expect === null || digest === expect) {
      await fsp.rename(partial, final);
      return { resumedAt };
    }
    await fsp.rm(partial, { force: true });
    if (resumedAt === 0) throw mismatch(what, digest, expect, "changed or corrupt source");
    // the resumed prefix was not what we thought: start over once
  }
  throw new Error(`${final}: verification failed twice`);
}
