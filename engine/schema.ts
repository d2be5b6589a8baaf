/**
 * The zod schema of pipeline.yaml, in two flavours built from one definition:
 *
 * - `pipelineSchema` (raw): what a user writes. Any scalar may instead be a `${params.key}`
 *   interpolation string, which is resolved later by config.ts. This is the schema published as
 *   JSON Schema (`tsx run.ts schema`, committed as pipeline.schema.json) for editors.
 * - `resolvedStageSchema`: one stage after interpolation and foreach expansion, where numbers must
 *   be numbers again (`gpus: ${train.gpus}` must resolve to a whole number).
 *
 * Unknown keys are rejected everywhere (strict objects), so a typo such as `gpu:` or `out:` fails
 * with its key path instead of being ignored.
 */
import { z } from "zod";

/** Stage names: letters, digits, `_ . -`; `@` is reserved for foreach instances (`capture@base`). */
export const STAGE_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

const INTERP_RE = /\$\{[^}]*\}/;

/** An interpolation string standing for a typed value; a plain string gets the typed value's error. */
const interpolationFor = (error: string) =>
  z.string().regex(INTERP_RE, { error }).describe("a ${params.key} interpolation, resolved from params.yaml");

/** A string that contains at least one `${...}`: accepted in place of any typed scalar before interpolation. */
const interpolation = z
  .string()
  .regex(INTERP_RE, { error: "expected a `${params.key}` interpolation" })
  .describe("a ${params.key} interpolation, resolved from params.yaml");

