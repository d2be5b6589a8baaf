/**
 * `tsx run.ts status [targets] [--json]`: every selected stage, current or with each reason.
 * Exit 0 when all are current, 1 when something is stale.
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { buildGraph, selectStages } from "../graph.ts";
import { listInterrupted } from "../journal.ts";
import { formatReason } from "../plan.ts";
import { computeStatus } from "../status.ts";
import type { StageStatus } from "../types.ts";
import { cacheLine } from "../cache/describe.ts";

/** The stable `--json` shape. */
export function statusJson(statuses: StageStatus[]): unknown {
  return {
    stale: statuses.some((s) => s.reasons.length > 0),
    stages: statuses.map((s) => ({
      stage: s.stage,
      current: s.reasons.length === 0,
      reasons: s.reasons.map((r) => ({ ...r, message: formatReason(r) })),
    })),
  };
}

export function formatStatus(statuses: StageStatus[]): string {
  const lines: string[] = [];
  for (const s of statuses) {
    if (s.reasons.length === 0) lines.push(`${s.stage}: current`);
    else {
      lines.push(`${s.stage}: stale`);
      for (const r of s.reasons) lines.push(`    ${formatReason(r)}`);
    }
  }
  const stale = statuses.filter((s) => s.reasons.length > 0).length;
  lines.push(
    stale === 0
      ? `all ${statuses.length} stage${statuses.length === 1 ? "" : "s"} current`
      : `${stale} of ${statuses.length} stage${statuses.length === 1 ? "" : "s"} stale (run: tsx run.ts repro)`,
  );
  return lines.join("\n") + "\n";
}

export async function status(ctx: ProjectContext, targets: string[], opts: { json?: boolean }): Promise<number> {
  const project = await loadProject(ctx);
  const graph = buildGraph(project.stages, (p) => fs.existsSync(path.join(ctx.root, p)));
  const selected = selectStages(graph, targets, {});
  // Stages whose last attempt did not finish (the runner's journal) are never "current".
  const interrupted = await listInterrupted(ctx);
  const statuses = await computeStatus(project, graph, selected, { interrupted });
  // where the cache is and how it links outs: once there is a cache (a repro stored outs in it)
  const cache = await cacheLine(ctx);
  const json = cache ? { ...(statusJson(statuses) as object), cache } : statusJson(statuses);
  process.stdout.write(opts.json ? JSON.stringify(json, null, 2) + "\n" : formatStatus(statuses) + (cache ? cache.text + "\n" : ""));
  return statuses.some((s) => s.reasons.length > 0) ? 1 : 0;
}
