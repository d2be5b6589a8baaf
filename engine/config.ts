/**
 * Load a project: pipeline.yaml (or DVC's dvc.yaml) + params.yaml (+ profile, `vars` files, other
 * params files) -> validated, interpolated, foreach/matrix-expanded Stage[]. Every bad input is an
 * InputError that names the file, line and column and the key path, e.g.
 * `pipeline.yaml:12:14: stages.capture.resources.gpus: expected a whole number >= 0`.
 *
 * DVC semantics (docs/dvc-compatibility.md): a stage's paths and params files are relative to its
 * `wdir`; `vars` (top level: relative to the pipeline's folder; stage level: to the stage's wdir)
 * add values for `${}` without redefining any; `metrics`/`plots` are outs; declared params that are
 * missing do not stop planning (status reports them, repro refuses).
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import { nearestKey } from "./config/nearest-key.ts";
import { InputError } from "./errors.ts";
import type { Out, Resources, SlurmOptions, Stage } from "./types.ts";
import {
  STAGE_NAME_RE,
  foreachStageSchema,
  matrixStageSchema,
  plainStageSchema,
  resolvedStageSchema,
  topLevelSchema,
  type ResolvedStage,
} from "./schema.ts";
import { FieldInterpolationError, Interpolator, InterpolationError, VarsContext, getPath, hasInterpolation, isPlainObject, splitKey } from "./interpolate.ts";
import { YamlFile, formatKeyPath, type KeyPath } from "./config/yaml-file.ts";
import { schemaError } from "./config/schema-errors.ts";
import { ParamsFiles } from "./config/params-files.ts";
import { isUrl, normalizeProjectPath, normalizeWdir } from "./config/paths.ts";
import { expandForeach, expandMatrix, type Instance } from "./config/expand.ts";

export { YamlFile, formatKeyPath };

export interface Project {
  ctx: ProjectContext;
  /** The params in force: the profile file if given (it replaces params.yaml), else params.yaml. */
  params: Record<string, unknown>;
  /** In pipeline.yaml order, foreach/matrix instances in item order. */
  stages: Stage[];
  /** Metrics files: the top-level `metrics` list, then every stage's `metrics` outs (project-relative). */
  metrics: string[];
  /** Top-level `params` files (project-relative), beyond params.yaml. */
  paramsFiles: string[];
  /** Top-level `artifacts`: name -> project-relative path. */
  artifacts: Record<string, string>;
}

const RESERVED_OUT_ROOTS = [".pipeline", ".git", ".dvc"];
const OWN_FILES = ["pipeline.yaml", "params.yaml", "dvc.yaml", "dvc.lock"];

export interface LoadedParams {
  params: Record<string, unknown>;
  /** Which files the params came from (display names), for error messages. */
  sources: string[];
  paramsFileExists: boolean;
  /** Dotted paths of whole numbers written as floats (see YamlFile.floatPaths). */
  floats?: Set<string>;
}

/**
 * The params in force: the profile file (`-P params/demo.yaml`) when one is given, which REPLACES
 * params.yaml (profiles are complete params files: see params/*.yaml),
 * else params.yaml. A missing params.yaml gives `{}` (fine as long as nothing needs params).
 */
function loadParams(ctx: ProjectContext): LoadedParams {
  const display = (f: string) => path.relative(ctx.root, f) || f;
  let floats: Set<string> | undefined;
  const readMapping = (file: string) => {
    const y = YamlFile.read(file, display(file));
    if (y.value === null || y.value === undefined) return {};
    if (!isPlainObject(y.value)) {
      throw new InputError(`${y.pos([])}: ${y.display} must be a mapping of params (key: value)`);
    }
    floats = y.floatPaths();
    return y.value;
  };
  const paramsFileExists = fs.existsSync(ctx.paramsFile);
  if (ctx.profileFile) {
    if (!fs.existsSync(ctx.profileFile)) {
      throw new InputError(`profile params file ${display(ctx.profileFile)} does not exist (check -P/--params-file)`);
    }
    const params = readMapping(ctx.profileFile);
    return { params, sources: [display(ctx.profileFile)], paramsFileExists, floats };
  }
  if (!paramsFileExists) return { params: {}, sources: [], paramsFileExists };
  const params = readMapping(ctx.paramsFile);
  return { params, sources: [display(ctx.paramsFile)], paramsFileExists, floats };
}

