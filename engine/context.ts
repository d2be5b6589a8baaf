import path from "node:path";
import fs from "node:fs";
import { InputError } from "./errors.ts";

/**
 * Where one project's files live. A profile (`-P params/demo.yaml`) is a complete params file used
 * instead of params.yaml; it gets its own lock (`pipeline.demo.lock`) and its own run state
 * (`.pipeline/profiles/demo/`), so profiles never overwrite each other's records. The stat
 * cache (`.pipeline/statcache.json`) is shared: a file's hash does not depend on the profile.
 */
export interface ProjectContext {
  /** Absolute project directory (the folder of pipeline.yaml / dvc.yaml). */
  root: string;
  /**
   * Absolute folder that paths may not leave: the enclosing git repository's root (so `../data`
   * from a dvc.yaml in a subfolder is inside the project), else `root`.
   */
  repoRoot: string;
  /** pipeline.yaml; when there is none, DVC's dvc.yaml if present. */
  pipelineFile: string;
  paramsFile: string;
  /** Absolute path of the profile params file, if any. */
  profileFile?: string;
  /** "default", or the profile file's base name without extension. */
  profile: string;
  lockFile: string;
  /** `.pipeline/` (shared state: stat cache, manifests). */
  stateDir: string;
  /** `.pipeline/` for the default profile, `.pipeline/profiles/<name>/` otherwise: logs, runs, journals, repro mutex. */
  profileStateDir: string;
}

export interface ContextOptions {
  cwd?: string;
  paramsFile?: string;
}

export function resolveContext(opts: ContextOptions = {}): ProjectContext {
  const root = path.resolve(opts.cwd ?? ".");
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new InputError(`project directory ${root} does not exist or is not a directory (check -C/--cwd)`);
  }
  const stateDir = path.join(root, ".pipeline");
  let profileFile: string | undefined;
  let profile = "default";
  if (opts.paramsFile) {
    profileFile = path.resolve(root, opts.paramsFile);
    profile = path.basename(profileFile).replace(/\.(ya?ml)$/i, "");
    if (!/^[A-Za-z0-9._-]+$/.test(profile) || profile === "default") {
      throw new InputError(
        profile === "default"
          ? `profile file ${opts.paramsFile}: a profile cannot be named 'default' (that name is taken by params.yaml); rename the file`
          : `profile file name ${opts.paramsFile}: the name must be letters, digits, '.', '_' or '-'; rename the file`,
      );
    }
  }
  const ownFile = path.join(root, "pipeline.yaml");
  const dvcFile = path.join(root, "dvc.yaml");
  return {
    root,
    repoRoot: gitRoot(root) ?? root,
    pipelineFile: !fs.existsSync(ownFile) && fs.existsSync(dvcFile) ? dvcFile : ownFile,
    paramsFile: path.join(root, "params.yaml"),
    profileFile,
    profile,
    lockFile: path.join(root, profile === "default" ? "pipeline.lock" : `pipeline.${profile}.lock`),
    stateDir,
    profileStateDir: profile === "default" ? stateDir : path.join(stateDir, "profiles", profile),
  };
}

/** The root of the git repository (work tree) containing `dir`, if any: the nearest folder with a `.git` entry. */
function gitRoot(dir: string): string | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, ".git"))) return d;
    if (path.dirname(d) === d) return undefined;
  }
}
