/**
 * The SLURM executor against the real single-node cluster (scripts/slurm/start.sh): jobs really
 * go through sbatch, squeue and sacct. PIPELINE_SLURM_POLL_MS keeps the waits short.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cancelAllSlurmJobsSync, createSlurmExecutor, type SlurmExecutor } from "../../engine/executor-slurm.ts";
import { resolveContext, type ProjectContext } from "../../engine/context.ts";
import { jobName } from "../../engine/slurm/sbatch.ts";
import type { ExecutorIO, JobResult, JobSpec, Stage } from "../../engine/types.ts";
import { REPO, allOverlap, cleanup, ensureSlurm, lockClusterGpus, sacctRows, squeueIds, tmpProject, waitFor } from "./cluster.ts";

let root: string;
let ctx: ProjectContext;
let ex: SlurmExecutor;

let unlock: () => void = () => {};
beforeAll(async () => {
  ensureSlurm();
  unlock = await lockClusterGpus();
  root = tmpProject("slurm-exec-");
  ctx = resolveContext({ cwd: root });
  ex = createSlurmExecutor(ctx, { pollMs: 300, tailMs: 200 });
}, 300_000);
afterAll(() => {
  if (root) cleanup([root]);
  unlock();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

function spec(name: string, cmd: string[], resources: Stage["resources"] = { gpus: 0 }, env: Record<string, string> = {}): JobSpec & { ids: string[] } {
  const ids: string[] = [];
  return {
    ids,
    stage: { name, group: name.split("@")[0], cmd, deps: [], outs: [], params: {}, env, resources },
    cwd: root,
    // The runner passes its whole environment; a GPU selection of the login node must not leak into jobs.
    env: { ...(process.env as Record<string, string>), ...env, CUDA_VISIBLE_DEVICES: "7" },
    gpus: [],
    logFile: path.join(root, ".pipeline", "logs", `${name}.log`),
    identity: `id-${name}`,
    onSubmitted: (id) => ids.push(id),
  };
}

function io(ac = new AbortController()) {
  const lines: string[] = [];
  const states: string[] = [];
  const x: ExecutorIO = { onOutput: (l) => lines.push(l), onState: (s) => states.push(s), signal: ac.signal };
  return { io: x, lines, states, ac };
}

describe("SLURM executor on a real cluster", () => {
  it("runs foreach-like GPU jobs concurrently, streams their logs and reports their states", async () => {
    const names = ["work@a", "work@b", "work@c"];
    const specs = names.map((n) =>
      spec(n, [`echo "start $ITEM gpu=$CUDA_VISIBLE_DEVICES"`, "sleep 3", `echo "$ITEM" > out-$ITEM.txt`], { gpus: 1 }, { ITEM: n.split("@")[1] }),
    );
    const ios = names.map(() => io());
    const results = await Promise.all(specs.map((s, i) => ex.run(s, ios[i].io)));
    for (const [i, r] of results.entries()) {
      expect(r).toMatchObject({ exitCode: 0, state: "COMPLETED", jobId: specs[i].ids[0] });
      expect(r.peakRssKb).toBeGreaterThan(0);
      expect(fs.readFileSync(path.join(root, `out-${names[i].split("@")[1]}.txt`), "utf8")).toBe(`${names[i].split("@")[1]}\n`);
      expect(ios[i].states[0]).toBe(`SUBMITTED (job ${r.jobId})`);
      expect(ios[i].states.some((s) => s.startsWith("RUNNING on "))).toBe(true);
      expect(ios[i].states.at(-1)).toBe("COMPLETED");
      // the output streamed while it ran; the log file also shows each command (the runner prints those itself)
      expect(ios[i].lines).toContain(`start ${names[i].split("@")[1]} gpu=${ios[i].lines[0].split("gpu=")[1]}`);
      expect(ios[i].lines).not.toContain("$ sleep 3");
      expect(fs.readFileSync(specs[i].logFile, "utf8")).toContain("$ sleep 3\n");
    }
    // SLURM chose the GPUs: three different ones of the fake gpu:4, not the login node's "7"
    const gpus = ios.map((x) => x.lines.find((l) => l.startsWith("start "))!.split("gpu=")[1]);
    expect(new Set(gpus).size).toBe(3);
    expect(gpus).not.toContain("7");
    // they ran at the same time, says accounting
    const rows = sacctRows({ ids: results.map((r) => r.jobId!) });
    expect(rows.map((r) => r.state)).toEqual(["COMPLETED", "COMPLETED", "COMPLETED"]);
    expect(allOverlap(rows)).toBe(true);
    // named after project + stage, tagged with the stage identity
    expect(rows.map((r) => r.name).sort()).toEqual(names.map((n) => jobName(root, n)).sort());
    expect(rows.map((r) => r.comment).sort()).toEqual(names.map((n) => `id-${n}`).sort());
    // the batch script is kept for inspection
    expect(fs.readFileSync(path.join(root, ".pipeline/slurm/work@a.sbatch"), "utf8")).toContain("sleep 3");
  });

  it("waits for GPUs: a fifth gpu job pends on Resources while four hold the fake gpu:4", async () => {
    const specs = [1, 2, 3, 4, 5].map((i) => spec(`hold@${i}`, ["sleep 2"], { gpus: 1 }));
    const ios = specs.map(() => io());
    const results = await Promise.all(specs.map((s, i) => ex.run(s, ios[i].io)));
    expect(results.every((r) => r.state === "COMPLETED")).toBe(true);
    expect(ios.some((x) => x.states.includes("PENDING (Resources)"))).toBe(true);
    const rows = sacctRows({ ids: results.map((r) => r.jobId!) });
    const last = rows.reduce((a, b) => (a.start > b.start ? a : b));
    const first4 = rows.filter((r) => r !== last);
    expect(allOverlap(first4)).toBe(true); // four ran together...
    expect(last.start.getTime()).toBeGreaterThanOrEqual(Math.min(...first4.map((r) => r.end.getTime()))); // ...the fifth waited for a GPU
  });

  it("reports a failing job as FAILED with its exit code and runs nothing after the failing cmd", async () => {
    const s = spec("bad", ["echo before", "exit 3", "echo after > after.txt"]);
    const x = io();
    const r: JobResult = await ex.run(s, x.io);
    expect(r).toMatchObject({ exitCode: 3, state: "FAILED", jobId: s.ids[0] });
    expect(r.message).toMatch(new RegExp(`^exit code 3 \\(SLURM job ${s.ids[0]} FAILED on `));
    expect(x.lines).toContain("before");
    expect(x.lines).toContain("# exit code 3");
    expect(fs.existsSync(path.join(root, "after.txt"))).toBe(false);
    expect(sacctRows({ ids: s.ids })[0]).toMatchObject({ state: "FAILED", exitCode: "3:0" });
  });

  it("explains a job killed for exceeding its memory as OUT_OF_MEMORY", async () => {
    const s = spec("hog", [`python3 -c "x = bytearray(300 * 1024 * 1024); import time; time.sleep(6)"`], { gpus: 0, memory: "50M" });
    const r = await ex.run(s, io().io);
    expect(r.state).toBe("OUT_OF_MEMORY");
    expect(r.exitCode).toBeNull();
    expect(r.message).toMatch(/ran out of memory.*raise resources.memory \(now 50M\)/);
  });

  it("fails with sbatch's reason when SLURM cannot satisfy the request", async () => {
    const s = spec("toobig", ["true"], { gpus: 5 });
    await expect(ex.run(s, io().io)).rejects.toThrow(/stage toobig: sbatch refused the job: .*(Requested node configuration is not available|Invalid generic resource)/s);
    expect(s.ids).toEqual([]);
    // SBATCH_* input variables of the login node reach sbatch (cluster settings outside pipeline.yaml)
    const p = spec("nopart", ["true"]);
    p.env.SBATCH_PARTITION = "no_such_partition";
    await expect(ex.run(p, io().io)).rejects.toThrow(/stage nopart: sbatch refused the job: .*invalid partition/is);
  });

  it("Ctrl-C (abort) scancels the job and waits until it is gone", async () => {
    const s = spec("long", ["echo started", "sleep 300"], { gpus: 1 });
    const x = io();
    const p = ex.run(s, x.io);
    await waitFor(() => x.lines.includes("started"), 30_000, "the job to start");
    x.ac.abort();
    const r = await p;
    expect(r).toMatchObject({ state: "CANCELLED", exitCode: null, jobId: s.ids[0] });
    expect(r.message).toMatch(/CANCELLED by this runner/);
    expect(squeueIds(s.ids)).toEqual([]);
    expect(sacctRows({ ids: s.ids })[0].state).toMatch(/^CANCELLED/);
  });

  it("cancelAllSlurmJobsSync (forced exit) scancels what the process still follows", async () => {
    const s = spec("forced", ["echo started", "sleep 300"]);
    const x = io();
    const p = ex.run(s, x.io);
    await waitFor(() => x.lines.includes("started"), 30_000, "the job to start");
    cancelAllSlurmJobsSync();
    const r = await p;
    expect(r.state).toBe("CANCELLED");
    expect(r.message).toContain(`CANCELLED by ${os.userInfo().username}`);
    expect(squeueIds(s.ids)).toEqual([]);
  });

  it("a pending job is cancelled too", async () => {
    const s = spec("never", ["true"], { gpus: 1 }, {});
    s.stage.slurm = { extraArgs: ["--begin=now+1hour"] };
    const x = io();
    const p = ex.run(s, x.io);
    await waitFor(() => x.states.some((st) => st.startsWith("PENDING")), 30_000, "the job to pend");
    x.ac.abort();
    const r = await p;
    expect(r.state).toBe("CANCELLED");
    expect(squeueIds(s.ids)).toEqual([]);
  });

  it("a runner killed with kill -9 is replaced by one that attaches to the running job", async () => {
    const s = spec("crash", ["echo one", "sleep 4", "echo two > crash.txt"], { gpus: 1 });
    const { ids: _ids, onSubmitted: _cb, ...plain } = s;
    const child = spawn(path.join(REPO, "node_modules/.bin/tsx"), [path.join(REPO, "test/slurm/fixtures/run-job.ts"), JSON.stringify(plain), root], {
      cwd: REPO,
      env: { ...process.env, PIPELINE_SLURM_POLL_MS: "300" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    await waitFor(() => /SUBMITTED \d+/.test(out), 30_000, "the child runner to submit");
    const jobId = /SUBMITTED (\d+)/.exec(out)![1];
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    expect(out).not.toContain("RESULT");

    const fresh = createSlurmExecutor(ctx, { pollMs: 300, tailMs: 200 });
    expect(await fresh.isActive(jobId)).toBe(true);
    expect((await fresh.projectJobs()).map((j) => [j.jobId, j.stage, j.identity])).toContainEqual([jobId, "crash", "id-crash"]);
    const x = io();
    const r = await fresh.attach!(jobId, s, x.io);
    expect(r).toMatchObject({ exitCode: 0, state: "COMPLETED", jobId });
    expect(x.states[0]).toMatch(/^ATTACHED \(job \d+/);
    expect(fs.readFileSync(path.join(root, "crash.txt"), "utf8")).toBe("two\n");
    expect(sacctRows({ name: jobName(root, "crash") }).length).toBe(1); // submitted once
    expect(await fresh.isActive(jobId)).toBe(false);
    // attaching to a job that already ended (the runner was down until after it finished) gives its result at once
    const t0 = Date.now();
    const late = await createSlurmExecutor(ctx, { pollMs: 300 }).attach!(jobId, s, io().io);
    expect(late).toMatchObject({ exitCode: 0, state: "COMPLETED", jobId });
    expect(Date.now() - t0).toBeLessThan(5_000);
    // another project's executor does not claim this project's job
    const other = createSlurmExecutor(resolveContext({ cwd: path.dirname(root) }), { pollMs: 300 });
    expect(await other.isActive(jobId)).toBe(false);
  });
});
