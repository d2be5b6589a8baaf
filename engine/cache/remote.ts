/**
 * Remotes: where `push` sends cache objects and `fetch`/`pull` get them from. Same layout as the
 * cache (store.ts: files/sha256/ab/..., runs/ab/....json).
 *
 * `Remote` is the interface a transport implements; `DirectoryRemote` is a directory (a cluster's
 * shared file system, NFS, a mounted disk); `S3Remote` (s3-remote.ts) an S3-compatible bucket.
 *
 * Transfers are resumable and verified: an object is written to `<name>.partial` next to its final
 * place, appended to from where an interrupted transfer stopped, hashed as it streams (after
 * re-reading the bytes already there), and renamed to its final name only when the sha256 matches
 * (resumable.ts).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { hashFile, hashSync } from "hasha";
import { InputError } from "../errors.ts";
import { CHUNK, killAfter, mismatch, resumeInto, type TransferInfo } from "./resumable.ts";
import { S3Remote, type S3Options } from "./s3-remote.ts";

export interface Remote {
  readonly url: string;
  /** Check that the remote is there (InputError naming it otherwise); `create`: make it (push). */
  open(create: boolean): Promise<void>;
  /** Which of these relative object paths the remote has (complete). */
  has(rels: string[]): Promise<Set<string>>;
  /** Upload a local file to `rel`; `expect` = its sha256, checked before it becomes visible (null: not content-addressed, e.g. run-cache entries). */
  upload(local: string, rel: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo>;
  /** Download `rel` to the local file `dest` (resuming `dest + ".partial"`), verified against `expect`. */
  download(rel: string, dest: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo>;
}

export function openRemote(url: string | undefined, s3: S3Options = {}): Remote {
  if (!url) {
    throw new InputError("no remote: pass -r/--remote <dir or s3://bucket/prefix>, set PIPELINE_REMOTE, or add `remote: ...` to pipeline.config.yaml");
  }
  if (/^s3:\/\//i.test(url)) return new S3Remote(url, s3);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^file:\/\//i.test(url)) throw new InputError(`remote ${url}: unsupported scheme; a remote is a directory path or s3://bucket/prefix`);
  return new DirectoryRemote(url.replace(/^file:\/\//i, ""));
}

/** Small files on this thread (a worker round trip costs more), big ones in hasha's worker. */
async function sha256OfFile(file: string, size: number): Promise<string> {
  return size <= 256 * 1024 ? hashSync(await fsp.readFile(file), { algorithm: "sha256" }) : hashFile(file, { algorithm: "sha256" });
}

/** Copy `src` to `final` through `final.partial`, resuming it; verified; renamed into place. */
async function resumableCopy(src: string, final: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo> {
  const partial = `${final}.partial`;
  await fsp.mkdir(path.dirname(final), { recursive: true });
  const size = (await fsp.stat(src)).size;
  if (!fs.existsSync(partial) && !killAfter) {
    // a fresh transfer: kernel copy (copy_file_range), then the written bytes are hashed, off the
    // main thread for big files. A copy cut short leaves a prefix that the next attempt resumes
    // through the streaming path (which the kill-after-bytes test hook always takes).
    await fsp.copyFile(src, partial);
    const digest = expect === null ? null : await sha256OfFile(partial, size);
    onBytes(size);
    if (expect === null || digest === expect) {
      await fsp.rename(partial, final);
      return { resumedAt: 0 };
    }
    await fsp.rm(partial, { force: true });
    throw mismatch(src, digest!, expect, "changed or corrupt source");
  }
  return resumeInto(src, final, size, expect, async (start) => fs.createReadStream(src, { start, highWaterMark: CHUNK }), onBytes);
}

class DirectoryRemote implements Remote {
  readonly root: string;
  constructor(dir: string) {
    this.root = path.resolve(dir);
  }
  get url(): string {
    return this.root;
  }

  async open(create: boolean): Promise<void> {
    this.ensureRoot(create);
  }

  private ensureRoot(create: boolean): void {
    if (fs.existsSync(this.root)) {
      if (!fs.statSync(this.root).isDirectory()) throw new InputError(`remote ${this.root} is not a directory`);
      return;
    }
    if (!create) throw new InputError(`remote ${this.root} does not exist (push creates it; check the path / mount)`);
    fs.mkdirSync(this.root, { recursive: true });
  }

  async has(rels: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    await Promise.all(
      rels.map(async (r) => {
        try {
          await fsp.access(path.join(this.root, r));
          out.add(r);
        } catch {
          /* absent */
        }
      }),
    );
    return out;
  }

  async upload(local: string, rel: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo> {
    const info = await resumableCopy(local, path.join(this.root, rel), expect, onBytes);
    await fsp.chmod(path.join(this.root, rel), 0o444).catch(() => {});
    return info;
  }

  async download(rel: string, dest: string, expect: string | null, onBytes: (n: number) => void): Promise<TransferInfo> {
    return resumableCopy(path.join(this.root, rel), dest, expect, onBytes);
  }
}
