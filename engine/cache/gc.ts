/**
 * What the cache must keep: every object that a lock references, in the workspace (all profiles'
 * locks: pipeline.lock, pipeline.<profile>.lock) and in the given git revisions; a directory's
 * manifest keeps its files. Run-cache entries are kept when all their objects are.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { parse } from "yaml";
import { InputError } from "../errors.ts";
import type { CacheStore } from "./store.ts";

const LOCK_NAME_RE = /^pipeline(\.[A-Za-z0-9._-]+)?\.lock$/;

interface LockedOut {
  hash: string;
  isdir: boolean;
}

/** Outs of a lock's text (lenient: only `stages.*.outs[].hash/isdir` are read). */
function outsOfLockText(text: string, where: string): LockedOut[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new InputError(`${where}: not a readable lock: ${(e as Error).message}`);
  }
  const stages = (doc as { stages?: Record<string, { outs?: { hash?: unknown; isdir?: unknown }[] }> } | null)?.stages ?? {};
  const out: LockedOut[] = [];
  for (const e of Object.values(stages)) for (const o of e?.outs ?? []) if (typeof o?.hash === "string") out.push({ hash: o.hash, isdir: o.isdir === true });
  return out;
}

async function git(root: string, args: string[]): Promise<string> {
  try {
    return (await execa("git", ["-C", root, ...args], { maxBuffer: 1 << 28 })).stdout;
  } catch (e) {
    throw new InputError(`git ${args.join(" ")}: ${((e as { stderr?: string }).stderr || (e as Error).message).trim().split("\n")[0]}`);
  }
}

export async function lockedOutsFrom(root: string, revs: string[], allCommits: boolean): Promise<{ outs: LockedOut[]; sources: string[] }> {
  const outs: LockedOut[] = [];
  const sources: string[] = [];
  for (const name of fs.readdirSync(root).filter((n) => LOCK_NAME_RE.test(n)).sort()) {
    outs.push(...outsOfLockText(fs.readFileSync(path.join(root, name), "utf8"), name));
    sources.push(name);
  }
  const commits = [...revs];
  if (allCommits) commits.push(...(await git(root, ["rev-list", "--all"])).split("\n").filter(Boolean));
  for (const rev of [...new Set(commits)]) {
    // run in the project's folder: ls-tree lists that folder of the revision (a project in a
    // subfolder of its repository), and `REV:./name` reads the file there (`REV:name` is the root's)
    const names = (await git(root, ["ls-tree", "--name-only", rev])).split("\n").filter((n) => LOCK_NAME_RE.test(n));
    for (const n of names) {
      outs.push(...outsOfLockText(await git(root, ["show", `${rev}:./${n}`]), `${rev}:${n}`));
      sources.push(`${rev}:${n}`);
    }
  }
  return { outs, sources };
}

export interface GcResult {
  removed: { file: string; size: number }[];
  kept: number;
  runsRemoved: number;
}

export async function collectGarbage(store: CacheStore, keepOuts: LockedOut[], dry: boolean): Promise<GcResult> {
  const keep = new Set<string>();
  for (const o of keepOuts) {
    keep.add(o.hash + (o.isdir ? ".dir" : ""));
    if (o.isdir) {
      const m = await store.readManifest(o.hash).catch(() => null);
      for (const v of Object.values(m ?? {})) keep.add(v.hash);
    }
  }
  const res: GcResult = { removed: [], kept: 0, runsRemoved: 0 };
  for await (const obj of store.list()) {
    if (keep.has(obj.hash + (obj.isdir ? ".dir" : ""))) {
      res.kept++;
      continue;
    }
    const size = (await fsp.stat(obj.file)).size;
    res.removed.push({ file: obj.file, size });
    if (!dry) await fsp.rm(obj.file, { force: true });
  }
  // run-cache entries whose objects were removed
  const runsDir = path.join(store.dir, "runs");
  const gone = new Set(res.removed.map((r) => path.basename(path.dirname(r.file)) + path.basename(r.file)));
  for (const p of fs.existsSync(runsDir) ? await fsp.readdir(runsDir) : []) {
    for (const f of await fsp.readdir(path.join(runsDir, p))) {
      const file = path.join(runsDir, p, f);
      let outs: LockedOut[] = [];
      try {
        outs = (JSON.parse(await fsp.readFile(file, "utf8")) as { outs: LockedOut[] }).outs;
      } catch {
        /* unreadable: remove */
      }
      const lost = outs.length === 0 || outs.some((o) => gone.has(o.hash + (o.isdir ? ".dir" : "")));
      if (lost) {
        res.runsRemoved++;
        if (!dry) await fsp.rm(file, { force: true });
      }
    }
  }
  if (!dry) for (const d of ["corrupt", "tmp"]) await fsp.rm(path.join(store.dir, d), { recursive: true, force: true });
  return res;
}