export async function loadProject(ctx: ProjectContext): Promise<Project> {
  const pipelineDisplay = path.relative(ctx.root, ctx.pipelineFile) || "pipeline.yaml";
  if (!fs.existsSync(ctx.pipelineFile)) {
    throw new InputError(`no pipeline.yaml (or DVC's dvc.yaml) in ${ctx.root} (run from the project directory or pass -C <dir>)`);
  }
  const file = YamlFile.read(ctx.pipelineFile, pipelineDisplay);
  return buildProject(file, loadParams(ctx), ctx);
}

/** What every stage of one load shares. */
interface Load {
  file: YamlFile;
  loaded: LoadedParams;
  ctx: Pick<ProjectContext, "root" | "repoRoot" | "paramsFile">;
  files: ParamsFiles;
  missingHint: string;
  /** The pipeline file's whole numbers written as floats (YamlFile.floatPaths). */
  fileFloats: Set<string>;
}

/** Validate + interpolate + expand every stage of a parsed pipeline.yaml / dvc.yaml. */
function buildProject(file: YamlFile, loaded: LoadedParams, ctx: Pick<ProjectContext, "root" | "repoRoot" | "paramsFile"> & Partial<ProjectContext>): Project {
  if (file.value === null || file.value === undefined) {
    throw new InputError(`${file.display}: the file is empty; it needs a \`stages:\` mapping`);
  }
  const top = topLevelSchema.safeParse(file.value);
  if (!top.success) throw schemaError(file, [], top.error.issues, file.value);
  const files = new ParamsFiles(ctx.root);
  const fileFloats = file.floatPaths();
  const load: Load = { file, loaded, ctx, files, missingHint: "", fileFloats };

  let vars = VarsContext.of(loaded.params, loaded.sources[0] ?? "params.yaml", loaded.floats);
  vars = loadVars(load, ["vars"], "vars", (top.data.vars ?? []) as unknown[], "", vars);
  const sources = [...loaded.sources, ...vars.layers.slice(1).filter((l) => l.track !== undefined).map((l) => l.name)];
  load.missingHint =
    sources.length === 0
      ? "is not defined: there is no params.yaml (create it and define the key)"
      : `is not defined in ${sources.join(" + ")}; define it there or fix the key`;

  const stages: Stage[] = [];
  for (const [name, raw] of Object.entries(top.data.stages ?? {})) {
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
      for (const inst of expandForeach(file, name, raw.foreach, vars, load.missingHint, fileFloats)) {
        stages.push(resolveStage(load, inst, name, [...base, "do"], raw.do as Record<string, unknown>, vars));
      }
    } else if ("matrix" in raw) {
      const r = matrixStageSchema.safeParse(raw);
      if (!r.success) throw schemaError(file, base, r.error.issues, raw);
      const { matrix, ...template } = raw;
      for (const inst of expandMatrix(file, name, matrix as Record<string, unknown>, vars, load.missingHint, fileFloats)) {
        stages.push(resolveStage(load, inst, name, base, template, vars));
      }
    } else {
      const r = plainStageSchema.safeParse(raw);
      if (!r.success) throw schemaError(file, base, r.error.issues, raw);
      stages.push(resolveStage(load, { name, scope: undefined }, name, base, raw, vars));
    }
  }

  // Top-level sections (interpolated like stages, untracked).
  const topInterp = new Interpolator(vars, undefined, load.missingHint);
  const topValue = (v: unknown, where: KeyPath): unknown => {
    try {
      return topInterp.value(v);
    } catch (e) {
      if (e instanceof FieldInterpolationError) throw new InputError(`${file.pos([...where, ...e.path])}: ${formatKeyPath([...where, ...e.path])}: ${e.message}`);
      throw e;
    }
  };
  const topPath = (p: unknown, where: KeyPath): string => {
    const n = normalizeProjectPath(ctx.root, String(p), ctx.repoRoot);
    if (!n.ok) throw new InputError(`${file.pos(where)}: ${formatKeyPath(where)}: ${n.why}`);
    return n.path;
  };
  const metrics = (top.data.metrics ?? []).map((m, i) => topPath(topValue(m, ["metrics", i]), ["metrics", i]));
  for (const s of stages) for (const o of s.outs) if (o.role === "metrics" && !metrics.includes(o.path)) metrics.push(o.path);
  const paramsFiles = (top.data.params ?? []).map((p, i) => topPath(topValue(p, ["params", i]), ["params", i]));
  const artifacts: Record<string, string> = {};
  for (const [k, a] of Object.entries(top.data.artifacts ?? {})) {
    const name = String(topValue(k, ["artifacts"]));
    artifacts[name] = topPath(topValue(a.path, ["artifacts", k, "path"]), ["artifacts", k, "path"]);
  }
  return { ctx: ctx as ProjectContext, params: loaded.params, stages, metrics, paramsFiles, artifacts };
}

