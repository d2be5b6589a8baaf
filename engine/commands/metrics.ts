/**
 * `metrics show [--json]` and `metrics diff [a_rev] [b_rev] [--json]`: the metrics files of the
 * pipeline (DVC's top-level `metrics:` list and every stage's `metrics:` outs), flattened to
 * dotted keys. `diff` compares two git revisions (default: HEAD against the workspace), reading
 * each file as it was committed (`git show <rev>:<path>`).
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { parse as parseYaml } from "yaml";
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { InputError } from "../errors.ts";
import { pyNumber } from "../interpolate.ts";
import { tomlParse } from "../config/params-files.ts";

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
  const ext = path.extname(file).toLowerCase();
  try {
    if (ext === ".json") return { data: flatten(JSON.parse(text)) };
    if (ext === ".yaml" || ext === ".yml") return { data: flatten(parseYaml(text)) };
    if (ext === ".toml") return { data: flatten(tomlParse(text, file)) };
  } catch (e) {
    return { error: `cannot parse: ${(e as Error).message.split("\n")[0]}` };
  }
  return { error: "not a JSON, YAML or TOML file" };
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
  if (rev === undefined) {
    const abs = path.join(ctx.root, file);
    return fs.existsSync(abs) ? parseMetrics(file, fs.readFileSync(abs, "utf8")) : { error: "missing" };
  }
  const rel = path.relative(ctx.repoRoot, path.join(ctx.root, file)).split(path.sep).join("/");
  const r = await execa("git", ["-C", ctx.repoRoot, "show", `${rev}:${rel}`], { reject: false, stripFinalNewline: false });
  return r.exitCode === 0 ? parseMetrics(file, r.stdout) : { error: "missing" };
}

export async function metricsDiff(ctx: ProjectContext, revs: string[], opts: { json?: boolean }): Promise<number> {
  if (!fs.existsSync(path.join(ctx.repoRoot, ".git"))) throw new InputError(`metrics diff needs a git repository; ${ctx.root} is not in one`);
  if (revs.length > 2) throw new InputError("metrics diff takes at most two revisions: [a_rev] [b_rev]");
  const a = revs[0] ?? "HEAD";
  const b = revs[1];
  for (const rev of [a, b]) {
    if (rev === undefined) continue;
    const ok = await execa("git", ["-C", ctx.repoRoot, "rev-parse", "--verify", "--quiet", `${rev}^{commit}`], { reject: false });
    if (ok.exitCode !== 0) throw new InputError(`metrics diff: ${rev} is not a git revision`);
  }
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
