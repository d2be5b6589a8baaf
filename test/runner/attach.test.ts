/**
 * Re-attaching to a scheduler job after the runner died, through the Runner with a small real
 * "scheduler" executor: jobs are detached bash processes that write their exit code to a file, so
 * a new runner can follow (attach) or cancel them without being their parent.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { resolveContext } from "../../engine/context.ts";
import { loadProject } from "../../engine/config.ts";
import { buildGraph, selectStages } from "../../engine/graph.ts";
import { Hasher } from "../../engine/hashing.ts";
import { Runner } from "../../engine/runner.ts";
import { Terminal } from "../../engine/output.ts";
import { Provenance } from "../../engine/provenance.ts";
import type { Executor, ExecutorIO, JobResult, JobSpec } from "../../engine/types.ts";
import { makeProject, read, waitFor } from "./helpers.ts";

const pids: number[] = [];
afterAll(() => {
  for (const p of pids) {
    try {
      process.kill(-p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

/** Jobs are detached process groups; the job id is the pgid; `<log>.rc` receives the exit code. */
class PidExecutor implements Executor {
  readonly name = "pid";
  frozen = false; // a "crashed" runner: never returns
  async run(job: JobSpec, io: ExecutorIO): Promise<JobResult> {
    fs.rmSync(job.logFile + ".rc", { force: true });
    const out = fs.openSync(job.logFile, "w");
    const script = `${job.stage.cmd.join(" && ")}; echo $? > '${job.logFile}.rc'`;
    const child = spawn("bash", ["-c", script], { cwd: job.cwd, env: job.env, detached: true, stdio: ["ignore", out, out] });
    child.unref();
    fs.closeSync(out);
    pids.push(child.pid!);
    job.onSubmitted?.(String(child.pid));
    return this.attach(String(child.pid), job, io);
  }
  async isActive(jobId: string): Promise<boolean> {
    try {
      process.kill(-Number(jobId), 0);
      return true;
    } catch {
      return false;
    }
  }
  async cancel(jobId: string): Promise<void> {
    try {
      process.kill(-Number(jobId), "SIGKILL");
    } catch {
      return; // gone
    }
    while (await this.isActive(jobId)) await new Promise((r) => setTimeout(r, 20));
  }
  async attach(jobId: string, job: JobSpec, io: ExecutorIO): Promise<JobResult> {
    const startedAt = new Date().toISOString();
    if (io.signal.aborted) {
      try {
        process.kill(-Number(jobId), "SIGKILL");
      } catch {
        /* gone */
      }
    }
    for (;;) {
      if (this.frozen) await new Promise(() => {});
      if (fs.existsSync(job.logFile + ".rc")) {
        const rc = Number(fs.readFileSync(job.logFile + ".rc", "utf8"));
        return { ok: rc === 0, exitCode: rc, startedAt, endedAt: new Date().toISOString(), jobId };
      }
      if (!(await this.isActive(jobId))) return { ok: false, exitCode: null, signal: "SIGKILL", startedAt, endedAt: new Date().toISOString(), jobId, state: "CANCELLED" };
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function runner(dir: string, exec: PidExecutor, out: { text: string }) {
  const ctx = resolveContext({ cwd: dir });
  const project = await loadProject(ctx);
  const graph = buildGraph(project.stages, (p) => fs.existsSync(path.join(dir, p)));
  const selected = selectStages(graph, [], {});
  const write = (s: string) => {
    out.text += s;
    return true;
  };
  return new Runner({
    project, graph, selected, force: false, forceTargets: new Set(), keepGoing: false, jobs: 1,
    executorName: () => "pid",
    executor: async () => exec,
    hasher: new Hasher(ctx),
    terminal: new Terminal({ stream: { write, isTTY: false } }),
    provenance: new Provenance(ctx),
    signal: new AbortController().signal,
  });
}

const PROJECT = (lr: number) => ({
  "params.yaml": `lr: ${lr}\n`,
  "pipeline.yaml": `stages:
  train:
    cmd: echo \${lr} >> attempts.txt && echo partial > model.txt && touch started.flag && while [ ! -e release ]; do sleep 0.02; done && echo \${lr} > model.txt
    outs: [model.txt]
`,
});

async function crashWhileRunning(dir: string) {
  const exec = new PidExecutor();
  const out = { text: "" };
  const r = await runner(dir, exec, out);
  await r.recover();
  void r.run(await r.plan(), []);
  await waitFor(() => fs.existsSync(path.join(dir, "started.flag")), "the job to start");
  exec.frozen = true; // the runner is gone; its job runs on
}

describe("re-attach to a scheduler job after a runner crash", () => {
  it("same identity: follows the running job instead of submitting it again, then records it", async () => {
    const dir = makeProject(PROJECT(1));
    await crashWhileRunning(dir);
    const out = { text: "" };
    const r = await runner(dir, new PidExecutor(), out);
    await r.recover();
    expect(out.text).toMatch(/train: job \d+ of an interrupted run .* is still active; will re-attach to it/);
    const plan = await r.plan();
    setTimeout(() => fs.writeFileSync(path.join(dir, "release"), ""), 200);
    const s = await r.run(plan, []);
    expect(s.ran).toEqual(["train"]);
    expect(out.text).toMatch(/running train \(pid\): re-attaching to job \d+/);
    expect(read(dir, "attempts.txt")).toBe("1\n"); // submitted once
    expect(read(dir, "model.txt")).toBe("1\n");
    expect(read(dir, "pipeline.lock")).toContain("lr: 1");
    expect(fs.readdirSync(path.join(dir, ".pipeline/journal"))).toEqual([]);
  });

  it("changed params: cancels the old job, rolls back, runs afresh", async () => {
    const dir = makeProject(PROJECT(1));
    await crashWhileRunning(dir);
    const oldJob = Number(JSON.parse(read(dir, ".pipeline/journal/train.json")).jobId);
    fs.writeFileSync(path.join(dir, "params.yaml"), "lr: 2\n");
    fs.rmSync(path.join(dir, "started.flag"));
    const out = { text: "" };
    const r = await runner(dir, new PidExecutor(), out);
    await r.recover();
    const plan = await r.plan();
    const done = r.run(plan, []);
    await waitFor(() => fs.existsSync(path.join(dir, "started.flag")), "the new job to start");
    fs.writeFileSync(path.join(dir, "release"), "");
    const s = await done;
    expect(s.ran).toEqual(["train"]);
    expect(out.text).toMatch(/the still active job \d+ ran with another cmd, deps, params or env; cancelling it/);
    expect(await new PidExecutor().isActive(String(oldJob))).toBe(false);
    expect(read(dir, "attempts.txt")).toBe("1\n2\n");
    expect(read(dir, "model.txt")).toBe("2\n");
    expect(read(dir, "pipeline.lock")).toContain("lr: 2");
  });
});
