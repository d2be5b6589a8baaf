/** Which Python environment a stage runs in (stages/lib/python.ts): the vLLM environment made by
 *  `npm run setup -- --gpu` (.venv-gpu) for stages that can use vLLM, when it exists; else .venv. */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { GPU_ENV, LIGHT_ENV, pythonExecutable } from "../../stages/lib/python.ts";

function project(envs: string[]): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pyenv-"));
  for (const e of envs) {
    fs.mkdirSync(path.dirname(path.join(root, e)), { recursive: true });
    fs.writeFileSync(path.join(root, e), "#!/bin/sh\n", { mode: 0o755 });
  }
  return root;
}

describe("python environment of a stage", () => {
  it("a light-only checkout (CPU, CI, the demo) runs every stage in .venv", () => {
    const root = project([LIGHT_ENV]);
    expect(pythonExecutable({ root, env: {}, vllm: true })).toBe(LIGHT_ENV);
    expect(pythonExecutable({ root, env: {} })).toBe(LIGHT_ENV);
  });

  it("with .venv-gpu, stages that can use vLLM run there; the others stay in .venv", () => {
    const root = project([LIGHT_ENV, GPU_ENV]);
    expect(pythonExecutable({ root, env: {}, vllm: true })).toBe(GPU_ENV);
    expect(pythonExecutable({ root, env: {}, vllm: false })).toBe(LIGHT_ENV);
  });

  it("PERSONA_PYTHON wins; a missing interpreter is one clear error", () => {
    const root = project([LIGHT_ENV, GPU_ENV]);
    expect(pythonExecutable({ root, env: { PERSONA_PYTHON: "python3" }, vllm: true })).toBe("python3");
    expect(() => pythonExecutable({ root: project([]), env: {} })).toThrow(
      /Python interpreter \.venv\/bin\/python not found: run `npm run setup` or set PERSONA_PYTHON/,
    );
  });
});
