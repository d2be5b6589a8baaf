/**
 * foreach and matrix expansion, as DVC 3 names the instances (dvc/parsing/__init__.py):
 * - foreach over a mapping: `name@key`; over a list of scalars: `name@value`; over a list with any
 *   list or mapping in it: `name@index`. `${item}` is the item, `${key}` the key (mappings only).
 * - matrix `{a: [..], b: [..]}`: one instance per combination, in order, named by its values joined
 *   with `-` (a list or mapping value is named `<axis><index>`); `${item.a}` is a's value and
 *   `${key}` the joined name.
 * The collection may be literal (with `${}` inside) or a `${key}` naming one in params / vars.
 */
import { InputError } from "../errors.ts";
import { FieldInterpolationError, Interpolator, InterpolationError, pyFloat, pyNumber, splitKey, type ForeachScope, type VarsContext } from "../interpolate.ts";
import type { YamlFile } from "./yaml-file.ts";

export interface Instance {
  name: string;
  scope?: ForeachScope;
}

const isMapOrSeq = (v: unknown) => v !== null && typeof v === "object";

/** DVC's to_str of a key or value used in an instance name (`isFloat`: written as a float, e.g. `1.0`). */
function toStr(v: unknown, isFloat = false): string {
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return isFloat ? pyFloat(v) : pyNumber(v);
  if (v === null || v === undefined) return "None";
  return String(v);
}

/**
 * Which values of a collection were written as floats: `floatAt(i)` -> the set of dotted paths
 * inside item i ("" = the item itself). Literal collections use the pipeline file's floats (under
 * `where`); a `${key}` collection the params/vars file it came from.
 */
function floatsOf(raw: unknown, where: (string | number)[], fileFloats: Set<string>, vars: VarsContext): (i: string | number) => Set<string> {
  const m = typeof raw === "string" ? /^\$\{([^}]*)\}$/.exec(raw) : null;
  let base: string[] | undefined;
  let inFile: (p: string) => boolean;
  if (m) {
    try {
      base = splitKey(m[1]!);
    } catch {
      return () => new Set();
    }
    const parts = base;
    inFile = (p) => vars.isFloat([...parts, ...p.split(".")]);
    const all = new Set<string>();
    for (const l of vars.layers) for (const f of l.floats ?? []) if (f.startsWith(parts.join(".") + ".")) all.add(f.slice(parts.join(".").length + 1));
    return (i) => new Set([...all].filter((f) => f === String(i) || f.startsWith(`${i}.`)).filter(inFile).map((f) => f.slice(String(i).length + 1)));
  }
  const prefix = where.join(".") + ".";
  return (i) =>
    new Set(
      [...fileFloats]
        .filter((f) => f === prefix + String(i) || f.startsWith(`${prefix}${i}.`))
        .map((f) => f.slice(prefix.length + String(i).length + 1)),
    );
}

/** Resolve a collection; `origin` is the tracked key when it is exactly one `${key}` from a tracked file. */
function resolveCollection(
  file: YamlFile,
  where: (string | number)[],
  label: string,
  value: unknown,
  vars: VarsContext,
  missingHint: string,
): { value: unknown; origin?: string } {
  const interp = new Interpolator(vars, undefined, missingHint);
  let resolved: unknown;
  try {
    resolved = interp.value(value);
  } catch (e) {
    if (e instanceof FieldInterpolationError) throw new InputError(`${file.pos([...where, ...e.path])}: ${label}: ${e.message}`);
    throw e;
  }
  let origin: string | undefined;
  const m = typeof value === "string" ? /^\$\{([^}]*)\}$/.exec(value) : null;
  if (m) {
    try {
      const t = vars.tracked(splitKey(m[1]!));
      if (t.length === 1) origin = t[0]![0];
    } catch (e) {
      if (!(e instanceof InterpolationError)) throw e;
    }
  }
  return { value: resolved, origin };
}

