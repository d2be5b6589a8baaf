/**
 * `metrics show [--json]` and `metrics diff [a_rev] [b_rev] [--json]`: the metrics files of the
 * pipeline (DVC's top-level `metrics:` list and every stage's `metrics:` outs), flattened to
 * dotted keys. `diff` compares two git revisions (default: HEAD against the workspace), reading
 * each file as it was committed (`git show <rev>:<path>`).
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { InputError } from "../errors.ts";
import { pyNumber } from "../interpolate.ts";
import { parseDataText } from "../config/params-files.ts";
import { readAtRev, verifyRevs } from "../git-rev.ts";

type Flat = Record<string, unknown>;
type Read = { data: Flat } | { error: string };

function flatten(v: unknown, prefix = "", out: Flat = {}): Flat {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out[prefix] = v;
  return out;
}

/** Parse a metrics file's text by its extension (JSON, YAML, TOML). */
function parseMetrics(file: string, text: string): Read {
  if (![".json", ".yaml", ".yml", ".toml"].includes(path.extname(file).toLowerCase())) return { error: "not a JSON, YAML or TOML file" };
  try {
    return { data: flatten(parseDataText(file, text)) };
  } catch (e) {
    return { error: `cannot parse: ${(e as Error).message.split("\n")[0]}` };
  }
}

function show(v: unknown): string {
  if (v === undefined) return "-";
  if (typeof v === "number") return pyNumber(v);
  return typeof v === "string" ? v : JSON.stringify(v);
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

export async function metricsShow(ctx: ProjectContext, opts: { json?: boolean }): Promise<number> {
  const project = await loadProject(ctx);
  const res: Record<string, Read> = {};
  for (const m of project.metrics) {
    const abs = path.join(ctx.root, m);
    res[m] = fs.existsSync(abs) ? parseMetrics(m, fs.readFileSync(abs, "utf8")) : { error: "missing (not produced yet)" };
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify(res, null, 2) + "\n");
    return 0;
  }
  if (project.metrics.length === 0) {
    process.stdout.write("no metrics files (declare them under a stage's `metrics:` or the top-level `metrics:` list)\n");
    return 0;
  }
  const rows = [["Path", "Metric", "Value"]];
  for (const [m, r] of Object.entries(res)) {
    if ("error" in r) rows.push([m, "", r.error]);
    else for (const [k, v] of Object.entries(r.data)) rows.push([m, k, show(v)]);
  }
  process.stdout.write(table(rows));
  return 0;
}

async function readAt(ctx: ProjectContext, rev: string | undefined, file: string): Promise<Read> {
  const text = await readAtRev(ctx, rev, file);
  return text === null ? { error: "missing" } : parseMetrics(file, text);
}

export async function metricsDiff(ctx: ProjectContext, revs: string[], opts: { json?: boolean }): Promise<number> {
  if (revs.length > 2) throw new InputError("metrics diff takes at most two revisions: [a_rev] [b_rev]");
  const a = revs[0] ?? "HEAD";
  const b = revs[1];
  await verifyRevs(ctx, "metrics diff", [a, b]);
  const project = await loadProject(ctx);
  const out: Record<string, Record<string, { old: unknown; new: unknown; diff?: number }>> = {};
  for (const m of project.metrics) {
    const ra = await readAt(ctx, a, m);
    const rb = await readAt(ctx, b, m);
    const da = "data" in ra ? ra.data : {};
    const db = "data" in rb ? rb.data : {};
    for (const k of [...new Set([...Object.keys(da), ...Object.keys(db)])]) {
      const o = da[k];
      const n = db[k];
      if (JSON.stringify(o) === JSON.stringify(n)) continue;
      const e: { old: unknown; new: unknown; diff?: number } = { old: o, new: n };
      if (typeof o === "number" && typeof n === "number") e.diff = n - o;
      out[m] ??= {};
      out[m][k] = e;
    }
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    return 0;
  }
  const rows = [["Path", "Metric", a, b ?? "workspace", "Change"]];
  for (const [m, ks] of Object.entries(out)) {
    for (const [k, e] of Object.entries(ks)) rows.push([m, k, show(e.old), show(e.new), e.diff === undefined ? "-" : pyNumber(e.diff)]);
  }
  process.stdout.write(rows.length === 1 ? "no metrics changed\n" : table(rows));
  return 0;
}