/**
 * DVC's `vars`: `file.yaml` (all of it), `file.yaml:a,b` (those keys) or an inline mapping, merged
 * into `vars` in order; redefining a value is an error. Files are relative to `wdir`.
 */
function loadVars(load: Load, where: KeyPath, label: string, items: unknown[], wdir: string, vars: VarsContext): VarsContext {
  const { file, ctx } = load;
  const loadedFiles = new Set(vars.layers.map((l) => l.name));
  items.forEach((item, i) => {
    const at = `${file.pos([...where, i])}: ${formatKeyPath([...where, i])}`;
    if (typeof item === "string" ? hasInterpolation(item) : JSON.stringify(item).includes("${")) {
      throw new InputError(`${at}: \${} is not allowed in vars (DVC reads vars before interpolating); write the value itself`);
    }
    try {
      if (typeof item === "string") {
        const colon = item.indexOf(":");
        const [f, keyList] = colon > 0 ? [item.slice(0, colon), item.slice(colon + 1)] : [item, ""];
        const n = normalizeProjectPath(ctx.root, f, ctx.repoRoot, wdir);
        if (!n.ok) throw new InputError(`${at}: ${n.why}`);
        const keys = keyList.split(",").map((k) => k.trim()).filter(Boolean);
        const isProjectParams = path.resolve(ctx.root, n.path) === ctx.paramsFile;
        if (isProjectParams || (loadedFiles.has(n.path) && keys.length === 0)) return; // already in the context
        const r = load.files.read(n.path);
        if (!r.ok) throw new InputError(`${at}: ${r.why} (DVC reads vars files when it loads the pipeline)`);
        let data = r.data;
        if (keys.length > 0) {
          data = {};
          for (const k of keys) {
            if (!(k in r.data)) throw new InputError(`${at}: ${n.path} has no key ${k}`);
            data[k] = r.data[k];
          }
        }
        loadedFiles.add(n.path);
        vars = vars.with({ name: n.path, track: `${n.path}:`, data, floats: r.floats });
      } else if (isPlainObject(item)) {
        const prefix = `${[...where, i].join(".")}.`;
        const floats = new Set([...load.fileFloats].filter((f) => f.startsWith(prefix)).map((f) => f.slice(prefix.length)));
        vars = vars.with({ name: `${label}[${i}]`, data: item, floats });
      }
    } catch (e) {
      if (e instanceof InterpolationError) throw new InputError(`${at}: ${e.message}`);
      throw e;
    }
  });
  return vars;
}

