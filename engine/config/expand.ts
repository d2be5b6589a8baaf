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
import { FieldInterpolationError, Interpolator, InterpolationError, pyNumber, splitKey, type ForeachScope, type VarsContext } from "../interpolate.ts";
import type { YamlFile } from "./yaml-file.ts";

export interface Instance {
  name: string;
  scope?: ForeachScope;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const isMapOrSeq = (v: unknown) => v !== null && typeof v === "object";

/** DVC's to_str of a key or value used in an instance name. */
function toStr(v: unknown): string {
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return pyNumber(v);
  if (v === null || v === undefined) return "None";
  return String(v);
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

export function expandForeach(file: YamlFile, name: string, foreach: unknown, vars: VarsContext, missingHint: string): Instance[] {
  const where = ["stages", name, "foreach"];
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
    coll.forEach((item, i) => out.push({ name: checkName(file, where, label, name, byIndex ? String(i) : toStr(item), seen), scope: { item, key: i, itemOrigin: at(i) } }));
  } else {
    for (const [k, item] of Object.entries(coll as Record<string, unknown>)) {
      out.push({ name: checkName(file, where, label, name, k, seen), scope: { item, key: k, itemOrigin: at(k) } });
    }
  }
  if (out.length === 0) throw new InputError(`${file.pos(where)}: ${label}: the collection is empty, so the stage would have no instances`);
  return out;
}

export function expandMatrix(file: YamlFile, name: string, matrix: Record<string, unknown>, vars: VarsContext, missingHint: string): Instance[] {
  const axes: { axis: string; values: unknown[]; origin?: string }[] = [];
  for (const [axis, raw] of Object.entries(matrix)) {
    const where = ["stages", name, "matrix", axis];
    const label = `stages.${name}.matrix.${axis}`;
    const { value, origin } = resolveCollection(file, where, label, raw, vars, missingHint);
    if (!Array.isArray(value)) throw new InputError(`${file.pos(where)}: ${label}: expected a list, got ${JSON.stringify(value)}`);
    axes.push({ axis, values: value, origin });
  }
  const out: Instance[] = [];
  const seen = new Set<string>();
  const where = ["stages", name, "matrix"];
  const walk = (i: number, item: Record<string, unknown>, frags: string[], origins: Record<string, string>) => {
    if (i === axes.length) {
      const key = frags.join("-");
      out.push({ name: checkName(file, where, `stages.${name}.matrix`, name, key, seen), scope: { item: { ...item }, key, axisOrigins: { ...origins } } });
      return;
    }
    const { axis, values, origin } = axes[i]!;
    values.forEach((v, j) => {
      const o = { ...origins };
      if (origin !== undefined) o[axis] = `${origin}.${j}`;
      walk(i + 1, { ...item, [axis]: v }, [...frags, isMapOrSeq(v) ? `${axis}${j}` : toStr(v)], o);
    });
  };
  walk(0, {}, [], {});
  if (out.length === 0) throw new InputError(`${file.pos(where)}: stages.${name}.matrix: a list is empty, so the stage would have no instances`);
  return out;
}

export { isPlainObject };
