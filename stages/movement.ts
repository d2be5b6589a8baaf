/** movement: every checkpoint, in params order, into the reference persona space. */
import path from "node:path";
import { lineageOf, REFERENCE } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [actsRoot, scores, personaSpace, outDir] = usage(4, "movement.ts <activations-root> <scores-dir> <persona-space-dir> <out-dir>");
  const p = loadStudyParams();
  const args: (string | number)[] = ["--reference-dir", personaSpace, "--reference-checkpoint", REFERENCE, "--output-dir", outDir,
    "--bootstrap", p.statistics.bootstrap, "--seed", p.statistics.seed];
  if (!p.statistics.resample_prompts) args.push("--no-resample-prompts");
  for (const name of Object.keys(p.checkpoints)) {
    args.push("--checkpoint", `${name}=${path.join(actsRoot, name)}`, "--lineage", `${name}=${lineageOf(p, name)}`);
  }
  if (p.judge.filter) args.push("--scores-dir", scores);
  return runPython("persona_axis.movement", args);
});
