/** judge: score each response 0-3 with its role's eval prompt (python/judge.py). */
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [transcripts, outDir] = usage(2, "judge.ts <transcripts-dir> <scores-dir>");
  // Requests in flight and the name of the key's variable cannot change a score: changing them must
  // not re-judge (the scores would be moved aside and asked again).
  const p = loadStudyParams({ untracked: ["judge.concurrency", "judge.api_key_env"] });
  const j = p.judge;
  const args = ["--transcript-dir", transcripts, "--roles-dir", p.roles_dir, "--output-dir", outDir, "--backend", j.backend, "--concurrency", j.concurrency,
    "--parser", j.parser, "--temperature", j.temperature];
  if (j.backend === "openai") {
    if (!process.env[j.api_key_env] && j.base_url.includes("api.openai.com")) {
      throw new Error(`judge: set ${j.api_key_env} (judge.api_key_env) for ${j.base_url}, or point judge.base_url at a local OpenAI-compatible server`);
    }
    args.push("--base-url", j.base_url, "--judge-model", j.model, "--api-key-env", j.api_key_env);
  } else {
    if (!j.local_model) throw new Error("judge.local_model: required for judge.backend local");
    args.push("--local-model", j.local_model);
  }
  if (p.roles.length) args.push("--roles", ...p.roles.filter((r) => r !== "default"));
  // a local judge runs in .venv-gpu when it exists (vLLM with a GPU, else transformers)
  return runPython("python/judge.py", args, {}, { vllm: j.backend === "local" });
});
