/**
 * Each stage's code deps, derived from the code (docs/stage-deps.md).
 *
 *   tsx scripts/stage-deps.ts          check pipeline.yaml: exit 1 naming each missing or extra dep
 *   tsx scripts/stage-deps.ts --write  rewrite the code deps of every stage in pipeline.yaml
 *
 * A stage's code is its glue (the stages/*.ts its cmd runs, with the stages/ modules it imports), the
 * Python modules the glue runs (runPython("persona_axis.x")) and the project modules those import
 * (scripts/python_deps.py, ast-based). The shared glue that cannot change what a stage computes (how
 * to run Python, how to read params, the params' validation: SHARED below) is left out of every
 * stage's identity, so that editing a message there does not make every capture@* stale. The
 * check enforces that the schema only validates: its defaults come from stages/lib/defaults.ts (a
 * dep of the stages), and it transforms no value. Deps outside stages/ and python/ (data, upstream
 * outs) are left as written.
 */
import fs from "node:fs";
import path from "node:path";
import { $ } from "zx";
import YAML, { isMap, isScalar, isSeq, type Document, type YAMLMap, type YAMLSeq } from "yaml";

const SHARED = ["stages/lib/python.ts", "stages/lib/params.ts", "stages/lib/schema.ts"];
const SCHEMA = "stages/lib/schema.ts";

/** Ways a zod schema can shape values (not only accept or reject them), other than defaults.ts. */
function schemaShapesValues(root: string): string[] {
  const file = path.join(root, SCHEMA);
  if (!fs.existsSync(file)) return [];
  const out: string[] = [];
  fs.readFileSync(file, "utf8").split("\n").forEach((line, i) => {
    const bad = /\.default\((?!DEFAULTS\.)|\.(transform|preprocess|catch|overwrite)\(|z\.coerce\b/.exec(line);
    if (bad) out.push(`${SCHEMA}:${i + 1}: ${bad[0]} shapes a value outside stages/lib/defaults.ts; move the value there (the schema is in no stage's identity)`);
  });
  return out;
}
const CODE_DEP = /^(stages|python)\//;

/** The stages/ files a glue module imports, transitively (relative static imports). */
function glueClosure(root: string, entry: string): string[] {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const src = fs.readFileSync(path.join(root, f), "utf8");
    for (const m of src.matchAll(/^\s*(?:import|export)\s(?:[^"';]*?\sfrom\s)?["'](\.{1,2}\/[^"']+)["']/gm)) {
      todo.push(path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1])));
    }
  }
  return [...seen];
}

/** The Python modules (persona_axis.x) a set of glue files runs. */
function pythonModules(root: string, glue: string[]): string[] {
  const out = new Set<string>();
  for (const f of glue) {
    for (const m of fs.readFileSync(path.join(root, f), "utf8").matchAll(/runPython\(\s*["']([\w.]+)["']/g)) out.add(m[1]);
  }
  return [...out].sort();
}

function python(root: string): string {
  const py = process.env.PERSONA_PYTHON || path.join(root, ".venv/bin/python");
  return fs.existsSync(py) ? py : "python3";
}

/** The code deps a stage's cmd implies, in pipeline.yaml order: glue, then Python modules. */
function derivedCodeDeps(root: string, cmd: string): string[] {
  const entries = [...cmd.matchAll(/(?:^|\s)(stages\/[\w.-]+\.ts)\b/g)].map((m) => m[1]);
  if (!entries.length) return [];
  const glue = [...new Set(entries.flatMap((e) => glueClosure(root, e)))];
  const modules = pythonModules(root, glue);
  const files = modules.length
    ? $.sync({ cwd: root, quiet: true })`${python(root)} ${path.join(root, "scripts/python_deps.py")} --root python ${modules}`.stdout.split("\n").filter(Boolean)
    : [];
  const sortGlue = (a: string, b: string) => Number(a.includes("/lib/")) - Number(b.includes("/lib/")) || a.localeCompare(b);
  return [...glue.filter((f) => !SHARED.includes(f)).sort(sortGlue), ...files];
}

interface StageDiff {
  stage: string;
  missing: string[];
  extra: string[];
  derived: string[];
  depsNode: YAMLSeq;
}

function stageBody(stage: unknown): YAMLMap | undefined {
  if (!isMap(stage)) return undefined;
  const d = stage.get("do", true);
  return isMap(d) ? d : stage;
}

function diffStages(root: string, doc: Document): StageDiff[] {
  const stages = doc.get("stages", true);
  if (!isMap(stages)) throw new Error("pipeline.yaml: no stages mapping");
  const out: StageDiff[] = [];
  for (const pair of stages.items) {
    const name = String(isScalar(pair.key) ? pair.key.value : pair.key);
    const body = stageBody(pair.value);
    if (!body) continue;
    const cmdNode = body.get("cmd", true);
    const cmd = isSeq(cmdNode) ? cmdNode.items.map((i) => String(isScalar(i) ? i.value : i)).join("\n") : String(isScalar(cmdNode) ? cmdNode.value : "");
    const derived = derivedCodeDeps(root, cmd);
    let depsNode = body.get("deps", true);
    if (!isSeq(depsNode)) {
      depsNode = doc.createNode([]) as YAMLSeq;
      body.set("deps", depsNode);
    }
    const declared = (depsNode as YAMLSeq).items.map((i) => (isScalar(i) ? String(i.value) : "")).filter((d) => CODE_DEP.test(d));
    out.push({
      stage: name,
      missing: derived.filter((d) => !declared.includes(d)),
      extra: declared.filter((d) => !derived.includes(d)),
      derived,
      depsNode: depsNode as YAMLSeq,
    });
  }
  return out;
}

function main(): number {
  const args = process.argv.slice(2);
  const write = args.includes("--write");
  const root = path.resolve(args.find((a) => !a.startsWith("--")) ?? ".");
  const file = path.join(root, "pipeline.yaml");
  const doc = YAML.parseDocument(fs.readFileSync(file, "utf8"));
  const diffs = diffStages(root, doc).filter((d) => d.missing.length || d.extra.length);
  const schema = schemaShapesValues(root);
  for (const s of schema) console.error(s);
  if (schema.length) return 1;
  if (!write) {
    for (const d of diffs) {
      for (const m of d.missing) console.error(`pipeline.yaml: stages.${d.stage}.deps: missing ${m}, which its code runs`);
      for (const x of d.extra) console.error(`pipeline.yaml: stages.${d.stage}.deps: ${x} ${SHARED.includes(x) ? "is shared glue, kept out of every stage's identity" : "is not code the stage runs"}`);
    }
    if (diffs.length) console.error("fix: npx tsx scripts/stage-deps.ts --write");
    return diffs.length ? 1 : 0;
  }
  for (const d of diffs) {
    const others = d.depsNode.items.filter((i) => !(isScalar(i) && CODE_DEP.test(String(i.value))));
    d.depsNode.items = [...d.derived.map((p) => doc.createNode(p)), ...others] as typeof d.depsNode.items;
    console.log(`${d.stage}: ${d.derived.length} code deps (+${d.missing.length} -${d.extra.length})`);
  }
  if (diffs.length) fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
  return 0;
}

process.exitCode = main();
