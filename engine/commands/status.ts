/**
 * `tsx run.ts status [targets] [--json]`: every selected stage, current or with each reason.
 * Exit 0 when all are current, 1 when something is stale.
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { pipelineLocator } from "../locate.ts";
import { buildGraph, selectStages } from "../graph.ts";
import os from "node:os";
import { listInterrupted, readJournals } from "../journal.ts";
import { readLock } from "../lock.ts";
import { holderIsDead, mutexFile, type MutexHolder } from "../mutex.ts";
import { formatReason } from "../plan.ts";
import { computeStatus } from "../status.ts";
import type { StageStatus } from "../types.ts";
import { cacheLine } from "../cache/describe.ts";

/** The stable `--json` shape. */
function statusJson(statuses: StageStatus[]): unknown {
  return {
    stale: statuses.some((s) => s.reasons.length > 0),
    stages: statuses.map((s) => ({
      stage: s.stage,
      current: s.reasons.length === 0,
      reasons: s.reasons.map((r) => ({ ...r, message: formatReason(r) })),
    })),
  };
}

function formatStatus(statuses: StageStatus[]): string {
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
  const graph = buildGraph(project.stages, (p) => fs.existsSync(path.join(ctx.root, p)), pipelineLocator(ctx));
  const selected = selectStages(graph, targets, {});
  // Stages whose last attempt did not finish (the runner's journal) are never "current".
  const interrupted = await listInterrupted(ctx, graph.stages.keys());
  const statuses = await computeStatus(project, graph, selected, { interrupted });
  markRunning(ctx, statuses);
  const removed = Object.keys(readLockOrEmpty(ctx)).filter((n) => !graph.stages.has(n)).sort();
  if (removed.length && !opts.json) {
    process.stdout.write(`removed from pipeline.yaml (their lock entries are dropped at the next repro): ${removed.join(", ")}\n`);
  }
  // where the cache is and how it links outs: once there is a cache (a repro stored outs in it)
  const cache = await cacheLine(ctx);
  const json = cache ? { ...(statusJson(statuses) as object), cache } : statusJson(statuses);
  process.stdout.write(opts.json ? JSON.stringify(json, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 2) + "\n" : formatStatus(statuses) + (cache ? cache.text + "\n" : ""));
  return statuses.some((s) => s.reasons.length > 0) ? 1 : 0;
}

/** Stages a live repro on this host is running right now: "running, by pid N on host H", not "interrupted". */
function markRunning(ctx: ProjectContext, statuses: StageStatus[]): void {
  let holder: MutexHolder | null = null;
  try {
    holder = JSON.parse(fs.readFileSync(mutexFile(ctx), "utf8")) as MutexHolder;
  } catch {
    return;
  }
  if (!holder || typeof holder.pid !== "number" || holder.host !== os.hostname() || holderIsDead(holder)) return;
  const mine = new Set(readJournals(ctx).filter((j) => j.pid === holder!.pid && j.phase !== "interrupted").map((j) => j.stage));
  for (const s of statuses) {
    for (const r of s.reasons) if (r.kind === "interrupted" && mine.has(s.stage)) r.runningBy = `pid ${holder.pid} on host ${holder.host}`;
  }
}

function readLockOrEmpty(ctx: ProjectContext): Record<string, unknown> {
  try {
    return readLock(ctx.lockFile).stages;
  } catch {
    return {};
  }
}
