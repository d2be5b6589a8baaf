/**
 * Dev only: run eligible corpus entries end to end with stand-in data (test/engine/dvc-standin.ts)
 * under DVC 3.67.1 (from /tmp/dvcenv, see record-dvc-graphs.sh) and record which stages each run
 * ran into test/engine/fixtures/dvc-corpus-runs.json. CI replays the same runs with this runner
 * (test/engine/dvc-corpus.test.ts) and compares. Usage: npx tsx scripts/dev/record-dvc-runs.ts [corpus] [max]
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { runScenarios, standIn } from "../../test/engine/dvc-standin.ts";

const here = path.resolve(import.meta.dirname, "../..");
const corpus = path.resolve(process.argv[2] ?? path.join(here, "../shared/dvc-corpus"));
// a number (the first N eligible entries) or a comma-separated list of entries
const pick = process.argv[3] ?? "6";
const only = /^\d+$/.test(pick) ? undefined : new Set(pick.split(","));
const max = only ? Infinity : Number(pick);
const dvc = "/tmp/dvcenv/bin/dvc";
const graphs = JSON.parse(fs.readFileSync(path.join(here, "test/engine/fixtures/dvc-corpus-graphs.json"), "utf8")) as {
  entries: Record<string, { path: string; accepted: boolean }>;
};

const out: Record<string, { path: string; param?: string; runs: string[][] }> = {};
for (const [entry, g] of Object.entries(graphs.entries)) {
  if (!g.accepted || Object.keys(out).length >= max || (only && !only.has(entry))) continue;
  const s = await standIn(path.join(corpus, entry), g.path);
  if (!s) continue;
  try {
    const repoRoot = path.join(s.root, "repo");
    await execa("git", ["init", "-q", repoRoot]);
    await execa(dvc, ["init", "-q"], { cwd: repoRoot });
    const r = await runScenarios(s, async (env) => {
      const res = await execa(dvc, ["repro"], { cwd: s.dir, env, reject: false });
      if (res.exitCode !== 0) throw new Error(`${entry}: dvc repro failed: ${res.stderr.split("\n").slice(-3).join(" ")}`);
    });
    out[entry] = { path: g.path, ...r };
    console.error(`${entry}: ${r.runs.map((x) => x.length).join(" / ")} stages ran (param ${r.param ?? "-"})`);
  } catch (e) {
    console.error(`${entry}: skipped: ${(e as Error).message}`);
  } finally {
    s.cleanup();
  }
}
fs.writeFileSync(path.join(here, "test/engine/fixtures/dvc-corpus-runs.json"), JSON.stringify({ dvc_version: "3.67.1", entries: out }, null, 1) + "\n");
