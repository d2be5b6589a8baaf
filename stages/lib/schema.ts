/**
 * zod schema of this project's params (params.yaml + profiles). The engine itself is generic.
 * Validation only: default values come from ./defaults.ts, and no value is transformed here, so that
 * editing a rule or a message does not make any stage stale (docs/stage-deps.md).
 */
import { z } from "zod";
import { DEFAULTS } from "./defaults.ts";

const Checkpoint = z.object({
  model: z.string().min(1, "a Hub model id or a local directory"),
  revision: z.string().min(1).default(DEFAULTS.revision),
  // A commit the checkpoint is frozen at (the revision then only names it); else the models stage
  // resolves the revision once and keeps it (outputs/<profile>/models/pins.yaml lists them).
  sha: z.string().regex(/^[0-9a-f]{40}$/, "a full 40-character commit sha").optional(),
  build: z
    .string()
    .regex(/^(hub|tiny-olmo2:\d+|tiny-gpt-neox:\d+|perturb:[A-Za-z0-9_.-]+:[0-9.]+:\d+)$/, {
      message: "expected hub, tiny-olmo2:<seed>, tiny-gpt-neox:<seed> or perturb:<checkpoint>:<scale>:<seed>",
    })
    .default(DEFAULTS.build),
  // The random-init control: this checkpoint's config with weights initialised from `seed` (no weights downloaded).
  init: z.enum(["pretrained", "random"]).default(DEFAULTS.init),
  seed: z.number().int().min(0).default(DEFAULTS.seed),
  // The pretraining run it belongs to: shared-basis comparisons only within one (stages/lib/checkpoint.ts lineageOf).
  lineage: z.string().regex(/^[A-Za-z0-9_.-]+$/, "lineage: letters, digits, _ . -").optional(),
});

export const StudyParams = z
  .object({
    out: z.string().min(1),
    roles_dir: z.string().min(1),
    questions_file: z.string().min(1),
    roles: z.array(z.string()).default(DEFAULTS.roles),
    model_display_name: z.string().min(1),
    paper_data: z
      .object({
        source: z.string().min(1, "download | off | a local checkout, data directory or tarball of the repository"),
        url: z.string().default(DEFAULTS.paperDataUrl),
      })
      .refine((d) => d.source !== "download" || /^https?:\/\//.test(d.url), {
        message: "source download needs url: an http(s) tarball URL ({commit} is filled from the manifest)",
        path: ["url"],
      }),
    checkpoints: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "checkpoint names: letters, digits, _ . -"), Checkpoint)
      .refine((c) => "final" in c, { message: "a checkpoint named `final` (the reference, which generates the transcripts) is required" }),
    generation: z.object({
      backend: z.enum(["auto", "vllm", "hf"]),
      temperature: z.number().min(0),
      top_p: z.number().gt(0).max(1),
      max_tokens: z.number().int().positive(),
      num_rollouts: z.number().int().positive(),
      question_count: z.number().int().min(0),
      seed: z.number().int(),
      tensor_parallel_size: z.number().int().positive(),
      batch_size: z.number().int().positive(),
      kv_cache_gb: z.number().min(0),
      prefill_batch: z.number().int().positive(),
      decode_attention: z.enum(["matmul", "sdpa"]),
      compile_decode: z.enum(["auto", "on", "off"]),
      gpus: z.number().int().min(0),
    }),
    judge: z.object({
      backend: z.enum(["openai", "local"]),
      base_url: z.string(),
      model: z.string(),
      api_key_env: z.string(),
      local_model: z.string(),
      concurrency: z.number().int().positive(),
      parser: z.enum(["paper", "strict"]),
      temperature: z.number().min(0),
      filter: z.boolean(),
      min_score: z.number().int().min(0).max(3),
      min_count: z.number().int().min(1),
    }),
    capture: z.object({
      layers: z.union([z.literal("all"), z.array(z.number().int().min(0)).min(1)], {
        error: "expected `all` or a non-empty list of decoder block indices",
      }),
      aggregation: z.enum(["mean", "last", "none"]),
      dtype: z.enum(["bfloat16", "float16", "float32"]),
      storage_dtype: z.enum(["bfloat16", "float16", "float32"]),
      max_batch_tokens: z.number().int().positive(),
      gpus: z.number().int().min(0),
    }),
    persona_space: z.object({ layer: z.number().int().min(0) }),
    // fixed: every checkpoint reads the final checkpoint's transcripts; on_policy: each also generates,
    // judges and captures its own, compared side by side (stages/on-policy.ts, docs/statistics.md)
    study: z.object({ transcripts: z.enum(["fixed", "on_policy"], { error: "expected fixed or on_policy" }) }),
    statistics: z.object({
      permutations: z.number().int().min(0),
      bootstrap: z.number().int().min(0),
      seed: z.number().int().min(0),
      resample_prompts: z.boolean(),
      // label-shuffle null: within (system-prompt slot, question) cells, or across all responses (docs/statistics.md)
      shuffle: z.enum(["stratified", "plain"], { error: "expected stratified or plain" }),
    }),
    report: z.object({ title: z.string(), track_roles: z.array(z.string()) }),
  })
  .superRefine((p, ctx) => {
    for (const [name, c] of Object.entries(p.checkpoints)) {
      if (c.build !== "hub" && path_norm(c.model) !== path_norm(`${p.out}/models/${name}`)) {
        ctx.addIssue({
          code: "custom",
          path: ["checkpoints", name, "model"],
          message: `a locally built checkpoint lives in the models stage's output: set model to ${p.out}/models/${name}`,
        });
      }
      const m = c.build.match(/^perturb:([^:]+):/);
      if (m && !(m[1] in p.checkpoints)) {
        ctx.addIssue({ code: "custom", path: ["checkpoints", name, "build"], message: `perturbs unknown checkpoint ${m[1]}` });
      }
    }
    if (p.checkpoints.final.init === "random") {
      ctx.addIssue({ code: "custom", path: ["checkpoints", "final", "init"], message: "the reference (final) cannot be the random-init control" });
    }
    const fetched = `${path_norm(p.out)}/paper_data`;
    const usesPaper = p.paper_data.source !== "off";
    for (const [key, want] of [["roles_dir", `${fetched}/roles/instructions`], ["questions_file", `${fetched}/extraction_questions.jsonl`]] as const) {
      const has = path_norm(p[key]);
      if (usesPaper && has !== want) {
        ctx.addIssue({ code: "custom", path: [key], message: `paper_data.source is ${p.paper_data.source}: set ${key} to ${want} (the verified data), or paper_data.source to off` });
      } else if (!usesPaper && has.startsWith(`${fetched}/`)) {
        ctx.addIssue({ code: "custom", path: [key], message: `paper_data.source is off, so nothing is fetched into ${fetched}: point ${key} at the project's data/ or turn paper_data on` });
      }
    }
    if (p.capture.layers !== "all" && !p.capture.layers.includes(p.persona_space.layer)) {
      ctx.addIssue({ code: "custom", path: ["persona_space", "layer"], message: `must be one of capture.layers (${p.capture.layers.join(", ")})` });
    }
  });

function path_norm(p: string): string {
  return p.replace(/\/+$/, "").replace(/^\.\//, "");
}
