/**
 * Pure parts of the SLURM executor: sbatch script and arguments from a Stage, squeue/sacct/
 * scontrol output parsing, and what each final state means for the user. The rendered batch
 * script is also run with bash (a real process) to check its command semantics.
 */
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { JobSpec, Stage } from "../../engine/types.ts";
import {
  jobName,
  jobNamePrefix,
  parseSbatchOutput,
  projectTag,
  renderBatchScript,
  sbatchArgs,
  sbatchEnv,
  scriptFileName,
  validateStageForSlurm,
} from "../../engine/slurm/sbatch.ts";
import {
  parseDuration,
  parseExitCode,
  parseMemoryKb,
  parseSacct,
  parseScontrolJob,
  parseSqueue,
} from "../../engine/slurm/accounting.ts";
import { explainRecord, isFinalState } from "../../engine/slurm/states.ts";
import { InputError } from "../../engine/errors.ts";

function stage(over: Partial<Stage> = {}): Stage {
  return {
    name: "capture@base",
    group: "capture",
    cmd: ["python train.py --x 'quoted arg'", "echo done > out/done.txt"],
    deps: [],
    outs: [],
    params: {},
    env: { HF_HOME: "/scratch/hf cache", B: "it's" },
    resources: { gpus: 2, cpus: 8, memory: "64G", time: "12:00:00" },
    ...over,
  };
}

function job(s: Stage, cwd = "/shared/proj"): JobSpec {
  return { stage: s, cwd, env: { PATH: "/usr/bin:/bin", CUDA_VISIBLE_DEVICES: "3", HOME: "/root" }, gpus: [], logFile: `${cwd}/.pipeline/logs/${s.name}.log`, identity: "f00dfeed" };
}

