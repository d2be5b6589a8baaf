/**
 * A record per running job, kept apart from the journal: `<profileStateDir>/running/<stage>.json`
 * = {stage, executor, jobId, runner pid, host}. Written when the executor knows the job id
 * (with the journal), removed when the job has ended. If a runner dies and its journal is lost or
 * garbled, recovery still finds (and stops) the process groups it left running from these.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import { writeFileAtomicSync } from "./journal.ts";
import { safeName } from "./output.ts";

export interface RunningJob {
  stage: string;
  executor: string;
  jobId: string;
  pid: number;
  host: string;
}

function runningDir(ctx: ProjectContext): string {
  return path.join(ctx.profileStateDir, "running");
}

export function writeRunning(ctx: ProjectContext, stage: string, executor: string, jobId: string): void {
  const r: RunningJob = { stage, executor, jobId, pid: process.pid, host: os.hostname() };
  writeFileAtomicSync(path.join(runningDir(ctx), `${safeName(stage)}.json`), JSON.stringify(r) + "\n", { durable: false });
}

export function removeRunning(ctx: ProjectContext, stage: string): void {
  fs.rmSync(path.join(runningDir(ctx), `${safeName(stage)}.json`), { force: true });
}

/** Every readable record (a garbled one is skipped: it names no job to stop). */
export function readRunning(ctx: ProjectContext): { file: string; job: RunningJob }[] {
  let names: string[];
  try {
    names = fs.readdirSync(runningDir(ctx));
  } catch {
    return [];
  }
  const out: { file: string; job: RunningJob }[] = [];
  for (const n of names.sort()) {
    if (!n.endsWith(".json")) continue;
    const file = path.join(runningDir(ctx), n);
    try {
      const j = JSON.parse(fs.readFileSync(file, "utf8")) as RunningJob;
      if (typeof j.stage === "string" && typeof j.jobId === "string" && typeof j.executor === "string") out.push({ file, job: j });
    } catch {
      /* unreadable: nothing to act on */
    }
  }
  return out;
}
