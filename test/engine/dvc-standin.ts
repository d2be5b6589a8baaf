/**
 * Stand-in data for running a real dvc.yaml end to end without its repository's code or data, so
 * that DVC and this runner can be compared on the same inputs (scripts/dev/record-dvc-runs.ts
 * records DVC's runs; dvc-corpus.test.ts replays ours).
 *
 * The entry is laid out as in its repository (a git repository; the dvc.yaml's folder inside it,
 * with its params.yaml). Every dep that no stage writes is created (a file, or a folder with one
 * file when the name has no extension). `python`/`python3` on PATH is a shim that, for the command
 * it was called as, appends the stage's name to $STANDIN_LOG and writes the stage's outs with
 * content derived from the stage's deps and declared params (a metrics .json gets valid JSON). Only
 * entries whose every command is a plain `python ...` call with no shell syntax are eligible.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadProject } from "../../engine/config.ts";
import { resolveContext } from "../../engine/context.ts";
import { buildGraph } from "../../engine/graph.ts";

const PLAIN_PYTHON = /^python3? [^|&;<>$`'"\\(){}*?]*$/;

export interface StandIn {
  /** The repository root (tmp) and the pipeline's folder in it. */
  root: string;
  dir: string;
  /** PATH entry holding the python shim. */
  bin: string;
  cleanup: () => void;
}

const SHIM = `#!/usr/bin/env node
const fs = require("node:fs"), path = require("node:path"), crypto = require("node:crypto");
const map = JSON.parse(fs.readFileSync(process.env.STANDIN_MAP, "utf8"));
const key = JSON.stringify([path.relative(process.env.STANDIN_DIR, process.cwd()), ["python", ...process.argv.slice(2)].join(" ")]);
const s = map[key];
if (!s) { console.error("stand-in: no stage runs " + key); process.exit(3); }
fs.appendFileSync(process.env.STANDIN_LOG, s.stage + "\\n");
const h = crypto.createHash("sha256").update(s.stage);
const feed = (p) => {
  if (!fs.existsSync(p)) return;
  if (fs.statSync(p).isDirectory()) for (const f of fs.readdirSync(p).sort()) feed(path.join(p, f));
  else h.update(p).update(fs.readFileSync(p));
};
for (const d of s.deps) feed(d);
h.update(JSON.stringify(s.params));
const digest = h.digest("hex");
for (const o of [...s.outs, ...s.inside]) {
  fs.mkdirSync(path.dirname(o), { recursive: true });
  if (!path.extname(o)) { fs.mkdirSync(o, { recursive: true }); fs.writeFileSync(path.join(o, "part.txt"), digest + "\\n"); }
  else if (o.endsWith(".json")) fs.writeFileSync(o, JSON.stringify({ score: parseInt(digest.slice(0, 6), 16) / 1e7 }) + "\\n");
  else fs.writeFileSync(o, digest + "\\n");
}
`;

/** Lay an entry out with stand-in data; undefined when the entry is not eligible. */
export async function standIn(corpusEntry: string, rel: string): Promise<StandIn | undefined> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "dvc-standin-"));
  const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, ".git"));
  const dir = path.join(root, "repo", path.dirname(rel));
  fs.mkdirSync(path.join(root, ".git"), { recursive: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(corpusEntry, "dvc.yaml"), path.join(dir, "dvc.yaml"));
  if (fs.existsSync(path.join(corpusEntry, "params.yaml"))) fs.copyFileSync(path.join(corpusEntry, "params.yaml"), path.join(dir, "params.yaml"));
  // the repository is <root>/repo (the shim and its map live beside it, outside what the tools hash)
  fs.renameSync(path.join(root, ".git"), path.join(root, "repo", ".git"));
  const repoRoot = path.join(root, "repo");
  let project: Awaited<ReturnType<typeof loadProject>>;
  try {
    project = await loadProject(resolveContext({ cwd: dir }));
  } catch {
    cleanup();
    return undefined;
  }
  const stages = project.stages;
  const eligible =
    stages.length > 0 &&
    stages.every((s) => s.cmd.length === 1 && PLAIN_PYTHON.test(s.cmd[0]!) && !s.missingParams && !s.externalDeps && !s.frozen && !s.alwaysChanged);
  if (!eligible) {
    cleanup();
    return undefined;
  }
  const graph = buildGraph(stages, (p) => fs.existsSync(path.join(dir, p)));
  for (const deps of graph.missingDeps.values()) {
    for (const d of deps) {
      const abs = path.join(dir, d);
      if (path.extname(d)) {
        fs.mkdirSync(path.dirname(abs), { recursive: true });
        fs.writeFileSync(abs, `stand-in ${d}\n`);
      } else {
        fs.mkdirSync(abs, { recursive: true });
        fs.writeFileSync(path.join(abs, "item.txt"), `stand-in ${d}\n`);
      }
    }
  }
  const bin = path.join(root, "bin");
  fs.mkdirSync(bin);
  for (const n of ["python", "python3"]) fs.writeFileSync(path.join(bin, n), SHIM, { mode: 0o755 });
  void repoRoot;
  const s: StandIn = { root, dir, bin, cleanup };
  await writeMap(s);
  return s;
}

