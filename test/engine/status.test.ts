/** computeStatus on real files: what it hashes, and what it reports, stage by stage. */
import path from "node:path";
import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { buildGraph, selectStages } from "../../engine/graph.ts";
import { Hasher } from "../../engine/hashing.ts";
import { lockEntry, writeLock } from "../../engine/lock.ts";
import { formatReason, MAX_FILES_PER_DIR } from "../../engine/plan.ts";
import { computeStatus } from "../../engine/status.ts";
import type { LockFile } from "../../engine/types.ts";
import { tmpProject } from "./helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const PIPELINE = `stages:
  a:
    cmd: make a
    deps: [src.txt]
    outs: [a_out]
  b:
    cmd: make b
    deps: [a_out, big]
    outs: [b_out.txt]
`;

async function setup() {
  const files: Record<string, string> = { "pipeline.yaml": PIPELINE, "src.txt": "1", "a_out/x": "x", "b_out.txt": "b" };
  for (let i = 0; i < 30; i++) files[`big/f${String(i).padStart(2, "0")}`] = `v${i}`;
  const p = tmpProject(files);
  cleanups.push(p.cleanup);
  const ctx = p.ctx();
  const project = await loadProject(ctx);
  const graph = buildGraph(project.stages, (x) => fs.existsSync(path.join(p.root, x)));
  const h = new Hasher(ctx, { racyWindowMs: 0 });
  const lock: LockFile = { schema: "1", stages: {} };
  for (const s of project.stages) lock.stages[s.name] = lockEntry(s, await h.hashPaths(s.deps), await h.hashPaths(s.outs.map((o) => o.path)));
  await h.save();
  await writeLock(ctx.lockFile, lock);
  const status = async () => {
    const hasher = new Hasher(ctx, { racyWindowMs: 0 });
    const st = await computeStatus(project, graph, selectStages(graph, [], {}), { hasher });
    return { text: Object.fromEntries(st.map((s) => [s.stage, s.reasons.map(formatReason)])), hasher };
  };
  return { p, status };
}

describe("computeStatus", () => {
  it("is all current right after locking, without hashing anything again", async () => {
    const { status } = await setup();
    const { text, hasher } = await status();
    expect(text).toEqual({ a: [], b: [] });
    expect(hasher.stats.filesHashed).toBe(0);
    expect(hasher.stats.cacheHits).toBe(34);
  });

  it("does not hash what an upstream run will replace, and still reports missing outs", async () => {
    const { p, status } = await setup();
    p.write("src.txt", "2");
    fs.rmSync(path.join(p.root, "b_out.txt"));
    p.write("big/f00", "changed");
    const { text, hasher } = await status();
    expect(text).toEqual({
      a: ["deps: src.txt modified"],
      b: ["deps: big/f00 modified", "outs: b_out.txt missing", "upstream a will run"],
    });
    // src.txt and big/f00 are hashed; a_out (b's dep from a) and a's outs are not
    expect(hasher.stats.filesHashed).toBe(2);
  });

  it("names at most MAX_FILES_PER_DIR changed files of a directory and counts the rest", async () => {
    const { p, status } = await setup();
    for (let i = 0; i < 30; i++) p.write(`big/f${String(i).padStart(2, "0")}`, `w${i}`);
    const { text } = await status();
    expect(text.b).toHaveLength(MAX_FILES_PER_DIR + 1);
    expect(text.b![0]).toBe("deps: big/f00 modified");
    expect(text.b![MAX_FILES_PER_DIR]).toBe(`deps: big/ (${30 - MAX_FILES_PER_DIR} more files) modified`);
  });
});
