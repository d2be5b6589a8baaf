import { afterEach, describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { errorOf, tmpProject } from "./helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function project(pipeline: string, params?: string, extra: Record<string, string> = {}) {
  const files: Record<string, string> = { "pipeline.yaml": pipeline, ...extra };
  if (params !== undefined) files["params.yaml"] = params;
  const p = tmpProject(files);
  cleanups.push(p.cleanup);
  return p;
}

async function load(pipeline: string, params?: string, extra: Record<string, string> = {}, profile?: string) {
  const p = project(pipeline, params, extra);
  return loadProject(p.ctx(profile));
}

async function loadError(pipeline: string, params?: string, extra: Record<string, string> = {}, profile?: string) {
  const e = await errorOf(() => load(pipeline, params, extra, profile));
  expect(e.name).toBe("InputError");
  expect(e.exitCode).toBe(2);
  return e.message;
}

const PARAMS = `
out: outputs/demo
generation:
  temperature: 0.7
  layers: [4, 8]
  gpus: 1
checkpoints:
  base: {model: org/base, revision: main}
  final: {model: org/final, revision: v2}
`;

describe("loadProject: interpolation and params", () => {
  it("interpolates params everywhere and tracks every interpolated and declared key", async () => {
    const p = await load(
      `stages:
  generate:
    desc: "temperature \${generation.temperature}"
    cmd:
      - python gen.py --t \${generation.temperature} --out \${out}/t
      - echo done
    deps: [gen.py]
    params: [generation.layers, "checkpoints.final"]
    outs:
      - \${out}/t:
          persist: true
      - ./\${out}/log.txt
    env: {TEMP: "\${generation.temperature}", N: 3}
    resources: {gpus: "\${generation.gpus}", memory: 8G}
    executor: slurm
    slurm: {partition: gpu, gpu_flag: gpus, extra_args: "--exclusive --nice=10"}
`,
      PARAMS,
    );
    expect(p.stages).toHaveLength(1);
    const s = p.stages[0]!;
    expect(s).toEqual({
      name: "generate",
      group: "generate",
      desc: "temperature 0.7",
      cmd: ["python gen.py --t 0.7 --out outputs/demo/t", "echo done"],
      deps: ["gen.py"],
      outs: [
        { path: "outputs/demo/t", persist: true },
        { path: "outputs/demo/log.txt", persist: false },
      ],
      params: {
        "checkpoints.final": { model: "org/final", revision: "v2" },
        "generation.layers": [4, 8],
        "generation.temperature": 0.7,
        out: "outputs/demo",
      },
      env: { TEMP: "0.7", N: "3" },
      resources: { gpus: 1, memory: "8G" },
      executor: "slurm",
      slurm: { partition: "gpu", gpuFlag: "gpus", extraArgs: ["--exclusive", "--nice=10"] },
    });
  });

  it("accepts DVC's `- params.yaml: [keys]` form, and params from other files tracked as <file>:<key>", async () => {
    const ok = await load(`stages:\n  a:\n    cmd: x\n    params:\n      - params.yaml: [generation.temperature]\n`, PARAMS);
    expect(ok.stages[0]!.params).toEqual({ "generation.temperature": 0.7 });
    const other = await load(
      `stages:\n  a:\n    cmd: x\n    params:\n      - other.yaml: [a.b]\n      - conf/c.json:\n      - conf/absent.yaml: [z]\n      - other.yaml: [nope]\n`,
      PARAMS,
      { "other.yaml": "a: {b: 1, c: 2}\n", "conf/c.json": '{"lr": 0.1, "net": {"depth": 3}}' },
    );
    expect(other.stages[0]!.params).toEqual({ "other.yaml:a.b": 1, "conf/c.json:lr": 0.1, "conf/c.json:net": { depth: 3 } });
    // absent files and keys do not stop planning; they are recorded with a located message
    expect(other.stages[0]!.missingParams).toEqual({
      "conf/absent.yaml": "pipeline.yaml:7:9: stages.a.params[2]: params file conf/absent.yaml does not exist (create it, or remove it from the stage's params)",
      "other.yaml:nope": "pipeline.yaml:8:9: stages.a.params[3]: params key nope is not defined in other.yaml; define it there or fix the key",
    });
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    params:\n      - p.py: [a]\n`, PARAMS, { "p.py": "a = 1\n" })).toContain(
      "p.py: Python params files are not supported",
    );
  });

  it("uses the profile file instead of params.yaml (profiles are complete params files)", async () => {
    const p = await load(
      `stages:\n  a:\n    cmd: echo \${generation.layers[0]} \${out}\n`,
      PARAMS,
      { "params/demo.yaml": "out: outputs/tiny\ngeneration:\n  layers: [1]\n" },
      "params/demo.yaml",
    );
    expect(p.params).toEqual({ out: "outputs/tiny", generation: { layers: [1] } });
    expect(p.stages[0]!.cmd).toEqual(["echo 1 outputs/tiny"]);
    expect(p.stages[0]!.params).toEqual({ "generation.layers.0": 1, out: "outputs/tiny" });
    // a key only params.yaml has is not seen through the profile
    expect(
      await loadError(`stages:\n  a:\n    cmd: echo \${generation.temperature}\n`, PARAMS, { "params/demo.yaml": "generation: {}\n" }, "params/demo.yaml"),
    ).toBe("pipeline.yaml:3:10: stages.a.cmd: ${generation.temperature} is not defined in params/demo.yaml; define it there or fix the key");
  });

  it("allows a missing params.yaml when nothing needs params", async () => {
    const p = await load(`stages:\n  a:\n    cmd: echo hi\n    outs: [x.txt]\n`);
    expect(p.params).toEqual({});
    expect(p.stages[0]!.outs).toEqual([{ path: "x.txt", persist: false }]);
  });
});

describe("loadProject: foreach", () => {
  it("expands a params mapping into name@key instances, tracking item fields under their real keys", async () => {
    const p = await load(
      `stages:
  capture:
    foreach: \${checkpoints}
    do:
      cmd: capture \${key} \${item.model} \${item.revision}
      outs:
        - \${out}/act/\${key}
`,
      PARAMS,
    );
    expect(p.stages.map((s) => s.name)).toEqual(["capture@base", "capture@final"]);
    expect(p.stages.every((s) => s.group === "capture")).toBe(true);
    expect(p.stages[1]!.cmd).toEqual(["capture final org/final v2"]);
    expect(p.stages[1]!.outs[0]!.path).toBe("outputs/demo/act/final");
    expect(p.stages[1]!.params).toEqual({ "checkpoints.final.model": "org/final", "checkpoints.final.revision": "v2", out: "outputs/demo" });
  });

  it("names instances of a scalar list by value and of a list of mappings by index; literal items are not params", async () => {
    const p = await load(
      `stages:
  by_value:
    foreach: [pirate, poet]
    do:
      cmd: echo \${item}
  by_index:
    foreach:
      - {name: a, n: 1}
      - {name: b, n: 2}
    do:
      cmd: echo \${item.name} \${item.n} \${key}
`,
    );
    expect(p.stages.map((s) => s.name)).toEqual(["by_value@pirate", "by_value@poet", "by_index@0", "by_index@1"]);
    expect(p.stages[3]!.cmd).toEqual(["echo b 2 1"]);
    expect(p.stages.every((s) => Object.keys(s.params).length === 0)).toBe(true);
  });

  it("rejects foreach problems clearly", async () => {
    expect(await loadError(`stages:\n  c:\n    foreach: \${generation.temperature}\n    do:\n      cmd: x\n`, PARAMS)).toContain(
      "pipeline.yaml:3:14: stages.c.foreach: ${generation.temperature} must be a list or a mapping in params, got 0.7",
    );
    expect(await loadError(`stages:\n  c:\n    foreach: [a, a]\n    do:\n      cmd: x\n`)).toContain("two items give the same instance name c@a");
    expect(await loadError(`stages:\n  c:\n    foreach: [a]\n    cmd: x\n`)).toContain('stages.c: unknown key "cmd"');
    expect((await load(`stages:\n  c:\n    foreach: [org/model]\n    do:\n      cmd: x\n`)).stages[0]!.name).toBe("c@org/model"); // as DVC names it
    expect(await loadError(`stages:\n  c:\n    foreach: ["a\\tb"]\n    do:\n      cmd: x\n`)).toContain('stages.c.foreach: item "a\\tb" cannot name an instance');
    expect(await loadError(`stages:\n  c:\n    foreach: [a]\n    do:\n      cmd: \${item.x}\n`)).toContain(
      "pipeline.yaml:5:12: stages.c.do.cmd (instance c@a): ${item.x}: the foreach item has no field x",
    );
  });
});

describe("loadProject: bad input names file:line:col and key", () => {
  it("malformed YAML in pipeline.yaml and in params files", async () => {
    expect(await loadError(`stages:\n  a:\n    cmd: [x\n`)).toMatch(/^pipeline\.yaml:\d+:\d+: /);
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    cmd: y\n`)).toMatch(/^pipeline\.yaml:4:5: Map keys must be unique/);
    // a ${} in a flow list is a YAML error: the message says how to write it
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    outs: [\${out}/b]\n`, PARAMS)).toMatch(
      /^pipeline\.yaml:4:13: .*\n[\s\S]*a \$\{\.\.\.\} inside \[ \] or \{ \} must be quoted/,
    );
    expect(await loadError(`stages:\n  a:\n    cmd: x\n`, "a: 1\n b: 2\n")).toMatch(/^params\.yaml:\d+:\d+: /);
    expect(await loadError(`stages:\n  a:\n    cmd: x\n`, "a: 1\n", { "params/p.yaml": "x: [\n" }, "params/p.yaml")).toMatch(
      /^params\/p\.yaml:\d+:\d+: /,
    );
    expect(await loadError(`stages:\n  a:\n    cmd: x\n`, "- 1\n")).toBe("params.yaml:1:1: params.yaml must be a mapping of params (key: value)");
  });

  it("schema violations with their key path", async () => {
    expect(await loadError(`stages:\n  capture:\n    cmd: x\n    resources:\n      gpus: -1\n`)).toBe(
      "pipeline.yaml:5:13: stages.capture.resources.gpus: expected a whole number >= 0",
    );
    expect(await loadError(`stages:\n  capture:\n    cmd: x\n    resources:\n      gpus: 1.5\n`)).toContain(
      "stages.capture.resources.gpus: expected a whole number >= 0",
    );
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    resources: {gpu: 1}\n`)).toBe(
      'pipeline.yaml:4:17: stages.a.resources: unknown key "gpu" (allowed: gpus, cpus, memory, time)',
    );
    expect(await loadError(`stages:\n  a:\n    deps: [x]\n`)).toBe(
      "pipeline.yaml:3:5: stages.a.cmd: required (expected a command string or a non-empty list of command strings)",
    );
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    outs:\n      - o:\n          cach: false\n`)).toContain(
      'pipeline.yaml:6:11: stages.a.outs[0].o: unknown key "cach" (allowed: persist, cache, desc, push, remote, type, labels, meta, checkpoint)',
    );
    expect(await loadError(`stagez: {}\n`)).toContain('unknown key "stagez"');
    expect(await loadError(`stages:\n  a@b:\n    cmd: x\n`)).toContain("pipeline.yaml:2:3: stages.a@b: invalid stage name");
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    executor: cloud\n`)).toContain('stages.a.executor: expected "local" or "slurm"');
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    resources: {time: 60}\n`)).toContain('stages.a.resources.time: expected a string such as "12:00:00"');
    // a typed field that is only known after interpolation
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    resources: {gpus: "\${out}"}\n`, PARAMS)).toBe(
      "pipeline.yaml:4:23: stages.a.resources.gpus: expected a whole number >= 0\n(after interpolation)",
    );
  });

  it("a ${} key missing from params names the stage, field and key", async () => {
    expect(await loadError(`stages:\n  gen:\n    cmd: run --t \${generation.temp}\n`, PARAMS)).toBe(
      "pipeline.yaml:3:10: stages.gen.cmd: ${generation.temp} is not defined in params.yaml; define it there or fix the key",
    );
    expect(await loadError(`stages:\n  gen:\n    cmd: run\n    deps:\n      - \${data}\n`)).toBe(
      "pipeline.yaml:5:9: stages.gen.deps[0]: ${data} is not defined: there is no params.yaml (create it and define the key)",
    );
    expect(await loadError(`stages:\n  gen:\n    cmd: run\n    deps: ["d/\${generation}"]\n`, PARAMS)).toContain(
      "stages.gen.deps[0]: ${generation} is a mapping and cannot be placed inside a longer string",
    );
  });

  it("a declared params key missing from params is recorded with its location (planning goes on; repro refuses)", async () => {
    expect((await load(`stages:\n  gen:\n    cmd: run\n    params: [generation.top_p]\n`, PARAMS)).stages[0]!.missingParams).toEqual({
      "generation.top_p": "pipeline.yaml:4:14: stages.gen.params[0]: params key generation.top_p is not defined in params.yaml; define it there or fix the key",
    });
  });

  it("paths outside the project, and the pipeline's own files as outs", async () => {
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    deps: [../secret.txt]\n`)).toMatch(
      /^pipeline\.yaml:4:12: stages\.a\.deps\[0\]: \.\.\/secret\.txt is outside the project directory /,
    );
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    outs: [/etc/passwd]\n`)).toContain("stages.a.outs[0]: /etc/passwd is outside the project directory");
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    outs: [a/../../b]\n`)).toContain("is outside the project directory");
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    outs: [.pipeline/x]\n`)).toContain("is the pipeline's own file or state");
    expect(await loadError(`stages:\n  a:\n    cmd: x\n    outs: [.]\n`)).toContain("is the project directory itself");
  });

  it("a missing pipeline.yaml or profile file", async () => {
    const p = tmpProject({});
    cleanups.push(p.cleanup);
    expect((await errorOf(() => loadProject(p.ctx()))).message).toContain("no pipeline.yaml (or DVC's dvc.yaml) in");
    expect(await loadError(`stages:\n  a:\n    cmd: x\n`, "", {}, "params/none.yaml")).toBe(
      "profile params file params/none.yaml does not exist (check -P/--params-file)",
    );
  });
});

describe("placement keys are not tracked", () => {
  it("${} in resources / slurm resolves but is not a tracked param (changing it never makes a stage stale)", async () => {
    const p = tmpProject({
      "params.yaml": "gpus: 2\npart: big\nlr: 0.1\n",
      "pipeline.yaml": "stages:\n  train:\n    cmd: echo ${lr}\n    resources: {gpus: \"${gpus}\"}\n    slurm: {partition: \"${part}\"}\n",
    });
    try {
      const { stages } = await loadProject(p.ctx());
      expect(stages[0].resources.gpus).toBe(2);
      expect(stages[0].slurm?.partition).toBe("big");
      expect(stages[0].params).toEqual({ lr: 0.1 });
    } finally {
      p.cleanup();
    }
  });
});
