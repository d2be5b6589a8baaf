/**
 * DVC semantics of dvc.yaml, on real files and real processes: vars, wdir, matrix, dict
 * unpacking, params from other files, paths above the pipeline's folder inside the git repository,
 * frozen / always_changed, metrics show / diff, repro --single-item, --version.
 */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { errorOf, tmpProject } from "./helpers.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const tsx = path.join(repo, "node_modules/.bin/tsx");
const cli = (dir: string, ...args: string[]) => execa(tsx, [path.join(repo, "run.ts"), "-C", dir, ...args], { reject: false, cwd: repo });

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function project(files: Record<string, string>) {
  const p = tmpProject(files);
  cleanups.push(p.cleanup);
  return p;
}

describe("dvc.yaml: interpolation as DVC does it", () => {
  it("reads dvc.yaml when there is no pipeline.yaml; top-level and stage vars (files and inline); file values tracked as <file>:<key>", async () => {
    const p = project({
      "dvc.yaml": [
        "vars:",
        "  - conf/model.yaml",
        "  - conf/extra.json:seed",
        "  - data_dir: data",
        "stages:",
        "  train:",
        "    wdir: sub",
        "    vars:",
        "      - local.yaml",
        "      - tag: v1",
        "    cmd: python train.py --lr ${model.lr} --seed ${seed} --in ${data_dir} --k ${k} --tag ${tag} --p ${base}",
        "",
      ].join("\n"),
      "params.yaml": "base: 3\n",
      "conf/model.yaml": "model: {lr: 0.00001, depth: 4}\n",
      "conf/extra.json": '{"seed": 7, "ignored": 1}',
      "sub/local.yaml": "k: 2\n",
    });
    const { stages } = await loadProject(p.ctx());
    expect(stages[0]!.cmd).toEqual(["python train.py --lr 1e-05 --seed 7 --in data --k 2 --tag v1 --p 3"]);
    expect(stages[0]!.wdir).toBe("sub");
    expect(stages[0]!.params).toEqual({ base: 3, "conf/extra.json:seed": 7, "conf/model.yaml:model.lr": 0.00001, "sub/local.yaml:k": 2 });
  });

  it("params and vars from TOML files (smol-toml)", async () => {
    const p = project({
      "dvc.yaml": "vars:\n  - conf/v.toml\nstages:\n  s:\n    cmd: echo ${net.depth}\n    params:\n      - conf/p.toml: [train.lr]\n",
      "conf/v.toml": "[net]\ndepth = 3\n",
      "conf/p.toml": "[train]\nlr = 0.01\nepochs = 2\n",
    });
    const { stages } = await loadProject(p.ctx());
    expect(stages[0]!.cmd).toEqual(["echo 3"]);
    expect(stages[0]!.params).toEqual({ "conf/v.toml:net.depth": 3, "conf/p.toml:train.lr": 0.01 });
    p.write("conf/p.toml", "[train\n");
    expect((await errorOf(() => loadProject(p.ctx()))).message).toMatch(/^conf\/p\.toml: invalid TOML: .* \(fix the file\)$/);
  });

  it("redefining a value in vars, ${} inside vars, and a vars file that does not exist are located errors", async () => {
    const redefine = project({ "dvc.yaml": "vars:\n  - a: 1\n  - a: 2\nstages:\n  s:\n    cmd: echo ${a}\n" });
    expect((await errorOf(() => loadProject(redefine.ctx()))).message).toBe("dvc.yaml:3:5: vars[1]: cannot redefine 'a' from 'vars[1]' as it already exists in 'vars[0]'");
    const interp = project({ "dvc.yaml": "vars:\n  - x: ${y}\nstages:\n  s:\n    cmd: echo\n" });
    expect((await errorOf(() => loadProject(interp.ctx()))).message).toContain("dvc.yaml:2:5: vars[0]: ${} is not allowed in vars");
    const absent = project({ "dvc.yaml": "vars:\n  - nope.yaml\nstages:\n  s:\n    cmd: echo\n" });
    expect((await errorOf(() => loadProject(absent.ctx()))).message).toContain("dvc.yaml:2:5: vars[0]: nope.yaml does not exist");
  });

  it("dict unpacking in cmd (--key value), Python's str of scalars, \\${ escapes", async () => {
    const p = project({
      "dvc.yaml": "stages:\n  s:\n    cmd: python t.py ${train} ${none} \\${literal} ${flag} ${c} ${big}\n",
      "params.yaml": "train:\n  lr: 0.1\n  epochs: 10\n  layers: [1, 2.0]\n  verbose: true\n  quiet: false\n  name: a b\n  opt: {beta: 0.9}\n  w: 2.0\nnone: null\nflag: false\nc: 42.0\nbig: 1e3\n",
    });
    const { stages } = await loadProject(p.ctx());
    // whole numbers written as floats come out as Python writes floats (42.0), as DVC does
    expect(stages[0]!.cmd).toEqual(["python t.py --lr 0.1 --epochs 10 --layers 1 2.0 --verbose --name 'a b' --opt.beta 0.9 --w 2.0 None ${literal} false 42.0 1000.0"]);
    expect(stages[0]!.params.train).toEqual({ lr: 0.1, epochs: 10, layers: [1, 2], verbose: true, quiet: false, name: "a b", opt: { beta: 0.9 }, w: 2 });
  });

  it("matrix expands like DVC 3 (names joined with -, lists/mappings named <axis><index>), item values from params tracked", async () => {
    const p = project({
      "dvc.yaml": [
        "stages:",
        "  train:",
        "    matrix:",
        "      model: ${models}",
        "      lr: [0.1, 1e-05]",
        "      cfg: [{a: 1}]",
        "    cmd: echo ${item.model} ${item.lr} ${item.cfg.a} ${key}",
        "    outs:",
        "      - out/${key}.txt",
        "",
      ].join("\n"),
      "params.yaml": "models: [cnn, rnn]\n",
    });
    const { stages } = await loadProject(p.ctx());
    expect(stages.map((s) => s.name)).toEqual(["train@cnn-0.1-cfg0", "train@cnn-1e-05-cfg0", "train@rnn-0.1-cfg0", "train@rnn-1e-05-cfg0"]);
    expect(stages[1]!.cmd).toEqual(["echo cnn 1e-05 1 cnn-1e-05-cfg0"]);
    expect(stages[2]!.params).toEqual({ "models.1": "rnn" });
    expect(stages[3]!.outs[0]!.path).toBe("out/rnn-1e-05-cfg0.txt");
  });

  it("floats written as whole numbers keep DVC's names and values in foreach/matrix (literal and from params)", async () => {
    const p = project({
      "dvc.yaml": [
        "stages:",
        "  f:",
        "    foreach: [1.0, 2]",
        "    do:",
        "      cmd: echo ${item}",
        "  g:",
        "    foreach: ${rates}",
        "    do:",
        "      cmd: echo ${item}",
        "  m:",
        "    matrix:",
        "      lr: [1.0, 0.5]",
        "      w: ${ws}",
        "    cmd: echo ${item.lr} ${item.w}",
        "  v:",
        "    vars: [{t: 5.0}]",
        "    cmd: echo ${t}",
        "",
      ].join("\n"),
      "params.yaml": "rates: [3.0]\nws: [2.0]\n",
    });
    const { stages } = await loadProject(p.ctx());
    expect(stages.map((s) => [s.name, s.cmd[0]])).toEqual([
      ["f@1.0", "echo 1.0"],
      ["f@2", "echo 2"],
      ["g@3.0", "echo 3.0"],
      ["m@1.0-2.0", "echo 1.0 2.0"],
      ["m@0.5-2.0", "echo 0.5 2.0"],
      ["v", "echo 5.0"],
    ]);
  });

  it("metrics and plots are outs with their role and options; out options are kept", async () => {
    const p = project({
      "dvc.yaml": [
        "stages:",
        "  s:",
        "    cmd: echo",
        "    outs:",
        "      - model.pkl: {cache: false, persist: true, desc: the model, push: false, remote: store}",
        "    metrics:",
        "      - m.json: {cache: false}",
        "    plots:",
        "      - p.csv: {x: step, y: loss}",
        "      - curves/",
        "metrics: [extra.json]",
        "artifacts:",
        "  clf: {path: model.pkl, type: model}",
        "",
      ].join("\n"),
    });
    const proj = await loadProject(p.ctx());
    expect(proj.stages[0]!.outs).toEqual([
      { path: "model.pkl", persist: true, cache: false, options: { desc: "the model", push: false, remote: "store" } },
      { path: "m.json", persist: false, cache: false, role: "metrics" },
      { path: "p.csv", persist: false, role: "plots", options: { x: "step", y: "loss" } },
      { path: "curves", persist: false, role: "plots" },
    ]);
    expect(proj.metrics).toEqual(["extra.json", "m.json"]);
    expect(proj.artifacts).toEqual({ clf: "model.pkl" });
  });

  it("paths above the pipeline's folder are inside the project when they stay in the git repository", async () => {
    const p = project({ ".git/HEAD": "ref: refs/heads/main\n", "pipelines/dvc.yaml": "stages:\n  s:\n    cmd: echo\n    deps: [../data/raw.csv]\n    outs: [../out/x]\n    params: [{../conf.yaml: [a]}]\n", "conf.yaml": "a: 1\n" });
    const { stages } = await loadProject(p.ctx().root === p.root ? (await import("../../engine/context.ts")).resolveContext({ cwd: path.join(p.root, "pipelines") }) : p.ctx());
    expect(stages[0]!.deps).toEqual(["../data/raw.csv"]);
    expect(stages[0]!.outs[0]!.path).toBe("../out/x");
    expect(stages[0]!.params).toEqual({ "../conf.yaml:a": 1 });
    const out = project({ ".git/HEAD": "x\n", "pipelines/dvc.yaml": "stages:\n  s:\n    cmd: echo\n    deps: [../../elsewhere.csv]\n" });
    const ctx = (await import("../../engine/context.ts")).resolveContext({ cwd: path.join(out.root, "pipelines") });
    expect((await errorOf(() => loadProject(ctx))).message).toMatch(/^dvc\.yaml:4:12: stages\.s\.deps\[0\]: \.\.\/\.\.\/elsewhere\.csv is outside the git repository /);
  });
});

