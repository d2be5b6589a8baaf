/** Projects under git for the cache tests: a stage whose command counts its runs in a file outside its outs. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "vitest";
import { makeProject } from "../runner/helpers.ts";

export { cli, read, exists } from "../runner/helpers.ts";

/**
 * `make` writes a directory out (one file depends on param x, one does not) and a file out, and
 * appends a line to runs.log (not an out: it survives everything and counts real runs); `use`
 * reads both.
 */
const PIPELINE = `stages:
  make:
    cmd: echo make >> runs.log; mkdir -p out/sub; echo "\${x}" > out/a.txt; echo same > out/sub/b.txt; echo "\${x}-f" > f.txt
    params: [x]
    outs: [out, f.txt]
  use:
    cmd: echo use >> runs.log; cat out/a.txt f.txt > final.txt
    deps: [out, f.txt]
    outs: [final.txt]
`;

export function git(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", ...args], { encoding: "utf8" });
}

export function gitProject(x = "a", files: Record<string, string> = {}): string {
  const dir = makeProject({ "pipeline.yaml": PIPELINE, "params.yaml": `x: ${x}\n`, ".gitignore": "out/\nf.txt\nfinal.txt\nruns.log\n.pipeline/\n", ...files });
  git(dir, "init", "-q");
  return dir;
}

export function commitAll(dir: string, msg: string): void {
  git(dir, "add", "-A");
  git(dir, "commit", "-qm", msg);
}

export function runs(dir: string): string[] {
  const f = path.join(dir, "runs.log");
  return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim().split("\n") : [];
}

const temps: string[] = [];
afterAll(() => {
  if (!process.env.KEEP_TEST_PROJECTS) for (const d of temps.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(d);
  return d;
}

/** All files below a directory, recursively (relative paths). */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}
