/**
 * What a manifest or an object name may say, checked before anything is placed (issue 28): a
 * manifest comes from the cache or a remote, and whoever can write there must not be able to
 * place files outside the out. The rules are git's `verify_path` for tree entries: a relative
 * posix path of non-empty components, none of them `.`, `..` or `.git` (any case), no NUL, no
 * backslash; and no entry may be both a file and the folder of another.
 */
import type { Manifest } from "../hashing.ts";

const SHA256 = /^[0-9a-f]{64}$/;

export function isObjectHash(h: unknown): h is string {
  return typeof h === "string" && SHA256.test(h);
}

/** Why `rel` is not a safe path inside an out, or null. */
function unsafeEntry(rel: string, allowDotGit = false): string | null {
  if (rel === "") return "an empty path";
  if (rel.includes("\0")) return "a NUL byte";
  if (rel.includes("\\")) return "a backslash";
  if (rel.startsWith("/")) return "an absolute path";
  for (const c of rel.split("/")) {
    if (c === "") return "an empty component (// or a trailing /)";
    if (c === "." || c === "..") return `a ${c} component`;
    if (!allowDotGit && c.toLowerCase() === ".git") return "a .git component";
  }
  return null;
}

/** The first problem of a parsed manifest, as `entry "x": why`, or null when every entry is safe. */
function manifestProblem(m: unknown, allowDotGit = false): string | null {
  if (m === null || typeof m !== "object" || Array.isArray(m)) return "not a JSON object of path -> {hash, size}";
  const keys = Object.keys(m);
  const all = new Set(keys);
  for (const k of keys) {
    const why = unsafeEntry(k, allowDotGit);
    if (why) return `entry ${JSON.stringify(k)} is ${why}`;
    const v = (m as Record<string, unknown>)[k] as { hash?: unknown; size?: unknown } | null;
    if (v === null || typeof v !== "object" || !isObjectHash(v.hash) || !Number.isSafeInteger(v.size) || (v.size as number) < 0) {
      return `entry ${JSON.stringify(k)} is not {hash: <sha256>, size: <bytes>}`;
    }
    for (let i = k.indexOf("/"); i > 0; i = k.indexOf("/", i + 1)) {
      if (all.has(k.slice(0, i))) return `entry ${JSON.stringify(k)} is inside the file entry ${JSON.stringify(k.slice(0, i))}`;
    }
  }
  return null;
}

/**
 * `m` when it is a manifest whose every entry is safe; else throws `mkError(problem)`.
 * `allowDotGit`: a listing of the workspace (what is there may be removed, inside the out).
 */
export function checkedManifest(m: unknown, mkError: (why: string) => Error, allowDotGit = false): Manifest {
  const why = manifestProblem(m, allowDotGit);
  if (why) throw mkError(why);
  return m as Manifest;
}
