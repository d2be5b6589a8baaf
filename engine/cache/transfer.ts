/**
 * push / fetch between the cache and a remote: the objects of the given outs (a directory: its
 * files, then its manifest, so a manifest on the remote means its files are there), in parallel,
 * resumable and verified (remote.ts), with progress. push also sends the run-cache entries of the
 * lock's runs; fetch can get one run-cache entry (repro --pull).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { PipelineError } from "../errors.ts";
import type { Graph } from "../graph.ts";
import type { Hasher } from "../hashing.ts";
import type { LockFile, Stage } from "../types.ts";
import { lockEntryIdentity, type OutRef } from "./outs.ts";
import { mapLimit } from "./pool.ts";
import { Progress } from "./progress.ts";
import type { Remote } from "./remote.ts";
import { runCacheable, runEntryPath, runEntryRelPath, runKey } from "./run-cache.ts";
import { objectRelPath, parseManifest, type CacheStore } from "./store.ts";
import { missingObjects, saveOut } from "./workspace.ts";

export interface TransferSummary {
  /** Objects transferred / already there. */
  transferred: number;
  present: number;
  bytes: number;
  /** Objects whose transfer resumed an interrupted one. */
  resumed: number;
  /** Out paths that could not be transferred whole, with why. */
  incomplete: { path: string; why: string }[];
  runs: number;
  /** Objects found corrupt in the cache (moved to <cache>/corrupt/) and fetched again. */
  corrupt: number;
}

interface Obj {
  hash: string;
  isdir: boolean;
  size: number;
}

const rel = (o: Obj) => objectRelPath(o.hash, o.isdir);

function emptySummary(): TransferSummary {
  return { transferred: 0, present: 0, bytes: 0, resumed: 0, incomplete: [], runs: 0, corrupt: 0 };
}

async function fileSize(f: string): Promise<number> {
  return (await fsp.stat(f)).size;
}

/** A failed upload/download as an error of the transfer (exit 1), not of the tool; bad input stays bad input. */
function transferFailed(verb: string, e: unknown): Error {
  return e instanceof PipelineError ? e : new PipelineError(`${verb}: ${(e as Error).message}`, 1);
}

export interface TransferOptions {
  jobs: number;
  label: string;
  quiet?: boolean;
}

/** Upload the objects of `outs` that the remote lacks. Outs missing from the cache are stored from the workspace when it still matches the lock. */
export async function push(store: CacheStore, hasher: Hasher, root: string, remote: Remote, outs: OutRef[], o: TransferOptions): Promise<TransferSummary> {
  await remote.open(true);
  const sum = emptySummary();
  const files = new Map<string, Obj>();
  const dirs = new Map<string, Obj>();
  for (const ref of outs) {
    let missing = await missingObjects(store, ref.ph);
    if (missing.length) {
      const now = (await hasher.hashPaths([ref.ph.path])).get(ref.ph.path);
      if (now && now.hash === ref.ph.hash) {
        await saveOut(store, hasher, root, ref.ph, ref.writable);
        missing = await missingObjects(store, ref.ph);
      }
    }
    if (missing.length) {
      sum.incomplete.push({ path: ref.ph.path, why: `${missing.length} object(s) neither in the cache nor in the workspace (the workspace holds another version)` });
      continue;
    }
    if (ref.ph.isdir) {
      const m = (await store.readManifest(ref.ph.hash))!;
      for (const v of Object.values(m)) files.set(v.hash, { hash: v.hash, isdir: false, size: v.size });
      dirs.set(ref.ph.hash, { hash: ref.ph.hash, isdir: true, size: 0 });
    } else files.set(ref.ph.hash, { hash: ref.ph.hash, isdir: false, size: ref.ph.size });
  }
  for (const list of [[...files.values()], [...dirs.values()]]) {
    const there = await remote.has(list.map(rel));
    const todo = list.filter((x) => !there.has(rel(x)));
    sum.present += list.length - todo.length;
    const prog = new Progress(o.label, todo.length, todo.reduce((a, x) => a + x.size, 0));
    await mapLimit(todo, o.jobs, async (x) => {
      const src = store.objectPath(x.hash, x.isdir);
      const info = await remote.upload(src, rel(x), x.hash, (n) => prog.addBytes(n)).catch((e: unknown) => {
        throw transferFailed("push", e);
      });
      if (info.resumedAt > 0) sum.resumed++;
      sum.transferred++;
      sum.bytes += await fileSize(src);
      prog.fileDone();
    });
    prog.end();
  }
  return sum;
}

/** Upload the run-cache entries of the lock's runs of these stages (after their objects). */
export async function pushRuns(store: CacheStore, remote: Remote, graph: Graph, selected: string[], lock: LockFile, sum: TransferSummary): Promise<void> {
  const rels: { rel: string; local: string }[] = [];
  for (const name of selected) {
    const stage = graph.stages.get(name)!;
    const entry = lock.stages[name];
    if (!entry || !runCacheable(stage)) continue;
    const key = runKey(lockEntryIdentity(stage, entry), stage);
    const local = runEntryPath(store, key);
    if (fs.existsSync(local)) rels.push({ rel: runEntryRelPath(key), local });
  }
  const there = await remote.has(rels.map((r) => r.rel));
  for (const r of rels) {
    if (there.has(r.rel)) continue;
    await remote.upload(r.local, r.rel, null, () => {});
    sum.runs++;
  }
}

