/**
 * Load a project: pipeline.yaml + params.yaml (+ profile) -> validated, interpolated, foreach-expanded
 * Stage[]. Every bad input is an InputError that names the file, line and column and the key path,
 * e.g. `pipeline.yaml:12:14: stages.capture.resources.gpus: expected a whole number >= 0`.
 */
import fs from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument, isMap, isPair, isScalar, isSeq, type Document, type Node } from "yaml";
import type { z } from "zod";
import type { ProjectContext } from "./context.ts";
import { InputError } from "./errors.ts";
import type { Out, Resources, SlurmOptions, Stage } from "./types.ts";
import {
  STAGE_NAME_RE,
  foreachStageSchema,
  plainStageSchema,
  resolvedStageSchema,
  topLevelSchema,
  type ResolvedStage,
} from "./schema.ts";
import { FieldInterpolationError, Interpolator, InterpolationError, getPath, splitKey, type ForeachScope } from "./interpolate.ts";

export interface Project {
  ctx: ProjectContext;
  /** The params in force: the profile file if given (it replaces params.yaml), else params.yaml. */
  params: Record<string, unknown>;
  /** In pipeline.yaml order, foreach instances in item order. */
  stages: Stage[];
}

type KeyPath = (string | number)[];

/** A parsed YAML file that can point at the line:col of any key path. */
export class YamlFile {
  private constructor(
    readonly display: string,
    readonly doc: Document.Parsed,
    readonly lines: LineCounter,
    readonly value: unknown,
  ) {}

  /** Parse; malformed YAML -> InputError `display:LINE:COL: message`. */
  static parse(text: string, display: string): YamlFile {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const msgs = doc.errors.slice(0, 3).map((e) => {
        const p = lines.linePos(e.pos[0]);
        const first = e.message.split("\n")[0];
        return `${display}:${p.line}:${p.col}: ${first}`;
      });
      const line = text.split("\n")[lines.linePos(doc.errors[0]!.pos[0]).line - 1] ?? "";
      const hint = line.includes("${") && /[[{]/.test(line.replace(/\$\{[^}]*\}/g, ""))
        ? "; a ${...} inside [ ] or { } must be quoted: [\"${out}/x\"], or use a block list (- ${out}/x)"
        : "";
      throw new InputError(`${msgs.join("\n")}\n(fix the YAML syntax of ${display}${hint})`);
    }
    return new YamlFile(display, doc, lines, doc.toJS({ maxAliasCount: 1000 }));
  }

  static read(file: string, display: string): YamlFile {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw new InputError(`cannot read ${display}: ${(e as Error).message}`);
    }
    return YamlFile.parse(text, display);
  }

  /** `display:LINE:COL` of the deepest node along the path (the key itself when `atKey`). */
  pos(keyPath: KeyPath, atKey = false): string {
    let node: unknown = this.doc.contents;
    let best: { range?: [number, number, number] | null } | undefined = node as Node;
    for (const seg of keyPath) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if (atKey && seg === keyPath[keyPath.length - 1]) {
          best = pair.key as Node;
          node = undefined;
          break;
        }
        node = pair.value;
        best = (pair.value as Node | null) ?? (pair.key as Node);
      } else if (isSeq(node) && typeof seg === "number") {
        node = node.items[seg];
        if (!node) break;
        best = node as Node;
      } else {
        break;
      }
    }
    const off = best?.range?.[0];
    if (off === undefined) return this.display;
    const p = this.lines.linePos(off);
    return `${this.display}:${p.line}:${p.col}`;
  }
}

