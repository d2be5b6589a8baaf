/**
 * `${a.b}` interpolation into a stage, with DVC's rules (dvc/parsing/interpolate.py, context.py).
 *
 * - A key is a dotted path (`generation.temperature`, `checkpoints.0.model`; `a[0]` is `a.0`); a
 *   segment is any text without `.`, `[` or `]`. In a foreach/matrix stage, `item` and `key` name
 *   the current item first.
 * - A string that is exactly one `${x}` takes x's value as is (number, list, mapping...).
 * - Inside a longer string, scalars are spliced in as Python's `str` writes them (`true`/`false`,
 *   `None`, `1e-05`); a mapping inside `cmd` is unpacked to `--key value` arguments (DVC's dict
 *   unpacking: nested keys dotted, `true` -> `--flag`, `false` -> nothing, a list -> `--key a b`,
 *   strings shell-quoted); any other list or mapping inside a longer string is an error.
 * - `\${` is a literal `${`.
 * - Values come from a {@link VarsContext}: params.yaml, then `vars` files and inline mappings.
 *   Every key used from a file is recorded (tracked key -> value) so the stage tracks it as a param:
 *   params.yaml's keys as `a.b`, another file's as `<file>:a.b`; inline `vars` are not tracked. An
 *   item that came from a file (`foreach: ${checkpoints}`) is recorded under its real key.
 */

const KEY_SOURCE = String.raw`(?<!\\)\$\{([^}]*)\}`;
const INTERP_GLOBAL_RE = new RegExp(KEY_SOURCE, "g");
const SEGMENT = String.raw`[^.\[\]]+`;
const KEY_RE = new RegExp(String.raw`^${SEGMENT}(\.${SEGMENT}|\[${SEGMENT}\])*$`);

/** The current foreach/matrix item, and where it came from (if it came from a tracked file). */
export interface ForeachScope {
  item: unknown;
  key: string | number;
  /** Tracked key of the item (`checkpoints.base`), or undefined for literal lists/maps. */
  itemOrigin?: string;
  /** Matrix: tracked key of each axis value (`item.<axis>`), when the axis came from a file. */
  axisOrigins?: Record<string, string>;
  /** Dotted paths inside the item ("" = the item itself) of whole numbers written as floats in the pipeline file. */
  itemFloats?: Set<string>;
}

/** Thrown by interpolation; config.ts adds the file position and stage field. */
export class InterpolationError extends Error {}

export function hasInterpolation(s: string): boolean {
  return new RegExp(KEY_SOURCE).test(s);
}

/** `a[0].b` -> ["a","0","b"]; validates the key syntax. */
export function splitKey(raw: string): string[] {
  const key = raw.trim();
  if (!KEY_RE.test(key)) {
    throw new InterpolationError(`\${${raw}} is not a valid key (use dotted names such as \${generation.temperature})`);
  }
  return key.replace(/\[/g, ".").replace(/\]/g, "").split(".").map((s) => s.trim());
}

