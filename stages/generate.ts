/** generate: role-play transcripts from the final checkpoint (python/generate.py). */
import { gpuStageEnv } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";
import { generateArgs } from "./lib/study-args.ts";

await stageMain(async () => {
  const [finalDir, outDir] = usage(2, "generate.ts <final-model-dir> <transcripts-dir>");
  return runPython("python/generate.py", generateArgs(loadStudyParams(), "final", finalDir, outDir), gpuStageEnv());
});
