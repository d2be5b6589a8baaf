/**
 * `tsx run.ts params diff [--json]`: current params (params.yaml + profile) against the values the
 * lock recorded, per tracked key: `old -> new`, added (tracked now, not in the lock), removed
 * (in the lock, no longer defined in params). Always exit 0.
 */
import type { ProjectContext } from "../context.ts";
import { loadProject } from "../config.ts";
import { getPath } from "../interpolate.ts";
import { readLock } from "../lock.ts";
import { deepEqual } from "../plan.ts";

export interface ParamChange {
  key: string;
  change: "modified" | "added" | "removed";
  old?: unknown;
  new?: unknown;
  /** Stage instances that track the key. */
  stages: string[];
}

function diffParams(
  /** The params in force, or a lookup of a tracked key (keys of other files are `<file>:<key>`). */
  current: Record<string, unknown> | ((key: string) => { found: boolean; value?: unknown }),
  tracked: Map<string, string[]>,
  recorded: Map<string, { value: unknown; stages: string[] }[]>,
): ParamChange[] {
  const out: ParamChange[] = [];
  const keys = [...new Set([...tracked.keys(), ...recorded.keys()])].sort();
  for (const key of keys) {
    const now = typeof current === "function" ? current(key) : getPath(current, key.split("."));
    const olds = recorded.get(key);
    if (!olds) {
      out.push({ key, change: "added", new: now.value, stages: tracked.get(key) ?? [] });
      continue;
    }
    for (const o of olds) {
      if (!now.found) out.push({ key, change: "removed", old: o.value, stages: o.stages });
      else if (!deepEqual(o.value, now.value)) out.push({ key, change: "modified", old: o.value, new: now.value, stages: o.stages });
    }
  }
  return out;
}

const show = (v: unknown) => (typeof v === "bigint" ? String(v) : JSON.stringify(v, bigintAsString));

function formatParamChanges(changes: ParamChange[]): string {
  if (changes.length === 0) return "no params changed since the lock\n";
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

export async function paramsDiff(ctx: ProjectContext, opts: { json?: boolean }): Promise<number> {
  const project = await loadProject(ctx);
  const lock = readLock(ctx.lockFile);
  const tracked = new Map<string, string[]>();
  for (const s of project.stages) for (const k of Object.keys(s.params)) (tracked.get(k) ?? tracked.set(k, []).get(k)!).push(s.name);
  const recorded = new Map<string, { value: unknown; stages: string[] }[]>();
  for (const name of Object.keys(lock.stages).sort()) {
    for (const [k, v] of Object.entries(lock.stages[name]!.params)) {
      const list = recorded.get(k) ?? recorded.set(k, []).get(k)!;
      const same = list.find((x) => deepEqual(x.value, v));
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
  const changes = diffParams(now, tracked, recorded);
  process.stdout.write(opts.json ? JSON.stringify({ changes }, bigintAsString, 2) + "\n" : formatParamChanges(changes));
  return 0;
}

/** JSON has no integers beyond 2^53 that every reader keeps exact: they are written as strings of digits. */
function bigintAsString(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? String(v) : v;
}
