/** judge: score each response 0-3 with its role's eval prompt (persona_axis.judge). */
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";
import { JUDGE_UNTRACKED, judgeArgs } from "./lib/study-args.ts";

await stageMain(async () => {
  const [transcripts, outDir] = usage(2, "judge.ts <transcripts-dir> <scores-dir>");
  const p = loadStudyParams({ untracked: JUDGE_UNTRACKED });
  // a local judge runs in .venv-gpu when it exists (vLLM with a GPU, else transformers)
  return runPython("persona_axis.judge", judgeArgs(p, transcripts, outDir), {}, { vllm: p.judge.backend === "local" });
});
