/**
 * Runner scale benchmark (not a test): the first `repro` of N trivial foreach instances (each
 * `echo` into its own out, one shared dep), then a no-op `repro` and `status`, through the real
 * CLI (`node --import tsx run.ts`). Issue 14 fault 5: the cost per stage must stay constant.
 *
 *   node_modules/.bin/tsx bench/runner-scale.ts [--stages 250,1000,4000] [--repo DIR] [--timeout-s 900]
 *
 * --repo runs another checkout's run.ts (e.g. a worktree of main, for before/after numbers).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const sizes = arg("stages", "250,1000,4000").split(",").map(Number);
const repo = path.resolve(arg("repo", path.join(import.meta.dirname, "..")));
const timeoutS = Number(arg("timeout-s", "900"));

function project(n: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `runner-scale-${n}-`));
  const items = Array.from({ length: n }, (_, i) => `  - s${i}`).join("\n");
  fs.writeFileSync(path.join(dir, "params.yaml"), `items:\n${items}\n`);
  fs.writeFileSync(path.join(dir, "src.txt"), "x\n");
  fs.writeFileSync(
    path.join(dir, "pipeline.yaml"),
    `stages:\n  t:\n    foreach: \${items}\n    do:\n      cmd: echo \${item} > out/\${item}.txt\n      deps: [src.txt]\n      outs:\n        - out/\${item}.txt\n`,
  );
  return dir;
}

/** Wall seconds and CPU seconds (user + system of the CLI and its stages, from bash's `times`). */
function cli(dir: string, args: string[]): { secs: number; cpu: number; code: number | null; tail: string } {
  const t0 = performance.now();
  const r = spawnSync("bash", ["-c", '"$@"; rc=$?; times >&2; exit $rc', "bash", process.execPath, "--import", "tsx", path.join(repo, "run.ts"), "-C", dir, ...args], {
    cwd: repo,
    encoding: "utf8",
    timeout: timeoutS * 1000,
    maxBuffer: 1 << 30,
  });
  const secs = (performance.now() - t0) / 1000;
  const err = (r.stderr ?? "").trim().split("\n");
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(err.at(-1) ?? "");
  const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  const out = (r.stdout ?? "") + err.slice(0, -2).join("\n");
  return { secs, cpu, code: r.status, tail: out.trim().split("\n").slice(-1)[0]?.slice(0, 160) ?? "" };
}

console.log(`repo ${repo}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
console.log("| stages | first repro: wall (s) | wall ms/stage | CPU (s) | CPU ms/stage | no-op repro (s) | status (s) |");
console.log("|---:|---:|---:|---:|---:|---:|---:|");
for (const n of sizes) {
  const dir = project(n);
  const first = cli(dir, ["repro"]);
  if (first.code !== 0) {
    console.log(`| ${n} | ${first.code === null ? `> ${timeoutS} (stopped)` : `exit ${first.code}`} | | | | | |  ${first.tail}`);
    fs.rmSync(dir, { recursive: true, force: true });
    continue;
  }
  const noop = cli(dir, ["repro"]);
  const st = cli(dir, ["status"]);
  const per = (x: number) => ((x * 1000) / n).toFixed(1);
  console.log(`| ${n} | ${first.secs.toFixed(1)} | ${per(first.secs)} | ${first.cpu.toFixed(1)} | ${per(first.cpu)} | ${noop.secs.toFixed(1)} | ${st.secs.toFixed(1)} |`);
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`load average after ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