describe("sbatch rendering", () => {
  it("names jobs after the project root and stage", () => {
    const tag = projectTag("/shared/proj");
    expect(tag).toMatch(/^[0-9a-f]{8}$/);
    expect(projectTag("/shared/proj")).toBe(tag);
    expect(projectTag("/shared/other")).not.toBe(tag);
    expect(jobName("/shared/proj", "capture@base")).toBe(`pl-${tag}-capture@base`);
    expect(jobName("/shared/proj", "x").startsWith(jobNamePrefix("/shared/proj"))).toBe(true);
    // each profile has its own lock and journal, so its own jobs
    expect(projectTag("/shared/proj", "default")).toBe(tag);
    expect(projectTag("/shared/proj", "demo")).not.toBe(tag);
    expect(jobName("/shared/proj", "x", "demo")).toBe(`pl-${projectTag("/shared/proj", "demo")}-x`);
    expect(scriptFileName("capture@base")).toBe("capture@base.sbatch");
    expect(scriptFileName("a/b c")).toBe("a_b_c.sbatch");
  });

  it("maps resources and slurm options to sbatch arguments", () => {
    const s = stage({ slurm: { partition: "gpu", account: "proj42", qos: "high", extraArgs: ["--constraint=a100", "--exclusive"] } });
    const args = sbatchArgs(job(s), "/shared/proj/.pipeline/slurm/capture@base.sbatch", "/shared/proj");
    expect(args).toEqual([
      "--parsable",
      `--job-name=${jobName("/shared/proj", "capture@base")}`,
      "--comment=f00dfeed",
      "--chdir=/shared/proj",
      "--output=/shared/proj/.pipeline/logs/capture@base.log",
      "--open-mode=append",
      "--no-requeue",
      "--gres=gpu:2",
      "--cpus-per-task=8",
      "--mem=64G",
      "--time=12:00:00",
      "--partition=gpu",
      "--account=proj42",
      "--qos=high",
      "--constraint=a100",
      "--exclusive",
      "/shared/proj/.pipeline/slurm/capture@base.sbatch",
    ]);
  });

  it("uses --gpus with gpu_flag: gpus, and no GPU flag for CPU stages", () => {
    const g = sbatchArgs(job(stage({ slurm: { gpuFlag: "gpus" } })), "/s", "/shared/proj");
    expect(g).toContain("--gpus=2");
    expect(g.some((a) => a.startsWith("--gres"))).toBe(false);
    const c = sbatchArgs(job(stage({ resources: { gpus: 0 } })), "/s", "/shared/proj");
    expect(c.some((a) => /^--(gres|gpus|mem|time|cpus-per-task)/.test(a))).toBe(false);
  });

  it("never forwards the login node's GPU selection", () => {
    const env = sbatchEnv(job(stage()).env);
    expect(env.CUDA_VISIBLE_DEVICES).toBeUndefined();
    expect(env.PATH).toBe("/usr/bin:/bin");
    const script = renderBatchScript(job(stage()));
    expect(script).not.toContain("CUDA_VISIBLE_DEVICES");
  });

  it("rejects values sbatch would choke on, naming the stage and key", () => {
    expect(() => validateStageForSlurm(stage({ resources: { gpus: 1, memory: "lots" } }))).toThrow(/stage capture@base: resources.memory "lots"/);
    expect(() => validateStageForSlurm(stage({ resources: { gpus: 1, time: "2 hours" } }))).toThrow(InputError);
    expect(() => validateStageForSlurm(stage({ resources: { gpus: 1.5 } }))).toThrow(/resources.gpus/);
    expect(() => validateStageForSlurm(stage({ env: { "BAD-KEY": "1" } }))).toThrow(/env key "BAD-KEY"/);
    for (const t of ["90", "0:01:00", "1-00:00:00", "2-12", "30:00", "INFINITE"]) {
      expect(() => validateStageForSlurm(stage({ resources: { gpus: 0, time: t } }))).not.toThrow();
    }
    for (const m of ["64G", "500M", "16000", "1.5T"]) {
      expect(() => validateStageForSlurm(stage({ resources: { gpus: 0, memory: m } }))).not.toThrow();
    }
  });

  it("renders a script that cds into the project, exports the env and stops at the first failing cmd", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sbatch-render-"));
    try {
      const s = stage({
        cmd: ["echo \"A=$B H=$HF_HOME pwd=$(pwd)\" > a.txt", "printf 'x\\n' >> a.txt; exit 3", "echo never > b.txt"],
      });
      const script = renderBatchScript(job(s, dir));
      expect(script.startsWith("#!/bin/bash\n")).toBe(true);
      expect(script).toContain("# identity: f00dfeed");
      const file = path.join(dir, "job.sbatch");
      fs.writeFileSync(file, script);
      const r = spawnSync("bash", [file], { cwd: os.tmpdir(), encoding: "utf8", env: { PATH: process.env.PATH } });
      expect(r.status).toBe(3);
      expect(fs.readFileSync(path.join(dir, "a.txt"), "utf8")).toBe(`A=it's H=/scratch/hf cache pwd=${dir}\nx\n`);
      expect(fs.existsSync(path.join(dir, "b.txt"))).toBe(false);
      // the log shows each command before it runs, and the failing exit code
      expect(r.stdout).toContain("$ printf 'x\\n' >> a.txt; exit 3");
      expect(r.stdout).not.toContain("$ echo never");
      expect(r.stdout).toContain("# exit code 3");
      const ok = renderBatchScript(job(stage({ cmd: ["true", "echo $PYTHONUNBUFFERED"] }), dir));
      fs.writeFileSync(file, ok);
      const r2 = spawnSync("bash", [file], { encoding: "utf8", env: { PATH: process.env.PATH } });
      expect(r2.status).toBe(0);
      expect(r2.stdout.trim().split("\n").pop()).toBe("1");
      // bash -n: the script is valid shell whatever the quoting in cmds
      execFileSync("bash", ["-n", file]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads the job id from sbatch --parsable", () => {
    expect(parseSbatchOutput("1234\n")).toBe("1234");
    expect(parseSbatchOutput("1234;cluster\n")).toBe("1234");
    expect(() => parseSbatchOutput("sbatch: error: x")).toThrow(/expected a job id/);
  });
});

describe("squeue / sacct / scontrol parsing", () => {
  it("parses squeue lines", () => {
    const out = "12|PENDING|(Resources)|pl-abcd1234-train|f00d\n13|RUNNING|node07|pl-abcd1234-x@1|a|b\n\n";
    expect(parseSqueue(out)).toEqual([
      { jobId: "12", state: "PENDING", where: "Resources", name: "pl-abcd1234-train", comment: "f00d" },
      { jobId: "13", state: "RUNNING", where: "node07", name: "pl-abcd1234-x@1", comment: "a|b" },
    ]);
    expect(() => parseSqueue("garbage")).toThrow(/unexpected squeue line/);
  });

  it("parses exit codes, memory and durations", () => {
    expect(parseExitCode("3:0")).toEqual({ code: 3, signal: 0 });
    expect(parseExitCode("0:15")).toEqual({ code: 0, signal: 15 });
    expect(parseMemoryKb("3012K")).toBe(3012);
    expect(parseMemoryKb("64.50M")).toBe(66048);
    expect(parseMemoryKb("2G")).toBe(2 * 1024 * 1024);
    expect(parseMemoryKb("2048")).toBe(2);
    expect(parseMemoryKb("")).toBeUndefined();
    expect(parseDuration("00:01:13")).toBe(73);
    expect(parseDuration("1-02:03:04")).toBe(93784);
    expect(parseDuration("04:05")).toBe(245);
    expect(parseDuration("Unknown")).toBeNaN();
  });

  // Verbatim output of sacct -n -P -o JobID,State,ExitCode,Elapsed,MaxRSS,Start,End,NodeList,Timelimit (SLURM 22.05)
  const sacct = [
    "1|FAILED|3:0|00:00:04||2026-11-26T23:53:28|2026-11-26T23:53:32|vm|00:01:00",
    "1.batch|FAILED|3:0|00:00:04|64.50M|2026-11-26T23:53:28|2026-11-26T23:53:32|vm|",
    "1.extern|COMPLETED|0:0|00:00:04|1000K|2026-11-26T23:53:28|2026-11-26T23:53:32|vm|",
    "2|TIMEOUT|0:0|00:01:13||2026-11-26T23:53:33|2026-11-26T23:54:46|vm|00:01:00",
    "2.batch|CANCELLED|0:15|00:01:13|3012K|2026-11-26T23:53:33|2026-11-26T23:54:46|vm|",
    "3|CANCELLED by 0|0:0|00:00:02||2026-11-26T23:53:34|2026-11-26T23:53:36|vm|00:01:00",
    "3.batch|CANCELLED|0:15|00:00:02||2026-11-26T23:53:34|2026-11-26T23:53:36|vm|",
    "4|FAILED|0:9|00:00:03||2026-11-26T23:53:37|2026-11-26T23:53:40|vm|00:10:00",
    "4.batch|CANCELLED by 0|0:9|00:00:03|219864K|2026-11-26T23:53:37|2026-11-26T23:53:40|vm|",
    "5|CANCELLED by 1000|0:0|00:00:00||None|2026-11-26T23:55:00|None assigned|00:10:00",
  ].join("\n");

  it("parses a job's allocation row and the peak RSS of its steps", () => {
    expect(parseSacct(sacct, "1")).toEqual({
      jobId: "1", state: "FAILED", rawState: "FAILED", exitCode: 3, exitSignal: 0, stepExitCode: 3, stepExitSignal: 0,
      elapsed: "00:00:04", elapsedSeconds: 4, start: "2026-11-26T23:53:28", end: "2026-11-26T23:53:32",
      nodeList: "vm", timelimit: "00:01:00", maxRssKb: 66048,
    });
    const t = parseSacct(sacct, "2")!;
    expect([t.state, t.stepExitSignal, t.maxRssKb]).toEqual(["TIMEOUT", 15, 3012]);
    const c = parseSacct(sacct, "3")!;
    expect([c.state, c.rawState, c.cancelledByUid]).toEqual(["CANCELLED", "CANCELLED by 0", 0]);
    const p = parseSacct(sacct, "5")!;
    expect([p.start, p.nodeList, p.cancelledByUid]).toEqual([undefined, undefined, 1000]);
    expect(parseSacct(sacct, "99")).toBeUndefined();
    expect(parseSacct(sacct, "4")!.exitSignal).toBe(9);
  });

  it("parses scontrol show job -o (accounting disabled)", () => {
    const line =
      "JobId=42 JobName=pl-x-train UserId=root(0) GroupId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) " +
      "ExitCode=3:0 RunTime=00:00:04 TimeLimit=00:10:00 StartTime=2026-11-26T23:53:28 EndTime=2026-11-26T23:53:32 NodeList=vm BatchHost=vm";
    expect(parseScontrolJob(line, "42")).toMatchObject({ jobId: "42", state: "FAILED", exitCode: 3, elapsedSeconds: 4, nodeList: "vm", timelimit: "00:10:00" });
    expect(parseScontrolJob(line, "4")).toBeUndefined();
  });
});

describe("final states explained", () => {
  const sacct = (state: string, ec = "0:0", extra: Partial<Record<string, string>> = {}) =>
    parseSacct(`7|${state}|${ec}|00:01:13||2026-11-26T23:53:33|2026-11-26T23:54:46|${extra.node ?? "gpu12"}|00:01:00\n7.batch|${state.split(" ")[0]}|${ec}|00:01:13|1G|||gpu12|`, "7")!;

  it("knows which states are final", () => {
    for (const s of ["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED by 0", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "CANCELLED+"]) expect(isFinalState(s)).toBe(true);
    for (const s of ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"]) expect(isFinalState(s)).toBe(false);
  });

  it("COMPLETED is success", () => {
    const o = explainRecord(sacct("COMPLETED"), { stageName: "s" });
    expect(o).toMatchObject({ ok: true, exitCode: 0, state: "COMPLETED" });
  });

  it("FAILED carries the exit code and its meaning", () => {
    const o = explainRecord(sacct("FAILED", "3:0"), { stageName: "s" });
    expect(o).toMatchObject({ ok: false, exitCode: 3, state: "FAILED" });
    expect(o.message).toMatch(/^exit code 3 \(SLURM job 7 FAILED on gpu12 after 00:01:13\): /);
    const k = explainRecord(sacct("FAILED", "137:0"), { stageName: "s" });
    expect(k.message).toMatch(/exit code 137.*out of memory/);
    const sig = explainRecord(sacct("FAILED", "0:11"), { stageName: "s" });
    expect(sig).toMatchObject({ exitCode: null, signal: "SIGSEGV" });
  });

  it("a memory kill without cgroups (FAILED, SIGKILL, slurmstepd message) reads as OUT_OF_MEMORY", () => {
    const o = explainRecord(sacct("FAILED", "0:9"), {
      stageName: "s", memory: "20M",
      logTail: ["slurmstepd-vm: error: StepId=4.batch exceeded memory limit (225140736 > 20971520), being killed"],
    });
    expect(o).toMatchObject({ ok: false, state: "OUT_OF_MEMORY", exitCode: null });
    expect(o.message).toMatch(/raise resources.memory \(now 20M\)/);
  });

  it("OUT_OF_MEMORY, TIMEOUT, CANCELLED, NODE_FAIL, PREEMPTED say what happened and what to do", () => {
    expect(explainRecord(sacct("OUT_OF_MEMORY", "0:125"), { stageName: "s", memory: "64G" }).message).toMatch(/ran out of memory \(OUT_OF_MEMORY\).*raise resources.memory \(now 64G\)/);
    const t = explainRecord(sacct("TIMEOUT"), { stageName: "s", time: "0:01:00" });
    expect(t).toMatchObject({ ok: false, exitCode: null, state: "TIMEOUT" });
    expect(t.message).toMatch(/killed by its time limit \(TIMEOUT, limit 00:01:00\).*raise resources.time \(now 0:01:00\)/);
    expect(explainRecord(sacct("CANCELLED by 1000"), { stageName: "s", cancelledBy: "alice" }).message).toMatch(/CANCELLED by alice/);
    expect(explainRecord(sacct("CANCELLED by 1000"), { stageName: "s" }).message).toMatch(/CANCELLED by uid 1000/);
    expect(explainRecord(sacct("CANCELLED by 0"), { stageName: "s", cancelledByRunner: true }).message).toMatch(/CANCELLED by this runner \(interrupted\)/);
    expect(explainRecord(sacct("NODE_FAIL"), { stageName: "s" }).message).toMatch(/node gpu12 failed \(NODE_FAIL\).*--exclude=gpu12/);
    expect(explainRecord(sacct("PREEMPTED"), { stageName: "s" }).message).toMatch(/PREEMPTED by a higher-priority job/);
    for (const s of ["OUT_OF_MEMORY", "TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"]) {
      const o = explainRecord(sacct(s), { stageName: "s" });
      expect(o.ok).toBe(false);
      expect(o.exitCode).not.toBe(0);
    }
  });
});
