/** `tsx run.ts dag [--format ascii|mermaid|dot]`: the stage graph. */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { pipelineLocator } from "../locate.ts";
import { buildGraph, type Graph } from "../graph.ts";

export type DagFormat = "ascii" | "mermaid" | "dot";

/** Stages in topological order, each with the stages it needs (`<-`): every edge appears once. */
function dagAscii(g: Graph): string {
  const width = Math.max(0, ...g.order.map((n) => n.length));
  const num = String(g.order.length).length;
  const lines = [`${g.order.length} stage${g.order.length === 1 ? "" : "s"} in the order they can run (<- the stages whose outs it reads):`];
  g.order.forEach((n, i) => {
    const up = g.upstream.get(n)!;
    lines.push(`  ${String(i + 1).padStart(num)}. ${n.padEnd(width)}${up.length ? `  <- ${up.join(", ")}` : ""}`.trimEnd());
  });
  return lines.join("\n") + "\n";
}

function dagMermaid(g: Graph): string {
  const id = new Map(g.order.map((n, i) => [n, `s${i}`]));
  const esc = (s: string) => s.replace(/"/g, "#quot;");
  const lines = ["flowchart TD"];
  for (const n of g.order) lines.push(`  ${id.get(n)}["${esc(n)}"]`);
  for (const n of g.order) for (const d of g.downstream.get(n)!) lines.push(`  ${id.get(n)} --> ${id.get(d)}`);
  return lines.join("\n") + "\n";
}

function dagDot(g: Graph): string {
  const q = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  const lines = ["digraph pipeline {", "  rankdir=TB;", "  node [shape=box];"];
  for (const n of g.order) lines.push(`  ${q(n)};`);
  for (const n of g.order) for (const d of g.downstream.get(n)!) lines.push(`  ${q(n)} -> ${q(d)};`);
  lines.push("}");
  return lines.join("\n") + "\n";
}

export async function dag(ctx: ProjectContext, opts: { format?: DagFormat }): Promise<number> {
  const project = await loadProject(ctx);
  const graph = buildGraph(project.stages, (p) => fs.existsSync(path.join(ctx.root, p)), pipelineLocator(ctx));
  const f = opts.format ?? "ascii";
  process.stdout.write(f === "mermaid" ? dagMermaid(graph) : f === "dot" ? dagDot(graph) : dagAscii(graph));
  return 0;
}
