/**
 * Between the workspace and the cache: store an out that a stage produced (`saveOut`), and make
 * an out match a recorded hash again from the cache (`checkoutOut`), touching only the files that
 * differ (directories) and nothing at all when the cache lacks part of it.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import crypto from "node:crypto";
import type { Hasher, Manifest } from "../hashing.ts";
import type { PathHash } from "../types.ts";
import { InputError } from "../errors.ts";
import { mapLimit } from "./pool.ts";
import { checkedManifest } from "./safe-paths.ts";
import type { CacheStore } from "./store.ts";

const PARALLEL = 8;

/** Store an out (file or directory, as hashed in `ph`) in the cache. */
export async function saveOut(store: CacheStore, hasher: Hasher, root: string, ph: PathHash, writable: boolean): Promise<void> {
  const abs = path.join(root, ph.path);
  if (!ph.isdir) {
    await store.insertFile(abs, ph.hash, writable);
    return;
  }
  if ((await store.verify(ph.hash, true)) === "ok" && (await missingObjects(store, ph)).length === 0) return;
  const manifest = await hasher.manifest(ph.hash);
  if (!manifest) throw new Error(`the manifest of ${ph.path} (${ph.hash.slice(0, 12)}) is not in .pipeline/manifests`);
  await mapLimit(Object.entries(manifest), PARALLEL, ([rel, v]) => store.insertFile(path.join(abs, rel), v.hash, writable));
  await store.insertManifest(ph.hash, manifest); // last: a manifest object means its files were stored
}

/** The objects an out needs that the cache lacks (or has corrupt): "" for a directory's manifest. */
export async function missingObjects(store: CacheStore, ph: PathHash): Promise<string[]> {
  if (!ph.isdir) return (await store.verify(ph.hash)) === "ok" ? [] : [ph.hash];
  const m = await store.readManifest(ph.hash);
  if (!m) return [`${ph.hash}.dir`];
  const states = await mapLimit(Object.values(m), PARALLEL * 4, (v) => store.verify(v.hash));
  return Object.values(m)
    .filter((_, i) => states[i] !== "ok")
    .map((v) => v.hash);
}

export type CheckoutResult = { state: "current" } | { state: "restored"; files: number } | { state: "missing"; objects: string[] };

function tmpSibling(abs: string): string {
  return path.join(path.dirname(abs), `.${path.basename(abs)}.checkout-${crypto.randomBytes(4).toString("hex")}`);
}

async function placeFile(store: CacheStore, hash: string, abs: string, writable: boolean): Promise<void> {
  await fsp.mkdir(path.dirname(abs), { recursive: true });
  const tmp = tmpSibling(abs);
  try {
    await store.linker.place(store.objectPath(hash), tmp, writable);
    const st = await fsp.lstat(abs).catch(() => null);
    if (st?.isDirectory()) await fsp.rm(abs, { recursive: true, force: true });
    await fsp.rename(tmp, abs);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/** Remove empty directories from `dir` up to (not including) `stop`. */
async function pruneEmpty(dir: string, stop: string): Promise<void> {
  while (dir.startsWith(stop + path.sep) && dir !== stop) {
    try {
      await fsp.rmdir(dir);
    } catch {
      return;
    }
    dir = path.dirname(dir);
  }
}

/**
 * Make the out at `ph.path` match `ph` from the cache. `current`: its hash now (null = missing;
 * undefined = hash it here). Nothing is touched when the cache lacks an object.
 */
export async function checkoutOut(
  store: CacheStore,
  hasher: Hasher,
  root: string,
  ph: PathHash,
  writable: boolean,
  current?: PathHash | null,
): Promise<CheckoutResult> {
  const abs = path.join(root, ph.path);
  const now = current !== undefined ? current : ((await hasher.hashPaths([ph.path])).get(ph.path) ?? null);
  if (now && now.hash === ph.hash && !!now.isdir === !!ph.isdir) return { state: "current" };
  const missing = await missingObjects(store, ph);
  if (missing.length) return { state: "missing", objects: missing };
  if (!ph.isdir) {
    await placeFile(store, ph.hash, abs, writable);
    await hasher.remember(ph.path, ph.hash); // the next status need not read it again
    return { state: "restored", files: 1 };
  }
  const target = (await store.readManifest(ph.hash))!;
  let have: Manifest = {};
  if (now?.isdir) {
    // what is there now (only removed where the target lacks it): its entries must stay inside the out too
    const m = await hasher.manifest(now.hash);
    have = m ? checkedManifest(m, (why) => new InputError(`${ph.path}: the stored listing .pipeline/manifests/${now.hash.slice(0, 2)}/${now.hash}.json: ${why}; remove it and rerun`), true) : {};
  }
  else if (now) await fsp.rm(abs, { force: true }); // a file where a directory belongs
  await fsp.mkdir(abs, { recursive: true });
  const toPlace = Object.entries(target).filter(([rel, v]) => have[rel]?.hash !== v.hash);
  await mapLimit(toPlace, PARALLEL, async ([rel, v]) => {
    await placeFile(store, v.hash, path.join(abs, rel), writable);
    await hasher.remember(`${ph.path}/${rel}`, v.hash);
  });
  for (const rel of Object.keys(have)) {
    if (target[rel]) continue;
    const f = path.join(abs, rel);
    await fsp.rm(f, { force: true });
    await pruneEmpty(path.dirname(f), abs);
  }
  if (!now?.isdir && fs.existsSync(abs) === false) await fsp.mkdir(abs, { recursive: true });
  return { state: "restored", files: toPlace.length };
}
