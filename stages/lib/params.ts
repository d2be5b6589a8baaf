/**
 * The study's params, as the stage glue sees them, validated with zod (stages/lib/schema.ts) before
 * any GPU time is spent.
 *
 * The runner tells each command which params file is in force through PIPELINE_PARAMS_FILES
 * (params.yaml, or the profile given with -P, which replaces it; several files, joined with ':',
 * would be deep-merged in order). Run by hand, the glue reads $PIPELINE_PROFILE_FILE or ./params.yaml.
 */
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { StudyParams } from "./schema.ts";

export function paramsFiles(): string[] {
  const fromRunner = process.env.PIPELINE_PARAMS_FILES;
  if (fromRunner) return fromRunner.split(":").filter(Boolean);
  return [path.resolve(process.env.PIPELINE_PROFILE_FILE || "params.yaml")];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep merge: objects merge key by key, anything else (lists included) is replaced. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  return out;
}

export function loadRawParams(files = paramsFiles()): Record<string, unknown> {
  let merged: unknown = {};
  for (const f of files) {
    const doc = YAML.parseDocument(fs.readFileSync(f, "utf8"));
    if (doc.errors.length) throw new Error(`${f}: ${doc.errors[0].message}`);
    merged = deepMerge(merged, doc.toJS() ?? {});
  }
  return merged as Record<string, unknown>;
}

export type Study = z.infer<typeof StudyParams>;

/** Load and validate; a bad value names the params file(s) and the key path. */
export function loadStudyParams(files = paramsFiles()): Study {
  const raw = loadRawParams(files);
  const r = StudyParams.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid params in ${files.map((f) => path.relative(process.cwd(), f)).join(" + ")}:\n${lines.join("\n")}`);
  }
  return r.data;
}
