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

/**
 * A project-relative, normalized posix path (no `./`, no trailing slash), or why not: absolute
 * outside the repository, escaping it with `..`, or the project folder itself.
 */
export function normalizeProjectPath(
  root: string,
  p: string,
  repoRoot: string = root,
  wdir = "",
): { ok: true; path: string } | { ok: false; why: string } {
  let rel = p.trim().split(path.sep).join("/");
  if (path.isAbsolute(rel)) rel = path.relative(root, rel).split(path.sep).join("/");
  else if (wdir) rel = `${wdir}/${rel}`;
  rel = path.posix.normalize(rel).replace(/\/+$/, "");
  if (rel === "" || rel === ".") return { ok: false, why: `${p} is the project directory itself; name a file or directory inside it` };
  const fromRepo = path.relative(repoRoot, path.resolve(root, rel));
  if (fromRepo === "" || fromRepo === ".." || fromRepo.startsWith(`..${path.sep}`) || path.isAbsolute(fromRepo)) {
    const where = repoRoot === root ? "the project directory" : "the git repository";
    return { ok: false, why: fromRepo === "" ? `${p} is ${where} itself; name a file or directory inside it` : `${p} is outside ${where} ${repoRoot}` };
  }
  return { ok: true, path: rel };
}

/** The stage's wdir, normalized (project-relative, "" for the pipeline's folder), or why not. */
export function normalizeWdir(root: string, wdir: string, repoRoot: string): { ok: true; path: string } | { ok: false; why: string } {
  const rel = path.posix.normalize(wdir.trim().split(path.sep).join("/")).replace(/\/+$/, "");
  if (rel === "." || rel === "") return { ok: true, path: "" };
  if (path.isAbsolute(rel)) return { ok: false, why: `wdir ${wdir} must be relative to the pipeline's folder` };
  const fromRepo = path.relative(repoRoot, path.resolve(root, rel));
  if (fromRepo.startsWith("..") || path.isAbsolute(fromRepo)) {
    return { ok: false, why: `wdir ${wdir} is outside ${repoRoot === root ? "the project directory" : "the git repository"} ${repoRoot}` };
  }
  return { ok: true, path: rel };
}
