/**
 * models: prepare every checkpoint into <out>/<name>/.
 *
 * Hub checkpoints (`build: hub`) are pinned to a commit: persona_axis.pin_models resolves each revision once
 * to its sha (or takes the params' `sha:`, or a revision that is a sha) and writes
 * <out>/<name>/checkpoint.json {name, model, revision, sha} (+ chat_template.jinja when the commit has
 * one) and <out>/pins.yaml; then downloads each pinned commit into the Hugging Face cache (HF_HOME),
 * verified against the Hub's hashes, so GPU stages run offline. The out is persistent: a pin is kept
 * across runs; re-resolving is explicit: PERSONA_MODELS_UPDATE=all|<name,...> tsx run.ts repro -f models
 * (the log says "final: main moved a1b2c3d -> d4e5f6a"). PERSONA_MODELS_DOWNLOAD=0 skips the download.
 *
 * Local builds: `tiny-olmo2:<seed>` / `tiny-gpt-neox:<seed>` build a tiny random-init model;
 * `perturb:<src>:<scale>:<seed>` copies another local checkpoint with noise (the demo's checkpoints).
 *
 * `tsx stages/models.ts --check [-P profile.yaml]` checks every Hub checkpoint of a profile against the
 * Hub before a long run (one table; exit 2 on anything missing, with the closest names).
 */
import fs from "node:fs";
import path from "node:path";
import { loadStudyFile, loadStudyParams } from "./lib/params.ts";
import { runPython, stageMain } from "./lib/python.ts";
import type { Study } from "./lib/params.ts";

function hubSpecs(p: Study): string {
  const hub = Object.entries(p.checkpoints).filter(([, c]) => c.build === "hub");
  return JSON.stringify(Object.fromEntries(hub.map(([n, c]) => [n, { model: c.model, revision: c.revision, ...(c.sha ? { sha: c.sha } : {}) }])));
}

async function check(args: string[]): Promise<number> {
  const i = args.findIndex((a) => a === "-P" || a === "--params-file");
  const p = i >= 0 && args[i + 1] ? loadStudyFile(path.resolve(args[i + 1])) : loadStudyParams();
  if (!Object.values(p.checkpoints).some((c) => c.build === "hub")) {
    process.stdout.write("models --check: no Hub checkpoints in this profile (all built locally)\n");
    return 0;
  }
  return runPython("persona_axis.pin_models", ["check", "--checkpoints", hubSpecs(p), "--template-from", "final"]);
}

async function prepare(outDir: string): Promise<number> {
  const p = loadStudyParams();
  fs.mkdirSync(outDir, { recursive: true });
  // The out persists (it keeps the pins): drop checkpoints the params no longer have.
  for (const d of fs.readdirSync(outDir, { withFileTypes: true })) {
    if (d.isDirectory() && !(d.name in p.checkpoints)) fs.rmSync(path.join(outDir, d.name), { recursive: true, force: true });
  }
  const entries = Object.entries(p.checkpoints);
  const hub = entries.filter(([, c]) => c.build === "hub");
  if (hub.length) {
    const update = process.env.PERSONA_MODELS_UPDATE ?? "";
    let code = await runPython("persona_axis.pin_models", ["pin", "--checkpoints", hubSpecs(p), "--output-dir", outDir, "--update", update]);
    if (code !== 0) return code;
    if (process.env.PERSONA_MODELS_DOWNLOAD !== "0") {
      code = await runPython("persona_axis.pin_models", ["download", "--output-dir", outDir, "--names", ...hub.map(([n]) => n)]);
      if (code !== 0) return code;
    }
  } else {
    fs.rmSync(path.join(outDir, "pins.yaml"), { force: true });
  }
  // Built models first, perturbed copies after (they read their source).
  const local = entries.filter(([, c]) => c.build !== "hub");
  const ordered = [...local.filter(([, c]) => !c.build.startsWith("perturb:")), ...local.filter(([, c]) => c.build.startsWith("perturb:"))];
  for (const [name, c] of ordered) {
    const dir = path.join(outDir, name);
    fs.rmSync(dir, { recursive: true, force: true });
    let code: number;
    const tiny = c.build.match(/^tiny-(olmo2|gpt-neox):(\d+)$/);
    const pert = c.build.match(/^perturb:([^:]+):([0-9.]+):(\d+)$/);
    if (tiny) {
      code = await runPython("persona_axis.tiny_models", ["--arch", tiny[1].replace("-", "_"), "--seed", tiny[2], "--output-dir", dir]);
    } else if (pert) {
      code = await runPython("persona_axis.tiny_models", ["--perturb-from", path.join(outDir, pert[1]), "--scale", pert[2], "--seed", pert[3], "--output-dir", dir]);
    } else throw new Error(`checkpoints.${name}.build: unsupported ${c.build}`);
    if (code !== 0) return code;
  }
  return 0;
}

await stageMain(async () => {
  const args = process.argv.slice(2);
  if (args[0] === "--check") return check(args.slice(1));
  if (args.length !== 1) throw new Error("usage: models.ts <out-dir> | models.ts --check [-P params.yaml]");
  return prepare(args[0]);
});
