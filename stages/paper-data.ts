/**
 * paper_data: the paper's role data (safety-research/assistant-axis at the commit pinned in
 * data/assistant-axis.manifest.json), fetched and verified file by file against the manifest's
 * sha256 digests (persona_axis.paper_data). paper_data.source: `download` (paper_data.url, a tarball;
 * `{commit}` is filled from the manifest), a local checkout / data directory / tarball (offline
 * clusters), or `off` for profiles that use the project's own data/ (then this stage only writes a
 * note: the engine has no conditional stages, so the stage exists in every profile).
 */
import fs from "node:fs";
import path from "node:path";
import { loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain, usage } from "./lib/python.ts";

const PAPER_MANIFEST = "data/assistant-axis.manifest.json";

await stageMain(async () => {
  const [outDir] = usage(1, "paper-data.ts <out-dir>");
  const d = loadStudyParams().paper_data;
  if (d.source === "off") {
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, "source.json"), JSON.stringify({ source: "off", note: "this profile reads roles_dir and questions_file from the project (params)" }, null, 1) + "\n");
    return 0;
  }
  const from = d.source === "download" ? ["--url", d.url] : ["--source", d.source];
  return runPython("persona_axis.paper_data", ["--manifest", PAPER_MANIFEST, "--output-dir", outDir, ...from]);
});