function build(resolved: boolean) {
  /** A typed scalar, or (raw schema only) a `${...}` string standing for it. */
  const scalar = <T extends z.ZodType>(t: T, error = "expected a string") =>
    resolved ? t : z.union([t, interpolationFor(error)], { error });

  const wholeNonNeg = scalar(
    z.int({ error: "expected a whole number >= 0" }).min(0, { error: "expected a whole number >= 0" }),
    "expected a whole number >= 0",
  );
  const wholePos = scalar(
    z.int({ error: "expected a whole number >= 1" }).min(1, { error: "expected a whole number >= 1" }),
    "expected a whole number >= 1",
  );
  const str = (what = "expected a string") => z.string({ error: what });
  const nonEmptyStr = (what: string) => z.string({ error: what }).min(1, { error: what });

  const cmd = z
    .union([nonEmptyStr("expected a command string"), z.array(nonEmptyStr("expected a command string")).min(1)], {
      error: "expected a command string or a non-empty list of command strings",
    })
    .describe("command(s) run in order in the project directory, with `bash -c`");

  const path = nonEmptyStr("expected a project-relative path");

  const bool = scalar(z.boolean({ error: "expected true or false" }), "expected true or false");
  const annotation = {
    desc: scalar(str()).optional().describe("what the out holds"),
    type: scalar(str()).optional(),
    labels: z.array(str(), { error: "expected a list of strings" }).optional(),
    meta: z.unknown().optional().describe("free-form metadata (ignored)"),
  };
  const outOptionsShape = {
    ...annotation,
    persist: bool.optional().describe("keep the out in place between runs (the command resumes from it); default false"),
    cache: bool.optional().describe("store the out in the content-addressed cache (checkout, push/pull, run-cache); default true; false for outs the user manages"),
    checkpoint: bool.optional().describe("DVC 2 checkpoint out (accepted, no effect)"),
    remote: scalar(str()).optional().describe("remote to push this out to"),
    push: bool.optional().describe("push this out to remotes (default true)"),
  };
  const outOptions = z.strictObject(outOptionsShape).describe("out options (DVC's: persist, cache, desc, push, remote...)");
  const plotOptions = z
    .strictObject({
      ...outOptionsShape,
      template: scalar(str()).optional(),
      x: scalar(str()).optional(),
      y: scalar(str()).optional(),
      x_label: scalar(str()).optional(),
      y_label: scalar(str()).optional(),
      title: scalar(str()).optional(),
      header: bool.optional(),
    })
    .describe("plot options (DVC's template, x, y, title... and the out options)");

  const outEntry = (opts: z.ZodType, what: string) =>
    z
      .union(
        [
          path,
          z
            .record(z.string(), opts)
            .refine((r) => Object.keys(r).length === 1, { error: `an ${what} entry must be a path or \`{<path>: {options}}\`` }),
        ],
        { error: "expected a path or `{<path>: {persist: true}}`" },
      )
      .describe(`an ${what}: a path, or \`{<path>: {options}}\` as in DVC`);
  const out = outEntry(z.union([outOptions, z.null()]), "out");
  const plot = outEntry(z.union([plotOptions, z.array(plotOptions), z.null()]), "plot");

  const paramEntry = z
    .union(
      [
        nonEmptyStr("expected a dotted params key"),
        z.record(z.string(), z.union([z.array(nonEmptyStr("expected a dotted params key")), z.null()])),
      ],
      { error: "expected a dotted params key such as `generation.temperature`, or `{<file>: [keys]}`" },
    )
    .describe("a dotted key of params.yaml tracked by the stage, or DVC's `{<params file>: [keys]}` (no keys: the whole file)");

  const vars = z
    .array(z.union([nonEmptyStr("expected a file name"), z.record(z.string(), z.unknown())]), {
      error: "expected a list of params files (`file.yaml` or `file.yaml:key1,key2`) and mappings",
    })
    .describe("DVC's vars: params files and inline mappings that ${} can use");

  const resources = z
    .strictObject({
      gpus: wholeNonNeg.optional().describe("GPUs of the pool this stage needs (default 0)"),
      cpus: wholePos.optional().describe("CPU cores (SLURM --cpus-per-task)"),
      memory: scalar(str('expected a string such as "64G"'), 'expected a string such as "64G"').optional().describe('memory, e.g. "64G" (SLURM --mem)'),
      time: scalar(str('expected a string such as "12:00:00"'), 'expected a string such as "12:00:00"').optional().describe('time limit, e.g. "12:00:00" (SLURM --time)'),
    })
    .describe("what the stage needs");

  const slurm = z
    .strictObject({
      partition: scalar(str()).optional(),
      account: scalar(str()).optional(),
      qos: scalar(str()).optional(),
      gpu_flag: z
        .enum(["gres", "gpus"], { error: 'expected "gres" or "gpus"' })
        .optional()
        .describe("how GPUs are requested: --gres=gpu:k (gres) or --gpus=k (gpus)"),
      extra_args: z
        .union([str(), z.array(str())], { error: "expected a string or a list of strings" })
        .optional()
        .describe("extra sbatch arguments"),
    })
    .describe("SLURM options for this stage");

  const envValue = z.union([z.string(), z.number(), z.boolean()], {
    error: "expected a string, number or boolean",
  });

  const stageBody = {
    desc: scalar(str()).optional().describe("what the stage does"),
    cmd,
    deps: z.array(path, { error: "expected a list of paths" }).optional().describe("files or directories the stage reads"),
    params: z.array(paramEntry, { error: "expected a list of dotted params keys" }).optional(),
    outs: z.array(out, { error: "expected a list of outs" }).optional().describe("files or directories the stage writes"),
    metrics: z.array(out, { error: "expected a list of metrics files" }).optional().describe("metrics files the stage writes (outs listed by `metrics show`)"),
    plots: z.array(plot, { error: "expected a list of plots files" }).optional().describe("plots files the stage writes (outs)"),
    wdir: scalar(str()).optional().describe("folder the commands run in; the stage's paths are relative to it (default: the pipeline's folder)"),
    vars: vars.optional(),
    frozen: bool.optional().describe("never rerun because deps or params changed"),
    always_changed: bool.optional().describe("always stale: runs on every repro"),
    meta: z.unknown().optional().describe("free-form metadata (ignored)"),
    env: z.record(z.string(), envValue, { error: "expected a mapping of NAME: value" }).optional()
      .describe("environment variables for the command; part of the stage's identity"),
    resources: resources.optional(),
    executor: scalar(z.enum(["local", "slurm"], { error: 'expected "local" or "slurm"' }), 'expected "local" or "slurm"').optional()
      .describe("where the stage runs; default: the CLI's --executor"),
    slurm: slurm.optional(),
  };

  const plainStage = z.strictObject(stageBody).describe("a stage");
  const matrixStage = z
    .strictObject({
      ...stageBody,
      matrix: z
        .record(z.string(), z.union([z.array(z.unknown()), interpolation]), { error: "expected a mapping of name -> list (or ${key} naming one)" })
        .describe("DVC 3 matrix: one instance per combination, `name@v1-v2` (`${item.<name>}` is the value)"),
    })
    .describe("a matrix stage");
  const foreachStage = z
    .strictObject({
      foreach: z
        .union([z.array(z.unknown()), z.record(z.string(), z.unknown()), interpolation], {
          error: "expected a list, a mapping or a `${params.key}` naming one",
        })
        .describe("one stage instance per item: `name@key` (mapping), `name@value` (list of scalars), `name@index` (list of mappings)"),
      do: plainStage.describe("the stage template; `${item}`, `${item.field}` and `${key}` refer to the current item"),
    })
    .describe("a foreach stage");

  const topLevel = {
    vars: vars.optional(),
    params: z.array(str("expected a params file name"), { error: "expected a list of params files" }).optional()
      .describe("params files shown by `params diff`, beyond params.yaml"),
    metrics: z.array(str("expected a metrics file"), { error: "expected a list of metrics files" }).optional()
      .describe("metrics files not written by a stage (listed by `metrics show`)"),
    plots: z.array(z.union([str(), z.record(z.string(), z.unknown())]), { error: "expected a list of plots" }).optional()
      .describe("plot definitions (DVC)"),
    artifacts: z
      .record(z.string(), z.strictObject({ path: str("expected a path"), ...annotation }), { error: "expected a mapping of name -> {path: ...}" })
      .optional()
      .describe("named artifacts (DVC's model registry)"),
    datasets: z.unknown().optional().describe("DVC datasets (accepted, ignored)"),
  };

  return { plainStage, foreachStage, matrixStage, topLevel };
}

