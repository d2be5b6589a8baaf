/** Model arguments for a checkpoint: a Hub id + revision, or a local directory (no revision). */
import type { Study } from "./params.ts";

export function modelArgs(p: Study, name: string, preparedDir: string): string[] {
  const c = p.checkpoints[name];
  if (!c) throw new Error(`unknown checkpoint ${name}; params define: ${Object.keys(p.checkpoints).join(", ")}`);
  const args = c.build === "hub" ? ["--model-name", c.model, "--checkpoint", c.revision] : ["--model-name", preparedDir];
  return c.init === "random" ? [...args, "--random-init-seed", String(c.seed)] : args;
}

/** The pretraining run a checkpoint belongs to: its `lineage`, else its own for a random-init control, else "main". */
export function lineageOf(p: Study, name: string): string {
  const c = p.checkpoints[name];
  return c.lineage ?? (c.init === "random" ? `random-init-${name}` : "main");
}

/** The model whose chat template the transcripts were generated with (the final checkpoint). */
export function templateSource(p: Study, finalDir: string): string {
  const f = p.checkpoints.final;
  return f.build === "hub" ? f.model : finalDir;
}
