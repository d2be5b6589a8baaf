/**
 * The stage glue (stages/*.ts) and pipeline.yaml agree on what each stage reads:
 *  - its code deps are exactly the code it runs (scripts/stage-deps.ts derives them);
 *  - every param its glue reads is tracked: each glue is run, as the runner runs it, with the params
 *    its stage tracks (PIPELINE_STAGE_PARAMS) and a recording stand-in for Python, for both the study's
 *    params.yaml and the demo profile. Reading an untracked key fails the run.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { resolveContext } from "../../engine/context.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TSX = path.join(ROOT, "node_modules/.bin/tsx");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "glue-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function copyProject(): string {
  const dir = fs.mkdtempSync(path.join(tmp, "proj-"));
  for (const f of ["pipeline.yaml", "stages", "python", "scripts/python_deps.py"]) {
    fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true, filter: (s) => !s.includes("__pycache__") && !s.includes("/tests") });
  }
  return dir;
}

const stageDeps = (dir: string, ...args: string[]) =>
  execa(TSX, [path.join(ROOT, "scripts/stage-deps.ts"), dir, ...args], { reject: false, env: { PERSONA_PYTHON: path.join(ROOT, ".venv/bin/python") } });

describe("code deps derived from the code", () => {
  it("pipeline.yaml lists exactly the code each stage runs", async () => {
    const r = await stageDeps(ROOT);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });

  it("names a module a stage imports but does not list, and one it lists but does not run; --write fixes both", async () => {
    const dir = copyProject();
    // A new module, imported lazily inside a function of the report's code.
    fs.writeFileSync(path.join(dir, "python/persona_axis/palette.py"), "COLORS = ['red']\n");
    const rep = path.join(dir, "python/persona_axis/report.py");
    fs.appendFileSync(rep, "\n\ndef _palette():\n    from .palette import COLORS\n    return COLORS\n");
    const pipe = path.join(dir, "pipeline.yaml");
    const yaml = fs.readFileSync(pipe, "utf8");
    fs.writeFileSync(pipe, yaml.replace("        - python/persona_axis/roles.py\n", "").replace("      - python/persona_axis/movement.py\n", "      - python/persona_axis/movement.py\n      - python/persona_axis/seeds.py\n"));
    const r = await stageDeps(dir);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("stages.report.deps: missing python/persona_axis/palette.py");
    expect(r.stderr).toContain("stages.capture.deps: missing python/persona_axis/roles.py");
    expect(r.stderr).toContain("stages.movement.deps: python/persona_axis/seeds.py is not code the stage runs");
    expect(r.stderr).toContain("scripts/stage-deps.ts --write");
    expect((await stageDeps(dir, "--write")).exitCode).toBe(0);
    expect(await stageDeps(dir)).toMatchObject({ exitCode: 0, stderr: "" });
    const fixed = fs.readFileSync(pipe, "utf8");
    expect(fixed).toContain("      - python/persona_axis/palette.py\n");
    // Everything else in the file (comments, data deps, params) is kept as written.
    expect(fixed.replace("      - python/persona_axis/palette.py\n", "")).toBe(yaml);
  });

  it("the params schema, in no stage's identity, may not shape values: defaults come from defaults.ts", async () => {
    const dir = copyProject();
    const schema = path.join(dir, "stages/lib/schema.ts");
    const text = fs.readFileSync(schema, "utf8");
    fs.writeFileSync(schema, text.replace(".default(DEFAULTS.revision)", '.default("v1")'));
    let r = await stageDeps(dir);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/stages\/lib\/schema\.ts:\d+: \.default\( shapes a value outside stages\/lib\/defaults\.ts/);
    fs.writeFileSync(schema, text.replace("model_display_name: z.string().min(1),", "model_display_name: z.string().transform((s) => s.trim()),"));
    r = await stageDeps(dir);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(".transform(");
    fs.writeFileSync(schema, text.replace("a Hub model id or a local directory", "a Hub model id, or a local directory"));
    expect(await stageDeps(dir)).toMatchObject({ exitCode: 0, stderr: "" }); // a message: no stage changes
  });
});

describe("every param a stage's glue reads is tracked", () => {
  const recorder = path.join(tmp, "python-recorder.sh");
  fs.writeFileSync(recorder, '#!/bin/sh\nprintf "%s\\n" "$@" >> "$RECORD"\n', { mode: 0o755 });

  /** `pinned`: the models stage's out for these Hub checkpoints (checkpoint.json with a pinned sha). */
  async function runGlue(cmd: string, env: Record<string, string>, pinned: string[] = []) {
    const cwd = fs.mkdtempSync(path.join(tmp, "run-"));
    for (const dir of pinned) {
      fs.mkdirSync(path.join(cwd, dir), { recursive: true });
      fs.writeFileSync(path.join(cwd, dir, "checkpoint.json"), JSON.stringify({ sha: "0".repeat(40) }));
    }
    const [, glue, ...args] = cmd.split(/\s+/);
    const record = path.join(cwd, "argv.txt");
    const r = await execa(TSX, [path.join(ROOT, glue), ...args], {
      cwd, reject: false, env: { PERSONA_PYTHON: recorder, RECORD: record, OPENAI_API_KEY: "test", ...env },
    });
    return { ...r, argv: fs.existsSync(record) ? fs.readFileSync(record, "utf8").split("\n") : [] };
  }

  for (const profile of [undefined, "params/demo.yaml", "params/demo-on-policy.yaml"]) {
    it(`${profile ?? "params.yaml"}: each glue runs with only its tracked params`, async () => {
      const project = await loadProject(resolveContext({ cwd: ROOT, paramsFile: profile }));
      const paramsFile = project.ctx.profileFile ?? project.ctx.paramsFile;
      // every stage; of a foreach group, its first instance and `@final` (which differ in what they track)
      const stages = project.stages.filter((s, i, all) => s.name.endsWith("@final") || all.findIndex((x) => x.group === s.group) === i);
      const params = project.params as { out: string; checkpoints: Record<string, { build?: string; init?: string }>; paper_data?: { source: string };
        study: { transcripts: string } };
      const pinned = Object.keys(params.checkpoints).map((n) => `${params.out}/models/${n}`);
      for (const s of stages) {
        const r = await runGlue(s.cmd[0], { PIPELINE_PARAMS_FILES: paramsFile, PIPELINE_STAGE: s.name, PIPELINE_STAGE_PARAMS: JSON.stringify(s.params) }, pinned);
        expect(r.stderr, s.name).not.toContain("error:");
        expect(r.exitCode, s.name).toBe(0);
        // models of the real profile and paper_data with source off run no Python here
        // and the on-policy stages write a note under study.transcripts fixed, or for the random-init control
        const onPolicyNote = (s.group === "on_policy" || s.name === "on_policy_compare") && params.study.transcripts === "fixed";
        const noPython = (s.name === "models" && !profile) || (s.name === "paper_data" && params.paper_data?.source === "off") || onPolicyNote
          || (s.group === "on_policy" && params.checkpoints[s.name.split("@")[1]!]?.init === "random")
          || s.name === "on_policy@final"; // the reference: its own transcripts are the fixed ones (a note)
        if (!noPython) expect(r.argv.slice(0, 2), s.name).toEqual(["-m", expect.stringMatching(/^persona_axis\.\w+$/)]);
      }
    });
  }

  it("a glue that reads a param its stage does not track fails, naming the key and the fix", async () => {
    const project = await loadProject(resolveContext({ cwd: ROOT, paramsFile: "params/demo.yaml" }));
    const s = project.stages.find((x) => x.name === "capture@final")!;
    const { "capture.max_batch_tokens": _dropped, ...tracked } = s.params;
    const r = await runGlue(s.cmd[0], { PIPELINE_PARAMS_FILES: project.ctx.profileFile!, PIPELINE_STAGE: s.name, PIPELINE_STAGE_PARAMS: JSON.stringify(tracked) });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("stage capture@final reads params key capture.max_batch_tokens, which it does not track: add `capture.max_batch_tokens` to stages.capture.params in pipeline.yaml");
    expect(r.argv).toEqual([]);
  });
});
