/** Temporary projects and the real CLI (`node --import tsx run.ts -C dir ...`) for runner tests. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "vitest";

export const REPO = path.resolve(import.meta.dirname, "../..");
const RUN_TS = path.join(REPO, "run.ts");

const made: string[] = [];
// registered while the importing test file is collected: runs after all its tests
afterAll(() => {
  if (process.env.KEEP_TEST_PROJECTS) return;
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A temporary project (removed after the test file; KEEP_TEST_PROJECTS=1 keeps them). */
export function makeProject(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "runner-"));
  made.push(dir);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  out: string;
}

/** Start the CLI in its own process group (so a test can kill the runner alone or the whole group). */
export function startCli(dir: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ["--import", "tsx", RUN_TS, "-C", dir, ...args], {
    cwd: REPO,
    env: { ...process.env, PIPELINE_KILL_GRACE_MS: "2000", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, out: stdout + stderr }));
  });
  return { child, done };
}

export function cli(dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(dir, args, env).done;
}

export async function waitFor(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function read(dir: string, rel: string): string {
  return fs.readFileSync(path.join(dir, rel), "utf8");
}

export function exists(dir: string, rel: string): boolean {
  return fs.existsSync(path.join(dir, rel));
}

/** Live (not zombie) processes of a process group, from /proc. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "latin1");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[2]) === pgid && rest[0] !== "Z" && rest[0] !== "X") out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * The same commands in this process (no tsx start-up per call: the suite stays fast). Stages
 * still run as real processes; stdout/stderr of this process are captured during the call, and
 * errors map to exit codes as run.ts does. Flags: the subset the tests use.
 */
export async function inproc(dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const { resolveContext } = await import("../../engine/context.ts");
  const { PipelineError } = await import("../../engine/errors.ts");
  const [cmd, ...rest] = args;
  const targets: string[] = [];
  const opts: Record<string, unknown> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "-f" || a === "--force") opts.force = true;
    else if (a === "-n" || a === "--dry") opts.dry = true;
    else if (a === "--downstream") opts.downstream = true;
    else if (a === "-k" || a === "--keep-going") opts.keepGoing = true;
    else if (a === "--wait") opts.wait = true;
    else if (a === "--json") opts.json = true;
    else if (a === "-j" || a === "--jobs") opts.jobs = parseInt(rest[++i]!, 10);
    else if (a === "--gpus") opts.gpus = rest[++i];
    else if (a.startsWith("-")) throw new Error(`inproc: flag ${a} not supported`);
    else targets.push(a);
  }
  let stdout = "";
  let stderr = "";
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  process.stdout.write = ((s: string | Uint8Array) => {
    stdout += String(s);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    const ctx = resolveContext({ cwd: dir });
    if (cmd === "repro") code = await (await import("../../engine/commands/repro.ts")).repro(ctx, targets, opts);
    else if (cmd === "status") code = await (await import("../../engine/commands/status.ts")).status(ctx, targets, opts as { json?: boolean });
    else throw new Error(`inproc: command ${cmd} not supported`);
  } catch (e) {
    if (e instanceof PipelineError) {
      stderr += `error: ${e.message}\n`;
      code = e.exitCode;
    } else {
      stderr += `internal error: ${(e as Error).stack}\n`;
      code = 3;
    }
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return { code, signal: null, stdout, stderr, out: stdout + stderr };
}
