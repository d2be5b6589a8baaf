/**
 * `tsx run.ts params diff [a_rev [b_rev]] [--json]`, as DVC's `params diff`, per tracked key and
 * leaf by leaf (a change inside a mapping is each changed leaf key with its old and new value):
 * - no revision: the current params (params.yaml or the profile, and other params files) against
 *   the values the lock recorded;
 * - `A`: the params files as git revision A holds them against the workspace; `A B`: A against B.
 * Tracked keys are those of the workspace's pipeline. `old -> new`, added (not in the old side),
 * removed (not in the new side). Always exit 0.
 */
import path from "node:path";
import type { ProjectContext } from "../context.ts";
import { loadProject, type Project } from "../config.ts";
import { parseDataText } from "../config/params-files.ts";
import { InputError } from "../errors.ts";
import { readAtRev, verifyRevs } from "../git-rev.ts";
import { getPath, splitKey } from "../interpolate.ts";
import { readLock } from "../lock.ts";
import { leafChanges } from "../param-leaves.ts";

export interface ParamChange {
  key: string;
  change: "modified" | "added" | "removed";
  old?: unknown;
  new?: unknown;
  /** Stage instances that track the key. */
  stages: string[];
}

type Lookup = (key: string) => Promise<{ found: boolean; value?: unknown }>;

/** Tracked key (`<file>:<key>` for other params files) -> the stage instances that track it. */
function trackedKeys(project: Project): Map<string, string[]> {
  const tracked = new Map<string, string[]>();
  for (const s of project.stages) for (const k of Object.keys(s.params)) (tracked.get(k) ?? tracked.set(k, []).get(k)!).push(s.name);
  // a key below another tracked key (`${generation.temperature}` used, `generation` declared) is shown once, under the outer key's leaves
  for (const k of [...tracked.keys()]) {
    const outer = [...tracked.keys()].find((o) => o !== k && k.startsWith(`${o}.`));
    if (outer) {
      const into = tracked.get(outer)!;
      for (const st of tracked.get(k)!) if (!into.includes(st)) into.push(st);
      tracked.delete(k);
    }
  }
  return tracked;
}

/** The tracked keys' values as git revision `rev` holds the params files (undefined: the workspace's files). */
function valuesAtRev(ctx: ProjectContext, rev: string | undefined): Lookup {
  const files = new Map<string, Promise<unknown>>();
  const projectParams = path.relative(ctx.root, ctx.paramsFile).split(path.sep).join("/");
  const read = (file: string) => {
    let p = files.get(file);
    if (!p) {
      p = readAtRev(ctx, rev, file).then((text) => {
        if (text === null) return undefined;
        try {
          return parseDataText(file, text);
        } catch (e) {
          throw new InputError(`${file}${rev ? ` at ${rev}` : ""}: cannot parse: ${(e as Error).message.split("\n")[0]} (fix the file)`);
        }
      });
      files.set(file, p);
    }
    return p;
  };
  return async (key) => {
    const colon = key.indexOf(":");
    const [file, k] = colon > 0 ? [key.slice(0, colon), key.slice(colon + 1)] : [projectParams, key];
    const data = await read(file);
    return data === undefined ? { found: false } : getPath(data, splitKey(k));
  };
}

/** The leaf changes of every tracked key between `before` and `after`. */
async function diffLookups(keys: string[], tracked: Map<string, string[]>, before: Lookup, after: Lookup): Promise<ParamChange[]> {
  const out: ParamChange[] = [];
  for (const key of keys) {
    const [o, n] = [await before(key), await after(key)];
    for (const c of leafChanges(key, o.found ? o.value : undefined, n.found ? n.value : undefined)) {
      out.push({ key: c.key, change: c.change, old: c.before, new: c.after, stages: tracked.get(key) ?? [] });
    }
  }
  return out;
}

/** The workspace against the lock: each recorded value (stages may have recorded different ones). */
function diffAgainstLock(project: Project, ctx: ProjectContext, tracked: Map<string, string[]>): ParamChange[] {
  const lock = readLock(ctx.lockFile);
  const recorded = new Map<string, { value: unknown; stages: string[] }[]>();
  for (const name of Object.keys(lock.stages).sort()) {
    for (const [k, v] of Object.entries(lock.stages[name]!.params)) {
      const list = recorded.get(k) ?? recorded.set(k, []).get(k)!;
      const same = list.find((x) => leafChanges(k, x.value, v).length === 0);
      if (same) same.stages.push(name);
      else list.push({ value: v, stages: [name] });
    }
  }
  // a key of another params file (`<file>:<key>`) is current as the stages that track it see it
  const now = (key: string) => {
    const holder = project.stages.find((s) => Object.hasOwn(s.params, key));
    if (holder) return { found: true, value: holder.params[key] };
    return key.includes(":") ? { found: false } : getPath(project.params, key.split("."));
  };
  const out: ParamChange[] = [];
  const keys = [...new Set([...tracked.keys(), ...recorded.keys()])];
  const covered = (k: string) => keys.some((o) => o !== k && k.startsWith(`${o}.`));
  for (const key of keys.filter((k) => !covered(k)).sort()) {
    const cur = now(key);
    const olds = recorded.get(key) ?? [{ value: undefined, stages: tracked.get(key) ?? [] }];
    for (const o of olds) {
      for (const c of leafChanges(key, o.value, cur.found ? cur.value : undefined)) {
        out.push({ key: c.key, change: c.change, old: c.before, new: c.after, stages: o.stages });
      }
    }
  }
  return out;
}

const show = (v: unknown) => (typeof v === "bigint" ? String(v) : JSON.stringify(v, bigintAsString));

function formatParamChanges(changes: ParamChange[], against: string): string {
  if (changes.length === 0) return `no params changed since ${against}\n`;
  return (
    changes
      .map((c) => {
        const st = `  (${c.stages.join(", ")})`;
        if (c.change === "modified") return `${c.key}: ${show(c.old)} -> ${show(c.new)}${st}`;
        if (c.change === "added") return `${c.key}: added ${show(c.new)}${st}`;
        return `${c.key}: removed (was ${show(c.old)})${st}`;
      })
      .join("\n") + "\n"
  );
}

export async function paramsDiff(ctx: ProjectContext, revs: string[], opts: { json?: boolean }): Promise<number> {
  if (revs.length > 2) throw new InputError("params diff takes at most two git revisions: [a_rev [b_rev]] (see run.ts params diff --help)");
  const project = await loadProject(ctx);
  const tracked = trackedKeys(project);
  let changes: ParamChange[];
  let against = "the lock";
  if (revs.length === 0) changes = diffAgainstLock(project, ctx, tracked);
  else {
    await verifyRevs(ctx, "params diff", revs);
    const keys = [...tracked.keys()].sort();
    changes = await diffLookups(keys, tracked, valuesAtRev(ctx, revs[0]), valuesAtRev(ctx, revs[1]));
    against = revs[1] ? `${revs[0]} in ${revs[1]}` : revs[0]!;
  }
  process.stdout.write(opts.json ? JSON.stringify({ changes }, bigintAsString, 2) + "\n" : formatParamChanges(changes, against));
  return 0;
}

/** JSON has no integers beyond 2^53 that every reader keeps exact: they are written as strings of digits. */
function bigintAsString(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? String(v) : v;
}
