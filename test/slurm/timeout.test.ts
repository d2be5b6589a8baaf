/**
 * A job killed by its time limit (SLURM's smallest: 1 minute; the controller notices within
 * ~30 s more) is reported as TIMEOUT with what to raise. Own file: it waits about 1.5 minutes and
 * vitest runs files side by side.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { createSlurmExecutor } from "../../engine/executor-slurm.ts";
import { resolveContext } from "../../engine/context.ts";
import type { JobSpec } from "../../engine/types.ts";
import { ensureSlurm, sacctRows, tmpProject } from "./cluster.ts";

let root: string;
beforeAll(() => {
  ensureSlurm();
  root = tmpProject("slurm-timeout-");
});
afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

it("reports a job killed by its time limit as TIMEOUT", { timeout: 240_000 }, async () => {
  const ex = createSlurmExecutor(resolveContext({ cwd: root }), { pollMs: 500 });
  const ids: string[] = [];
  const job: JobSpec = {
    stage: { name: "slow", group: "slow", cmd: ["echo begin", "sleep 600"], deps: [], outs: [], params: {}, env: {}, resources: { gpus: 0, time: "0:01:00" } },
    cwd: root,
    env: process.env as Record<string, string>,
    gpus: [],
    logFile: path.join(root, ".pipeline/logs/slow.log"),
    identity: "id-slow",
    onSubmitted: (id) => ids.push(id),
  };
  const lines: string[] = [];
  const t0 = Date.now();
  const r = await ex.run(job, { onOutput: (l) => lines.push(l), signal: new AbortController().signal });
  expect(r).toMatchObject({ state: "TIMEOUT", exitCode: null, jobId: ids[0] });
  expect(r.message).toMatch(/killed by its time limit \(TIMEOUT, limit 00:01:00\).*raise resources.time \(now 0:01:00\)/);
  expect(Date.now() - t0).toBeGreaterThan(59_000);
  expect(lines).toContain("begin");
  expect(sacctRows({ ids })[0].state).toBe("TIMEOUT");
});