function resolveStage(load: Load, inst: Instance, group: string, base: KeyPath, template: Record<string, unknown>, topVars: VarsContext): Stage {
  const { file, ctx } = load;
  const { name, scope } = inst;
  const label = scope ? `${formatKeyPath(base)} (instance ${name})` : formatKeyPath(base);
  const at = (...p: KeyPath) => file.pos([...base, ...p]);
  const fieldError = (e: unknown): never => {
    if (e instanceof FieldInterpolationError) {
      const p = [...base, ...e.path];
      throw new InputError(`${file.pos(p)}: ${formatKeyPath(p)}${scope ? ` (instance ${name})` : ""}: ${e.message}`);
    }
    throw e;
  };
  const { vars: stageVars, ...body } = template;

  // wdir first (it may use ${}), then the stage's own vars, relative to it.
  let wdir = "";
  if (body.wdir !== undefined) {
    let w: unknown;
    try {
      w = new Interpolator(topVars, scope, load.missingHint).value(body.wdir, ["wdir"]);
    } catch (e) {
      fieldError(e);
    }
    if (typeof w !== "string") throw new InputError(`${at("wdir")}: ${label}.wdir: expected a folder name`);
    const n = normalizeWdir(ctx.root, w, ctx.repoRoot);
    if (!n.ok) throw new InputError(`${at("wdir")}: ${label}.wdir: ${n.why}`);
    wdir = n.path;
  }
  const vars = Array.isArray(stageVars) ? loadVars(load, [...base, "vars"], `${group}.vars`, stageVars, wdir, topVars) : topVars;

  const interp = new Interpolator(vars, scope, load.missingHint);
  // Where and how a stage runs (resources, executor, slurm) is not part of what it computes: keys
  // interpolated there are resolved by a second interpolator whose uses are not tracked as params, so
  // moving to another partition or GPU count never makes a stage stale.
  const placement = new Interpolator(vars, scope, load.missingHint);
  const PLACEMENT_KEYS = ["resources", "executor", "slurm"];
  let resolved: unknown;
  try {
    const core: Record<string, unknown> = {};
    const where: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(body)) (PLACEMENT_KEYS.includes(k) ? where : core)[k] = v;
    resolved = { ...(interp.value(core) as Record<string, unknown>), ...(placement.value(where) as Record<string, unknown>) };
  } catch (e) {
    fieldError(e);
  }
  const r = resolvedStageSchema.safeParse(resolved);
  if (!r.success) {
    throw schemaError(file, base, r.error.issues, resolved, scope ? `\n(in instance ${name}, after interpolation)` : "\n(after interpolation)");
  }
  const s: ResolvedStage = r.data;

  // Tracked params: interpolated keys, then declared keys (from params.yaml or other files).
  const params: Record<string, unknown> = {};
  for (const [k, v] of interp.used) params[k] = v;
  const missingParams: Record<string, string> = {};
  const paramsFiles = declaredParams(load, s.params ?? [], wdir, (i) => `${at("params", i)}: ${label}.params[${i}]`, params, missingParams);

  const norm = (p: string, ...where: KeyPath) => {
    const n = normalizeProjectPath(ctx.root, p, ctx.repoRoot, wdir);
    if (!n.ok) throw new InputError(`${at(...where)}: ${label}.${formatKeyPath(where)}: ${n.why}`);
    return n.path;
  };

  const deps: string[] = [];
  const externalDeps: string[] = [];
  (s.deps ?? []).forEach((d, i) => {
    if (isUrl(d)) {
      if (!externalDeps.includes(d)) externalDeps.push(d);
      return;
    }
    const p = norm(d, "deps", i);
    if (!deps.includes(p)) deps.push(p);
  });

  const outs: Out[] = [];
  for (const role of ["outs", "metrics", "plots"] as const) {
    ((s[role] ?? []) as (string | Record<string, unknown>)[]).forEach((o, i) => {
      let p: string;
      const opts: Record<string, unknown> = {};
      if (typeof o === "string") p = norm(o, role, i);
      else {
        const [k, v] = Object.entries(o)[0]!;
        p = norm(k, role, i);
        // a plot may carry a list of definitions: the out options are the union
        const list = Array.isArray(v) ? v : v ? [v] : [];
        for (const d of list) Object.assign(opts, d);
      }
      const topDir = p.split("/")[0]!;
      if (RESERVED_OUT_ROOTS.includes(topDir) || OWN_FILES.includes(p) || /^pipeline(\.[^/]+)?\.lock$/.test(p)) {
        throw new InputError(`${at(role, i)}: ${label}.${role}[${i}]: ${p} is the pipeline's own file or state; choose another out path`);
      }
      if (outs.some((x) => x.path === p)) throw new InputError(`${at(role, i)}: ${label}.${role}[${i}]: ${p} is listed twice`);
      const { persist, cache, ...rest } = opts;
      const out: Out = { path: p, persist: persist === true };
      if (cache === false) out.cache = false;
      if (role !== "outs") out.role = role;
      if (Object.keys(rest).length > 0) out.options = rest;
      outs.push(out);
    });
  }

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
  if (wdir) stage.wdir = wdir;
  if (s.frozen === true) stage.frozen = true;
  if (s.always_changed === true) stage.alwaysChanged = true;
  if (Object.keys(missingParams).length > 0) stage.missingParams = missingParams;
  if (externalDeps.length > 0) stage.externalDeps = externalDeps;
  if (paramsFiles.length > 0) stage.paramsFiles = paramsFiles;
  if (s.executor !== undefined) stage.executor = s.executor as "local" | "slurm";
  if (slurm) stage.slurm = slurm;
  return stage;
}

