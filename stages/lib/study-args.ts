/**
 * The command lines of generate, judge and capture, built from the study's params in one place: the
 * fixed-transcript stages (generate, judge, capture@<checkpoint>) and the on-policy stage
 * (on_policy@<checkpoint>: the same three steps on one checkpoint's own transcripts) share them.
 */
import path from "node:path";
import { modelArgs } from "./checkpoint.ts";
import type { Study } from "./params.ts";

/** The worker count splits the same static batches: byte-identical transcripts, so not in the identity. */
export const GENERATE_UNTRACKED = ["generation.gpus"];

/** generate.py: checkpoint `name` writes transcripts into `outDir` (kept lines resume), one worker per
 * GPU the runner gave the stage (`gpus`: its resources.gpus). */
export function generateArgs(p: Study, name: string, modelDir: string, outDir: string, gpus: number, chatTemplateFrom?: string): (string | number)[] {
  const g = p.generation;
  const args: (string | number)[] = [
    ...modelArgs(p, name, modelDir),
    "--run-name", "pipeline", "--output-dir", outDir, "--resume",
    "--roles-dir", p.roles_dir, "--questions", p.questions_file,
    "--num-rollouts", g.num_rollouts, "--temperature", g.temperature, "--top-p", g.top_p,
    "--max-tokens", g.max_tokens, "--seed", g.seed, "--backend", g.backend,
    "--model-display-name", p.model_display_name,
    "--tensor-parallel-size", g.tensor_parallel_size, "--batch-size", g.batch_size,
    "--kv-cache-gb", g.kv_cache_gb, "--prefill-batch", g.prefill_batch, "--gpus", gpus,
    "--decode-attention", g.decode_attention, "--compile-decode", g.compile_decode,
  ];
  if (chatTemplateFrom) args.push("--chat-template-from", chatTemplateFrom);
  if (g.question_count > 0) args.push("--question-count", g.question_count);
  if (p.roles.length) args.push("--roles", ...p.roles);
  return args;
}

/** Requests in flight and the name of the key's variable cannot change a score: changing them must not
 * re-judge (the scores would be moved aside and asked again), so the judging stages do not track them. */
export const JUDGE_UNTRACKED = ["judge.concurrency", "judge.api_key_env"];

/** judge.py: score the transcripts in `transcripts` into `outDir`. */
export function judgeArgs(p: Study, transcripts: string, outDir: string): (string | number)[] {
  const j = p.judge;
  const args: (string | number)[] = ["--transcript-dir", transcripts, "--roles-dir", p.roles_dir, "--output-dir", outDir,
    "--backend", j.backend, "--concurrency", j.concurrency, "--parser", j.parser, "--temperature", j.temperature];
  if (j.backend === "openai") {
    if (!process.env[j.api_key_env] && j.base_url.includes("api.openai.com")) {
      throw new Error(`judge: set ${j.api_key_env} (judge.api_key_env) for ${j.base_url}, or point judge.base_url at a local OpenAI-compatible server`);
    }
    args.push("--base-url", j.base_url, "--judge-model", j.model, "--api-key-env", j.api_key_env);
  } else {
    if (!j.local_model) throw new Error("judge.local_model: required for judge.backend local");
    args.push("--local-model", j.local_model);
  }
  if (p.roles.length) args.push("--roles", ...p.roles.filter((r) => r !== "default"));
  return args;
}

/** capture.py: checkpoint `name` reads `transcripts` (rendered with `chatTemplateFrom`'s template). */
export function captureArgs(p: Study, name: string, modelDir: string, transcripts: string, outDir: string, chatTemplateFrom: string): (string | number)[] {
  const c = p.capture;
  const args: (string | number)[] = [
    ...modelArgs(p, name, modelDir),
    "--transcript-dir", transcripts, "--output-dir", outDir,
    // the role data the transcripts were generated from, as absolute paths: the check never depends on the cwd
    "--roles-dir", path.resolve(p.roles_dir), "--questions", path.resolve(p.questions_file),
    "--model-display-name", p.model_display_name,
    ...(c.layers === "all" ? ["--all-layers"] : ["--layers", ...c.layers.map(String)]),
    "--aggregation", c.aggregation, "--dtype", c.dtype, "--storage-dtype", c.storage_dtype,
    "--max-batch-tokens", c.max_batch_tokens, "--chat-template-from", chatTemplateFrom,
  ];
  if (p.roles.length) args.push("--roles", ...p.roles);
  return args;
}
