import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { lockEntry, readLock, serializeLock, writeLock } from "../../engine/lock.ts";
import type { LockFile, PathHash } from "../../engine/types.ts";
import { errorOf, stage, tmpProject } from "./helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
const H = (c: string) => c.repeat(64);

function sample(): LockFile {
  // keys deliberately out of order
  return {
    schema: "1",
    stages: {
      "capture@sft": {
        cmd: ["capture sft"],
        deps: [{ path: "t", hash: H("b"), size: 5, nfiles: 2, isdir: true }, { path: "capture.py", hash: H("a"), size: 3 }],
        outs: [{ path: "act/sft", hash: H("c"), size: 9, nfiles: 1, isdir: true }],
        params: { "generation.temperature": 0.7, "checkpoints.sft": { revision: "main", model: "org/sft" }, "a.list": [3, 1, 2] },
        env: { Z: "1", A: "x y" },
        hash: "sha256",
      },
      "capture@base": {
        cmd: ["capture base", "echo 'done: yes'"],
        deps: [],
        outs: [],
        params: {},
        env: {},
        hash: "sha256",
      },
    },
  };
}

describe("serializeLock", () => {
  it("is deterministic: sorted stages and keys, fixed field order, byte-identical on re-serialization", () => {
    const text = serializeLock(sample());
    expect(text).toBe(`schema: "1"
stages:
  capture@base:
    cmd:
      - capture base
      - "echo 'done: yes'"
    deps: []
    outs: []
    params: {}
    env: {}
    hash: sha256
  capture@sft:
    cmd:
      - capture sft
    deps:
      - path: capture.py
        hash: ${H("a")}
        size: 3
      - path: t
        hash: ${H("b")}
        size: 5
        nfiles: 2
        isdir: true
    outs:
      - path: act/sft
        hash: ${H("c")}
        size: 9
        nfiles: 1
        isdir: true
    params:
      a.list:
        - 3
        - 1
        - 2
      checkpoints.sft:
        model: org/sft
        revision: main
      generation.temperature: 0.7
    env:
      A: x y
      Z: "1"
    hash: sha256
`);
    expect(serializeLock(sample())).toBe(text);
    const p = tmpProject({ "pipeline.lock": text });
    cleanups.push(p.cleanup);
    const back = readLock(path.join(p.root, "pipeline.lock"));
    expect(serializeLock(back)).toBe(text);
    expect(back.stages["capture@sft"]!.params["checkpoints.sft"]).toEqual({ model: "org/sft", revision: "main" });
  });
});

describe("readLock / writeLock", () => {
  it("reads a missing file as an empty lock", () => {
    expect(readLock("/nonexistent/pipeline.lock")).toEqual({ schema: "1", stages: {} });
  });

  it("names file:line:col of a malformed lock", async () => {
    const p = tmpProject({ "pipeline.lock": 'schema: "1"\nstages:\n  a:\n    cmd: [x\n', "pipeline.b.lock": `schema: "1"\nstages:\n  a:\n    cmd: [x]\n    hash: md5\n` });
    cleanups.push(p.cleanup);
    const e = await errorOf(() => readLock(path.join(p.root, "pipeline.lock")));
    expect(e.name).toBe("InputError");
    expect(e.message).toMatch(/^pipeline\.lock:\d+:\d+: /);
    const e2 = await errorOf(() => readLock(path.join(p.root, "pipeline.b.lock")));
    expect(e2.message).toMatch(/^pipeline\.b\.lock:5:11: stages\.a\.hash: expected sha256/);
  });

  it("writes atomically and not at all when the bytes are unchanged", async () => {
    const p = tmpProject({});
    cleanups.push(p.cleanup);
    const file = path.join(p.root, "pipeline.lock");
    await writeLock(file, sample());
    const first = fs.readFileSync(file, "utf8");
    fs.utimesSync(file, 1_600_000_000, 1_600_000_000);
    const ino = fs.statSync(file).ino;
    await writeLock(file, readLock(file));
    expect(fs.readFileSync(file, "utf8")).toBe(first);
    expect(fs.statSync(file).mtimeMs).toBe(1_600_000_000_000); // not rewritten
    const changed = sample();
    changed.stages["capture@base"]!.cmd = ["other"];
    await writeLock(file, changed);
    expect(fs.statSync(file).ino).not.toBe(ino); // replaced by rename
    expect(fs.readdirSync(p.root)).toEqual(["pipeline.lock"]); // no temp file left
  });
});

describe("lockEntry", () => {
  it("records cmd, deps, outs, params and env of a stage", () => {
    const s = stage("gen", { cmd: ["a", "b"], deps: ["x.py"], outs: ["o"], params: { "b.c": 1, a: [1] }, env: { K: "v" } });
    const deps = new Map<string, PathHash | null>([["x.py", { path: "x.py", hash: H("1"), size: 2 }]]);
    const outs = new Map<string, PathHash | null>([["o", { path: "o", hash: H("2"), size: 4, nfiles: 2, isdir: true }]]);
    expect(lockEntry(s, deps, outs)).toEqual({
      cmd: ["a", "b"],
      deps: [{ path: "x.py", hash: H("1"), size: 2 }],
      outs: [{ path: "o", hash: H("2"), size: 4, nfiles: 2, isdir: true }],
      params: { a: [1], "b.c": 1 },
      env: { K: "v" },
      hash: "sha256",
    });
  });

  it("refuses a missing out (exit 1: the stage failed to produce it)", async () => {
    const s = stage("gen", { outs: ["o"] });
    const e = await errorOf(() => lockEntry(s, new Map(), new Map([["o", null]])));
    expect(e.message).toBe("stage gen finished but did not produce its out o");
    expect(e.exitCode).toBe(1);
  });
});
