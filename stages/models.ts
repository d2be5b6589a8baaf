/**
 * models: prepare every checkpoint into <out>/<name>/. Hub checkpoints get a checkpoint.json with their
 * id and revision (the download happens on the GPU node, in capture); `tiny-olmo2:<seed>` /
 * `tiny-gpt-neox:<seed>` build a tiny random-init model locally; `perturb:<src>:<scale>:<seed>` copies
 * another local checkpoint with noise (the demo's stand-in checkpoints).
 */
import fs from "node:fs";
import path from "node:path";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [outDir] = usage(1, "models.ts <out-dir>");
  const p = loadStudyParams();
  fs.mkdirSync(outDir, { recursive: true });
  const entries = Object.entries(p.checkpoints);
  // Built models first, perturbed copies after (they read their source).
  const ordered = [...entries.filter(([, c]) => !c.build.startsWith("perturb:")), ...entries.filter(([, c]) => c.build.startsWith("perturb:"))];
  for (const [name, c] of ordered) {
    const dir = path.join(outDir, name);
    if (c.build === "hub") {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "checkpoint.json"), JSON.stringify({ name, model: c.model, revision: c.revision, build: c.build }, null, 2) + "\n");
      continue;
    }
    let code: number;
    const tiny = c.build.match(/^tiny-(olmo2|gpt-neox):(\d+)$/);
    const pert = c.build.match(/^perturb:([^:]+):([0-9.]+):(\d+)$/);
    if (tiny) {
      code = await runPython("python/make_tiny_model.py", ["--arch", tiny[1].replace("-", "_"), "--seed", tiny[2], "--output-dir", dir]);
    } else if (pert) {
      code = await runPython("python/make_tiny_model.py", ["--perturb-from", path.join(outDir, pert[1]), "--scale", pert[2], "--seed", pert[3], "--output-dir", dir]);
    } else throw new Error(`checkpoints.${name}.build: unsupported ${c.build}`);
    if (code !== 0) return code;
  }
  return 0;
});
