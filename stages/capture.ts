/** capture@<checkpoint>: residual-stream activations of the response tokens (python/capture.py). */
import path from "node:path";
import { gpuStageEnv, modelArgs, templateSource } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [name, modelDir, transcripts, outDir] = usage(4, "capture.ts <checkpoint> <model-dir> <transcripts-dir> <out-dir>");
  const p = loadStudyParams();
  const c = p.capture;
  const finalDir = path.join(path.dirname(modelDir), "final");
  const args = [
    ...modelArgs(p, name, modelDir),
    "--transcript-dir", transcripts, "--role-data-dir", p.roles_dir, "--output-dir", outDir,
    "--layers", ...c.layers.map(String), "--aggregation", c.aggregation, "--dtype", c.dtype,
    "--max-batch-tokens", c.max_batch_tokens, "--chat-template-from", templateSource(p, finalDir),
  ];
  if (p.roles.length) args.push("--roles", ...p.roles);
  return runPython("python/capture.py", args, gpuStageEnv());
});
