/**
 * A params value compared leaf by leaf: a change inside a mapping (`generation: {...}`) is shown as
 * each changed leaf key with its old and new value (`generation.temperature 0.7 -> 0.8`), not as
 * two truncated JSON blobs. Lists are leaves (a list changes as a whole, as DVC shows it).
 */
import { isPlainObject } from "./interpolate.ts";

/** Structural equality of params values (NaN equals NaN; mapping key order does not matter). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
    return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

export interface LeafChange {
  /** The dotted key: the tracked key, plus the path inside its value. */
  key: string;
  change: "modified" | "added" | "removed";
  before?: unknown;
  after?: unknown;
}

/** The leaves that differ between `before` and `after` of the key `key` (undefined = absent). */
export function leafChanges(key: string, before: unknown, after: unknown): LeafChange[] {
  if (deepEqual(before, after)) return [];
  if (before === undefined) return [{ key, change: "added", after }];
  if (after === undefined) return [{ key, change: "removed", before }];
  if (!isPlainObject(before) || !isPlainObject(after)) return [{ key, change: "modified", before, after }];
  const out: LeafChange[] = [];
  for (const k of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    out.push(...leafChanges(`${key}.${k}`, Object.hasOwn(before, k) ? before[k] : undefined, Object.hasOwn(after, k) ? after[k] : undefined));
  }
  return out;
}
