/** Which Python environment a stage runs in (stages/lib/python.ts): the vLLM environment made by
 *  `npm run setup -- --gpu` (.venv-gpu) for stages that can use vLLM, when it exists; else .venv. */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { GPU_ENV, LIGHT_ENV, pythonExecutable, runPython } from "../../stages/lib/python.ts";

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

  it("an interpreter of one's own without the package: exit 2 and how to install it", async () => {
    // a real Python, isolated (-I: no PYTHONPATH, no user site), so persona_axis is not importable
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyenv-"));
    const py = path.join(dir, "python");
    fs.writeFileSync(py, "#!/bin/sh\nexec /usr/bin/env python3 -I \"$@\"\n", { mode: 0o755 });
    const saved = process.env.PERSONA_PYTHON;
    const write = process.stderr.write.bind(process.stderr);
    let err = "";
    process.env.PERSONA_PYTHON = py;
    process.stderr.write = ((chunk: string) => { err += chunk; return true; }) as typeof process.stderr.write;
    try {
      expect(await runPython("persona_axis.report", ["--help"])).toBe(2);
    } finally {
      process.stderr.write = write;
      if (saved === undefined) delete process.env.PERSONA_PYTHON;
      else process.env.PERSONA_PYTHON = saved;
    }
    expect(err).toContain(`error: ${py} cannot import persona_axis: install the package into that environment (${py} -m pip install -e python`);
    // the project's own environment has it (npm run setup): the step runs
    expect(await runPython("persona_axis.report", ["--help"])).toBe(0);
  });
});
