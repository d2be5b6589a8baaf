/**
 * Params files other than the project's params.yaml (DVC's `params: [{config.json: [a.b]}]` and
 * `vars: [file.yaml]`): YAML, JSON or TOML, read once per load. Python params files are not
 * supported (a clear error says so).
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire as requireFrom } from "node:module";
import { InputError } from "../errors.ts";
import { isPlainObject } from "../interpolate.ts";
import { parse as parseYaml } from "yaml";
import { YamlFile } from "./yaml-file.ts";

export type ParamsRead = { ok: true; data: Record<string, unknown>; floats?: Set<string> } | { ok: false; why: string };

/** Read `abs` (shown as `display`) as a mapping; `ok: false` when it does not exist. Bad content is an InputError. */
function readParamsFile(abs: string, display: string): ParamsRead {
  if (!fs.existsSync(abs)) return { ok: false, why: `${display} does not exist` };
  if (fs.statSync(abs).isDirectory()) return { ok: false, why: `${display} is a directory` };
  const ext = path.extname(abs).toLowerCase();
  let value: unknown;
  let floats: Set<string> | undefined;
  if (ext === ".py") {
    throw new InputError(`${display}: Python params files are not supported; move these params to a YAML, JSON or TOML file`);
  } else if (ext === ".json") {
    try {
      value = JSON.parse(fs.readFileSync(abs, "utf8"));
    } catch (e) {
      throw new InputError(`${display}: invalid JSON: ${(e as Error).message} (fix the file)`);
    }
  } else if (ext === ".toml") {
    value = parseToml(fs.readFileSync(abs, "utf8"), display);
  } else {
    const y = YamlFile.read(abs, display);
    value = y.value ?? {};
    floats = y.floatPaths();
  }
  if (!isPlainObject(value)) throw new InputError(`${display} must be a mapping of params (key: value)`);
  return { ok: true, data: value, floats };
}

/** Parse TOML text with smol-toml (loaded on first use); throws the parser's error. */
function tomlParse(text: string, display: string): unknown {
  let mod: { parse(s: string): unknown };
  try {
    mod = requireFrom(import.meta.url)("smol-toml") as { parse(s: string): unknown };
  } catch {
    throw new InputError(`${display}: reading TOML needs the smol-toml package (run npm install)`);
  }
  return JSON.parse(JSON.stringify(mod.parse(text), (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
}

/** Parse the text of a JSON, YAML or TOML file by its extension (metrics, params at a git revision); throws on bad content. */
export function parseDataText(file: string, text: string): unknown {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".json") return JSON.parse(text);
  if (ext === ".yaml" || ext === ".yml") return parseYaml(text);
  if (ext === ".toml") return tomlParse(text, file);
  throw new Error("not a JSON, YAML or TOML file");
}

function parseToml(text: string, display: string): unknown {
  try {
    return tomlParse(text, display);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${display}: invalid TOML: ${(e as Error).message.split("\n")[0]} (fix the file)`);
  }
}

/** A per-load cache of params files by absolute path. */
export class ParamsFiles {
  private readonly cache = new Map<string, ParamsRead>();
  constructor(private readonly root: string) {}

  /** `rel` is project-relative (may start with `../` inside the repository). */
  read(rel: string): ParamsRead {
    const abs = path.resolve(this.root, rel);
    let r = this.cache.get(abs);
    if (!r) {
      r = readParamsFile(abs, rel);
      this.cache.set(abs, r);
    }
    return r;
  }
}
