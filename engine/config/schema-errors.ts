/** zod issues -> one located InputError (`file:LINE:COL: key.path: message`, allowed keys for typos). */
import type { z } from "zod";
import { InputError } from "../errors.ts";
import { getPath, isPlainObject } from "../interpolate.ts";
import { formatKeyPath, type KeyPath, type YamlFile } from "./yaml-file.ts";

const STAGE_KEYS = [
  "desc", "cmd", "deps", "params", "outs", "metrics", "plots", "wdir", "vars", "frozen", "always_changed", "meta",
  "env", "resources", "executor", "slurm", "foreach", "do", "matrix",
];
const TOP_KEYS = ["stages", "vars", "params", "metrics", "plots", "artifacts", "datasets"];
const OUT_KEYS = ["persist", "cache", "desc", "push", "remote", "type", "labels", "meta", "checkpoint"];
const PLOT_KEYS = [...OUT_KEYS, "template", "x", "y", "x_label", "y_label", "title", "header"];
const KEYS_BY_PARENT: Record<string, string[]> = {
  resources: ["gpus", "cpus", "memory", "time"],
  slurm: ["partition", "account", "qos", "gpu_flag", "extra_args"],
};

/** Keys DVC 2 accepted and DVC 3 rejects. */
const DVC2_KEYS = ["live"];

function allowedKeys(parent: KeyPath): string[] | undefined {
  if (parent.length === 0) return TOP_KEYS;
  const last = parent[parent.length - 1];
  if (typeof last === "string" && KEYS_BY_PARENT[last]) return KEYS_BY_PARENT[last];
  if (parent.includes("plots")) return PLOT_KEYS;
  if (parent.includes("outs") || parent.includes("metrics")) return OUT_KEYS;
  if (parent[0] === "artifacts") return ["path", "desc", "type", "labels", "meta"];
  if (parent[0] === "stages" && (parent.length === 2 || (parent.length === 3 && last === "do"))) {
    return parent.length === 3 ? STAGE_KEYS.filter((k) => !["foreach", "do", "matrix"].includes(k)) : STAGE_KEYS;
  }
  return undefined;
}

/** Turn zod issues into one InputError with a position and a key path per issue. */
export function schemaError(file: YamlFile, base: KeyPath, issues: z.core.$ZodIssue[], input: unknown, note = ""): InputError {
  const lines = issues.slice(0, 5).map((iss) => {
    const p = [...base, ...(iss.path as KeyPath)];
    if (iss.code === "unrecognized_keys") {
      const keys = (iss as { keys: string[] }).keys;
      const allowed = allowedKeys(p);
      const dvc2 = keys.some((k) => DVC2_KEYS.includes(k)) ? "; DVC 2's dvclive `live:` section, which DVC 3 rejects too: use the dvclive package in the command" : "";
      const hint = allowed ? ` (allowed: ${allowed.join(", ")}${dvc2})` : "";
      return `${file.pos([...p, keys[0]!], true)}: ${formatKeyPath(p)}: unknown key${keys.length > 1 ? "s" : ""} ${keys.map((k) => `"${k}"`).join(", ")}${hint}`;
    }
    if (iss.path.length > 0) {
      const parent = getPath(input, iss.path.slice(0, -1).map(String));
      const last = String(iss.path[iss.path.length - 1]);
      if (parent.found && isPlainObject(parent.value) && !(last in parent.value)) {
        const what = iss.message.startsWith("Invalid input") ? "" : ` (${iss.message})`;
        return `${file.pos(p)}: ${formatKeyPath(p)}: required${what}`;
      }
    }
    return `${file.pos(p)}: ${formatKeyPath(p)}: ${iss.message}`;
  });
  if (issues.length > 5) lines.push(`(and ${issues.length - 5} more problems)`);
  return new InputError(lines.join("\n") + note);
}

