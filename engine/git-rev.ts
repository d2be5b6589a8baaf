/**
 * Files as a git revision holds them, for the commands that compare revisions (`metrics diff`,
 * `params diff A B`): paths are project-relative, git's are relative to the repository root.
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import type { ProjectContext } from "./context.ts";
import { InputError } from "./errors.ts";

/** Refuse (exit 2) unless the project is in a git repository and every rev names a commit. */
export async function verifyRevs(ctx: ProjectContext, command: string, revs: (string | undefined)[]): Promise<void> {
  if (!fs.existsSync(path.join(ctx.repoRoot, ".git"))) throw new InputError(`${command} needs a git repository; ${ctx.root} is not in one`);
  for (const rev of revs) {
    if (rev === undefined) continue;
    const ok = await execa("git", ["-C", ctx.repoRoot, "rev-parse", "--verify", "--quiet", `${rev}^{commit}`], { reject: false });
    if (ok.exitCode !== 0) throw new InputError(`${command}: ${rev} is not a git revision (see git log)`);
  }
}

/** The text of project-relative `file` at `rev` (undefined = the workspace), or null where it is absent. */
export async function readAtRev(ctx: ProjectContext, rev: string | undefined, file: string): Promise<string | null> {
  if (rev === undefined) {
    const abs = path.resolve(ctx.root, file);
    return fs.existsSync(abs) ? fs.readFileSync(abs, "utf8") : null;
  }
  const rel = path.relative(ctx.repoRoot, path.resolve(ctx.root, file)).split(path.sep).join("/");
  const r = await execa("git", ["-C", ctx.repoRoot, "show", `${rev}:${rel}`], { reject: false, stripFinalNewline: false });
  return r.exitCode === 0 ? r.stdout : null;
}