describe("dvc.yaml: YAML merge keys, as DVC's loader applies them", () => {
  it("`<<: *anchor` (and `<<: [*a, *b]`) merges the mapping; keys written next to it win; a bad key next to a merge is located", async () => {
    const p = project({
      "dvc.yaml": [
        "stages:",
        "  a: &base",
        "    cmd: echo base > a.txt",
        "    deps: [in.txt]",
        "    outs: [a.txt]",
        "  b: &frozen",
        "    <<: *base",
        "    cmd: cat a.txt > b.txt",
        "    deps: [a.txt]",
        "    outs: [b.txt]",
        "    frozen: true",
        "  c:",
        "    <<: [*frozen, *base]",
        "    outs: [c.txt]",
        "",
      ].join("\n"),
      "in.txt": "x\n",
    });
    const { stages } = await loadProject(p.ctx());
    expect(stages.map((s) => [s.name, s.cmd, s.deps, s.outs.map((o) => o.path), s.frozen ?? false])).toEqual([
      ["a", ["echo base > a.txt"], ["in.txt"], ["a.txt"], false],
      ["b", ["cat a.txt > b.txt"], ["a.txt"], ["b.txt"], true],
      // the earlier mapping of the list wins (YAML's merge rule): b's cmd and deps, a's nothing
      ["c", ["cat a.txt > b.txt"], ["a.txt"], ["c.txt"], true],
    ]);
    const dag = await cli(p.root, "dag");
    expect(dag.exitCode, dag.stderr).toBe(0);
    expect(dag.stdout).toMatch(/b\s+<- a\n.*c\s+<- a/s);

    p.write("dvc.yaml", "stages:\n  a: &b\n    cmd: echo\n    outs: [x]\n  s:\n    <<: *b\n    cmd: {no: 1}\n    outs: [o]\n");
    const bad = await cli(p.root, "status");
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^error: dvc\.yaml:7:10: stages\.s\.cmd: expected a command/);
  });
});

