/**
 * The on-policy variant through the real runner, on CPU with real tiny models: a temporary project made
 * of the project's pipeline.yaml, stages/, python/ and data/, with params/demo-on-policy.yaml as the
 * profile (study.transcripts: on_policy). Every checkpoint but the random-init control and the reference
 * generates, judges and captures its own transcripts; the reference's own transcripts are the fixed ones
 * (on_policy@final writes a note, on_policy_compare reads the fixed run), the perturbed base writes
 * other text; on_policy_compare puts both sides next to each other (the reference's two columns equal)
 * and the report shows them. A
 * second repro is a no-op, and switching back to fixed turns the on-policy stages into notes.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { cli, makeProject, REPO } from "../runner/helpers.ts";

const PROFILE = "params/demo-on-policy.yaml";

function project(): string {
  const dir = makeProject({});
  for (const f of ["pipeline.yaml", "package.json", PROFILE]) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.copyFileSync(path.join(REPO, f), path.join(dir, f));
  }
  for (const d of ["stages", "python", "data"]) {
    fs.cpSync(path.join(REPO, d), path.join(dir, d), { recursive: true, filter: (s) => !s.includes("__pycache__") && !s.includes(`${path.sep}tests`) });
  }
  for (const l of ["node_modules", ".venv"]) fs.symlinkSync(path.join(REPO, l), path.join(dir, l));
  // smaller than the shipped profile: 2 questions, few resamples (the plumbing is what is tested)
  const p = YAML.parse(fs.readFileSync(path.join(dir, PROFILE), "utf8"));
  p.generation.question_count = 2;
  p.statistics.permutations = 20;
  p.statistics.bootstrap = 20;
  fs.writeFileSync(path.join(dir, PROFILE), YAML.stringify(p));
  return dir;
}

const responses = (file: string) =>
  fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l)).map((r) => `${r.system_prompt_idx}/${r.question_idx}: ${r.response}`);

function csv(file: string): Record<string, string>[] {
  const [head, ...lines] = fs.readFileSync(file, "utf8").trim().split("\n");
  const keys = head!.split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [keys[i], v])));
}

describe("on-policy variant (study.transcripts: on_policy)", () => {
  it("runs on CPU through the runner and compares fixed and own transcripts side by side", async () => {
    const dir = project();
    const r = await cli(dir, ["-P", PROFILE, "repro"]);
    expect(r.code, r.out).toBe(0);
    const out = path.join(dir, "outputs", "demo-on-policy");
    const op = path.join(out, "on_policy");

    expect(JSON.parse(fs.readFileSync(path.join(op, "random_init", "on_policy.json"), "utf8")).on_policy).toBe("skipped");
    for (const sub of ["transcripts/pirate.jsonl", "scores/pirate.jsonl", "activations"]) expect(fs.existsSync(path.join(op, "base", sub)), sub).toBe(true);
    // the reference generates, judges and captures nothing again: its own transcripts are the fixed ones
    expect(fs.readdirSync(path.join(op, "final"))).toEqual(["on_policy.json"]);
    expect(JSON.parse(fs.readFileSync(path.join(op, "final", "on_policy.json"), "utf8")).on_policy).toBe("fixed");
    const fixed = responses(path.join(out, "transcripts", "pirate.jsonl"));
    expect(responses(path.join(op, "base", "transcripts", "pirate.jsonl"))).not.toEqual(fixed);
    const run = JSON.parse(fs.readFileSync(path.join(op, "base", "transcripts", "run.json"), "utf8"));
    expect(run.model).toBe("outputs/demo-on-policy/models/base");
    expect(run.chat_template_from).toBe("outputs/demo-on-policy/models/final");

    const summary = JSON.parse(fs.readFileSync(path.join(out, "on_policy_compare", "summary.json"), "utf8"));
    expect(summary.transcripts).toBe("on_policy");
    expect(summary.roles).toEqual(["pirate", "poet", "stoic_philosopher", "therapist"]);
    const rows = csv(path.join(out, "on_policy_compare", "comparison.csv"));
    const at = (c: string, m: string) => rows.find((x) => x.checkpoint === c && x.metric === m)!;
    const ref = at("final", "own_cos_pc1_axis");
    expect(ref.on_policy).toBe(ref.fixed);
    expect(ref.difference_ci_low).toBe(ref.difference_ci_high); // the same rows on both sides: a zero-width interval
    expect(Number(at("base", "own_cos_pc1_axis").on_policy)).not.toBeCloseTo(Number(at("base", "own_cos_pc1_axis").fixed), 6);
    expect(at("random_init", "own_cos_pc1_axis").on_policy).toBe("");
    const html = fs.readFileSync(path.join(out, "report", "index.html"), "utf8");
    expect(html).toContain("Fixed vs on-policy transcripts");
    expect(html).toContain('data-file="fixed_vs_on_policy.png"');

    const again = await cli(dir, ["-P", PROFILE, "repro"]);
    expect(again.code, again.out).toBe(0);
    expect(again.out).not.toMatch(/^running /m);

    const p = YAML.parse(fs.readFileSync(path.join(dir, PROFILE), "utf8"));
    p.study.transcripts = "fixed";
    fs.writeFileSync(path.join(dir, PROFILE), YAML.stringify(p));
    const fixedRun = await cli(dir, ["-P", PROFILE, "repro"]);
    expect(fixedRun.code, fixedRun.out).toBe(0);
    const ran = [...fixedRun.out.matchAll(/^running ([^:]+):/gm)].map((m) => m[1]).sort();
    expect(ran).toEqual(["on_policy@base", "on_policy@final", "on_policy@random_init", "on_policy_compare", "report"]);
    expect(fs.readdirSync(path.join(op, "base"))).toEqual(["on_policy.json"]);
    expect(fs.readFileSync(path.join(out, "report", "index.html"), "utf8")).toContain("On-policy variant off");
  }, 1_800_000); // minutes on an idle 2-core machine; under load much longer
});
