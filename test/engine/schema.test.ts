import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { schemaText } from "../../engine/commands/schema.ts";

const repo = path.resolve(import.meta.dirname, "../..");

describe("pipeline.schema.json", () => {
  const committed = fs.readFileSync(path.join(repo, "pipeline.schema.json"), "utf8");

  it("is up to date with the zod schema (regenerate: tsx run.ts schema > pipeline.schema.json)", () => {
    expect(schemaText()).toBe(committed);
  });

  it("as JSON Schema, accepts the project's pipeline.yaml and rejects a typo", () => {
    const js = z.fromJSONSchema(JSON.parse(committed));
    const own = js.safeParse(parse(fs.readFileSync(path.join(repo, "pipeline.yaml"), "utf8")));
    expect(own.error?.issues ?? []).toEqual([]);
    const bad = js.safeParse({ stages: { a: { cmd: "x", resources: { gpu: 1 } } } });
    expect(bad.success).toBe(false);
    expect(js.safeParse({ stages: { a: { cmd: "x", resources: { gpus: "${train.gpus}" } } } }).success).toBe(true);
    expect(js.safeParse({ stages: { a: { foreach: "${checkpoints}", do: { cmd: "x ${key}" } } } }).success).toBe(true);
  });
});
