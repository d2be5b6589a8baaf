/**
 * "Did you mean": the existing key of a params mapping nearest to a missing one, for error lines
 * (`generation.temperature` missing, `generation.temprature` defined). Only keys at the level where
 * the lookup first fails are candidates, and only near ones (a few edits), so the hint is never a
 * guess across unrelated keys.
 */
import { isPlainObject } from "../interpolate.ts";

/** Levenshtein distance (insert, delete, substitute; an adjacent swap counts as one). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const sub = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + sub);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The dotted key nearest to `parts` in `data`, or undefined when none is close. */
export function nearestKey(data: unknown, parts: string[]): string | undefined {
  let cur: unknown = data;
  for (let depth = 0; depth < parts.length; depth++) {
    if (!isPlainObject(cur)) return undefined;
    const want = parts[depth]!;
    if (Object.hasOwn(cur, want)) {
      cur = cur[want];
      continue;
    }
    const limit = Math.max(1, Math.floor(want.length / 3));
    let best: { key: string; dist: number } | undefined;
    for (const k of Object.keys(cur).sort()) {
      const dist = editDistance(want, k);
      if (dist <= limit && (!best || dist < best.dist)) best = { key: k, dist };
    }
    if (!best) return undefined;
    return [...parts.slice(0, depth), best.key, ...parts.slice(depth + 1)].join(".");
  }
  return undefined;
}