/** Every local run-cache entry (`push --run-cache`): its relative path and the outs it restores. */
async function localRuns(store: CacheStore): Promise<{ rel: string; local: string; outs: OutRef[] }[]> {
  const dir = path.join(store.dir, "runs");
  const res: { rel: string; local: string; outs: OutRef[] }[] = [];
  for (const p of fs.existsSync(dir) ? (await fsp.readdir(dir)).sort() : []) {
    for (const f of (await fsp.readdir(path.join(dir, p))).sort()) {
      const local = path.join(dir, p, f);
      try {
        const e = JSON.parse(await fsp.readFile(local, "utf8")) as { outs: OutRef["ph"][] };
        res.push({ rel: `runs/${p}/${f}`, local, outs: e.outs.map((ph) => ({ stage: "(run-cache)", ph, writable: false })) });
      } catch {
        /* unreadable entry: skipped */
      }
    }
  }
  return res;
}

/** Push the objects of every local run-cache entry, then the entries whose objects all made it. */
export async function pushAllRuns(store: CacheStore, hasher: Hasher, root: string, remote: Remote, o: TransferOptions, sum: TransferSummary): Promise<void> {
  const runs = await localRuns(store);
  const s = await push(store, hasher, root, remote, runs.flatMap((r) => r.outs), o);
  sum.transferred += s.transferred;
  sum.bytes += s.bytes;
  sum.resumed += s.resumed;
  const bad = new Set(s.incomplete.map((x) => x.path));
  const there = await remote.has(runs.map((r) => r.rel));
  for (const r of runs) {
    if (there.has(r.rel) || r.outs.some((x) => bad.has(x.ph.path))) continue;
    await remote.upload(r.local, r.rel, null, () => {});
    sum.runs++;
  }
}

/** Download the objects of `outs` that the cache lacks (or has corrupt). */
export async function fetch(store: CacheStore, remote: Remote, outs: OutRef[], o: TransferOptions): Promise<TransferSummary> {
  await remote.open(false);
  const sum = emptySummary();
  const download = async (x: Obj, onBytes: (n: number) => void) => {
    const tmp = path.join(store.dir, "tmp", `${x.hash}${x.isdir ? ".dir" : ""}.download`);
    const info = await remote.download(rel(x), tmp, x.hash, onBytes);
    if (x.isdir) {
      // a manifest names the files to place: one naming a path outside its directory never enters the cache
      try {
        parseManifest(await fsp.readFile(tmp, "utf8"), `${remote.url}/${rel(x)}`);
      } catch (e) {
        await fsp.rm(tmp, { force: true });
        throw e;
      }
    }
    sum.bytes += await fileSize(tmp);
    await store.commitTemp(tmp, x.hash, x.isdir);
    if (info.resumedAt > 0) sum.resumed++;
    sum.transferred++;
  };
  // manifests first: they say which files a directory needs
  const wanted = new Map<string, Obj>();
  const dirOf = new Map<string, string[]>();
  for (const ref of outs) {
    const ph = ref.ph;
    if (!ph.isdir) {
      wanted.set(ph.hash, { hash: ph.hash, isdir: false, size: ph.size });
      (dirOf.get(ph.hash) ?? dirOf.set(ph.hash, []).get(ph.hash)!).push(ph.path);
      continue;
    }
    const dirState = await store.verify(ph.hash, true);
    if (dirState === "corrupt") sum.corrupt++;
    if (dirState !== "ok") {
      const d: Obj = { hash: ph.hash, isdir: true, size: 0 };
      if (!(await remote.has([rel(d)])).has(rel(d))) {
        sum.incomplete.push({ path: ph.path, why: "not on the remote (push it from where it was made)" });
        continue;
      }
      try {
        await download(d, () => {});
      } catch (e) {
        if (e instanceof PipelineError) throw e;
        sum.incomplete.push({ path: ph.path, why: (e as Error).message });
        continue;
      }
    } else sum.present++;
    for (const v of Object.values((await store.readManifest(ph.hash))!)) {
      wanted.set(v.hash, { hash: v.hash, isdir: false, size: v.size });
      (dirOf.get(v.hash) ?? dirOf.set(v.hash, []).get(v.hash)!).push(ph.path);
    }
  }
  const list = [...wanted.values()];
  const states = await mapLimit(list, 32, (x) => store.verify(x.hash));
  const need = list.filter((_, i) => states[i] !== "ok");
  sum.corrupt += states.filter((x) => x === "corrupt").length;
  sum.present += list.length - need.length;
  const there = await remote.has(need.map(rel));
  const lacking = new Set<string>();
  for (const x of need) if (!there.has(rel(x))) for (const p of dirOf.get(x.hash) ?? []) lacking.add(p);
  for (const p of lacking) sum.incomplete.push({ path: p, why: "some of its objects are not on the remote (push it from where it was made)" });
  const todo = need.filter((x) => there.has(rel(x)));
  const prog = new Progress(o.label, todo.length, todo.reduce((a, x) => a + x.size, 0));
  const failed = new Map<string, string>();
  await mapLimit(todo, o.jobs, async (x) => {
    try {
      await download(x, (n) => prog.addBytes(n));
    } catch (e) {
      if (e instanceof PipelineError) throw e; // the remote as a whole: unreachable, access denied
      // this object only (e.g. corrupt on the remote: its hash does not match): the others go on
      for (const p of dirOf.get(x.hash) ?? []) if (!failed.has(p)) failed.set(p, (e as Error).message);
    }
    prog.fileDone();
  });
  for (const [p, why] of failed) sum.incomplete.push({ path: p, why });
  prog.end();
  return sum;
}

/** Get the run-cache entry of this identity from the remote, if the cache lacks it (repro --pull). */
export async function fetchRun(store: CacheStore, remote: Remote, stage: Stage, identity: string): Promise<boolean> {
  await remote.open(false);
  const key = runKey(identity, stage);
  const local = runEntryPath(store, key);
  if (fs.existsSync(local)) return true;
  const r = runEntryRelPath(key);
  if (!(await remote.has([r])).has(r)) return false;
  await remote.download(r, local, null, () => {});
  return true;
}
