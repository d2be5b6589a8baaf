/**
 * Real dvc.yaml files (../shared/dvc-corpus, 57 public repositories): every entry that DVC 3.67.1
 * accepts, we accept, with the same stages and the same edges as DVC's own graph. DVC's verdicts
 * and graphs were recorded once (scripts/dev/record-dvc-graphs.sh) into
 * fixtures/dvc-corpus-graphs.json; CI needs no DVC. Each entry is laid out as in its repository
 * (the dvc.yaml's folder inside a git repository), with its params.yaml and no data at all: planning
 * must work on a fresh clone. Skipped only when the corpus folder is absent.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { resolveContext } from "../../engine/context.ts";
import { buildGraph } from "../../engine/graph.ts";
import { runScenarios, standIn } from "./dvc-standin.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const corpus = path.resolve(repo, "../shared/dvc-corpus");
const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "fixtures/dvc-corpus-graphs.json"), "utf8")) as {
  dvc_version: string;
  entries: Record<string, { path: string; accepted: boolean; stages?: string[]; edges?: [string, string][]; error?: string }>;
};

/** The entry in a fresh repository laid out as upstream: <tmp>/.git, <tmp>/<folder>/dvc.yaml (+ params.yaml). */
function layOut(entry: string, rel: string): { dir: string; cleanup: () => void } {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dvc-corpus-"));
  fs.mkdirSync(path.join(tmp, ".git"));
  const dir = path.join(tmp, path.dirname(rel));
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(corpus, entry, "dvc.yaml"), path.join(dir, "dvc.yaml"));
  const params = path.join(corpus, entry, "params.yaml");
  if (fs.existsSync(params)) fs.copyFileSync(params, path.join(dir, "params.yaml"));
  return { dir, cleanup: () => fs.rmSync(tmp, { recursive: true, force: true }) };
}

async function ourGraph(dir: string) {
  const project = await loadProject(resolveContext({ cwd: dir }));
  const g = buildGraph(project.stages, (p) => fs.existsSync(path.join(dir, p)));
  const edges: [string, string][] = [];
  for (const [n, downs] of g.downstream) for (const d of downs) edges.push([n, d]);
  const sort = <T>(a: T[]) => a.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
  return { stages: [...g.stages.keys()].sort(), edges: sort(edges) };
}

describe.skipIf(!fs.existsSync(corpus))("real dvc.yaml files: what DVC accepts, we accept, with DVC's graph", () => {
  const entries = Object.entries(fixture.entries);

  it("the fixture covers the corpus (DVC 3.67.1 accepts 51 of 57)", () => {
    const onDisk = fs.readdirSync(corpus).filter((d) => /^\d\d-/.test(d)).sort();
    expect(Object.keys(fixture.entries).sort()).toEqual(onDisk);
    expect(fixture.dvc_version).toBe("3.67.1");
    expect(entries.filter(([, e]) => e.accepted).length).toBe(51);
  });

  for (const [entry, want] of entries.filter(([, e]) => e.accepted)) {
    it(`${entry}: same stages and edges as dvc`, async () => {
      const { dir, cleanup } = layOut(entry, want.path);
      try {
        const got = await ourGraph(dir);
        expect(got.stages).toEqual(want.stages);
        expect(got.edges).toEqual(want.edges);
      } finally {
        cleanup();
      }
    });
  }

  it("what DVC rejects for a real error, we reject with a located message (vars file absent, ${} undefined, DVC 2 `live:`)", async () => {
    for (const [entry, want] of entries) {
      if (want.accepted || /YAML file structure/.test(want.error ?? "")) continue; // 19: a tab YAML 1.2 allows
      const { dir, cleanup } = layOut(entry, want.path);
      try {
        await expect(ourGraph(dir), entry).rejects.toThrow(/^dvc\.yaml:\d+:\d+: /);
      } finally {
        cleanup();
      }
    }
  });

  const runs = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "fixtures/dvc-corpus-runs.json"), "utf8")) as {
    entries: Record<string, { path: string; param?: string; runs: string[][] }>;
  };
  for (const [entry, want] of Object.entries(runs.entries)) {
    it(`${entry}: end to end with stand-in data, the same stages run as under DVC (first run, no-op rerun, after a param change)`, async () => {
      const s = await standIn(path.join(corpus, entry), want.path);
      expect(s, "eligible for the stand-in run").toBeDefined();
      try {
        const tsx = path.join(repo, "node_modules/.bin/tsx");
        const got = await runScenarios(s!, async (env) => {
          const r = await execa(tsx, [path.join(repo, "run.ts"), "-C", s!.dir, "repro"], { env, reject: false });
          expect(r.exitCode, r.stderr).toBe(0);
        });
        expect(got).toEqual({ runs: want.runs, param: want.param });
      } finally {
        s!.cleanup();
      }
    }, 120_000);
  }

  it("the CLI: `dag --format dot` and `status` on a fresh clone of a real pipeline (no data, no lock)", async () => {
    const entry = "32-iterative-example-get-started";
    const { dir, cleanup } = layOut(entry, fixture.entries[entry]!.path);
    try {
      const tsx = path.join(repo, "node_modules/.bin/tsx");
      const dag = await execa(tsx, [path.join(repo, "run.ts"), "-C", dir, "dag", "--format", "dot"], { reject: false });
      expect(dag.exitCode, dag.stderr).toBe(0);
      const edges = [...dag.stdout.matchAll(/^ {2}"([^"]+)" -> "([^"]+)";$/gm)].map((m) => [m[1], m[2]]).sort();
      expect(edges).toEqual(fixture.entries[entry]!.edges);
      const st = await execa(tsx, [path.join(repo, "run.ts"), "-C", dir, "status"], { reject: false });
      expect(st.exitCode).toBe(1);
      expect(st.stdout).toContain("deps: data/data.xml missing");
      const rp = await execa(tsx, [path.join(repo, "run.ts"), "-C", dir, "repro"], { reject: false });
      expect(rp.exitCode).toBe(2);
      expect(rp.stderr).toContain("dep data/data.xml is neither an existing file or directory nor an out of any stage");
    } finally {
      cleanup();
    }
  });
});
