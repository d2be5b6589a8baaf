/**
 * repro on real temporary projects with tiny real commands: incremental reruns, re-planning,
 * failures, -k, --dry, GPU pool, logs and provenance.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { cli, exists, inproc, makeProject, read } from "./helpers.ts";

const CHAIN = {
  "params.yaml": "a: 1\nb: 2\nunused: 0\n",
  // each stage appends its name to ran.txt (not a dep/out) so tests see what ran
  "pipeline.yaml": `stages:
  one:
    cmd: echo one >> ran.txt && echo \${a} > out/one.txt
    outs: [out/one.txt]
  two:
    cmd: echo two >> ran.txt && cat out/one.txt > out/two.txt && echo \${b} >> out/two.txt
    deps: [out/one.txt]
    outs: [out/two.txt]
  side:
    cmd: echo side >> ran.txt && echo \${b} > out/side.txt
    outs: [out/side.txt]
`,
};

const ran = (dir: string) => (exists(dir, "ran.txt") ? read(dir, "ran.txt").trim().split("\n") : []);

describe("repro: incremental", () => {
  it("runs everything once, then nothing (lock byte-identical); a param change reruns exactly its dependents", async () => {
    const dir = makeProject(CHAIN);
    const r1 = await inproc(dir, ["repro"]);
    expect(r1.code, r1.out).toBe(0);
    expect(ran(dir)).toEqual(["one", "two", "side"]);
    expect(read(dir, "out/two.txt")).toBe("1\n2\n");
    const lock1 = read(dir, "pipeline.lock");
    const mtime1 = fs.statSync(path.join(dir, "pipeline.lock")).mtimeMs;
    expect(lock1).toContain("one:");

    const r2 = await inproc(dir, ["repro"]);
    expect(r2.code, r2.out).toBe(0);
    expect(ran(dir)).toEqual(["one", "two", "side"]);
    expect(read(dir, "pipeline.lock")).toBe(lock1);
    expect(fs.statSync(path.join(dir, "pipeline.lock")).mtimeMs).toBe(mtime1);
    expect(r2.out).toMatch(/current 3/);

    fs.writeFileSync(path.join(dir, "params.yaml"), "a: 1\nb: 5\nunused: 0\n");
    const r3 = await inproc(dir, ["repro"]);
    expect(r3.code, r3.out).toBe(0);
    expect(ran(dir).slice(3)).toEqual(["two", "side"]);
    expect(r3.out).toContain("params: b 2 -> 5");
    expect(read(dir, "out/two.txt")).toBe("1\n5\n");
    // the lock keeps stage one's entry as it was
    const l3 = read(dir, "pipeline.lock");
    expect(l3).not.toBe(lock1);
    expect(l3.slice(l3.indexOf("  one:"), l3.indexOf("  side:"))).toBe(lock1.slice(lock1.indexOf("  one:"), lock1.indexOf("  side:")));
  });

  it("re-plans before running: a stage whose upstream reproduced identical outputs is skipped", async () => {
    const dir = makeProject({
      "params.yaml": "x: 1\n",
      "pipeline.yaml": `stages:
  up:
    cmd: echo up >> ran.txt && echo same > u.txt && true \${x}
    outs: [u.txt]
  down:
    cmd: echo down >> ran.txt && cat u.txt > d.txt
    deps: [u.txt]
    outs: [d.txt]
`,
    });
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: 2\n");
    const dry = await inproc(dir, ["repro", "--dry"]);
    expect(dry.out).toContain("upstream up will run");
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(ran(dir)).toEqual(["up", "down", "up"]);
    expect(r.out).toMatch(/down: current after all/);
  });

  it("targets, -f and --downstream", async () => {
    const dir = makeProject(CHAIN);
    expect((await inproc(dir, ["repro", "two"])).code).toBe(0);
    expect(ran(dir)).toEqual(["one", "two"]);
    expect((await inproc(dir, ["repro", "-f", "two"])).code).toBe(0);
    expect(ran(dir)).toEqual(["one", "two", "two"]);
    // one reruns; it reproduces the same output, so two is found current after all
    const r = await inproc(dir, ["repro", "-f", "one", "--downstream"]);
    expect(r.code).toBe(0);
    expect(ran(dir).slice(3)).toEqual(["one"]);
    expect(r.out).toMatch(/two: current after all/);
    fs.writeFileSync(path.join(dir, "params.yaml"), "a: 9\nb: 2\nunused: 0\n");
    expect((await inproc(dir, ["repro", "two", "--downstream"])).code).toBe(0);
    expect(ran(dir).slice(4)).toEqual([]); // two and after: one is not selected, two is current
    expect((await inproc(dir, ["repro", "two"])).code).toBe(0);
    expect(ran(dir).slice(4)).toEqual(["one", "two"]);
    const bad = await cli(dir, ["repro", "nope"]); // through run.ts: exit code 2
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown stage "nope"/);
  });

  it("--dry prints each stage that would run with its reasons, runs nothing, exit 0", async () => {
    const dir = makeProject(CHAIN);
    const r = await inproc(dir, ["repro", "-n"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("would run one:\n  - new stage (not in the lock)");
    expect(r.out).toContain("3 stages would run, 0 current");
    expect(exists(dir, "ran.txt")).toBe(false);
    expect(exists(dir, "pipeline.lock")).toBe(false);
  });
});

describe("repro: failures", () => {
  it("a failing stage keeps its last good outputs and the lock; message names exit code meaning, log and last lines", async () => {
    const dir = makeProject({
      "params.yaml": "fail: 0\n",
      "src.txt": "good\n",
      "pipeline.yaml": `stages:
  make:
    cmd: echo make >> ran.txt && cat src.txt > o.txt && rm -rf od && mkdir od && cp src.txt od/f_$(head -c4 src.txt) && for i in $(seq 1 30); do echo line$i; done && exit \${fail}
    deps: [src.txt]
    outs: [o.txt, od]
  after:
    cmd: echo after >> ran.txt && cat o.txt > a.txt
    deps: [o.txt]
    outs: [a.txt]
`,
    });
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "src.txt"), "bad!\n");
    fs.writeFileSync(path.join(dir, "params.yaml"), "fail: 137\n");
    const lock = read(dir, "pipeline.lock");
    const before = ran(dir).length;

    const r = await inproc(dir, ["repro"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("FAILED make: exit code 137: killed (SIGKILL), often out of memory");
    expect(r.out).toMatch(/log: .*\.pipeline\/logs\/make\.log/);
    expect(r.out).toContain("| line30");
    expect(r.out).toContain("| line12");
    expect(r.out).not.toContain("| line10\n");
    expect(r.out).toMatch(/not run because an upstream stage failed: 1 \(after\)/);
    expect(ran(dir).slice(before)).toEqual(["make"]);
    // last good outputs are back, the partial ones gone, the lock untouched
    expect(read(dir, "o.txt")).toBe("good\n");
    expect(fs.readdirSync(path.join(dir, "od"))).toEqual(["f_good"]);
    expect(read(dir, "pipeline.lock")).toBe(lock);
    expect(fs.readdirSync(path.join(dir, ".pipeline/journal"))).toEqual([]);
    expect(read(dir, ".pipeline/logs/make.log")).toContain("line30");
    // and status still reports it stale
    const st = await inproc(dir, ["status"]);
    expect(st.code).toBe(1);
  });

  it("a declared out that was not produced is a failure (and nothing is recorded)", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": `stages:
  lazy:
    cmd: echo made > made.txt
    outs: [made.txt, never.txt]
`,
    });
    const r = await inproc(dir, ["repro"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("FAILED lazy: exit code 0, but it did not produce its declared out never.txt");
    expect(exists(dir, "made.txt")).toBe(false); // partial outs of a failed attempt are removed
    expect(exists(dir, "pipeline.lock")).toBe(false);
  });

  it("without -k nothing new starts after a failure; with -k independent stages still run", async () => {
    const files = {
      "params.yaml": "{}\n",
      "pipeline.yaml": `stages:
  bad:
    cmd: echo bad >> ran.txt && exit 3
    outs: [b.txt]
  below:
    cmd: echo below >> ran.txt && cat b.txt > c.txt
    deps: [b.txt]
    outs: [c.txt]
  indep:
    cmd: echo indep >> ran.txt && echo i > i.txt
    outs: [i.txt]
`,
    };
    const d1 = makeProject(files);
    const r1 = await inproc(d1, ["repro"]);
    expect(r1.code).toBe(1);
    expect(ran(d1)).toEqual(["bad"]);
    expect(r1.out).toMatch(/not started after the failure .*-k.*: 1 \(indep\)/);
    const d2 = makeProject(files);
    const r2 = await inproc(d2, ["repro", "-k"]);
    expect(r2.code).toBe(1);
    expect(ran(d2)).toEqual(["bad", "indep"]);
    expect(r2.out).toMatch(/not run because an upstream stage failed: 1 \(below\)/);
    expect(read(d2, "pipeline.lock")).toContain("indep:");
    expect(read(d2, "pipeline.lock")).not.toContain("bad:");
  });
});

describe("repro: GPUs, logs, provenance", () => {
  it("two 1-GPU stages on --gpus 0,1 run at the same time with CUDA_VISIBLE_DEVICES 0 and 1", async () => {
    const stage = (n: string) => `  ${n}:
    cmd: node -e "const fs=require('fs');const s=Date.now();setTimeout(()=>fs.writeFileSync('${n}.json',JSON.stringify({cvd:process.env.CUDA_VISIBLE_DEVICES,s,e:Date.now()})),700)"
    outs: [${n}.json]
    resources: {gpus: 1}
`;
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": `stages:\n${stage("g1")}${stage("g2")}  cpu:\n    cmd: echo "[$CUDA_VISIBLE_DEVICES]" > cpu.txt\n    outs: [cpu.txt]\n`,
    });
    const r = await inproc(dir, ["repro", "-j", "3", "--gpus", "0,1"], { CUDA_VISIBLE_DEVICES: "7" });
    expect(r.code, r.out).toBe(0);
    const a = JSON.parse(read(dir, "g1.json"));
    const b = JSON.parse(read(dir, "g2.json"));
    expect([a.cvd, b.cvd].sort()).toEqual(["0", "1"]);
    expect(a.s < b.e && b.s < a.e).toBe(true); // overlapping
    expect(read(dir, "cpu.txt")).toBe("[7]\n"); // CPU stages keep the inherited environment
    expect(r.out).toMatch(/running g1 on GPU 0/);
  });

  it("with one GPU the two stages run one after the other", async () => {
    const stage = (n: string) => `  ${n}:
    cmd: node -e "const fs=require('fs');const s=Date.now();setTimeout(()=>fs.writeFileSync('${n}.json',JSON.stringify({cvd:process.env.CUDA_VISIBLE_DEVICES,s,e:Date.now()})),300)"
    outs: [${n}.json]
    resources: {gpus: 1}
`;
    const dir = makeProject({ "params.yaml": "{}\n", "pipeline.yaml": `stages:\n${stage("g1")}${stage("g2")}` });
    const r = await inproc(dir, ["repro", "-j", "4", "--gpus", "3"]);
    expect(r.code, r.out).toBe(0);
    const a = JSON.parse(read(dir, "g1.json"));
    const b = JSON.parse(read(dir, "g2.json"));
    expect([a.cvd, b.cvd]).toEqual(["3", "3"]);
    expect(a.e <= b.s || b.e <= a.s).toBe(true);
  });

  it("a stage needing 3 GPUs with a pool of 2 is an error before anything runs", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": `stages:
  first:
    cmd: echo first >> ran.txt && echo > f.txt
    outs: [f.txt]
  big:
    cmd: echo big >> ran.txt && echo > g.txt
    outs: [g.txt]
    resources: {gpus: 3}
`,
    });
    const r = await cli(dir, ["repro", "--gpus", "0,1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/big needs 3 GPUs/);
    expect(r.stderr).toMatch(/pool: 2 \(0,1\)/);
    expect(exists(dir, "ran.txt")).toBe(false);
    expect((await inproc(dir, ["repro", "--dry", "--gpus", "0,1"])).code).toBe(2);
  });

  it("streams prefixed output, writes the log, passes progress through, records provenance", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": `stages:
  bar@x:
    cmd: "echo start; for i in 1 2 3 4 5; do printf '\\\\r%d/5' $i >&2; sleep 0.05; done; echo; echo end > out.txt"
    outs: [out.txt]
`.replace("bar@x", "bar"),
    });
    const r = await inproc(dir, ["repro"], { PIPELINE_PROGRESS_INTERVAL_MS: "0" });
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain("[bar] start\n");
    expect(r.stdout).toMatch(/\[bar\] 1\/5\n/); // progress states shown
    expect(r.stdout).toContain("[bar] 5/5\n"); // the final state of the bar
    const log = read(dir, ".pipeline/logs/bar.log");
    expect(log).not.toContain("\r");
    expect(log).toContain("start\n");
    expect(log).toContain("5/5\n");
    const runs = fs.readdirSync(path.join(dir, ".pipeline/runs"));
    expect(runs.length).toBe(1);
    const rec = JSON.parse(read(dir, `.pipeline/runs/${runs[0]}`));
    expect(rec).toMatchObject({ exitCode: 0, host: expect.any(String), stages: [{ stage: "bar", outcome: "ok", exitCode: 0, executor: "local", gpus: [] }] });
    expect(rec.stages[0].startedAt <= rec.stages[0].endedAt).toBe(true);
    expect(read(dir, "pipeline.lock")).not.toMatch(/startedAt|host/);
  });
});
