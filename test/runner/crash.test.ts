/**
 * The runner under hostile conditions, with real processes: kill -9 of the runner (with or
 * without its stage's process group), Ctrl-C, two concurrent repros, a stale mutex, persist outs.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { exists, groupMembers, inproc, makeProject, read, startCli, waitFor } from "./helpers.ts";

/** A stage that writes a partial out and then, if the file `hold` exists, blocks until `release` exists. */
const HOLDING = {
  "params.yaml": "{}\n",
  "src.txt": "v1\n",
  "pipeline.yaml": `stages:
  slow:
    cmd: echo partial > o.txt && touch started.flag && if [ -e hold ]; then while [ ! -e release ]; do sleep 0.05; done; fi && cat src.txt > o.txt
    deps: [src.txt]
    outs: [o.txt]
  next:
    cmd: cat o.txt > n.txt
    deps: [o.txt]
    outs: [n.txt]
`,
};

function journalOf(dir: string, stage: string): { jobId?: string; phase: string } | null {
  const f = path.join(dir, ".pipeline/journal", `${stage}.json`);
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, "utf8")) : null;
}

function pgidOf(dir: string, stage: string): number {
  return Number(journalOf(dir, stage)!.jobId!.split(":").at(-2));
}

/** Start a repro whose stage `slow` blocks; resolves once the stage runs. */
async function startBlocked(dir: string, args: string[] = [], env: Record<string, string> = {}) {
  fs.writeFileSync(path.join(dir, "hold"), "");
  fs.rmSync(path.join(dir, "started.flag"), { force: true });
  fs.rmSync(path.join(dir, "release"), { force: true });
  const run = startCli(dir, ["repro", ...args], env);
  await waitFor(() => exists(dir, "started.flag") && !!journalOf(dir, "slow")?.jobId, "the stage to start");
  return run;
}

describe("kill -9 of the runner", () => {
  it("runner and stage killed (machine crash): status says interrupted, repro restores and completes", async () => {
    const dir = makeProject(HOLDING);
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    const lock1 = read(dir, "pipeline.lock");
    fs.writeFileSync(path.join(dir, "src.txt"), "v2\n");

    const { child, done } = await startBlocked(dir);
    const pgid = pgidOf(dir, "slow");
    expect(read(dir, "o.txt")).toBe("partial\n"); // the attempt overwrote the out (its last good version is in a backup)
    process.kill(child.pid!, "SIGKILL");
    process.kill(-pgid, "SIGKILL");
    await done;
    await waitFor(() => groupMembers(pgid).length === 0, "the stage group to die");
    expect(exists(dir, ".pipeline/repro.mutex.json")).toBe(true); // left behind by the dead runner

    const st = await inproc(dir, ["status"]);
    expect(st.code).toBe(1);
    expect(st.out).toMatch(/slow: stale[\s\S]*interrupted/);
    expect(read(dir, "pipeline.lock")).toBe(lock1);

    fs.rmSync(path.join(dir, "hold"));
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/taking over the repro mutex left by a dead process/);
    expect(r.out).toMatch(/recovered slow: its run .* was interrupted; restored its last good outputs/);
    expect(read(dir, "o.txt")).toBe("v2\n");
    expect(read(dir, "n.txt")).toBe("v2\n");
    expect(fs.readdirSync(path.join(dir, ".pipeline/journal"))).toEqual([]);
    expect(fs.existsSync(path.join(dir, ".pipeline/backup/slow"))).toBe(false); // no empty backup folder left
    const st2 = await inproc(dir, ["status"]);
    expect(st2.code, st2.out).toBe(0);
    expect(read(dir, "pipeline.lock")).not.toBe(lock1);
  });

  it("only the runner killed: the next repro stops the orphaned stage group, rolls back and completes", async () => {
    const dir = makeProject(HOLDING);
    const { child, done } = await startBlocked(dir);
    const pgid = pgidOf(dir, "slow");
    process.kill(child.pid!, "SIGKILL");
    await done;
    expect(groupMembers(pgid).length).toBeGreaterThan(0); // the stage still runs, orphaned
    fs.rmSync(path.join(dir, "hold"));
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/slow: stopping job .* left running by an interrupted run/);
    expect(groupMembers(pgid)).toEqual([]);
    expect(read(dir, "o.txt")).toBe("v1\n");
    expect((await inproc(dir, ["status"])).code).toBe(0);
  });
});

