/**
 * `run.ts repro --executor slurm` end to end on the real single-node cluster: the runner submits,
 * waits, hashes and writes the lock exactly as for a local run; failures stay out of the lock;
 * Ctrl-C cancels; a runner killed with kill -9 is replaced by one that re-attaches.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { jobName, jobNamePrefix } from "../../engine/slurm/sbatch.ts";
import { allOverlap, cleanup, ensureSlurm, lockClusterGpus, makeProject, sacctRows, squeueByPrefix, startCli, waitFor } from "./cluster.ts";

const dirs: string[] = [];
function project(files: Record<string, string>): string {
  const d = makeProject("slurm-cli-", files);
  dirs.push(d);
  return d;
}

let unlock: () => void = () => {};
beforeAll(async () => {
  ensureSlurm();
  unlock = await lockClusterGpus();
}, 300_000);
afterAll(() => {
  cleanup(dirs);
  unlock();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const FOREACH = {
  "params.yaml": "items: [a, b, c]\n",
  "pipeline.yaml": `stages:
  work:
    foreach: \${items}
    do:
      cmd:
        - echo "start \${item} on GPU $CUDA_VISIBLE_DEVICES"
        - sleep 4
        - mkdir -p out && echo "\${item}" > out/\${item}.txt
      outs:
        - out/\${item}.txt
      resources: {gpus: 1}
  combine:
    cmd: cat out/a.txt out/b.txt out/c.txt > all.txt
    deps: [out/a.txt, out/b.txt, out/c.txt]
    outs: [all.txt]
`,
};

describe("repro --executor slurm", () => {
  it("runs foreach instances concurrently on SLURM and writes the same lock as a local run", async () => {
    const onSlurm = project(FOREACH);
    const onLocal = project(FOREACH);
    const [s, l] = await Promise.all([
      startCli(onSlurm, ["repro", "--executor", "slurm", "-j", "10"]).done,
      startCli(onLocal, ["repro", "-j", "3", "--gpus", "0,1,2"]).done,
    ]);
    expect(s.code, s.out).toBe(0);
    expect(l.code, l.out).toBe(0);
    expect(fs.readFileSync(path.join(onSlurm, "pipeline.lock"), "utf8")).toBe(fs.readFileSync(path.join(onLocal, "pipeline.lock"), "utf8"));
    expect(fs.readFileSync(path.join(onSlurm, "all.txt"), "utf8")).toBe("a\nb\nc\n");
    // states shown, output streamed with the stage prefix
    for (const i of ["a", "b", "c"]) {
      expect(s.out).toMatch(new RegExp(`work@${i}: SUBMITTED \\(job \\d+\\)`));
      expect(s.out).toMatch(new RegExp(`work@${i}: RUNNING on `));
      expect(s.out).toMatch(new RegExp(`work@${i}: COMPLETED`));
      expect(s.out).toMatch(new RegExp(`start ${i} on GPU \\d`));
    }
    // accounting: one job per stage instance, the three instances overlapping in time
    const rows = sacctRows({ name: [..."abc"].map((i) => jobName(onSlurm, `work@${i}`)).join(",") });
    expect(rows.map((r) => r.state)).toEqual(["COMPLETED", "COMPLETED", "COMPLETED"]);
    expect(allOverlap(rows)).toBe(true);
    const combine = sacctRows({ name: jobName(onSlurm, "combine") });
    expect(combine).toHaveLength(1);
    expect(combine[0].start.getTime()).toBeGreaterThanOrEqual(Math.max(...rows.map((r) => r.end.getTime())));
    // a second run: everything current, nothing submitted
    const again = await startCli(onSlurm, ["repro", "--executor", "slurm", "-j", "10"]).done;
    expect(again.code, again.out).toBe(0);
    expect(again.out).not.toContain("SUBMITTED");
    expect(sacctRows({ name: jobNamePrefix(onSlurm) + "combine" })).toHaveLength(1);
  });

  it("without the SLURM tools on PATH, fails with exit 2 before anything runs and says what to do", async () => {
    const dir = project({ "params.yaml": "x: 1\n", "pipeline.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n" });
    const r = await startCli(dir, ["repro", "--executor", "slurm"], { PATH: "/nonexistent" }).done;
    expect(r.code, r.out).toBe(2);
    expect(r.out).toMatch(/sbatch, squeue, scancel, sacct are not on PATH.*SLURM login node/);
    expect(fs.existsSync(path.join(dir, "a.txt"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "pipeline.lock"))).toBe(false);
  });

  it("a profile's jobs are named after the project and the profile; its state and lock are its own", async () => {
    const dir = project({
      "params.yaml": "msg: default\n",
      "params/alt.yaml": "msg: alt\n",
      "pipeline.yaml": "stages:\n  say:\n    cmd: echo ${msg} > said.txt\n    outs: [said.txt]\n",
    });
    const r = await startCli(dir, ["-P", "params/alt.yaml", "repro", "--executor", "slurm"]).done;
    expect(r.code, r.out).toBe(0);
    expect(fs.readFileSync(path.join(dir, "said.txt"), "utf8")).toBe("alt\n");
    expect(fs.readFileSync(path.join(dir, "pipeline.alt.lock"), "utf8")).toContain("msg: alt");
    expect(fs.existsSync(path.join(dir, ".pipeline/profiles/alt/slurm/say.sbatch"))).toBe(true);
    expect(sacctRows({ name: jobName(dir, "say", "alt") })).toHaveLength(1);
    expect(jobName(dir, "say", "alt")).not.toBe(jobName(dir, "say"));
  });

  it("reports a failing job as FAILED with exit code 3 and records nothing of it", async () => {
    const dir = project({
      "params.yaml": "x: 1\n",
      "pipeline.yaml": `stages:
  good:
    cmd: echo ok > good.txt
    outs: [good.txt]
  bad:
    cmd:
      - echo "about to fail"
      - exit 3
      - echo never > bad.txt
    outs: [bad.txt]
`,
    });
    const r = await startCli(dir, ["repro", "--executor", "slurm", "-j", "10", "-k"]).done;
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/FAILED bad: exit code 3 \(SLURM job \d+ FAILED on \S+ after [\d:]+\)/);
    expect(r.out).toContain("about to fail");
    const lock = fs.readFileSync(path.join(dir, "pipeline.lock"), "utf8");
    expect(lock).toContain("good:");
    expect(lock).not.toContain("bad:");
    expect(fs.existsSync(path.join(dir, "bad.txt"))).toBe(false);
    expect(sacctRows({ name: jobName(dir, "bad") })[0]).toMatchObject({ state: "FAILED", exitCode: "3:0" });
  });

  it("Ctrl-C on the runner cancels its jobs and records nothing", async () => {
    const dir = project({
      "params.yaml": "items: [a, b]\n",
      "pipeline.yaml": `stages:
  long:
    foreach: \${items}
    do:
      cmd: echo "begin \${item}"; sleep 300; echo x > \${item}.txt
      outs:
        - \${item}.txt
      resources: {gpus: 1}
`,
    });
    const run = startCli(dir, ["repro", "--executor", "slurm", "-j", "10"]);
    await waitFor(() => /^\[long@a\] begin a$/m.test(run.out()) && /^\[long@b\] begin b$/m.test(run.out()), 60_000, "both jobs to run");
    const mine = squeueByPrefix(jobNamePrefix(dir));
    expect(mine.map((j) => j.state)).toEqual(["RUNNING", "RUNNING"]);
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code, r.out).toBe(130);
    expect(squeueByPrefix(jobNamePrefix(dir))).toEqual([]);
    const rows = sacctRows({ ids: mine.map((j) => j.jobId) });
    expect(rows.map((x) => x.state.split(" ")[0])).toEqual(["CANCELLED", "CANCELLED"]);
    expect(fs.existsSync(path.join(dir, "pipeline.lock")) ? fs.readFileSync(path.join(dir, "pipeline.lock"), "utf8") : "").not.toContain("long@");
  });

  it("after kill -9 of the runner, the next repro re-attaches to the running job instead of submitting it again", async () => {
    const dir = project({
      "params.yaml": "x: 1\n",
      "pipeline.yaml": `stages:
  slow:
    cmd:
      - echo step1
      - sleep 6
      - echo done > slow.txt
    outs: [slow.txt]
    resources: {gpus: 1}
`,
    });
    const first = startCli(dir, ["repro", "--executor", "slurm"]);
    await waitFor(() => /^\[slow\] step1$/m.test(first.out()), 60_000, "the job to run");
    first.child.kill("SIGKILL");
    await first.done;
    const running = squeueByPrefix(jobName(dir, "slow"));
    expect(running).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, "slow.txt"))).toBe(false);

    const second = await startCli(dir, ["repro", "--executor", "slurm"]).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain(`re-attaching to job ${running[0].jobId}`);
    expect(second.out).not.toContain("SUBMITTED");
    expect(fs.readFileSync(path.join(dir, "slow.txt"), "utf8")).toBe("done\n");
    expect(fs.readFileSync(path.join(dir, "pipeline.lock"), "utf8")).toContain("slow:");
    expect(sacctRows({ name: jobName(dir, "slow") })).toHaveLength(1); // submitted once
    const status = await startCli(dir, ["status"]).done;
    expect(status.code, status.out).toBe(0);
  });

  it("a job that finished while no runner watched is recorded from accounting, not submitted again", async () => {
    const dir = project({
      "params.yaml": "x: 1\n",
      "pipeline.yaml": `stages:
  quick:
    cmd:
      - echo step1
      - sleep 3
      - echo done > quick.txt
    outs: [quick.txt]
    resources: {gpus: 1}
`,
    });
    const first = startCli(dir, ["repro", "--executor", "slurm"]);
    await waitFor(() => /^\[quick\] step1$/m.test(first.out()), 60_000, "the job to run");
    first.child.kill("SIGKILL");
    await first.done;
    await waitFor(() => squeueByPrefix(jobName(dir, "quick")).length === 0, 60_000, "the job to finish");
    const second = await startCli(dir, ["repro", "--executor", "slurm"]).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain("is finished; will re-attach");
    expect(second.out).not.toContain("SUBMITTED");
    expect(fs.readFileSync(path.join(dir, "quick.txt"), "utf8")).toBe("done\n");
    expect(sacctRows({ name: jobName(dir, "quick") })).toHaveLength(1); // submitted once
    expect((await startCli(dir, ["status"]).done).code).toBe(0);
  });
});
