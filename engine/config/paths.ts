/**
 * Paths of a stage as DVC reads them: relative to the stage's `wdir` (itself relative to the
 * pipeline's folder), normalized to project-relative posix paths. They may climb above the
 * pipeline's folder (`../data`) as long as they stay inside the git repository (the project
 * root for path rules), or inside the pipeline's folder when there is no repository.
 */
import path from "node:path";

/** A URL dep (`https://...`, `s3://...`, `remote://...`): not a local path. */
export function isUrl(p: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]+:\/\//.test(p.trim());
}

function toPosix(p: string): string {
  return p.split(path.sep).join("/");
}

/**
 * The one absolute form of `p` (relative to `wdir`, itself project-relative, or absolute): `..`,
 * `.`, doubled and trailing slashes resolved against the real folder names, so `../sub/x` written
 * in `sub/` and `x` are the same path. Every path is compared in this form, made project-relative.
 */
function canonicalAbsolute(root: string, p: string, wdir: string): string {
  return path.resolve(root, wdir, p.trim());
}

/**
 * A project-relative, canonical posix path (no `./`, no trailing slash), or why not: absolute
 * outside the repository, escaping it with `..`, or the project folder itself.
 */
export function normalizeProjectPath(
  root: string,
  p: string,
  repoRoot: string = root,
  wdir = "",
): { ok: true; path: string } | { ok: false; why: string } {
  const abs = canonicalAbsolute(root, p, wdir);
  const rel = toPosix(path.relative(root, abs));
  if (rel === "") return { ok: false, why: `${p} is the project directory itself; name a file or directory inside it` };
  const fromRepo = path.relative(repoRoot, abs);
  if (fromRepo === "" || fromRepo === ".." || fromRepo.startsWith(`..${path.sep}`) || path.isAbsolute(fromRepo)) {
    const where = repoRoot === root ? "the project directory" : "the git repository";
    return { ok: false, why: fromRepo === "" ? `${p} is ${where} itself; name a file or directory inside it` : `${p} is outside ${where} ${repoRoot}` };
  }
  return { ok: true, path: rel };
}

/**
 * The stage's wdir (relative to `base`, the pipeline file's folder, project-relative), canonical
 * and project-relative ("" for the project folder), or why not.
 */
export function normalizeWdir(root: string, wdir: string, repoRoot: string, base = ""): { ok: true; path: string } | { ok: false; why: string } {
  if (path.isAbsolute(wdir.trim())) return { ok: false, why: `wdir ${wdir} must be relative to the pipeline's folder` };
  const abs = canonicalAbsolute(root, wdir, base);
  const rel = toPosix(path.relative(root, abs));
  if (rel === "") return { ok: true, path: "" };
  const fromRepo = path.relative(repoRoot, abs);
  if (fromRepo === ".." || fromRepo.startsWith(`..${path.sep}`) || path.isAbsolute(fromRepo)) {
    return { ok: false, why: `wdir ${wdir} is outside ${repoRoot === root ? "the project directory" : "the git repository"} ${repoRoot}` };
  }
  return { ok: true, path: rel };
}
