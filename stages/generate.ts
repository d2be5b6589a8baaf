/** generate: role-play transcripts from the final checkpoint (python/generate.py). */
import { gpuStageEnv, modelArgs } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [finalDir, outDir] = usage(2, "generate.ts <final-model-dir> <transcripts-dir>");
  // the worker count splits the same static batches: byte-identical transcripts, so not in the identity
  const p = loadStudyParams({ untracked: ["generation.gpus"] });
  const g = p.generation;
  const args = [
    ...modelArgs(p, "final", finalDir),
    "--run-name", "pipeline", "--output-dir", outDir, "--resume",
    "--roles-dir", p.roles_dir, "--questions", p.questions_file,
    "--num-rollouts", g.num_rollouts, "--temperature", g.temperature, "--top-p", g.top_p,
    "--max-tokens", g.max_tokens, "--seed", g.seed, "--backend", g.backend === "auto" ? "auto" : g.backend,
    "--model-display-name", p.model_display_name,
    "--tensor-parallel-size", g.tensor_parallel_size, "--batch-size", g.batch_size,
    "--kv-cache-gb", g.kv_cache_gb, "--prefill-batch", g.prefill_batch,
    // one worker per GPU the runner gave the stage (resources.gpus = generation.gpus, CUDA_VISIBLE_DEVICES)
    "--gpus", g.gpus,
  ];
  if (g.question_count > 0) args.push("--question-count", g.question_count);
  if (p.roles.length) args.push("--roles", ...p.roles);
  // auto/vllm: in .venv-gpu when `npm run setup -- --gpu` made it (there auto picks vLLM with a GPU)
  return runPython("python/generate.py", args, gpuStageEnv(), { vllm: g.backend !== "hf" });
});
