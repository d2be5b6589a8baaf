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
    "--transcript-dir", transcripts, "--output-dir", outDir,
    // the role data the transcripts were generated from, as absolute paths: the check never depends on the cwd
    "--role-data-dir", path.resolve(p.roles_dir), "--questions", path.resolve(p.questions_file),
    "--model-display-name", p.model_display_name,
    ...(c.layers === "all" ? ["--all-layers"] : ["--layers", ...c.layers.map(String)]),
    "--aggregation", c.aggregation, "--dtype", c.dtype, "--storage-dtype", c.storage_dtype,
    "--max-batch-tokens", c.max_batch_tokens, "--chat-template-from", templateSource(p, finalDir),
  ];
  if (p.roles.length) args.push("--roles", ...p.roles);
  return runPython("python/capture.py", args, gpuStageEnv());
});
