/** Test helpers for the planning engine: literal stages and throw-away projects on disk. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { resolveContext, type ProjectContext } from "../../engine/context.ts";
import type { Stage } from "../../engine/types.ts";

/** A stage literal with defaults; outs may be given as paths. */
export function stage(name: string, s: Partial<Omit<Stage, "outs">> & { outs?: (string | { path: string; persist: boolean })[] } = {}): Stage {
  return {
    name,
    group: s.group ?? name.split("@")[0]!,
    cmd: s.cmd ?? [`echo ${name}`],
    deps: s.deps ?? [],
    outs: (s.outs ?? []).map((o) => (typeof o === "string" ? { path: o, persist: false } : o)),
    params: s.params ?? {},
    env: s.env ?? {},
    resources: s.resources ?? { gpus: 0 },
  };
}

/** A temporary directory holding `files` (path -> content); removed by the returned cleanup. */
export function tmpProject(files: Record<string, string> = {}): { root: string; ctx: (paramsFile?: string) => ProjectContext; write: (f: string, c: string) => void; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "engine-test-"));
  const write = (f: string, c: string) => {
    const abs = path.join(root, f);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, c);
  };
  for (const [f, c] of Object.entries(files)) write(f, c);
  return {
    root,
    write,
    ctx: (paramsFile?: string) => resolveContext({ cwd: root, paramsFile }),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

/** Run `fn`, expect it to throw; return the error message. */
export async function errorOf(fn: () => unknown): Promise<{ name: string; message: string; exitCode?: number }> {
  try {
    await fn();
  } catch (e) {
    const err = e as Error & { exitCode?: number };
    return { name: err.name, message: err.message, exitCode: err.exitCode };
  }
  throw new Error("expected an error, got none");
}