/**
 * The shim's map, from the pipeline as it is now: (cwd, command) -> the stage, its deps, params and
 * outs (relative to the cwd), and for an out folder the files other stages read inside it.
 */
async function writeMap(s: StandIn): Promise<void> {
  const { stages } = await loadProject(resolveContext({ cwd: s.dir }));
  const map: Record<string, unknown> = {};
  for (const st of stages) {
    const cwd = path.join(s.dir, st.wdir ?? "");
    const rel = (p: string) => path.relative(cwd, path.join(s.dir, p)) || ".";
    const inside = stages.flatMap((o) => o.deps).filter((d) => st.outs.some((o) => d.startsWith(o.path + "/")));
    const key = JSON.stringify([path.relative(s.dir, cwd), st.cmd[0]!.replace(/^python3? /, "python ").replace(/\s+/g, " ").trim()]);
    map[key] = { stage: st.name, deps: st.deps.map(rel), outs: st.outs.map((o) => rel(o.path)), inside: inside.map(rel), params: st.params };
  }
  fs.writeFileSync(path.join(s.root, "map.json"), JSON.stringify(map));
}

/** The environment both tools run the stand-in pipeline with. */
function standInEnv(s: StandIn, log: string): Record<string, string> {
  return { PATH: `${s.bin}:${process.env.PATH}`, STANDIN_MAP: path.join(s.root, "map.json"), STANDIN_DIR: s.dir, STANDIN_LOG: log };
}

/**
 * A params.yaml key some stage tracks and a changed value for it: the first number or boolean (in
 * stage order), else the first string (strings are often paths, which a change would make missing).
 */
function paramToChange(stages: { params: Record<string, unknown> }[]): { key: string; value: unknown } | undefined {
  const keys = stages.flatMap((s) => Object.entries(s.params)).filter(([k]) => !k.includes(":"));
  for (const [k, v] of keys) {
    if (typeof v === "number") return { key: k, value: v + 1 };
    if (typeof v === "boolean") return { key: k, value: !v };
  }
  for (const [k, v] of keys) if (typeof v === "string") return { key: k, value: `${v}-changed` };
  return undefined;
}


/**
 * The three runs compared with DVC: a first repro on the fresh stand-in, a second one (nothing
 * should run), and one after changing a tracked param. Returns the stages each run ran (sorted).
 */
export async function runScenarios(
  s: StandIn,
  repro: (env: Record<string, string>) => Promise<void>,
): Promise<{ runs: string[][]; param?: string }> {
  const { parseDocument } = await import("yaml");
  const project = await loadProject(resolveContext({ cwd: s.dir }));
  const change = paramToChange(project.stages);
  const runs: string[][] = [];
  for (let i = 0; i < 3; i++) {
    if (i === 2) {
      if (!change) break;
      const file = path.join(s.dir, "params.yaml");
      const doc = parseDocument(fs.readFileSync(file, "utf8"));
      doc.setIn(change.key.split("."), change.value);
      fs.writeFileSync(file, doc.toString());
      await writeMap(s);
    }
    const log = path.join(s.root, `run-${i}.log`);
    fs.writeFileSync(log, "");
    await repro(standInEnv(s, log));
    runs.push(fs.readFileSync(log, "utf8").split("\n").filter(Boolean).sort());
  }
  return { runs, param: change?.key };
}