/** A mapping (object, not null, not a list): the one check the config and params code shares. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Look a dotted path up in a value; `found: false` when any segment is missing. */
export function getPath(root: unknown, parts: string[]): { found: boolean; value?: unknown } {
  let cur: unknown = root;
  for (const p of parts) {
    if (Array.isArray(cur)) {
      const i = Number(p);
      if (!/^\d+$/.test(p) || i >= cur.length) return { found: false };
      cur = cur[i];
    } else if (cur !== null && typeof cur === "object" && Object.hasOwn(cur, p)) {
      cur = (cur as Record<string, unknown>)[p];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: cur };
}

/** One source of values: params.yaml, a `vars` file, or an inline `vars` mapping. */
export interface VarsLayer {
  /** Shown in errors: `params.yaml`, `configs/x.yaml`, `vars[0]`, `train.vars[1]`. */
  name: string;
  /** Prefix of tracked keys: "" for the project's params file, `<file>:` for others; undefined = not tracked (inline). */
  track?: string;
  data: Record<string, unknown>;
  /** Dotted paths of whole numbers written as floats (`42.0`): interpolated as Python writes floats. */
  floats?: Set<string>;
}

/** The values interpolation sees: layers merged without redefinition (DVC's Context). */
export class VarsContext {
  private constructor(
    readonly layers: VarsLayer[],
    readonly merged: Record<string, unknown>,
  ) {}

  static of(params: Record<string, unknown>, name = "params.yaml", floats?: Set<string>): VarsContext {
    return new VarsContext([{ name, track: "", data: params, floats }], structuredClone(params));
  }

  /** Whether the number at `parts` was written as a float (`42.0`) in its file. */
  isFloat(parts: string[]): boolean {
    const key = parts.join(".");
    return this.layers.some((l) => l.floats?.has(key) && getPath(l.data, parts).found);
  }

  static empty(): VarsContext {
    return new VarsContext([], {});
  }

  /** A new context with `layer` merged in; redefining a value is an InterpolationError (as in DVC). */
  with(layer: VarsLayer): VarsContext {
    const merged = structuredClone(this.merged);
    const merge = (into: Record<string, unknown>, upd: Record<string, unknown>, at: string[]) => {
      for (const [k, v] of Object.entries(upd)) {
        const cur = into[k];
        if (isPlainObject(cur) && isPlainObject(v)) merge(cur, v, [...at, k]);
        else if (k in into) {
          const key = [...at, k].join(".");
          const prev = this.layers.find((l) => getPath(l.data, [...at, k]).found)?.name ?? "an earlier source";
          throw new InterpolationError(`cannot redefine '${key}' from '${layer.name}' as it already exists in '${prev}'`);
        } else into[k] = structuredClone(v);
      }
    };
    merge(merged, layer.data, []);
    return new VarsContext([...this.layers, layer], merged);
  }

  get(parts: string[]): { found: boolean; value?: unknown } {
    return getPath(this.merged, parts);
  }

  /** Tracked keys (prefix + dotted path) of the files a value comes from, with each file's part of it. */
  tracked(parts: string[]): [string, unknown][] {
    const out: [string, unknown][] = [];
    for (const l of this.layers) {
      if (l.track === undefined) continue;
      const g = getPath(l.data, parts);
      if (g.found) out.push([l.track + parts.join("."), g.value]);
    }
    return out;
  }
}

/** Python's `str()` of a number as DVC writes it (`1e-05`, `0.1`); whole numbers as integers. */
export function pyNumber(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  if (Number.isInteger(n)) return Math.abs(n) < 1e16 ? n.toFixed(0) : String(n);
  const a = Math.abs(n);
  if (a < 1e-4 || a >= 1e16) {
    const [m, e] = n.toExponential().split("e");
    const exp = Number(e);
    return `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return String(n);
}

/** Python's shlex.quote. */
function shellQuote(s: string): string {
  if (s === "") return "''";
  if (!/[^\w@%+=:,./-]/.test(s)) return s;
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

/** Python's `str()` of a float (a whole number gets `.0`). */
export function pyFloat(n: number): string {
  return Number.isInteger(n) && Math.abs(n) < 1e16 ? n.toFixed(1) : pyNumber(n);
}

/** Python's `str()` of a scalar inside a list (bools as True/False). */
function pyStr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return pyNumber(v);
  return String(v);
}

/** dvc.utils.flatten: nested mappings -> dotted keys (lists stay values). */
function flatten(o: Record<string, unknown>, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(o)) {
    if (isPlainObject(v) && Object.keys(v).length > 0) flatten(v, `${prefix}${k}.`, out);
    else out[prefix + k] = v;
  }
  return out;
}

/** DVC's dict unpacking of a mapping in `cmd`: `--key value` arguments. */
function unpackDict(o: Record<string, unknown>, raw: string, isFloat: (key: string) => boolean = () => false): string {
  let r = "";
  const num = (k: string, v: unknown) => (typeof v === "number" && isFloat(k) ? pyFloat(v) : pyStr(v));
  for (const [k, v] of Object.entries(flatten(o))) {
    if (typeof v === "boolean") {
      if (v) r += `--${k} `;
    } else if (typeof v === "string") r += `--${k} ${shellQuote(v)} `;
    else if (Array.isArray(v)) {
      v.forEach((x, n) => {
        if (x !== null && typeof x === "object") {
          throw new InterpolationError(`\${${raw}}: cannot interpolate the nested list or mapping in '${k}'`);
        }
        const s = typeof x === "string" ? shellQuote(x) : num(`${k}.${n}`, x);
        r += n > 0 ? `${s} ` : `--${k} ${s} `;
      });
    } else if (isPlainObject(v)) r += `--${k} {} `;
    else r += `--${k} ${num(k, v)} `;
  }
  return r.trimEnd();
}

export class Interpolator {
  /** Tracked keys used so far -> their values. */
  readonly used = new Map<string, unknown>();
  private readonly vars: VarsContext;

  constructor(
    vars: VarsContext | Record<string, unknown>,
    private readonly scope?: ForeachScope,
    /** Wording for a missing key, e.g. "is not defined in params.yaml". */
    private readonly missingHint = "is not defined in params.yaml (or the profile)",
  ) {
    this.vars = vars instanceof VarsContext ? vars : VarsContext.of(vars);
  }

  /** Resolve one key to its value, recording the tracked key(s) it came from. */
  lookup(raw: string): unknown {
    const parts = splitKey(raw);
    const [head, ...rest] = parts;
    if (this.scope && head === "key" && rest.length === 0) return this.scope.key;
    if (this.scope && head === "item") {
      const r = getPath(this.scope.item, rest);
      if (!r.found) throw new InterpolationError(`\${${raw}}: the foreach item has no field ${rest.join(".")}`);
      const axis = rest.length > 0 ? this.scope.axisOrigins?.[rest[0]!] : undefined;
      if (axis !== undefined) this.used.set([axis, ...rest.slice(1)].join("."), r.value);
      else if (this.scope.itemOrigin !== undefined) this.used.set([this.scope.itemOrigin, ...rest].join("."), r.value);
      return r.value;
    }
    const r = this.vars.get(parts);
    if (!r.found) throw new InterpolationError(`\${${raw}} ${this.missingHint}`);
    for (const [k, v] of this.vars.tracked(parts)) this.used.set(k, v);
    return r.value;
  }

  /** Whether the value `${raw}` (and `sub` below it) names was written as a float in a YAML file. */
  private isFloat(raw: string, sub: string[] = []): boolean {
    const [head, ...rest] = splitKey(raw);
    if (this.scope && (head === "item" || head === "key")) {
      if (head === "key") return false;
      if (this.scope.itemFloats?.has([...rest, ...sub].join("."))) return true;
      const axis = rest.length > 0 ? this.scope.axisOrigins?.[rest[0]!] : undefined;
      const origin = axis !== undefined ? [axis, ...rest.slice(1)] : this.scope.itemOrigin !== undefined ? [this.scope.itemOrigin, ...rest] : undefined;
      // only items that came from params.yaml (tracked without a file prefix) are looked up
      if (!origin || origin[0]!.includes(":")) return false;
      return this.vars.isFloat([...origin.join(".").split("."), ...sub]);
    }
    return this.vars.isFloat([head!, ...rest, ...sub]);
  }

  /** Interpolate a string: whole `${x}` keeps x's type, otherwise scalars are spliced in. */
  string(s: string, field?: string | number): unknown {
    const matches = [...s.matchAll(INTERP_GLOBAL_RE)];
    if (matches.length === 0) return s.replace(/\\\$\{/g, "${");
    if (matches.length === 1 && matches[0]![0] === s) return this.lookup(matches[0]![1]!);
    const out = s.replace(INTERP_GLOBAL_RE, (_m, raw: string) => {
      const v = this.lookup(raw);
      if (typeof v === "string") return v;
      if (typeof v === "number") return this.isFloat(raw) ? pyFloat(v) : pyNumber(v);
      if (typeof v === "bigint") return String(v); // beyond 2^53: kept exact (see YamlFile)
      if (typeof v === "boolean") return v ? "true" : "false";
      if (v === null || v === undefined) return "None";
      if (isPlainObject(v) && field === "cmd") return unpackDict(v, raw, (k) => this.isFloat(raw, k.split(".")));
      const what = Array.isArray(v) ? "a list" : "a mapping";
      throw new InterpolationError(
        `\${${raw}} is ${what} and cannot be placed inside a longer string (only a whole-value \${${raw}} may be a list or mapping${isPlainObject(v) ? "; in cmd a mapping is unpacked to --key value" : ""})`,
      );
    });
    return out.replace(/\\\$\{/g, "${");
  }

  /**
   * Interpolate every string (and mapping key) of a value, recursively. Errors are
   * FieldInterpolationError with the path (relative to `value`) where they happened.
   */
  value(v: unknown, path: (string | number)[] = []): unknown {
    try {
      if (typeof v === "string") return this.string(v, path[0]);
    } catch (e) {
      if (e instanceof InterpolationError) throw new FieldInterpolationError(e.message, path);
      throw e;
    }
    if (Array.isArray(v)) return v.map((x, i) => this.value(x, [...path, i]));
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        let key = k;
        if (hasInterpolation(k)) {
          let r: unknown;
          try {
            r = this.string(k);
          } catch (e) {
            if (e instanceof InterpolationError) throw new FieldInterpolationError(e.message, [...path, k]);
            throw e;
          }
          if (typeof r === "object" && r !== null) {
            throw new FieldInterpolationError(`key ${k} must interpolate to a scalar`, [...path, k]);
          }
          key = typeof r === "number" ? pyNumber(r) : String(r);
        }
        out[key] = this.value(x, [...path, k]);
      }
      return out;
    }
    return v;
  }
}

/** An interpolation error with the path of the field it happened in. */
export class FieldInterpolationError extends InterpolationError {
  constructor(
    message: string,
    readonly path: (string | number)[],
  ) {
    super(message);
  }
}
