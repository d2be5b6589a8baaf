/** The study's params schema (stages/lib/schema.ts) on every shipped profile, and the paper_data rules. */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { loadStudyFile } from "../../stages/lib/params.ts";
import { REPO } from "../runner/helpers.ts";

const PROFILES = ["params.yaml", ...fs.readdirSync(path.join(REPO, "params")).map((f) => `params/${f}`)];

// biome-ignore lint/suspicious/noExplicitAny: an untyped YAML document, edited in place
function withChange(change: (p: Record<string, any>) => void): string {
  const p = YAML.parse(fs.readFileSync(path.join(REPO, "params.yaml"), "utf8"));
  change(p);
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "params-")), "p.yaml");
  fs.writeFileSync(f, YAML.stringify(p));
  return f;
}

describe("study params", () => {
  it.each(PROFILES)("%s validates", (f) => {
    const p = loadStudyFile(path.join(REPO, f));
    expect(["download", "off"].includes(p.paper_data.source) || fs.existsSync(p.paper_data.source)).toBe(true);
    if (p.paper_data.source !== "off") expect(p.roles_dir).toBe(`${p.out}/paper_data/roles/instructions`);
  });

  it("the default profile is the paper's study: fetched data, the paper's judge, every layer", () => {
    const p = loadStudyFile(path.join(REPO, "params.yaml"));
    expect(p.paper_data.source).toBe("download");
    expect(p.paper_data.url).toContain("{commit}");
    expect(p.questions_file).toBe(`${p.out}/paper_data/extraction_questions.jsonl`);
    expect([p.judge.parser, p.judge.temperature, p.judge.min_score, p.judge.min_count]).toEqual(["paper", 1, 3, 50]);
    expect(p.capture.layers).toBe("all");
  });

  it("rejects roles_dir outside the fetched data while paper_data is on, and inside it while off", () => {
    expect(() => loadStudyFile(withChange((p) => (p.roles_dir = "data/roles/instructions")))).toThrow(
      /roles_dir: paper_data.source is download: set roles_dir to outputs\/olmo2-7b\/paper_data\/roles\/instructions/,
    );
    expect(() => loadStudyFile(withChange((p) => (p.paper_data.source = "off")))).toThrow(/roles_dir: paper_data.source is off/);
    expect(() => loadStudyFile(withChange((p) => (p.paper_data.url = "")))).toThrow(/paper_data.url: source download needs url/);
    expect(() => loadStudyFile(withChange((p) => (p.capture.layers = "most")))).toThrow(/capture.layers/);
  });
});
