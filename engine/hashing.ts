/**
 * Content hashes of deps and outs: sha256 (hasha, in its worker thread) of files, and of
 * directory manifests.
 *
 * Directories: every regular file below the directory counts, dotfiles and `.git/` included
 * (nothing is ignored); symlinks are followed (a symlink loop is an error); sockets, FIFOs and
 * devices are skipped. The manifest maps sorted relative paths to `{hash, size}`; its canonical JSON
 * (keys in sorted order, no spaces) is stored content-addressed as
 * `.pipeline/manifests/<h[0:2]>/<h>.json`, where h = sha256 of that JSON = the directory's hash.
 * Keeping old manifests lets `status` say WHICH file of a directory dep changed.
 *
 * Stat cache (`.pipeline/statcache.json`, shared by profiles): project-relative path -> size,
 * inode, mtime and ctime in nanoseconds (not the device id, which changes across mounts and
 * containers) and the hash. A file whose four values are unchanged is not read again.
 * What it cannot see: a rewrite that keeps size, inode, mtime AND ctime (ctime cannot be set
 * from user space, so `touch -d` to restore an mtime is detected), and a rewrite within the same
 * timestamp tick as the stat ("racy" files). Against the latter, a file whose mtime is less than
 * `racyWindowMs` (default 2 s, covering 1 s-granularity file systems such as Lustre and some NFS
 * servers) before the moment it was hashed is hashed but not cached, so it is hashed once more
 * the next time. Clock skew between a file server and this host larger than the window defeats it.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import crypto from "node:crypto";
import { hashFile, hashSync } from "hasha";
import type { ProjectContext } from "./context.ts";
import { InputError } from "./errors.ts";
import type { PathHash } from "./types.ts";

export type Manifest = Record<string, { hash: string; size: number }>;

interface CacheEntry {
  size: string;
  ino: string;
  mtimeNs: string;
  ctimeNs: string;
  hash: string;
}

const CACHE_VERSION = 1;

/**
 * Files up to this size are read and hashed on the main thread (a message round trip to hasha's
 * worker costs more than hashing them); bigger ones stream through the worker thread, so big and
 * small files are hashed on two cores at once.
 */
const SMALL_FILE_BYTES = 256n * 1024n;

export interface HasherOptions {
  /** Files hashed at the same time (default 8). */
  concurrency?: number;
  /** Files modified less than this before being hashed are not cached (default 2000 ms). */
  racyWindowMs?: number;
}

/** Bounded concurrency: run at most `n` of the given async jobs at once. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly n: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** Canonical manifest JSON: sorted keys (byte order), no spaces. Independent of JS key ordering. */
export function canonicalManifest(entries: [string, { hash: string; size: number }][]): string {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return "{" + sorted.map(([k, v]) => `${JSON.stringify(k)}:{"hash":${JSON.stringify(v.hash)},"size":${v.size}}`).join(",") + "}";
}

export function sha256(text: string | Buffer): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

export class Hasher {
  readonly cacheFile: string;
  readonly manifestDir: string;
  /** Counters since construction (tests and the benchmark read them). */
  readonly stats = { filesHashed: 0, bytesHashed: 0, cacheHits: 0 };
  private cache: Map<string, CacheEntry> | undefined;
  /** Entries changed in this process (null = drop): merged into the file on save(). */
  private readonly changed = new Map<string, CacheEntry | null>();
  private readonly limit: Limiter;
  private readonly racyNs: bigint;
  /** Directories listed in this session and the files found in them (to prune deleted files on save). */
  private readonly listedDirs = new Set<string>();
  private readonly listed = new Set<string>();

  constructor(
    readonly ctx: ProjectContext,
    opts: HasherOptions = {},
  ) {
    this.cacheFile = path.join(ctx.stateDir, "statcache.json");
    this.manifestDir = path.join(ctx.stateDir, "manifests");
    this.limit = new Limiter(opts.concurrency ?? 8);
    this.racyNs = BigInt(Math.round((opts.racyWindowMs ?? 2000) * 1e6));
  }

