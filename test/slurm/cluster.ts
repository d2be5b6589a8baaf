/**
 * Test helpers for the real single-node SLURM cluster (scripts/slurm/start.sh): bring it up when
 * `sinfo` does not answer, and ask sacct/squeue about jobs.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { jobNamePrefix } from "../../engine/slurm/sbatch.ts";

export const REPO = path.resolve(import.meta.dirname, "../..");

/** Start the cluster if needed (idempotent and fast when it is up). */
export function ensureSlurm(): void {
  const up = spawnSync("timeout", ["5", "sinfo", "-h", "-o", "%T"], { encoding: "utf8" });
  if (up.status === 0 && /idle|mixed|allocated/.test(up.stdout)) return;
  execFileSync("bash", [path.join(REPO, "scripts/slurm/start.sh")], { stdio: ["ignore", "inherit", "inherit"], timeout: 600_000 });
}

export interface AcctRow {
  jobId: string;
  name: string;
  state: string;
  exitCode: string;
  start: Date;
  end: Date;
  comment: string;
}

/**
 * Allocation rows (-X) of the given job ids, or of every job with that name. slurmdbd may hear
 * of a job's steps before its start record and shows a placeholder (name "allocation", no
 * comment) for a moment: read again until the records are complete.
 */
export function sacctRows(sel: { ids?: string[]; name?: string; min?: number }): AcctRow[] {
  const min = sel.min ?? sel.ids?.length ?? sel.name?.split(",").length ?? 1;
  for (let i = 0; ; i++) {
    const rows = sacctOnce(sel);
    const complete = rows.length >= min && rows.every((r) => r.name !== "allocation" && !Number.isNaN(r.end.getTime()));
    if (complete || i >= 50) return rows;
    execFileSync("sleep", ["0.2"]);
  }
}

function sacctOnce(sel: { ids?: string[]; name?: string }): AcctRow[] {
  const args = ["-n", "-X", "-P", "-S", "2000-01-01", "-o", "JobID,JobName%200,State,ExitCode,Start,End,Comment%200"];
  if (sel.ids) args.push("-j", sel.ids.join(","));
  if (sel.name) args.push(`--name=${sel.name}`);
  const out = execFileSync("sacct", args, { encoding: "utf8" });
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [jobId, name, state, exitCode, start, end, comment] = l.split("|");
      return { jobId, name, state, exitCode, start: new Date(start), end: new Date(end), comment };
    });
}

/** Job ids squeue still lists (any state) among `ids`. */
export function squeueIds(ids: string[]): string[] {
  const r = spawnSync("squeue", ["-h", "-j", ids.join(","), "-o", "%i|%T"], { encoding: "utf8" });
  if (r.status !== 0) return [];
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .filter((l) => !/\|(COMPLETED|CANCELLED|FAILED|TIMEOUT)$/.test(l))
    .map((l) => l.split("|")[0]);
}

/** Poll `cond` until true or `ms` elapse. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function tmpProject(prefix: string): string {
  // /tmp is fine: this single node is its own shared filesystem.
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Whether intervals overlap pairwise-all: the latest start is before the earliest end. */
export function allOverlap(rows: { start: Date; end: Date }[]): boolean {
  const latestStart = Math.max(...rows.map((r) => r.start.getTime()));
  const earliestEnd = Math.min(...rows.map((r) => r.end.getTime()));
  return latestStart < earliestEnd;
}

/** A temporary project made of `files` (path -> text). */
export function makeProject(prefix: string, files: Record<string, string>): string {
  const dir = tmpProject(prefix);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

export interface CliRun {
  child: ChildProcess;
  /** stdout + stderr so far. */
  out: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>;
}

const children = new Set<ChildProcess>();

/** After a test: kill runners still running (a failed assertion leaves them) and scancel their jobs. */
export function cleanup(dirs: string[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
  const ids = dirs.flatMap((d) => squeueByPrefix(jobNamePrefix(d)).map((j) => j.jobId));
  if (ids.length) spawnSync("scancel", ids);
}

/** The real CLI, `node --import tsx run.ts -C dir ...args`, with a short SLURM poll interval. */
export function startCli(dir: string, args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO, "run.ts"), "-C", dir, ...args], {
    cwd: REPO,
    env: { ...process.env, PIPELINE_SLURM_POLL_MS: "300", PIPELINE_SLURM_TAIL_MS: "200", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, out }));
  });
  return { child, out: () => out, done };
}

/** squeue entries (any user) whose job name starts with `prefix`: "id|STATE". */
export function squeueByPrefix(prefix: string): { jobId: string; state: string; name: string }[] {
  const r = spawnSync("squeue", ["-h", "-o", "%i|%T|%j"], { encoding: "utf8" });
  if (r.status !== 0) return [];
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [jobId, state, name] = l.split("|");
      return { jobId, state, name };
    })
    .filter((e) => e.name.startsWith(prefix) && !/^(COMPLETED|CANCELLED|FAILED|TIMEOUT)$/.test(e.state));
}

const GPU_LOCK = path.join(os.tmpdir(), "pipeline-slurm-tests.gpu-lock");

/**
 * The test cluster has 4 fake GPUs and vitest runs test files side by side: files whose tests
 * count on free GPUs (concurrency, pending on Resources) hold this cross-process lock for their
 * duration. A lock whose holder died is taken over.
 */
export async function lockClusterGpus(): Promise<() => void> {
  for (;;) {
    try {
      fs.mkdirSync(GPU_LOCK);
      fs.writeFileSync(path.join(GPU_LOCK, "pid"), String(process.pid));
      return () => fs.rmSync(GPU_LOCK, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let holder = NaN;
      try {
        holder = Number(fs.readFileSync(path.join(GPU_LOCK, "pid"), "utf8"));
      } catch {
        /* being written */
      }
      let alive = true;
      if (Number.isInteger(holder)) {
        try {
          process.kill(holder, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) fs.rmSync(GPU_LOCK, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
}
