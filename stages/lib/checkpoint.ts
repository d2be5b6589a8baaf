/**
 * Model arguments for a checkpoint: a Hub id at the commit the models stage pinned
 * (<prepared>/checkpoint.json), or a local directory (no revision).
 */
import fs from "node:fs";
import path from "node:path";
import type { Study } from "./params.ts";

/** The reference checkpoint: it generates the fixed transcripts; its persona space is the basis. */
export const REFERENCE = "final";
const SHA = /^[0-9a-f]{40}$/;

/** The pinned commit of a Hub checkpoint, read from the models stage's out. */
function pinnedSha(name: string, preparedDir: string): string {
  const file = path.join(preparedDir, "checkpoint.json");
  let rec: { sha?: unknown };
  try {
    rec = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    throw new Error(`${file}: missing or unreadable: run the models stage first (tsx run.ts repro models)`);
  }
  if (typeof rec.sha !== "string" || !SHA.test(rec.sha)) {
    throw new Error(`${file}: no pinned commit sha for checkpoint ${name}: rerun the models stage (tsx run.ts repro -f models)`);
  }
  return rec.sha;
}

export function modelArgs(p: Study, name: string, preparedDir: string): string[] {
  const c = p.checkpoints[name];
  if (!c) throw new Error(`unknown checkpoint ${name}; params define: ${Object.keys(p.checkpoints).join(", ")}`);
  const args = c.build === "hub" ? ["--model-name", c.model, "--revision", pinnedSha(name, preparedDir)] : ["--model-name", preparedDir];
  return c.init === "random" ? [...args, "--random-init-seed", String(c.seed)] : args;
}

/** The pretraining run a checkpoint belongs to: its `lineage`, else its own for a random-init control, else "main". */
export function lineageOf(p: Study, name: string): string {
  const c = p.checkpoints[name];
  if (!c) throw new Error(`unknown checkpoint ${name}; params define: ${Object.keys(p.checkpoints).join(", ")}`);
  return c.lineage ?? (c.init === "random" ? `random-init-${name}` : "main");
}

/** Where the chat template the transcripts were generated with comes from (the final checkpoint's):
 * for a Hub checkpoint, the template file the models stage saved from the pinned commit. */
export function templateSource(p: Study, finalDir: string): string {
  const f = p.checkpoints.final;
  return f.build === "hub" ? path.join(finalDir, "chat_template.jinja") : finalDir;
}

/** Environment of GPU stages: the Hub offline (the models stage downloaded the pinned commits), unless
 * the caller set HF_HUB_OFFLINE itself. */
export function gpuStageEnv(): Record<string, string> {
  return { HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE ?? "1" };
}
