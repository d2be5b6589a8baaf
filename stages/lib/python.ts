/**
 * Run a step of the project's Python package (`python -m persona_axis.<step>`, python/pyproject.toml)
 * with the project's interpreter, streaming its output (progress bars
 * included) straight through, and exit with its exit code.
 * Interpreter: $PERSONA_PYTHON if set, else .venv-gpu/bin/python for a stage that can use vLLM when
 * that environment exists (`npm run setup -- --gpu`, docs/gpu-setup.md), else .venv/bin/python.
 */
import fs from "node:fs";
import path from "node:path";
import { $ } from "zx";

export const LIGHT_ENV = ".venv/bin/python";
export const GPU_ENV = ".venv-gpu/bin/python";

/** `vllm`: the stage would use vLLM if it can (a backend of auto or vllm): prefer the GPU env. */
export function pythonExecutable(opts: { vllm?: boolean; root?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const env = opts.env ?? process.env;
  const root = opts.root ?? process.cwd();
  let py = env.PERSONA_PYTHON;
  if (!py) py = opts.vllm && fs.existsSync(path.join(root, GPU_ENV)) ? GPU_ENV : LIGHT_ENV;
  if (py.includes("/") && !fs.existsSync(path.resolve(root, py))) {
    throw new Error(`Python interpreter ${py} not found: run \`npm run setup\` or set PERSONA_PYTHON`);
  }
  return py;
}

/** `module`: a module of the package with a main (`persona_axis.capture`); scripts/stage-deps.ts reads these calls. */
export async function runPython(
  module: string,
  args: (string | number)[],
  env: Record<string, string> = {},
  opts: { vllm?: boolean } = {},
): Promise<number> {
  const py = pythonExecutable(opts);
  const argv = ["-m", module, ...args.map(String)];
  process.stderr.write(`$ ${py} ${argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}\n`);
  const r = await $({
    stdio: "inherit",
    nothrow: true,
    env: { ...process.env, PYTHONUNBUFFERED: "1", HF_HUB_DISABLE_TELEMETRY: "1", ...env },
  })`${py} ${argv}`;
  if (r.signal) process.stderr.write(`python was killed by ${r.signal}\n`);
  if (r.exitCode === 1 && !(await importsPackage(py))) {
    // an interpreter of the user's own (PERSONA_PYTHON) without the package: say how to install it
    process.stderr.write(`error: ${py} cannot import persona_axis: install the package into that environment ` +
      `(${py} -m pip install -e python; docs/gpu-setup.md)\n`);
    return 2;
  }
  return r.exitCode ?? 128 + 9;
}

/** Whether `py` can import the project's package (asked only after a step failed). */
async function importsPackage(py: string): Promise<boolean> {
  const r = await $({ nothrow: true, quiet: true, stdio: "pipe" })`${py} -c ${"import persona_axis"}`;
  return r.exitCode === 0;
}

/** Glue entry point: validate, build the command, run, exit. Errors are printed plainly (exit 2). */
export async function stageMain(fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}

export function usage(n: number, text: string): string[] {
  const a = process.argv.slice(2);
  if (a.length !== n) throw new Error(`usage: ${text}`);
  return a;
}
