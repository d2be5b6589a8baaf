/**
 * A job killed by its time limit (SLURM's smallest: 1 minute; the controller notices within
 * ~30 s more) is reported by `repro --executor slurm` as TIMEOUT with what to raise, and stays
 * out of the lock. Own file: it waits about 1.5 minutes and vitest runs files side by side.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { jobName } from "../../engine/slurm/sbatch.ts";
import { cleanup, ensureSlurm, makeProject, sacctRows, startCli } from "./cluster.ts";

let dir: string;
beforeAll(() => {
  ensureSlurm();
  dir = makeProject("slurm-timeout-", {
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
});
afterAll(() => {
  if (dir) cleanup([dir]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it("reports a job killed by its time limit as TIMEOUT and records nothing", { timeout: 240_000 }, async () => {
  const t0 = Date.now();
  const r = await startCli(dir, ["repro", "--executor", "slurm"], { PIPELINE_SLURM_POLL_MS: "1000" }).done;
  expect(r.code, r.out).toBe(1);
  expect(Date.now() - t0).toBeGreaterThan(59_000);
  expect(r.out).toMatch(/^\[slow\] begin$/m);
  expect(r.out).toMatch(/FAILED slow: .*SLURM job \d+ was killed by its time limit \(TIMEOUT, limit 00:01:00\).*raise resources.time \(now 0:01:00\)/);
  expect(fs.existsSync(path.join(dir, "pipeline.lock")) ? fs.readFileSync(path.join(dir, "pipeline.lock"), "utf8") : "").not.toContain("slow:");
  const rows = sacctRows({ name: jobName(dir, "slow") });
  expect(rows.map((x) => x.state)).toEqual(["TIMEOUT"]);
});