/**
 * DVC's declared params (dvc/dependency/__init__.py `_merge_params`): a string is a key of the
 * stage's params.yaml; `{file: [keys]}` keys of another file; `{file: null}` or `{file: []}` the
 * whole file (its top-level keys). Files are relative to the stage's wdir. The project's
 * params.yaml (or the -P profile replacing it) is tracked as plain keys, other files as
 * `<file>:<key>`. What is missing goes to `missing` (key -> located message), not an error.
 */
function declaredParams(
  load: Load,
  entries: (string | Record<string, string[] | null>)[],
  wdir: string,
  where: (i: number) => string,
  params: Record<string, unknown>,
  missing: Record<string, string>,
): string[] {
  const { ctx, loaded } = load;
  const defaultFile = wdir ? path.posix.join(wdir, "params.yaml") : "params.yaml";
  const wanted = new Map<string, { keys: { k: string; at: string }[]; whole: boolean; at: string }>();
  const entry = (f: string, i: number) => {
    let w = wanted.get(f);
    if (!w) {
      w = { keys: [], whole: false, at: where(i) };
      wanted.set(f, w);
    }
    return w;
  };
  entries.forEach((e, i) => {
    if (typeof e === "string") entry(defaultFile, i).keys.push({ k: e, at: where(i) });
    else {
      for (const [f, ks] of Object.entries(e)) {
        const n = normalizeProjectPath(ctx.root, f, ctx.repoRoot, wdir);
        if (!n.ok) throw new InputError(`${where(i)}: ${n.why}`);
        const w = entry(n.path, i);
        if (!ks || ks.length === 0) w.whole = true;
        else w.keys.push(...ks.map((k) => ({ k, at: where(i) })));
      }
    }
  });
  for (const [f, w] of wanted) {
    const isProject = path.resolve(ctx.root, f) === ctx.paramsFile;
    const prefix = isProject ? "" : `${f}:`;
    let data: Record<string, unknown>;
    if (isProject) {
      if (loaded.sources.length === 0) {
        missing[f] = `${w.at}: params file ${f} does not exist (create it, or remove the stage's params)`;
        continue;
      }
      data = loaded.params;
    } else {
      const r = load.files.read(f);
      if (!r.ok) {
        missing[f] = `${w.at}: params file ${r.why} (create it, or remove it from the stage's params)`;
        continue;
      }
      data = r.data;
    }
    if (w.whole) {
      for (const [k, v] of Object.entries(data)) params[prefix + k] = v;
      continue;
    }
    const hint = isProject ? load.missingHint : `is not defined in ${f}; define it there or fix the key`;
    for (const { k, at } of w.keys) {
      let parts: string[];
      try {
        parts = splitKey(k);
      } catch (e) {
        throw new InputError(`${at}: ${(e as Error).message.replace(/^\$\{(.*)\} is/, "$1 is")}`);
      }
      const g = getPath(data, parts);
      if (!g.found) {
        const near = nearestKey(data, parts);
        missing[prefix + parts.join(".")] = `${at}: params key ${k} ${hint}${near ? ` (did you mean ${near}?)` : ""}`;
      }
      else params[prefix + parts.join(".")] = g.value;
    }
  }
  // the project's params file cannot be an out (OWN_FILES), so only other files can link stages
  return [...wanted.keys()].filter((f) => path.resolve(ctx.root, f) !== ctx.paramsFile);
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
