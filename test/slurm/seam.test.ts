/**
 * The executor seam on the real single-node SLURM cluster: `ok` is the executor's verdict,
 * `cancel()` stops a job that no runner follows and returns once it has ended, and the bundled
 * CLI (dist/run.mjs, which carries the lazily imported SLURM executor) runs stages on SLURM.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { createSlurmExecutor, type SlurmExecutor } from "../../engine/executor-slurm.ts";
import { resolveContext } from "../../engine/context.ts";
import { jobNamePrefix } from "../../engine/slurm/sbatch.ts";
import type { ExecutorIO, JobSpec } from "../../engine/types.ts";
import { jobName } from "../../engine/slurm/sbatch.ts";
import { REPO, cleanup, ensureSlurm, makeProject, sacctRows, squeueByPrefix, startCli, tmpProject, waitFor } from "./cluster.ts";

const dirs: string[] = [];
let root: string;
let ex: SlurmExecutor;

beforeAll(async () => {
  ensureSlurm();
  root = tmpProject("slurm-seam-");
  dirs.push(root);
  ex = createSlurmExecutor(resolveContext({ cwd: root }), { pollMs: 300, tailMs: 200 });
  await execa("bash", [path.join(REPO, "scripts/build-cli.sh")], { cwd: REPO });
}, 300_000);
afterAll(() => {
  cleanup(dirs);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function spec(name: string, cmd: string[]): JobSpec & { ids: string[] } {
  const ids: string[] = [];
  return {
    ids,
    stage: { name, group: name, cmd, deps: [], outs: [], params: {}, env: {}, resources: { gpus: 0 } },
    cwd: root,
    env: { ...(process.env as Record<string, string>) },
    gpus: [],
    logFile: path.join(root, ".pipeline", "logs", `${name}.log`),
    identity: `id-${name}`,
    onSubmitted: (id) => ids.push(id),
  };
}
const quiet = (): ExecutorIO => ({ onOutput: () => {}, signal: new AbortController().signal });

describe("executor seam on SLURM", () => {
  it("ok: true for a COMPLETED job, false for one that FAILED", async () => {
    const [good, bad] = await Promise.all([ex.run(spec("good", ["true"]), quiet()), ex.run(spec("bad", ["exit 3"]), quiet())]);
    expect(good).toMatchObject({ ok: true, exitCode: 0, state: "COMPLETED" });
    expect(bad).toMatchObject({ ok: false, exitCode: 3, state: "FAILED" });
  });

  it("cancel() stops a job this executor does not follow and returns once it has ended", async () => {
    const s = spec("long", ["sleep 120"]);
    const running = ex.run(s, quiet());
    await waitFor(async () => s.ids.length === 1 && (await ex.isActive(s.ids[0])), 60_000, "the job to start");
    // another executor, as a restarted runner would have: it never followed the job
    const other = createSlurmExecutor(resolveContext({ cwd: root }), { pollMs: 300 });
    const t0 = Date.now();
    await other.cancel(s.ids[0]);
    expect(await other.isActive(s.ids[0])).toBe(false);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(await running).toMatchObject({ ok: false, state: "CANCELLED", jobId: s.ids[0] });
    await other.cancel(s.ids[0]); // already gone: fine
  });

  it("the bundled CLI runs stages with --executor slurm", async () => {
    const dir = makeProject("slurm-bundle-", {
      "params.yaml": "word: hello\n",
      "pipeline.yaml": "stages:\n  greet:\n    cmd: mkdir -p out && echo ${word} from $SLURM_JOB_ID > out/greeting.txt\n    outs: [out]\n",
    });
    dirs.push(dir);
    const cli = (...args: string[]) =>
      execa("node", [path.join(REPO, "dist/run.mjs"), "-C", dir, ...args], { reject: false, all: true, env: { PIPELINE_SLURM_POLL_MS: "300" } });
    const r = await cli("repro", "--executor", "slurm");
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toContain("not available");
    const jobId = /SUBMITTED \(job (\d+)\)/.exec(r.all ?? "")?.[1];
    expect(jobId, r.all).toBeDefined();
    expect(fs.readFileSync(path.join(dir, "out/greeting.txt"), "utf8")).toBe(`hello from ${jobId}\n`);
    const rows = sacctRows({ ids: [jobId!] });
    expect(rows[0]).toMatchObject({ state: "COMPLETED" });
    expect(rows[0].name.startsWith(jobNamePrefix(dir))).toBe(true);
    expect((await cli("status")).exitCode).toBe(0);
  });

  it("a job left by a killed runner with another identity is cancelled through cancel(), then the stage runs afresh", async () => {
    const dir = makeProject("slurm-recancel-", {
      "params.yaml": "x: 1\n",
      "pipeline.yaml": "stages:\n  slow:\n    cmd:\n      - echo step1\n      - sleep 60\n      - echo ${x} > slow.txt\n    outs: [slow.txt]\n",
    });
    dirs.push(dir);
    const first = startCli(dir, ["repro", "--executor", "slurm"]);
    await waitFor(() => /^\[slow\] step1$/m.test(first.out()), 60_000, "the job to run");
    first.child.kill("SIGKILL");
    await first.done;
    const [old] = squeueByPrefix(jobName(dir, "slow"));
    expect(old?.state).toBe("RUNNING");
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: 2\n");
    fs.writeFileSync(path.join(dir, "pipeline.yaml"), fs.readFileSync(path.join(dir, "pipeline.yaml"), "utf8").replace("sleep 60", "sleep 1"));
    const second = await startCli(dir, ["repro", "--executor", "slurm"]).done;
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain(`the still active job ${old.jobId} ran with another cmd, deps, params or env; cancelling it`);
    expect(sacctRows({ ids: [old.jobId] })[0].state.split(" ")[0]).toBe("CANCELLED");
    expect(fs.readFileSync(path.join(dir, "slow.txt"), "utf8")).toBe("2\n");
  });
});
