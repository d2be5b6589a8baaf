/** persona_space: role vectors, the Assistant Axis and PCA at the reference checkpoint. */
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [acts, scores, outDir] = usage(3, "persona-space.ts <activations-dir> <scores-dir> <out-dir>");
  const p = loadStudyParams();
  const args = ["--activations-dir", acts, "--output-dir", outDir, "--layer", p.persona_space.layer,
    "--min-score", p.judge.min_score, "--min-count", p.judge.min_count,
    "--permutations", p.statistics.permutations, "--bootstrap", p.statistics.bootstrap, "--seed", p.statistics.seed, "--null", p.statistics.shuffle];
  if (!p.statistics.resample_prompts) args.push("--no-resample-prompts");
  if (p.judge.filter) args.push("--scores-dir", scores);
  return runPython("persona_axis.persona_space", args);
});
