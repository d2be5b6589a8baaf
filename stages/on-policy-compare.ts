/**
 * on_policy_compare: fixed-transcript and on-policy movement side by side (persona_axis.on_policy), or,
 * under `study.transcripts: fixed`, a summary.json saying the variant is off (the report says so).
 */
import fs from "node:fs";
import path from "node:path";
import { lineageOf, REFERENCE } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [onPolicyRoot, actsRoot, scores, personaSpace, outDir] = usage(5,
    "on-policy-compare.ts <on-policy-root> <activations-root> <scores-dir> <persona-space-dir> <out-dir>");
  const p = loadStudyParams();
  if (p.study.transcripts === "fixed") {
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, "summary.json"), JSON.stringify({ transcripts: "fixed",
      note: "on-policy variant off (study.transcripts: fixed); set it to on_policy to compare" }, null, 1) + "\n");
    return 0;
  }
  const args: (string | number)[] = ["--reference-dir", personaSpace, "--reference-checkpoint", REFERENCE, "--output-dir", outDir,
    "--bootstrap", p.statistics.bootstrap, "--seed", p.statistics.seed];
  if (!p.statistics.resample_prompts) args.push("--no-resample-prompts");
  if (p.judge.filter) args.push("--scores-dir", scores);
  for (const [name, c] of Object.entries(p.checkpoints)) {
    args.push("--checkpoint", `${name}=${path.join(actsRoot, name)}`, "--lineage", `${name}=${lineageOf(p, name)}`);
    const own = path.join(onPolicyRoot, name);
    if (c.init === "random") {
      args.push("--skip", `${name}=random-init control: no behaviour of its own (fixed transcripts only)`);
      continue;
    }
    // the reference's own transcripts are the fixed ones (on_policy@final writes a note): read those
    const ref = name === REFERENCE;
    args.push("--own", `${name}=${ref ? path.join(actsRoot, name) : path.join(own, "activations")}`);
    if (p.judge.filter) args.push("--own-scores", `${name}=${ref ? scores : path.join(own, "scores")}`);
  }
  return runPython("persona_axis.on_policy", args);
});
