/** generate: role-play transcripts from the final checkpoint (persona_axis.generate). */
import { gpuStageEnv, REFERENCE } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";
import { GENERATE_UNTRACKED, generateArgs } from "./lib/study-args.ts";

await stageMain(async () => {
  const [finalDir, outDir] = usage(2, "generate.ts <final-model-dir> <transcripts-dir>");
  const p = loadStudyParams({ untracked: GENERATE_UNTRACKED });
  // one worker per GPU the runner gave the stage (resources.gpus = generation.gpus, CUDA_VISIBLE_DEVICES);
  // auto/vllm: in .venv-gpu when `npm run setup -- --gpu` made it (there auto picks vLLM with a GPU)
  const args = generateArgs(p, REFERENCE, finalDir, outDir, p.generation.gpus);
  return runPython("persona_axis.generate", args, gpuStageEnv(), { vllm: p.generation.backend !== "hf" });
});