describe("Ctrl-C", () => {
  it("SIGINT stops the stage's process group, rolls back, records nothing, exits 130", async () => {
    const dir = makeProject(HOLDING);
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    const lock1 = read(dir, "pipeline.lock");
    fs.writeFileSync(path.join(dir, "src.txt"), "v2\n");
    const { child, done } = await startBlocked(dir);
    const pgid = pgidOf(dir, "slow");
    expect(groupMembers(pgid).length).toBeGreaterThan(0);
    process.kill(child.pid!, "SIGINT");
    const r = await done;
    expect(r.code, r.out).toBe(130);
    expect(groupMembers(pgid)).toEqual([]);
    expect(r.out).toMatch(/slow: interrupted; its outputs were rolled back/);
    expect(read(dir, "o.txt")).toBe("v1\n");
    expect(read(dir, "pipeline.lock")).toBe(lock1);
    expect(fs.readdirSync(path.join(dir, ".pipeline/journal"))).toEqual([]);
    expect(exists(dir, ".pipeline/repro.mutex.json")).toBe(false);
    expect(exists(dir, "n.txt")).toBe(true); // from the first run, untouched
  });
});

describe("one repro at a time", () => {
  it("a second repro refuses naming the holder; with --wait it waits and then runs", async () => {
    const dir = makeProject(HOLDING);
    const first = await startBlocked(dir);
    const second = await inproc(dir, ["repro"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another repro is running on this project: pid ${first.child.pid} on ${os.hostname()}, started 20`);
    const waiting = startCli(dir, ["repro", "--wait"]);
    let waitedOut = "";
    waiting.child.stdout!.on("data", (d) => (waitedOut += d));
    await waitFor(() => waitedOut.includes("waiting for the repro holding this project"), "the waiting message");
    fs.writeFileSync(path.join(dir, "release"), "");
    const r1 = await first.done;
    expect(r1.code, r1.out).toBe(0);
    const r3 = await waiting.done;
    expect(r3.code, r3.out).toBe(0);
    expect(r3.out).toMatch(/current 2/); // the first one did the work
  });

  it("takes over a mutex left by a dead process; refuses one held from another host", async () => {
    const dir = makeProject(HOLDING);
    const dead = spawnSync("true").pid!; // a pid that no longer runs
    fs.mkdirSync(path.join(dir, ".pipeline"), { recursive: true });
    const holder = (host: string, pid: number) =>
      JSON.stringify({ host, pid, startedAt: "2026-01-01T00:00:00.000Z", command: "repro", token: "t" });
    fs.writeFileSync(path.join(dir, ".pipeline/repro.mutex.json"), holder(os.hostname(), dead));
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`taking over the repro mutex left by a dead process (pid ${dead} on ${os.hostname()}`);
    expect(exists(dir, ".pipeline/repro.mutex.json")).toBe(false);

    fs.writeFileSync(path.join(dir, ".pipeline/repro.mutex.json"), holder("other-node-17", 4242));
    const r2 = await inproc(dir, ["repro"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/pid 4242 on other-node-17.*\n.*It runs on another host; its last heartbeat was \d+ s ago, and it is taken for dead after 120 s without one/);

    // the holder on the other host stopped refreshing its heartbeat (that login node died)
    const old = new Date(Date.now() - 10 * 60_000);
    fs.utimesSync(path.join(dir, ".pipeline/repro.mutex.json"), old, old);
    const r3 = await inproc(dir, ["repro"]);
    expect(r3.code, r3.out).toBe(0);
    expect(r3.out).toMatch(/taking over the repro mutex of pid 4242 on other-node-17.*: no heartbeat for 6\d\d s \(over 120 s\)/);
  });

  it("a holder refreshes its heartbeat while it runs", async () => {
    const dir = makeProject(HOLDING);
    const { done } = await startBlocked(dir, [], { PIPELINE_TEST_HEARTBEAT_MS: "200" });
    const m = path.join(dir, ".pipeline/repro.mutex.json");
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(m, old, old);
    await waitFor(() => Date.now() - fs.statSync(m).mtimeMs < 5_000, "the heartbeat to refresh the mutex", 5_000);
    fs.writeFileSync(path.join(dir, "release"), "");
    expect((await done).code).toBe(0);
  });
});

describe("stale mutex takeover race", () => {
  it("two repros taking over the same dead holder at once: exactly one runs, the other refuses naming it", async () => {
    const dir = makeProject(HOLDING);
    const dead = spawnSync("true").pid!;
    fs.mkdirSync(path.join(dir, ".pipeline"), { recursive: true });
    fs.writeFileSync(
      path.join(dir, ".pipeline/repro.mutex.json"),
      JSON.stringify({ host: os.hostname(), pid: dead, startedAt: "2026-01-01T00:00:00.000Z", command: "repro", token: "t" }),
    );
    fs.writeFileSync(path.join(dir, "hold"), "");
    const a = startCli(dir, ["repro"]);
    const b = startCli(dir, ["repro"]);
    // the loser exits while the winner's stage blocks
    const loser = await Promise.race([a.done.then((r) => ({ r, winner: b })), b.done.then((r) => ({ r, winner: a }))]);
    expect(loser.r.code, loser.r.out).toBe(1);
    expect(loser.r.stderr).toContain(`another repro is running on this project: pid ${loser.winner.child.pid} on ${os.hostname()}`);
    await waitFor(() => exists(dir, "started.flag"), "the winner's stage");
    fs.writeFileSync(path.join(dir, "release"), "");
    const w = await loser.winner.done;
    expect(w.code, w.out).toBe(0);
    expect(w.out).toContain(`taking over the repro mutex left by a dead process (pid ${dead}`);
  });
});

describe("persist outs", () => {
  it("resume with the same identity; moved away when cmd/params differ", async () => {
    // each attempt adds one checkpoint file and fails until there are 3
    const dir = makeProject({
      "params.yaml": "lr: 1\n",
      "pipeline.yaml": `stages:
  train:
    cmd: mkdir -p ckpt && n=$(find ckpt -name 'step*' | wc -l) && touch ckpt/step$n && echo \${lr} >> ckpt/lr && if [ $n -lt 2 ]; then exit 1; fi; echo done > result.txt
    outs:
      - ckpt: {persist: true}
      - result.txt
`,
    });
    const files = () => fs.readdirSync(path.join(dir, "ckpt")).sort();
    expect((await inproc(dir, ["repro"])).code).toBe(1);
    expect(files()).toEqual(["lr", "step0"]);
    const st = await inproc(dir, ["status"]);
    expect(st.out).toMatch(/interrupted/);
    const r2 = await inproc(dir, ["repro"]);
    expect(r2.code).toBe(1);
    expect(r2.out).toContain("keeping persist out ckpt to resume");
    expect(files()).toEqual(["lr", "step0", "step1"]);

    // other params: the partial checkpoints of lr=1 must not be mixed with lr=2
    fs.writeFileSync(path.join(dir, "params.yaml"), "lr: 2\n");
    const r3 = await inproc(dir, ["repro"]);
    expect(r3.code).toBe(1);
    expect(r3.out).toMatch(/moved persist out ckpt to \.pipeline\/stale\/train\/1\/ckpt/);
    expect(fs.readdirSync(path.join(dir, ".pipeline/stale/train/1/ckpt")).sort()).toEqual(["lr", "step0", "step1"]);
    expect(files()).toEqual(["lr", "step0"]);
    expect((await inproc(dir, ["repro"])).code).toBe(1);
    const r5 = await inproc(dir, ["repro"]);
    expect(r5.code, r5.out).toBe(0);
    expect(read(dir, "ckpt/lr")).toBe("2\n2\n2\n");
    expect((await inproc(dir, ["status"])).code).toBe(0);

    // a completed run of another identity is moved away too
    fs.writeFileSync(path.join(dir, "params.yaml"), "lr: 3\n");
    const r6 = await inproc(dir, ["repro"]);
    expect(r6.code).toBe(1);
    expect(r6.out).toMatch(/moved persist out ckpt to \.pipeline\/stale\/train\/2\/ckpt/);
    // result.txt (not persist) is back to its last good version after the failure
    expect(read(dir, "result.txt")).toBe("done\n");
  });
});
