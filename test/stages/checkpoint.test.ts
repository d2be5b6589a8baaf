// The study's params as the stage glue reads them: the random-init control, lineages, statistics.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { lineageOf, modelArgs } from "../../stages/lib/checkpoint.ts";
import { loadStudyFile as loadStudyParams } from "../../stages/lib/params.ts";

// biome-ignore lint/suspicious/noExplicitAny: an untyped YAML document, edited in place
function withProfile(edit: (doc: Record<string, any>) => void): string {
  const doc = YAML.parse(fs.readFileSync("params.yaml", "utf8"));
  edit(doc);
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "study-params-")), "p.yaml");
  fs.writeFileSync(f, YAML.stringify(doc));
  return f;
}

describe("checkpoint params", () => {
  it("random-init control: seed passed to capture, its own lineage; others default to main", () => {
    const p = loadStudyParams("params.yaml");
    const prepared = fs.mkdtempSync(path.join(os.tmpdir(), "prepared-"));
    fs.writeFileSync(path.join(prepared, "checkpoint.json"), JSON.stringify({ sha: "a".repeat(40) }));
    expect(modelArgs(p, "random_init", prepared)).toEqual([
      "--model-name", p.checkpoints.random_init.model, "--revision", "a".repeat(40), "--random-init-seed", "0"]);
    expect(modelArgs(p, "base", prepared)).not.toContain("--random-init-seed");
    expect(lineageOf(p, "random_init")).toBe("random-init-random_init");
    expect(lineageOf(p, "base")).toBe("main");
    expect(p.statistics.permutations).toBeGreaterThanOrEqual(1000);
  });

  it("alignment-pretraining: each data condition is its own lineage", () => {
    const p = loadStudyParams("params/alignment-pretraining.yaml");
    expect(lineageOf(p, "filtered_dpo")).toBe("filtered");
    expect(lineageOf(p, "final")).toBe("unfiltered");
    expect(lineageOf(p, "e2e_aligned_sft")).toBe("e2e_aligned");
    expect(lineageOf(p, "cpt_misaligned_base")).toBe("cpt_misaligned");
    expect(lineageOf(p, "random_init")).toBe("random-init-random_init");
  });

  it("refuses a random-init reference, a bad lineage and a missing statistics block, naming the key", () => {
    const bad1 = withProfile((d) => { d.checkpoints.final.init = "random"; });
    expect(() => loadStudyParams(bad1)).toThrow(/checkpoints\.final\.init: the reference \(final\) cannot be the random-init control/);
    const bad2 = withProfile((d) => { d.checkpoints.base.lineage = "a b"; });
    expect(() => loadStudyParams(bad2)).toThrow(/checkpoints\.base\.lineage/);
    const bad3 = withProfile((d) => { delete d.statistics; });
    expect(() => loadStudyParams(bad3)).toThrow(/statistics/);
    const bad4 = withProfile((d) => { d.study.transcripts = "sometimes"; });
    expect(() => loadStudyParams(bad4)).toThrow(/study\.transcripts: expected fixed or on_policy/);
  });
});
