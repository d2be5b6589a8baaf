/**
 * on_policy@<checkpoint>: under `study.transcripts: on_policy`, the checkpoint generates its own
 * transcripts (the fixed run's roles, prompts, questions, seeds and sampling), which are judged (as
 * the fixed ones are; the scores select rows when judge.filter is on) and captured on that checkpoint:
 *   <out>/transcripts, <out>/scores, <out>/activations.
 * Prompts use the reference (final) checkpoint's chat template for generation and capture alike, as
 * the fixed capture does: base models have none, and one template everywhere leaves the generated text
 * as the only difference (docs/statistics.md, "On-policy transcripts").
 * Under `study.transcripts: fixed` (the default), for the random-init control (no behaviour to
 * follow) and for the reference checkpoint (its own transcripts are the fixed ones: same model,
 * settings and seeds; on_policy_compare reads those, their scores and capture) it only writes
 * on_policy.json saying so: the engine has no conditional stages, so the stage exists in every profile
 * (as paper_data does).
 */
import fs from "node:fs";
import path from "node:path";
import { gpuStageEnv, REFERENCE, templateSource } from "./lib/checkpoint.ts";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";
import { captureArgs, GENERATE_UNTRACKED, generateArgs, JUDGE_UNTRACKED, judgeArgs } from "./lib/study-args.ts";

const NOTE = "on_policy.json";

function note(outDir: string, body: Record<string, unknown>): number {
  // persist out: clear what an earlier on-policy run left, so the out says only what holds now
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, NOTE), JSON.stringify(body, null, 1) + "\n");
  return 0;
}

await stageMain(async () => {
  const [name, modelDir, outDir] = usage(3, "on-policy.ts <checkpoint> <model-dir> <out-dir>");
  // capture.gpus (this stage's resources.gpus) only sets the generation worker count: byte-identical text
  const p = loadStudyParams({ untracked: [...JUDGE_UNTRACKED, ...GENERATE_UNTRACKED, "capture.gpus"] });
  if (p.study.transcripts === "fixed") {
    return note(outDir, { checkpoint: name, on_policy: "off", note: "study.transcripts is fixed: every checkpoint reads the final checkpoint's transcripts" });
  }
  if (p.checkpoints[name].init === "random") {
    return note(outDir, { checkpoint: name, on_policy: "skipped", reason: "random-init control: it has no behaviour of its own to follow; its floor is its capture of the fixed transcripts" });
  }
  if (name === REFERENCE) {
    // generating again would reproduce the fixed transcripts byte for byte, but judging them again
    // (at the judge's temperature) would not reproduce their scores: the reference reuses all three
    return note(outDir, { checkpoint: name, on_policy: "fixed", note: "the reference checkpoint's own transcripts are the fixed transcripts (same model, settings and seeds): on_policy_compare reads them, their scores and their capture" });
  }
  fs.mkdirSync(outDir, { recursive: true });
  fs.rmSync(path.join(outDir, NOTE), { force: true });
  const template = templateSource(p, path.join(path.dirname(modelDir), REFERENCE));
  const transcripts = path.join(outDir, "transcripts");
  // the GPUs the runner gave this stage (resources.gpus = capture.gpus) serve generation and capture alike
  const gen = generateArgs(p, name, modelDir, transcripts, p.capture.gpus, template);
  let code = await runPython("persona_axis.generate", gen, gpuStageEnv(), { vllm: p.generation.backend !== "hf" });
  if (code !== 0) return code;
  // judged always, as the fixed transcripts are; the scores select rows only when judge.filter is on
  code = await runPython("persona_axis.judge", judgeArgs(p, transcripts, path.join(outDir, "scores")), {}, { vllm: p.judge.backend === "local" });
  if (code !== 0) return code;
  return runPython("persona_axis.capture", captureArgs(p, name, modelDir, transcripts, path.join(outDir, "activations"), template), gpuStageEnv());
});