describe("dvc.yaml: running", () => {
  it("wdir: the command runs there and its paths are relative to it; --single-item runs only the target", async () => {
    const p = project({
      "dvc.yaml": [
        "stages:",
        "  a:",
        "    wdir: sub",
        "    cmd: pwd > where.txt && cat ../in.txt >> where.txt",
        "    deps: [../in.txt]",
        "    outs: [where.txt]",
        "  b:",
        "    cmd: cat sub/where.txt > b.txt",
        "    deps: [sub/where.txt]",
        "    outs: [b.txt]",
        "",
      ].join("\n"),
      "in.txt": "hello\n",
      "sub/.keep": "",
    });
    const r = await cli(p.root, "repro", "-s", "a");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(p.root, "sub/where.txt"), "utf8")).toBe(`${fs.realpathSync(path.join(p.root, "sub"))}\nhello\n`);
    expect(fs.existsSync(path.join(p.root, "b.txt"))).toBe(false);
    const st = await cli(p.root, "status");
    expect(st.stdout).toMatch(/^a: current\nb: stale\n/);
    // -s on b: its upstream a is not rerun even though b depends on it
    fs.writeFileSync(path.join(p.root, "in.txt"), "changed\n");
    expect((await cli(p.root, "repro", "--single-item", "b")).exitCode).toBe(0);
    expect(fs.readFileSync(path.join(p.root, "b.txt"), "utf8")).toContain("hello");
  });

  it("frozen stages ignore their deps and params; always_changed stages always run; missing params stop only repro", async () => {
    const p = project({
      "dvc.yaml": [
        "stages:",
        "  f:",
        "    frozen: true",
        "    cmd: cat in.txt > f.txt",
        "    deps: [in.txt]",
        "    params: [x]",
        "    outs: [f.txt]",
        "  al:",
        "    always_changed: true",
        "    cmd: date +%s%N >> al.txt",
        "    outs: [{al.txt: {persist: true}}]",
        "",
      ].join("\n"),
      "params.yaml": "x: 1\n",
      "in.txt": "one\n",
    });
    expect((await cli(p.root, "repro")).exitCode).toBe(0);
    fs.writeFileSync(path.join(p.root, "in.txt"), "two\n");
    fs.writeFileSync(path.join(p.root, "params.yaml"), "x: 2\n");
    const st = await cli(p.root, "status");
    expect(st.stdout.replace(/\ncache: .*$/, "")).toBe("f: current\nal: stale\n    always changed (always_changed: true)\n1 of 2 stages stale (run: tsx run.ts repro)");
    expect((await cli(p.root, "repro")).exitCode).toBe(0);
    expect(fs.readFileSync(path.join(p.root, "f.txt"), "utf8")).toBe("one\n");
    expect(fs.readFileSync(path.join(p.root, "al.txt"), "utf8").trim().split("\n")).toHaveLength(2);

    p.write("dvc.yaml", "stages:\n  g:\n    cmd: echo > g.txt\n    params: [nope]\n    outs: [g.txt]\n");
    const st2 = await cli(p.root, "status");
    expect(st2.exitCode).toBe(1);
    expect(st2.stdout).toContain("params: nope missing");
    const rp = await cli(p.root, "repro");
    expect(rp.exitCode).toBe(2);
    expect(rp.stderr).toBe("error: dvc.yaml:4:14: stages.g.params[0]: params key nope is not defined in params.yaml; define it there or fix the key (stage g cannot run without it)");
  });

  it("metrics show lists stage and top-level metrics; metrics diff compares git revisions", async () => {
    const p = project({
      "dvc.yaml": "stages:\n  ev:\n    cmd: bash ev.sh\n    deps: [acc, ev.sh]\n    metrics:\n      - m.json: {cache: false}\nmetrics: [extra.yaml]\n",
      "ev.sh": `echo '{"acc": '$(cat acc)', "loss": {"val": 0.5}}' > m.json\n`,
      acc: "0.9\n",
      "extra.yaml": "f1: 0.7\n",
    });
    expect((await cli(p.root, "repro")).exitCode).toBe(0);
    const show = await cli(p.root, "metrics", "show", "--json");
    expect(JSON.parse(show.stdout)).toEqual({ "extra.yaml": { data: { f1: 0.7 } }, "m.json": { data: { acc: 0.9, "loss.val": 0.5 } } });
    const table = await cli(p.root, "metrics", "show");
    expect(table.stdout).toContain("m.json      loss.val  0.5");
    const git = (...a: string[]) => execa("git", ["-C", p.root, "-c", "user.name=t", "-c", "user.email=t@t", ...a]);
    await git("init", "-q");
    await git("add", "-A");
    await git("commit", "-qm", "one");
    fs.writeFileSync(path.join(p.root, "acc"), "0.95\n");
    expect((await cli(p.root, "repro")).exitCode).toBe(0);
    const diff = await cli(p.root, "metrics", "diff", "--json");
    expect(JSON.parse(diff.stdout)).toEqual({ "m.json": { acc: { old: 0.9, new: 0.95, diff: expect.closeTo(0.05, 10) } } });
  });

  it("--version prints the package version", async () => {
    const r = await execa(tsx, [path.join(repo, "run.ts"), "--version"], { cwd: repo });
    expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")).version);
  });
});
