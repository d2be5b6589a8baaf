/**
 * pipeline.lock: what each stage instance last ran with (resolved cmd, deps and outs with hashes,
 * tracked params, env). YAML, deterministic: stages sorted by name, keys in a fixed order (params
 * and nested mappings sorted), no timestamps, so a no-op rewrite is byte-identical and the file
 * diffs well in git.
 */
import fs from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { z } from "zod";
import { YamlFile, formatKeyPath } from "./config.ts";
import { InputError, PipelineError } from "./errors.ts";
import { atomicWrite } from "./hashing.ts";
import { HASH_ALGORITHM, type LockEntry, type LockFile, type PathHash, type Stage } from "./types.ts";

const pathHashSchema = z.strictObject({
  path: z.string().min(1),
  hash: z.string().regex(/^[0-9a-f]{64}$/, { error: "expected a sha256 hex digest" }),
  size: z.int().min(0),
  nfiles: z.int().min(0).optional(),
  isdir: z.boolean().optional(),
});

const lockEntrySchema = z.strictObject({
  cmd: z.array(z.string()),
  deps: z.array(pathHashSchema).default([]),
  outs: z.array(pathHashSchema).default([]),
  params: z.record(z.string(), z.unknown()).default({}),
  env: z.record(z.string(), z.string()).default({}),
  hash: z.literal(HASH_ALGORITHM, { error: `expected ${HASH_ALGORITHM}` }),
});

const lockSchema = z.strictObject({
  schema: z.literal("1", { error: 'expected schema: "1" (a lock written by another version of this tool?)' }),
  stages: z.record(z.string(), lockEntrySchema).default({}),
});

function emptyLock(): LockFile {
  return { schema: "1", stages: {} };
}

/** Missing file -> empty lock; malformed -> InputError naming file:line:col. */
export function readLock(file: string): LockFile {
  if (!fs.existsSync(file)) return emptyLock();
  const display = path.basename(file);
  const y = YamlFile.read(file, display);
  if (y.value === null || y.value === undefined) return emptyLock();
  const r = lockSchema.safeParse(y.value);
  if (!r.success) {
    const iss = r.error.issues[0]!;
    const p = iss.path as (string | number)[];
    throw new InputError(
      `${y.pos(p)}: ${formatKeyPath(p)}: ${iss.message}\n(${display} is written by the tool; delete the broken entry or the file to rebuild it with repro)`,
    );
  }
  return r.data as LockFile;
}

function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Mappings with sorted keys, recursively (lists keep their order). */
function deepSort(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(deepSort);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort(byString)
        .map((k) => [k, deepSort((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

function orderedPathHash(p: PathHash): Record<string, unknown> {
  const o: Record<string, unknown> = { path: p.path, hash: p.hash, size: p.size };
  if (p.nfiles !== undefined) o.nfiles = p.nfiles;
  if (p.isdir) o.isdir = true;
  return o;
}

function orderedEntry(e: LockEntry): Record<string, unknown> {
  return {
    cmd: [...e.cmd],
    deps: [...e.deps].sort((a, b) => byString(a.path, b.path)).map(orderedPathHash),
    outs: [...e.outs].sort((a, b) => byString(a.path, b.path)).map(orderedPathHash),
    params: deepSort(e.params),
    env: deepSort(e.env),
    hash: e.hash,
  };
}

/** Deterministic YAML: sorted stage names, fixed key order, no line folding. */
export function serializeLock(lock: LockFile): string {
  const stages: Record<string, unknown> = {};
  for (const name of Object.keys(lock.stages).sort(byString)) stages[name] = orderedEntry(lock.stages[name]!);
  const doc = { schema: "1", stages };
  return stringify(doc, { lineWidth: 0, minContentWidth: 0, indent: 2, aliasDuplicateObjects: false, sortMapEntries: false });
}

/** Atomic (temp + rename); nothing is written when the bytes would not change. */
export async function writeLock(file: string, lock: LockFile): Promise<void> {
  const text = serializeLock(lock);
  try {
    if (fs.readFileSync(file, "utf8") === text) return;
  } catch {
    // missing: write it
  }
  await atomicWrite(file, text);
}

/** The lock record of a stage that just ran. Every dep and out must exist (hashed). */
export function lockEntry(stage: Stage, deps: Map<string, PathHash | null>, outs: Map<string, PathHash | null>): LockEntry {
  const get = (m: Map<string, PathHash | null>, p: string, what: string): PathHash => {
    const h = m.get(p);
    if (!h) {
      throw new PipelineError(
        what === "out"
          ? `stage ${stage.name} finished but did not produce its out ${p}`
          : `stage ${stage.name}: dep ${p} is missing, so it cannot be recorded in the lock`,
        1,
      );
    }
    return { ...h, path: p };
  };
  return {
    cmd: [...stage.cmd],
    deps: stage.deps.map((p) => get(deps, p, "dep")),
    outs: stage.outs.map((o) => get(outs, o.path, "out")),
    params: deepSort(stage.params) as Record<string, unknown>,
    env: { ...stage.env },
    hash: HASH_ALGORITHM,
  };
}
