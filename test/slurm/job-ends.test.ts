/**
 * Jobs that SLURM ends: a node failure (NODE_FAIL, by setting the node DOWN under a running job)
 * and a time limit (TIMEOUT; SLURM's smallest limit is 1 minute and the controller notices
 * within ~30 s more). Both through `repro --executor slurm`: explained, and kept out of the lock.
 * Own file: the time limit takes about 1.5 minutes and vitest runs files side by side. The
 * time-limit test comes first: the node-failure test waits for the cluster lock (other files' jobs).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { jobName } from "../../engine/slurm/sbatch.ts";
import { cleanup, ensureSlurm, lockClusterGpus, makeProject, sacctRows, startCli, waitFor } from "./cluster.ts";

const dirs: string[] = [];
beforeAll(() => ensureSlurm());
afterAll(() => {
  cleanup(dirs);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function lockText(dir: string): string {
  const f = path.join(dir, "pipeline.lock");
  return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
}

function nodeState(node: string): string {
  return spawnSync("sinfo", ["-h", "-n", node, "-o", "%T"], { encoding: "utf8" }).stdout.trim();
}

it("reports a job killed by its time limit as TIMEOUT and records nothing", { timeout: 240_000 }, async () => {
  const dir = makeProject("slurm-timeout-", {
    "params.yaml": "x: 1\n",
    "pipeline.yaml": `stages:
  slow:
    cmd:
      - echo begin
      - sleep 600
      - echo never > slow.txt
    outs: [slow.txt]
    resources: {gpus: 0, time: "0:01:00"}
`,
  });
  dirs.push(dir);
  const t0 = Date.now();
  const r = await startCli(dir, ["repro", "--executor", "slurm"], { PIPELINE_SLURM_POLL_MS: "1000" }).done;
  expect(r.code, r.out).toBe(1);
  expect(Date.now() - t0).toBeGreaterThan(59_000);
  expect(r.out).toMatch(/^\[slow\] begin$/m);
  expect(r.out).toMatch(/FAILED slow: .*SLURM job \d+ was killed by its time limit \(TIMEOUT, limit 00:01:00\).*raise resources.time \(now 0:01:00\)/);
  expect(lockText(dir)).not.toContain("slow:");
  const rows = sacctRows({ name: jobName(dir, "slow") });
  expect(rows.map((x) => x.state)).toEqual(["TIMEOUT"]);
});

it("reports a job whose node failed as NODE_FAIL and records nothing", { timeout: 300_000 }, async () => {
  // Setting the node DOWN kills every job on it: hold the cluster lock so no other test's job runs.
  const unlock = await lockClusterGpus();
  const node = os.hostname().split(".")[0];
  const dir = makeProject("slurm-nodefail-", {
    "params.yaml": "x: 1\n",
    "pipeline.yaml": "stages:\n  doomed:\n    cmd:\n      - echo running\n      - sleep 120\n      - echo x > doomed.txt\n    outs: [doomed.txt]\n",
  });
  dirs.push(dir);
  try {
    const run = startCli(dir, ["repro", "--executor", "slurm"]);
    await waitFor(() => /^\[doomed\] running$/m.test(run.out()), 60_000, "the job to run");
    const down = spawnSync("scontrol", ["update", `NodeName=${node}`, "State=DOWN", "Reason=node-fail test"], { encoding: "utf8" });
    expect(down.status, down.stderr).toBe(0);
    const r = await run.done;
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(new RegExp(`FAILED doomed: .*SLURM job \\d+ failed because its node ${node} failed \\(NODE_FAIL\\).*--exclude=${node}`));
    expect(lockText(dir)).not.toContain("doomed:");
    expect(sacctRows({ name: jobName(dir, "doomed") })[0].state).toBe("NODE_FAIL");
  } finally {
    spawnSync("scontrol", ["update", `NodeName=${node}`, "State=RESUME"]);
    await waitFor(() => /^(idle|mixed|allocated)$/.test(nodeState(node)), 60_000, `node ${node} to come back`);
    unlock();
  }
});