export function formatKeyPath(p: KeyPath): string {
  let s = "";
  for (const seg of p) s += typeof seg === "number" ? `[${seg}]` : s === "" ? seg : `.${seg}`;
  return s || "(top level)";
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const STAGE_KEYS = ["desc", "cmd", "deps", "params", "outs", "env", "resources", "executor", "slurm", "foreach", "do"];
const KEYS_BY_PARENT: Record<string, string[]> = {
  resources: ["gpus", "cpus", "memory", "time"],
  slurm: ["partition", "account", "qos", "gpu_flag", "extra_args"],
};

function allowedKeys(parent: KeyPath): string[] | undefined {
  if (parent.length === 0) return ["stages"];
  const last = parent[parent.length - 1];
  if (typeof last === "string" && KEYS_BY_PARENT[last]) return KEYS_BY_PARENT[last];
  if (parent.includes("outs")) return ["persist"];
  if (parent[0] === "stages" && (parent.length === 2 || (parent.length === 3 && last === "do"))) {
    return parent.length === 3 ? STAGE_KEYS.filter((k) => k !== "foreach" && k !== "do") : STAGE_KEYS;
  }
  return undefined;
}

/** Turn zod issues into one InputError with a position and a key path per issue. */
function schemaError(file: YamlFile, base: KeyPath, issues: z.core.$ZodIssue[], input: unknown, note = ""): InputError {
  const lines = issues.slice(0, 5).map((iss) => {
    const p = [...base, ...(iss.path as KeyPath)];
    if (iss.code === "unrecognized_keys") {
      const keys = (iss as { keys: string[] }).keys;
      const allowed = allowedKeys(p);
      const hint = allowed ? ` (allowed: ${allowed.join(", ")})` : "";
      return `${file.pos([...p, keys[0]!], true)}: ${formatKeyPath(p)}: unknown key${keys.length > 1 ? "s" : ""} ${keys.map((k) => `"${k}"`).join(", ")}${hint}`;
    }
    if (iss.path.length > 0) {
      const parent = getPath(input, iss.path.slice(0, -1).map(String));
      const last = String(iss.path[iss.path.length - 1]);
      if (parent.found && isPlainObject(parent.value) && !(last in parent.value)) {
        const what = iss.message.startsWith("Invalid input") ? "" : ` (${iss.message})`;
        return `${file.pos(p)}: ${formatKeyPath(p)}: required${what}`;
      }
    }
    return `${file.pos(p)}: ${formatKeyPath(p)}: ${iss.message}`;
  });
  if (issues.length > 5) lines.push(`(and ${issues.length - 5} more problems)`);
  return new InputError(lines.join("\n") + note);
}

/**
 * A project-relative, normalized posix path (no `./`, no trailing slash); InputError text when it
 * is absolute outside the project, escapes it with `..`, or is the project itself.
 */
export function normalizeProjectPath(root: string, p: string): { ok: true; path: string } | { ok: false; why: string } {
  let rel = p.trim();
  if (path.isAbsolute(rel)) rel = path.relative(root, rel);
  rel = path.posix.normalize(rel.split(path.sep).join("/")).replace(/\/+$/, "");
  if (rel === "" || rel === ".") return { ok: false, why: `${p} is the project directory itself; name a file or directory inside it` };
  if (rel === ".." || rel.startsWith("../") || path.isAbsolute(rel)) {
    return { ok: false, why: `${p} is outside the project directory ${root}` };
  }
  return { ok: true, path: rel };
}

const RESERVED_OUT_ROOTS = [".pipeline", ".git"];

export interface LoadedParams {
  params: Record<string, unknown>;
  /** Which files the params came from (display names), for error messages. */
  sources: string[];
  paramsFileExists: boolean;
}

/**
 * The params in force: the profile file (`-P params/demo.yaml`) when one is given, which REPLACES
 * params.yaml (profiles are complete params files: see params/*.yaml),
 * else params.yaml. A missing params.yaml gives `{}` (fine as long as nothing needs params).
 */
export function loadParams(ctx: ProjectContext): LoadedParams {
  const display = (f: string) => path.relative(ctx.root, f) || f;
  const readMapping = (file: string) => {
    const y = YamlFile.read(file, display(file));
    if (y.value === null || y.value === undefined) return {};
    if (!isPlainObject(y.value)) {
      throw new InputError(`${y.pos([])}: ${y.display} must be a mapping of params (key: value)`);
    }
    return y.value;
  };
  const paramsFileExists = fs.existsSync(ctx.paramsFile);
  if (ctx.profileFile) {
    if (!fs.existsSync(ctx.profileFile)) {
      throw new InputError(`profile params file ${display(ctx.profileFile)} does not exist (check -P/--params-file)`);
    }
    return { params: readMapping(ctx.profileFile), sources: [display(ctx.profileFile)], paramsFileExists };
  }
  if (!paramsFileExists) return { params: {}, sources: [], paramsFileExists };
  return { params: readMapping(ctx.paramsFile), sources: [display(ctx.paramsFile)], paramsFileExists };
}

export async function loadProject(ctx: ProjectContext): Promise<Project> {
  const pipelineDisplay = path.relative(ctx.root, ctx.pipelineFile) || "pipeline.yaml";
  if (!fs.existsSync(ctx.pipelineFile)) {
    throw new InputError(`no ${pipelineDisplay} in ${ctx.root} (run from the project directory or pass -C <dir>)`);
  }
  const file = YamlFile.read(ctx.pipelineFile, pipelineDisplay);
  const loaded = loadParams(ctx);
  const stages = buildStages(file, loaded, ctx.root);
  return { ctx, params: loaded.params, stages };
}

/** Validate + interpolate + expand every stage of a parsed pipeline.yaml. */
export function buildStages(file: YamlFile, loaded: LoadedParams, root: string): Stage[] {
  if (file.value === null || file.value === undefined) {
    throw new InputError(`${file.display}: the file is empty; it needs a \`stages:\` mapping`);
  }
  const top = topLevelSchema.safeParse(file.value);
  if (!top.success) throw schemaError(file, [], top.error.issues, file.value);

  const missingHint =
    loaded.sources.length === 0
      ? "is not defined: there is no params.yaml (create it and define the key)"
      : `is not defined in ${loaded.sources.join(" + ")}; define it there or fix the key`;

  const stages: Stage[] = [];
  for (const [name, raw] of Object.entries(top.data.stages)) {
    const base: KeyPath = ["stages", name];
    if (!STAGE_NAME_RE.test(name)) {
      throw new InputError(
        `${file.pos(base, true)}: stages.${name}: invalid stage name; use letters, digits, '_', '.' or '-' ('@' is reserved for foreach instances)`,
      );
    }
    if (!isPlainObject(raw)) {
      throw new InputError(`${file.pos(base)}: stages.${name}: expected a mapping with at least \`cmd:\``);
    }
    if ("foreach" in raw || "do" in raw) {
      const r = foreachStageSchema.safeParse(raw);
      if (!r.success) throw schemaError(file, base, r.error.issues, raw);
      for (const inst of expandForeach(file, name, raw, loaded.params, missingHint)) {
        stages.push(resolveStage(file, inst.name, name, [...base, "do"], raw.do, loaded, missingHint, root, inst.scope));
      }
    } else {
      const r = plainStageSchema.safeParse(raw);
      if (!r.success) throw schemaError(file, base, r.error.issues, raw);
      stages.push(resolveStage(file, name, name, base, raw, loaded, missingHint, root));
    }
  }
  return stages;
}

function isScalarValue(v: unknown): v is string | number | boolean {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

function expandForeach(
  file: YamlFile,
  name: string,
  raw: Record<string, unknown>,
  params: Record<string, unknown>,
  missingHint: string,
): { name: string; scope: ForeachScope }[] {
  const where = ["stages", name, "foreach"];
  let coll = raw.foreach;
  let origin: string | undefined;
  if (typeof coll === "string") {
    const m = /^\$\{([^}]*)\}$/.exec(coll.trim());
    if (!m) {
      throw new InputError(`${file.pos(where)}: stages.${name}.foreach: expected a list, a mapping or a single \${params.key}`);
    }
    try {
      origin = splitKey(m[1]!).join(".");
      coll = new Interpolator(params, undefined, missingHint).lookup(m[1]!);
    } catch (e) {
      if (e instanceof InterpolationError) throw new InputError(`${file.pos(where)}: stages.${name}.foreach: ${e.message}`);
      throw e;
    }
    if (!Array.isArray(coll) && !isPlainObject(coll)) {
      throw new InputError(`${file.pos(where)}: stages.${name}.foreach: ${raw.foreach} must be a list or a mapping in params, got ${JSON.stringify(coll)}`);
    }
  }
  const out: { name: string; scope: ForeachScope }[] = [];
  const seen = new Map<string, string>();
  const add = (suffix: string, scope: ForeachScope) => {
    if (!/^[A-Za-z0-9_.+=-]+$/.test(suffix) || suffix.length > 100) {
      throw new InputError(
        `${file.pos(where)}: stages.${name}.foreach: item ${JSON.stringify(suffix)} cannot name an instance ${name}@${suffix} ` +
          "(letters, digits, '_', '.', '+', '=', '-'; at most 100 characters): use a mapping (name: item) to choose the names",
      );
    }
    const inst = `${name}@${suffix}`;
    if (seen.has(inst)) throw new InputError(`${file.pos(where)}: stages.${name}.foreach: two items give the same instance name ${inst}`);
    seen.set(inst, inst);
    out.push({ name: inst, scope });
  };
  if (Array.isArray(coll)) {
    const byValue = coll.every(isScalarValue);
    coll.forEach((item, i) =>
      add(byValue ? String(item) : String(i), { item, key: i, itemOrigin: origin === undefined ? undefined : `${origin}.${i}` }),
    );
  } else if (isPlainObject(coll)) {
    for (const [k, item] of Object.entries(coll)) {
      add(k, { item, key: k, itemOrigin: origin === undefined ? undefined : `${origin}.${k}` });
    }
  }
  if (out.length === 0) {
    throw new InputError(`${file.pos(where)}: stages.${name}.foreach: the collection is empty, so the stage would have no instances`);
  }
  return out;
}

function resolveStage(
  file: YamlFile,
  name: string,
  group: string,
  base: KeyPath,
  template: unknown,
  loaded: LoadedParams,
  missingHint: string,
  root: string,
  scope?: ForeachScope,
): Stage {
  const label = scope ? `${formatKeyPath(base)} (instance ${name})` : formatKeyPath(base);
  const interp = new Interpolator(loaded.params, scope, missingHint);
  // Where and how a stage runs (resources, executor, slurm) is not part of what it computes: keys
  // interpolated there are resolved by a second interpolator whose uses are not tracked as params, so
  // moving to another partition or GPU count never makes a stage stale.
  const placement = new Interpolator(loaded.params, scope, missingHint);
  const PLACEMENT_KEYS = ["resources", "executor", "slurm"];
  let resolved: unknown;
  try {
    if (isPlainObject(template)) {
      const core: Record<string, unknown> = {};
      const where: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(template)) (PLACEMENT_KEYS.includes(k) ? where : core)[k] = v;
      resolved = { ...(interp.value(core) as Record<string, unknown>), ...(placement.value(where) as Record<string, unknown>) };
    } else resolved = interp.value(template);
  } catch (e) {
    if (e instanceof FieldInterpolationError) {
      const p = [...base, ...e.path];
      throw new InputError(`${file.pos(p)}: ${formatKeyPath(p)}${scope ? ` (instance ${name})` : ""}: ${e.message}`);
    }
    throw e;
  }
  const r = resolvedStageSchema.safeParse(resolved);
  if (!r.success) {
    throw schemaError(file, base, r.error.issues, resolved, scope ? `\n(in foreach instance ${name}, after interpolation)` : "\n(after interpolation)");
  }
  const s: ResolvedStage = r.data;
  const at = (...p: KeyPath) => file.pos([...base, ...p]);

  // Tracked params: interpolated keys, then declared keys (which must exist).
  const params: Record<string, unknown> = {};
  for (const [k, v] of interp.used) params[k] = v;
  (s.params ?? []).forEach((entry, i) => {
    const keys: string[] = [];
    if (typeof entry === "string") keys.push(entry);
    else {
      for (const [f, ks] of Object.entries(entry)) {
        if (f !== "params.yaml") {
          throw new InputError(
            `${at("params", i)}: ${label}.params[${i}]: params from ${f} are not supported; only params.yaml (+ the -P profile) is read: list plain dotted keys`,
          );
        }
        keys.push(...ks);
      }
    }
    for (const k of keys) {
      let parts: string[];
      try {
        parts = splitKey(k);
      } catch (e) {
        throw new InputError(`${at("params", i)}: ${label}.params[${i}]: ${(e as Error).message.replace(/^\$\{(.*)\} is/, "$1 is")}`);
      }
      const g = getPath(loaded.params, parts);
      if (!g.found) {
        throw new InputError(`${at("params", i)}: ${label}.params[${i}]: params key ${k} ${missingHint}`);
      }
      params[parts.join(".")] = g.value;
    }
  });

  const norm = (p: string, ...where: KeyPath) => {
    const n = normalizeProjectPath(root, p);
    if (!n.ok) throw new InputError(`${at(...where)}: ${label}.${formatKeyPath(where)}: ${n.why}`);
    return n.path;
  };

  const deps: string[] = [];
  (s.deps ?? []).forEach((d, i) => {
    const p = norm(d, "deps", i);
    if (!deps.includes(p)) deps.push(p);
  });

  const outs: Out[] = [];
  (s.outs ?? []).forEach((o, i) => {
    let p: string;
    let persist = false;
    if (typeof o === "string") p = norm(o, "outs", i);
    else {
      const [k, opts] = Object.entries(o)[0]!;
      p = norm(k, "outs", i);
      persist = (opts as { persist?: boolean } | null)?.persist === true;
    }
    const topDir = p.split("/")[0]!;
    if (RESERVED_OUT_ROOTS.includes(topDir) || ["pipeline.yaml", "params.yaml"].includes(p) || /^pipeline(\.[^/]+)?\.lock$/.test(p)) {
      throw new InputError(`${at("outs", i)}: ${label}.outs[${i}]: ${p} is the pipeline's own file or state; choose another out path`);
    }
    if (outs.some((x) => x.path === p)) throw new InputError(`${at("outs", i)}: ${label}.outs[${i}]: ${p} is listed twice`);
    outs.push({ path: p, persist });
  });

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new InputError(`${at("env", k)}: ${label}.env: ${k} is not a valid environment variable name`);
    env[k] = String(v);
  }

  // (zod typed these as `number | ${...}` strings; after resolvedStageSchema they are numbers)
  const resources: Resources = { gpus: Number(s.resources?.gpus ?? 0) };
  if (s.resources?.cpus !== undefined) resources.cpus = Number(s.resources.cpus);
  if (s.resources?.memory !== undefined) resources.memory = s.resources.memory;
  if (s.resources?.time !== undefined) resources.time = s.resources.time;

  let slurm: SlurmOptions | undefined;
  if (s.slurm) {
    slurm = {};
    if (s.slurm.partition !== undefined) slurm.partition = s.slurm.partition;
    if (s.slurm.account !== undefined) slurm.account = s.slurm.account;
    if (s.slurm.qos !== undefined) slurm.qos = s.slurm.qos;
    if (s.slurm.gpu_flag !== undefined) slurm.gpuFlag = s.slurm.gpu_flag;
    if (s.slurm.extra_args !== undefined) {
      slurm.extraArgs = typeof s.slurm.extra_args === "string" ? s.slurm.extra_args.split(/\s+/).filter(Boolean) : s.slurm.extra_args;
    }
  }

  const stage: Stage = {
    name,
    group,
    cmd: typeof s.cmd === "string" ? [s.cmd] : s.cmd,
    deps,
    outs,
    params: sortKeys(params),
    env,
    resources,
  };
  if (s.desc !== undefined) stage.desc = s.desc;
  if (s.executor !== undefined) stage.executor = s.executor as "local" | "slurm";
  if (slurm) stage.slurm = slurm;
  return stage;
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
