/**
 * The study's params, as a stage's glue sees them, validated with zod (stages/lib/schema.ts) before
 * any GPU time is spent.
 *
 * The runner tells each command which params file is in force (PIPELINE_PARAMS_FILES: params.yaml,
 * or the profile given with -P, which replaces it) and which params its stage tracks
 * (PIPELINE_STAGE_PARAMS: JSON, dotted key -> value, the keys interpolated into the stage and its
 * `params:` list). The glue validates the whole file, then sees only the tracked keys: reading any
 * other key throws an error naming the key and the fix. So every param a command reads is tracked,
 * by construction (docs/stage-deps.md). Run by hand (no runner), the glue reads ./params.yaml and
 * sees every key.
 */
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import type { z } from "zod";
import { StudyParams } from "./schema.ts";

export type Study = z.infer<typeof StudyParams>;

function paramsFile(): string {
  return path.resolve(process.env.PIPELINE_PARAMS_FILES || "params.yaml");
}

/** Load and validate one whole params file; a bad value names the params file and the key path. */
export function loadStudyFile(file: string): Study {
  const doc = YAML.parseDocument(fs.readFileSync(file, "utf8"));
  if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
  const r = StudyParams.safeParse(doc.toJS() ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid params in ${path.relative(process.cwd(), file)}:\n${lines.join("\n")}`);
  }
  return r.data;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The part of `full` under the dotted `keys` (a key tracks its whole subtree), as an object that
 * throws when the code reads a key of `full` outside them.
 */
function trackedView<T extends object>(full: T, keys: string[], stage: string): T {
  const partial = new WeakSet<object>(); // containers holding only some of their keys
  const root: Record<string, unknown> = {};
  partial.add(root);
  for (const key of keys) {
    const parts = key.split(".");
    let src: unknown = full;
    let dst = root;
    for (const [i, part] of parts.entries()) {
      src = isObject(src) ? src[part] : undefined;
      if (i === parts.length - 1) {
        dst[part] = src;
        break;
      }
      const next = dst[part];
      if (next !== undefined && !(isObject(next) && partial.has(next))) break; // a shorter key tracks it all
      if (next === undefined) {
        const fresh = {};
        dst[part] = fresh;
        partial.add(fresh);
      }
      dst = dst[part] as Record<string, unknown>;
    }
  }
  const group = stage.split("@")[0];
  const wrap = (view: Record<string, unknown>, whole: unknown, prefix: string): unknown =>
    new Proxy(view, {
      get(t, k, r) {
        if (typeof k === "symbol") return Reflect.get(t, k, r);
        if (k in t) {
          const v = t[k];
          return isObject(v) && partial.has(v) ? wrap(v, isObject(whole) ? whole[k] : undefined, `${prefix}${k}.`) : v;
        }
        if (isObject(whole) && k in whole) {
          throw new Error(
            `stage ${stage} reads params key ${prefix}${k}, which it does not track: add \`${prefix}${k}\` to stages.${group}.params in pipeline.yaml`,
          );
        }
        return undefined;
      },
    });
  return wrap(root, full, "") as T;
}

/**
 * The params this stage's command may read (all of them when run by hand): those its stage tracks,
 * plus `untracked`, keys the glue declares as unable to change the stage's outputs (how fast it
 * runs, where credentials are), which must not make a finished stage stale.
 */
export function loadStudyParams(opts: { untracked?: string[] } = {}): Study {
  const study = loadStudyFile(paramsFile());
  const tracked = process.env.PIPELINE_STAGE_PARAMS;
  if (tracked === undefined) return study;
  const keys = [...Object.keys(JSON.parse(tracked) as Record<string, unknown>), ...(opts.untracked ?? [])];
  return trackedView(study, keys, process.env.PIPELINE_STAGE ?? "?");
}