function checkName(file: YamlFile, where: (string | number)[], label: string, name: string, suffix: string, seen: Set<string>): string {
  if (suffix === "" || /[\n\r\t]/.test(suffix) || suffix.length > 200) {
    throw new InputError(`${file.pos(where)}: ${label}: item ${JSON.stringify(suffix)} cannot name an instance ${name}@${suffix}: use a mapping (name: item) to choose the names`);
  }
  const inst = `${name}@${suffix}`;
  if (seen.has(inst)) throw new InputError(`${file.pos(where)}: ${label}: two items give the same instance name ${inst}`);
  seen.add(inst);
  return inst;
}

export function expandForeach(file: YamlFile, name: string, foreach: unknown, vars: VarsContext, missingHint: string, fileFloats = new Set<string>()): Instance[] {
  const where = ["stages", name, "foreach"];
  const floatAt = floatsOf(foreach, where, fileFloats, vars);
  const label = `stages.${name}.foreach`;
  const { value: coll, origin } = resolveCollection(file, where, label, foreach, vars, missingHint);
  if (!isMapOrSeq(coll)) {
    const what = typeof foreach === "string" ? `${foreach} must be a list or a mapping in params` : "expected a list or a mapping";
    throw new InputError(`${file.pos(where)}: ${label}: ${what}, got ${JSON.stringify(coll)}`);
  }
  const out: Instance[] = [];
  const seen = new Set<string>();
  const at = (k: string | number) => (origin === undefined ? undefined : `${origin}.${k}`);
  if (Array.isArray(coll)) {
    const byIndex = coll.some(isMapOrSeq);
    coll.forEach((item, i) => {
      const itemFloats = floatAt(i);
      const suffix = byIndex ? String(i) : toStr(item, itemFloats.has(""));
      out.push({ name: checkName(file, where, label, name, suffix, seen), scope: { item, key: i, itemOrigin: at(i), itemFloats } });
    });
  } else {
    for (const [k, item] of Object.entries(coll as Record<string, unknown>)) {
      out.push({ name: checkName(file, where, label, name, k, seen), scope: { item, key: k, itemOrigin: at(k), itemFloats: floatAt(k) } });
    }
  }
  if (out.length === 0) throw new InputError(`${file.pos(where)}: ${label}: the collection is empty, so the stage would have no instances`);
  return out;
}

export function expandMatrix(file: YamlFile, name: string, matrix: Record<string, unknown>, vars: VarsContext, missingHint: string, fileFloats = new Set<string>()): Instance[] {
  const axes: { axis: string; values: unknown[]; origin?: string; floatAt: (i: number) => Set<string> }[] = [];
  for (const [axis, raw] of Object.entries(matrix)) {
    const where = ["stages", name, "matrix", axis];
    const label = `stages.${name}.matrix.${axis}`;
    const { value, origin } = resolveCollection(file, where, label, raw, vars, missingHint);
    if (!Array.isArray(value)) throw new InputError(`${file.pos(where)}: ${label}: expected a list, got ${JSON.stringify(value)}`);
    axes.push({ axis, values: value, origin, floatAt: floatsOf(raw, where, fileFloats, vars) });
  }
  const out: Instance[] = [];
  const seen = new Set<string>();
  const where = ["stages", name, "matrix"];
  const walk = (i: number, item: Record<string, unknown>, frags: string[], origins: Record<string, string>, floats: Set<string>) => {
    if (i === axes.length) {
      const key = frags.join("-");
      out.push({ name: checkName(file, where, `stages.${name}.matrix`, name, key, seen), scope: { item: { ...item }, key, axisOrigins: { ...origins }, itemFloats: floats } });
      return;
    }
    const { axis, values, origin, floatAt } = axes[i]!;
    values.forEach((v, j) => {
      const o = { ...origins };
      if (origin !== undefined) o[axis] = `${origin}.${j}`;
      const f = floatAt(j);
      const fl = new Set([...floats, ...[...f].map((p) => (p === "" ? axis : `${axis}.${p}`))]);
      walk(i + 1, { ...item, [axis]: v }, [...frags, isMapOrSeq(v) ? `${axis}${j}` : toStr(v, f.has(""))], o, fl);
    });
  };
  walk(0, {}, [], {}, new Set());
  if (out.length === 0) throw new InputError(`${file.pos(where)}: stages.${name}.matrix: a list is empty, so the stage would have no instances`);
  return out;
}
