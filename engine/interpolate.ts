/**
 * `${a.b}` interpolation of params values into a stage (DVC-style).
 *
 * Rules (kept deliberately small):
 * - A key is a dotted path into params (`generation.temperature`, `checkpoints.0.model`; `a[0]`
 *   is accepted as `a.0`). In a foreach template, `item` and `key` name the current item first.
 * - A string that is exactly one `${x}` takes x's value as is (number, list, mapping...): that is
 *   how a list or mapping can be interpolated (e.g. `foreach: ${checkpoints}`).
 * - Inside a longer string, only scalars are allowed: strings as is, numbers and booleans as
 *   written (`0.7`, `true`). A list, mapping or null inside a longer string is an error.
 * - There is no escape syntax; `$${` is not special.
 * - Every params key used is recorded (key -> value) so the stage tracks it as a param. An item
 *   that came from params (`foreach: ${checkpoints}`) is recorded under its real key
 *   (`checkpoints.base.model`); items of a literal foreach list are not params.
 */

export const INTERP_GLOBAL_RE = /\$\{([^}]*)\}/g;
const WHOLE_RE = /^\$\{([^}]*)\}$/;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

/** The current foreach item, and where it came from in params (if it did). */
export interface ForeachScope {
  item: unknown;
  key: string | number;
  /** Dotted params key of the item (`checkpoints.base`), or undefined for literal lists/maps. */
  itemOrigin?: string;
}

/** Thrown by interpolation; config.ts adds the file position and stage field. */
export class InterpolationError extends Error {}

export function hasInterpolation(s: string): boolean {
  return /\$\{[^}]*\}/.test(s);
}

/** `a[0].b` -> ["a","0","b"]; validates the key syntax. */
export function splitKey(raw: string): string[] {
  const key = raw.trim().replace(/\[(\d+)\]/g, ".$1");
  if (!KEY_RE.test(key)) {
    throw new InterpolationError(`\${${raw}} is not a valid key (use dotted names such as \${generation.temperature})`);
  }
  return key.split(".");
}

/** Look a dotted path up in a value; `found: false` when any segment is missing. */
export function getPath(root: unknown, parts: string[]): { found: boolean; value?: unknown } {
  let cur: unknown = root;
  for (const p of parts) {
    if (Array.isArray(cur)) {
      const i = Number(p);
      if (!/^\d+$/.test(p) || i >= cur.length) return { found: false };
      cur = cur[i];
    } else if (cur !== null && typeof cur === "object" && Object.prototype.hasOwnProperty.call(cur, p)) {
      cur = (cur as Record<string, unknown>)[p];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: cur };
}

export class Interpolator {
  /** Params keys used so far -> their values. */
  readonly used = new Map<string, unknown>();

  constructor(
    private readonly params: Record<string, unknown>,
    private readonly scope?: ForeachScope,
    /** Wording for a missing key, e.g. "not defined in params.yaml". */
    private readonly missingHint = "is not defined in params.yaml (or the profile)",
  ) {}

  /** Resolve one key to its value, recording the params key it came from. */
  lookup(raw: string): unknown {
    const parts = splitKey(raw);
    const [head, ...rest] = parts;
    if (this.scope && head === "key" && rest.length === 0) return this.scope.key;
    if (this.scope && head === "item") {
      const r = getPath(this.scope.item, rest);
      if (!r.found) {
        throw new InterpolationError(`\${${raw}}: the foreach item has no field ${rest.join(".")}`);
      }
      if (this.scope.itemOrigin !== undefined) this.used.set([this.scope.itemOrigin, ...rest].join("."), r.value);
      return r.value;
    }
    const r = getPath(this.params, parts);
    if (!r.found) throw new InterpolationError(`\${${raw}} ${this.missingHint}`);
    this.used.set(parts.join("."), r.value);
    return r.value;
  }

  /** Interpolate a string: whole `${x}` keeps x's type, otherwise scalars are spliced in. */
  string(s: string): unknown {
    const whole = WHOLE_RE.exec(s);
    if (whole) return this.lookup(whole[1]!);
    return s.replace(INTERP_GLOBAL_RE, (_m, raw: string) => {
      const v = this.lookup(raw);
      if (typeof v === "string") return v;
      if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
      const what = v === null ? "null" : Array.isArray(v) ? "a list" : "a mapping";
      throw new InterpolationError(
        `\${${raw}} is ${what} and cannot be placed inside a longer string (only a whole-value \${${raw}} may be a list or mapping)`,
      );
    });
  }

  /**
   * Interpolate every string (and mapping key) of a value, recursively. `onError` receives the
   * path (relative to `value`) where an error happened, so the caller can name the field.
   */
  value(v: unknown, path: (string | number)[] = []): unknown {
    try {
      if (typeof v === "string") return this.string(v);
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
          key = String(r);
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
