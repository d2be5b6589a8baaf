/** report: the self-contained HTML report, stating the params, model ids and revisions behind it. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

await stageMain(async () => {
  const [personaSpace, movement, onPolicy, outDir] = usage(4, "report.ts <persona-space-dir> <movement-dir> <on-policy-compare-dir> <out-dir>");
  const p = loadStudyParams();
  // The params that produced the results, stated on the page (deterministic JSON, no timestamps).
  const shown = { checkpoints: p.checkpoints, generation: p.generation, judge: { ...p.judge, api_key_env: undefined },
    capture: p.capture, persona_space: p.persona_space, study: p.study, roles_dir: p.roles_dir, questions_file: p.questions_file };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "report-params-"));
  const paramsFile = path.join(tmp, "params.json");
  fs.writeFileSync(paramsFile, JSON.stringify(shown, null, 2) + "\n");
  try {
    return await runPython("persona_axis.report", ["--persona-space-dir", personaSpace, "--movement-dir", movement, "--on-policy-dir", onPolicy,
      "--output-dir", outDir, "--params-file", paramsFile, "--title", p.report.title,
      "--roles-to-track", p.report.track_roles.join(",")]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