  /** Hash files and directories (project-relative). null = missing. */
  async hashPaths(relPaths: string[]): Promise<Map<string, PathHash | null>> {
    const unique = [...new Set(relPaths)];
    const results = await Promise.all(unique.map((p) => this.hashPath(p)));
    return new Map(unique.map((p, i) => [p, results[i]!]));
  }

  /** A directory's manifest by its hash, or null when it was never stored. */
  async manifest(hash: string): Promise<Manifest | null> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return null;
    try {
      return JSON.parse(await fsp.readFile(this.manifestPath(hash), "utf8")) as Manifest;
    } catch {
      return null;
    }
  }

  /** Synchronous variant for plan.ts's `oldManifest` callback. */
  manifestSync(hash: string): Manifest | null {
    if (!/^[0-9a-f]{64}$/.test(hash)) return null;
    try {
      return JSON.parse(fs.readFileSync(this.manifestPath(hash), "utf8")) as Manifest;
    } catch {
      return null;
    }
  }

  /**
   * A file just placed with known content (checked out from the content-addressed cache, whose
   * objects are verified): record its hash without reading it again. Skips the racy-file rule on
   * purpose (the file was written by us a moment ago, from content of known hash).
   */
  async remember(rel: string, hash: string): Promise<void> {
    const st = await fsp.stat(path.join(this.ctx.root, rel), { bigint: true });
    const e: CacheEntry = { size: String(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), hash };
    this.loadCache().set(rel, e);
    this.changed.set(rel, e);
    this.listed.add(rel); // not a vanished file of a directory listed before it was placed
  }

  /** Persist the stat cache atomically (merged with what other processes saved meanwhile). */
  async save(): Promise<void> {
    this.forgetVanished();
    if (this.changed.size === 0) return;
    const onDisk = readCacheFile(this.cacheFile);
    for (const [k, v] of this.changed) {
      if (v) onDisk.set(k, v);
      else onDisk.delete(k);
    }
    const entries: Record<string, [string, string, string, string, string]> = {};
    for (const k of [...onDisk.keys()].sort()) {
      const e = onDisk.get(k)!;
      entries[k] = [e.size, e.ino, e.mtimeNs, e.ctimeNs, e.hash];
    }
    const body = JSON.stringify({ version: CACHE_VERSION, algorithm: "sha256", fields: ["size", "ino", "mtimeNs", "ctimeNs", "hash"], entries });
    try {
      await atomicWrite(this.cacheFile, body);
    } catch (e) {
      // only a cache: a full or read-only disk must not fail `status` (the next run hashes again)
      const err = e as NodeJS.ErrnoException;
      if (typeof err.code !== "string") throw e;
      const why = err.code === "EROFS" ? "read-only file system" : err.code === "ENOSPC" ? "no space left on device" : err.message;
      try {
        process.stderr.write(`warning: could not save the stat cache ${path.relative(process.cwd(), this.cacheFile) || this.cacheFile} (${why}); answered without saving it\n`);
      } catch {
        /* stderr gone */
      }
    }
    this.changed.clear();
  }

  private manifestPath(hash: string): string {
    return path.join(this.manifestDir, hash.slice(0, 2), `${hash}.json`);
  }

  private loadCache(): Map<string, CacheEntry> {
    this.cache ??= readCacheFile(this.cacheFile);
    return this.cache;
  }

  private async hashPath(rel: string): Promise<PathHash | null> {
    const abs = path.join(this.ctx.root, rel);
    const at = nowNs();
    const st = await statOrNull(abs, rel);
    if (!st) {
      if (this.loadCache().has(rel)) this.forget(rel);
      return null;
    }
    if (st.isDirectory()) {
      const found: FileToHash[] = [];
      this.listFiles(abs, rel, "", found, new Set([`${st.dev}:${st.ino}`]));
      const files: [string, { hash: string; size: number }][] = found.map((f) => [f.relInDir, { hash: this.cachedHash(f.rel, f.st) ?? "", size: Number(f.st.size) }]);
      await Promise.all(
        files.map(async (entry, i) => {
          if (entry[1].hash === "") entry[1].hash = await this.hashFileCached(found[i]!.abs, found[i]!.rel, found[i]!.st, found[i]!.at);
        }),
      );
      for (const f of found) this.listed.add(f.rel);
      this.listedDirs.add(rel);
      const json = canonicalManifest(files);
      const hash = sha256(json);
      await this.storeManifest(hash, json);
      const size = files.reduce((a, [, v]) => a + v.size, 0);
      return { path: rel, hash, size, nfiles: files.length, isdir: true };
    }
    if (!st.isFile()) throw new InputError(`${rel} is neither a file nor a directory; deps and outs must be files or directories`);
    const hash = await this.hashFileCached(abs, rel, st, at);
    return { path: rel, hash, size: Number(st.size) };
  }

  /**
   * List the regular files below a directory with their stats. Synchronous on purpose: a no-op
   * status is mostly thousands of stats of cached files, and sync stats in one loop cost a
   * fraction of promise-based ones (measured in BENCHMARKS.md). Hashing stays concurrent.
   */
  private listFiles(absDir: string, relRoot: string, sub: string, out: FileToHash[], seen: Set<string>): void {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(absDir, { withFileTypes: true });
    } catch (e) {
      throw new InputError(`cannot list directory ${path.posix.join(relRoot, sub)}: ${(e as Error).message}`);
    }
    for (const ent of entries) {
      const abs = path.join(absDir, ent.name);
      const relInDir = sub ? `${sub}/${ent.name}` : ent.name;
      const rel = `${relRoot}/${relInDir}`;
      if (!ent.isFile() && !ent.isDirectory() && !ent.isSymbolicLink()) continue; // sockets, FIFOs, devices
      const at = nowNs();
      const st = statSyncOrNull(abs, rel);
      if (!st) continue; // vanished, or a dangling symlink
      if (st.isDirectory()) {
        const id = `${st.dev}:${st.ino}`;
        if (seen.has(id)) throw new InputError(`symlink loop inside ${relRoot}: ${rel} leads back to a directory above it`);
        this.listFiles(abs, relRoot, relInDir, out, new Set([...seen, id]));
      } else if (st.isFile()) {
        out.push({ abs, rel, relInDir, st, at });
      }
    }
  }

  /** The cached hash when size, inode, mtime and ctime are unchanged (synchronous: no promise per hit). */
  private cachedHash(rel: string, st: fs.BigIntStats): string | undefined {
    const hit = this.loadCache().get(rel);
    if (
      hit &&
      hit.size === String(st.size) &&
      hit.ino === String(st.ino) &&
      hit.mtimeNs === String(st.mtimeNs) &&
      hit.ctimeNs === String(st.ctimeNs)
    ) {
      this.stats.cacheHits++;
      return hit.hash;
    }
    return undefined;
  }

  private async hashFileCached(abs: string, rel: string, st: fs.BigIntStats, statAtNs: bigint): Promise<string> {
    const cached = this.cachedHash(rel, st);
    if (cached !== undefined) return cached;
    const cache = this.loadCache();
    const hit = cache.get(rel);
    const key = { size: String(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
    let hash: string;
    try {
      hash =
        st.size <= SMALL_FILE_BYTES
          ? hashSync(fs.readFileSync(abs), { algorithm: "sha256" })
          : await this.limit.run(() => hashFile(abs, { algorithm: "sha256" }));
    } catch (e) {
      throw new InputError(`cannot hash ${rel}: ${(e as Error).message} (was it deleted or made unreadable while being hashed?)`);
    }
    this.stats.filesHashed++;
    this.stats.bytesHashed += Number(st.size);
    // biome-ignore lint/complexity/useMathMinMax: bigints (Math.max throws on them)
    const newest = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
    if (statAtNs - newest >= this.racyNs) {
      const e: CacheEntry = { ...key, hash };
      cache.set(rel, e);
      this.changed.set(rel, e);
    } else if (hit) {
      this.forget(rel);
    }
    return hash;
  }

  /**
   * Drop cache entries of files that were deleted from a directory listed in this session: one
   * pass over the cache (a key is checked against each of its parent directories).
   */
  private forgetVanished(): void {
    if (this.listedDirs.size === 0) return;
    for (const k of [...this.loadCache().keys()]) {
      if (this.listed.has(k)) continue;
      for (let i = k.lastIndexOf("/"); i > 0; i = k.lastIndexOf("/", i - 1)) {
        if (this.listedDirs.has(k.slice(0, i))) {
          this.forget(k);
          break;
        }
      }
    }
    this.listed.clear();
    this.listedDirs.clear();
  }

  private forget(rel: string): void {
    this.loadCache().delete(rel);
    this.changed.set(rel, null);
  }

  private async storeManifest(hash: string, json: string): Promise<void> {
    const file = this.manifestPath(hash);
    if (fs.existsSync(file)) return;
    try {
      await atomicWrite(file, json);
    } catch (e) {
      // kept only to say which file of a directory changed: a full or read-only disk just loses that detail
      if (typeof (e as NodeJS.ErrnoException).code !== "string") throw e;
    }
  }
}

/**
 * Wall-clock time in ns (comparable with file timestamps), taken just before a stat. Date.now()
 * is truncated to the millisecond, so 1 ms is added to keep it at or after a timestamp the kernel
 * gave in the same millisecond (negligible next to the racy window).
 */
function nowNs(): bigint {
  return BigInt(Date.now() + 1) * 1_000_000n;
}

interface FileToHash {
  abs: string;
  rel: string;
  relInDir: string;
  st: fs.BigIntStats;
  at: bigint;
}

function statSyncOrNull(abs: string, rel: string): fs.BigIntStats | null {
  try {
    return fs.statSync(abs, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw new InputError(`cannot read ${rel}: ${(e as Error).message}`);
  }
}

async function statOrNull(abs: string, rel: string): Promise<fs.BigIntStats | null> {
  try {
    return await fsp.stat(abs, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw new InputError(`cannot read ${rel}: ${(e as Error).message}`);
  }
}

function readCacheFile(file: string): Map<string, CacheEntry> {
  const m = new Map<string, CacheEntry>();
  let raw: string;
  try {
    raw = fs.readFileSync(file, "utf8");
  } catch {
    return m;
  }
  try {
    const j = JSON.parse(raw) as { version?: number; entries?: Record<string, string[]> };
    if (j.version !== CACHE_VERSION || !j.entries) return m; // another format: start afresh (it is only a cache)
    for (const [k, v] of Object.entries(j.entries)) {
      if (validEntry(v)) m.set(k, { size: v[0], ino: v[1], mtimeNs: v[2], ctimeNs: v[3], hash: v[4] });
      // anything else (a bad digit, a hash that is not sha256 hex) is a miss: the file is hashed again
    }
  } catch {
    // A corrupt cache (e.g. a crash mid-write on a file system without atomic rename) is ignored.
  }
  return m;
}

/** A cache entry whose every value has the expected form: four decimal integers and a sha256 hex digest. */
function validEntry(v: unknown): v is [string, string, string, string, string] {
  return (
    Array.isArray(v) &&
    v.length === 5 &&
    v.slice(0, 4).every((x) => typeof x === "string" && /^[0-9]{1,25}$/.test(x)) &&
    typeof v[4] === "string" &&
    /^[0-9a-f]{64}$/.test(v[4])
  );
}

/** Write via a temp file in the same directory + rename, so readers never see half a file. */
export async function atomicWrite(file: string, data: string): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
