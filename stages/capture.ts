/** capture@<checkpoint>: residual-stream activations of the response tokens (persona_axis.capture). */
import path from "node:path";
import { gpuStageEnv, REFERENCE, templateSource } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";
import { captureArgs } from "./lib/study-args.ts";

await stageMain(async () => {
  const [name, modelDir, transcripts, outDir] = usage(4, "capture.ts <checkpoint> <model-dir> <transcripts-dir> <out-dir>");
  const p = loadStudyParams();
  const finalDir = path.join(path.dirname(modelDir), REFERENCE);
  return runPython("persona_axis.capture", captureArgs(p, name, modelDir, transcripts, outDir, templateSource(p, finalDir)), gpuStageEnv());
});