const raw = build(false);
const res = build(true);

export const plainStageSchema = raw.plainStage;
export const foreachStageSchema = raw.foreachStage;
export const matrixStageSchema = raw.matrixStage;
/** One resolved stage instance (after interpolation): typed scalars only. */
export const resolvedStageSchema = res.plainStage;

const pipelineSchema = z
  .strictObject({
    stages: z
      .record(z.string().regex(STAGE_NAME_RE), z.union([foreachStageSchema, matrixStageSchema, plainStageSchema]))
      .optional()
      .describe("stage name -> stage"),
    ...raw.topLevel,
  })
  .describe("pipeline.yaml (or DVC's dvc.yaml): the stages of a reproducible pipeline");

/** Top level only; stages are validated one by one (config.ts picks plain, foreach or matrix per stage). */
export const topLevelSchema = z.strictObject({
  stages: z.record(z.string(), z.unknown(), { error: "expected a mapping of stage name -> stage" }).nullish(),
  ...raw.topLevel,
});

export type ResolvedStage = z.infer<typeof resolvedStageSchema>;

/** The JSON Schema published for editors (`tsx run.ts schema`). */
export function pipelineJsonSchema(): Record<string, unknown> {
  const js = z.toJSONSchema(pipelineSchema, { unrepresentable: "any" }) as Record<string, unknown>;
  return {
    $schema: js.$schema,
    $id: "pipeline.schema.json",
    title: "pipeline.yaml",
    ...Object.fromEntries(Object.entries(js).filter(([k]) => k !== "$schema")),
  };
}
