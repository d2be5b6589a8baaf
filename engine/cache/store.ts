/**
 * The content-addressed cache: every cached out by its sha256, the hash the lock records.
 *
 *   <cache>/files/sha256/ab/cdef...        a file whose sha256 is abcdef...
 *   <cache>/files/sha256/ab/cdef....dir    a directory: its manifest (the canonical JSON that
 *                                          engine/hashing.ts hashes), whose files are objects too
 *   <cache>/runs/ab/cdef....json           run-cache entries (run-cache.ts)
 *   <cache>/tmp/                           objects being written (renamed into place when whole)
 *
 * Objects are read-only and carry a fixed mtime (2000-01-01): an object whose mtime is different
 * was written in place since (e.g. through a hardlinked out) and is re-hashed before use; one that
 * no longer matches its name is moved to <cache>/corrupt/ and counts as missing.
 */
import type fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import crypto from "node:crypto";
import { hashFile } from "hasha";
import { InputError } from "../errors.ts";
import { canonicalManifest, sha256, type Manifest } from "../hashing.ts";
import { checkedManifest, isObjectHash } from "./safe-paths.ts";
import type { Linker } from "./link.ts";

const OBJECT_MTIME = new Date("2000-01-01T00:00:00Z");
const MTIME_MS = OBJECT_MTIME.getTime();

export type ObjectState = "ok" | "missing" | "corrupt";

/** The object's path in the cache's layout; a name that is not a sha256 (a hand-edited lock or a hostile manifest) is refused. */
export function objectRelPath(hash: string, isdir = false): string {
  if (!isObjectHash(hash)) throw new InputError(`${JSON.stringify(hash)} is not a sha256 object name (64 hex digits); check the lock or manifest that names it`);
  return `files/sha256/${hash.slice(0, 2)}/${hash.slice(2)}${isdir ? ".dir" : ""}`;
}

export class CacheStore {
  /** Objects verified in this process. */
  private readonly verified = new Set<string>();
  /** Corrupt objects found (and moved to <cache>/corrupt/) in this process. */
  readonly corrupt: string[] = [];

  constructor(
    readonly dir: string,
    readonly linker: Linker,
  ) {}

  objectPath(hash: string, isdir = false): string {
    return path.join(this.dir, objectRelPath(hash, isdir));
  }

  tmpPath(what: string): string {
    return path.join(this.dir, "tmp", `${what}.${process.pid}-${crypto.randomBytes(4).toString("hex")}`);
  }

  async has(hash: string, isdir = false): Promise<boolean> {
    try {
      await fsp.access(this.objectPath(hash, isdir));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Is the object there and intact? Trusted when it still has the object mtime (nothing wrote to
   * it since it was stored); otherwise hashed again. A corrupt object is moved to <cache>/corrupt/.
   */
  async verify(hash: string, isdir = false): Promise<ObjectState> {
    const file = this.objectPath(hash, isdir);
    if (this.verified.has(file)) return "ok";
    let st: fs.Stats;
    try {
      st = await fsp.stat(file);
    } catch {
      return "missing";
    }
    if (st.mtimeMs !== MTIME_MS) {
      const actual = await hashFile(file, { algorithm: "sha256" });
      if (actual !== hash) {
        const dest = path.join(this.dir, "corrupt", `${hash}${isdir ? ".dir" : ""}.${Date.now()}`);
        await fsp.mkdir(path.dirname(dest), { recursive: true });
        await fsp.rename(file, dest);
        this.corrupt.push(dest);
        return "corrupt";
      }
      await this.seal(file);
    }
    this.verified.add(file);
    return "ok";
  }

  /** Read-only, with the object mtime. */
  private async seal(file: string): Promise<void> {
    await fsp.chmod(file, 0o444);
    await fsp.utimes(file, OBJECT_MTIME, OBJECT_MTIME);
  }

  /** Move a finished temp file into place as the object (sealed). */
  async commitTemp(tmp: string, hash: string, isdir = false): Promise<void> {
    await this.seal(tmp);
    const dest = this.objectPath(hash, isdir);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(tmp, dest);
    this.verified.add(dest);
  }

  /**
   * Store a workspace file as object `hash` (no-op when present). `writable`: the file will be
   * written again in place (persist outs), so it must not become a hardlink of the object.
   */
  async insertFile(abs: string, hash: string, writable = false): Promise<boolean> {
    if ((await this.verify(hash)) === "ok") return false;
    const tmp = this.tmpPath(hash);
    await fsp.mkdir(path.dirname(tmp), { recursive: true });
    try {
      await this.linker.place(abs, tmp, writable);
      await this.commitTemp(tmp, hash);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    return true;
  }

  /** Store a directory manifest (its canonical JSON must hash to `hash`). */
  async insertManifest(hash: string, manifest: Manifest): Promise<void> {
    if ((await this.verify(hash, true)) === "ok") return;
    const json = canonicalManifest(Object.entries(manifest));
    if (sha256(json) !== hash) throw new Error(`manifest of directory ${hash.slice(0, 12)} does not hash to its name (a changed hashing version?)`);
    const tmp = this.tmpPath(`${hash}.dir`);
    await fsp.mkdir(path.dirname(tmp), { recursive: true });
    await fsp.writeFile(tmp, json);
    await this.commitTemp(tmp, hash, true);
  }

  /** A directory's manifest, every entry checked to stay inside the directory (safe-paths.ts). */
  async readManifest(hash: string): Promise<Manifest | null> {
    if ((await this.verify(hash, true)) !== "ok") return null;
    const file = this.objectPath(hash, true);
    return parseManifest(await fsp.readFile(file, "utf8"), file);
  }

  /** Every object in the cache: [hash, isdir] (for gc). */
  async *list(): AsyncGenerator<{ hash: string; isdir: boolean; file: string }> {
    const base = path.join(this.dir, "files", "sha256");
    let prefixes: string[];
    try {
      prefixes = await fsp.readdir(base);
    } catch {
      return;
    }
    for (const p of prefixes.sort()) {
      if (!/^[0-9a-f]{2}$/.test(p)) continue;
      for (const name of (await fsp.readdir(path.join(base, p))).sort()) {
        const m = /^([0-9a-f]{62})(\.dir)?$/.exec(name);
        if (m) yield { hash: p + m[1], isdir: !!m[2], file: path.join(base, p, name) };
      }
    }
  }
}

/**
 * Parse a directory manifest (the object `where`); InputError naming it and the first bad entry
 * when it is not JSON or names a path outside its directory (`..`, absolute, `.git`, ...).
 */
export function parseManifest(json: string, where: string): Manifest {
  const refuse = (why: string) => new InputError(`cache object ${where} (a directory manifest): ${why}; refused, nothing placed from it (remove the object; pull or repro the out again)`);
  let m: unknown;
  try {
    m = JSON.parse(json);
  } catch {
    throw refuse("not JSON");
  }
  return checkedManifest(m, refuse);
}
