/**
 * Where a stage's out or dep is written in pipeline.yaml (`pipeline.yaml:LINE:COL`), for errors
 * found after loading (overlapping outs, a shared out, a missing dep). A foreach instance points
 * at its template's list (`do: outs:`), the item itself when it is written literally.
 */
import path from "node:path";
import { YamlFile } from "./config.ts";
import type { ProjectContext } from "./context.ts";

export type Locate = (group: string, field: "outs" | "deps", item?: string) => string;

export function pipelineLocator(ctx: ProjectContext): Locate {
  let y: YamlFile | null | undefined;
  return (group, field, item) => {
    if (y === undefined) {
      try {
        y = YamlFile.read(ctx.pipelineFile, path.relative(ctx.root, ctx.pipelineFile) || "pipeline.yaml");
      } catch {
        y = null;
      }
    }
    if (!y) return path.basename(ctx.pipelineFile);
    const def = (y.value as { stages?: Record<string, Record<string, unknown>> } | null)?.stages?.[group];
    if (!def) return y.pos(["stages", group], true);
    const base = def.do && typeof def.do === "object" ? ["stages", group, "do"] : ["stages", group];
    const list = (base.length === 3 ? (def.do as Record<string, unknown>) : def)[field];
    if (Array.isArray(list) && item !== undefined) {
      const i = list.findIndex((x) => (typeof x === "string" ? x : x && typeof x === "object" ? Object.keys(x)[0] : undefined)?.replace(/\/+$/, "") === item);
      if (i >= 0) return y.pos([...base, field, i]);
    }
    return y.pos([...base, field], !Array.isArray(list));
  };
}
