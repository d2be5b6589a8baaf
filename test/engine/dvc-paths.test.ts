/**
 * Every path of a dvc.yaml (deps, outs, metrics, plots, params files) is compared in one canonical
 * form, whatever the pipeline file's folder, the stage's `wdir`, `..` segments, `./` prefixes,
 * doubled or trailing slashes, or an absolute spelling inside the repository. A missing edge is the
 * worst bug a runner can have (it runs stages in the wrong order and calls a stale stage current),
 * so the graph is checked on the concrete case from issue 25 and on random layouts against the
 * graph computed from the canonical paths.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { loadProject } from "../../engine/config.ts";
import { resolveContext } from "../../engine/context.ts";
import { buildGraph } from "../../engine/graph.ts";

const repo = path.resolve(import.meta.dirname, "../..");
const tsx = path.join(repo, "node_modules/.bin/tsx");
const cli = (dir: string, ...args: string[]) => execa(tsx, [path.join(repo, "run.ts"), "-C", dir, ...args], { reject: false, cwd: repo });

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A fresh git repository (a `.git` folder is what the runner looks for) holding `files`. */
function gitRepo(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "dvc-paths-"));
  cleanups.push(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, ".git"));
  for (const [f, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), c);
  }
  return root;
}

async function edgesOf(dir: string): Promise<string[]> {
  const project = await loadProject(resolveContext({ cwd: dir }));
  const g = buildGraph(project.stages, (p) => fs.existsSync(path.join(dir, p)));
  return [...g.downstream].flatMap(([a, ds]) => ds.map((d) => `${a}->${d}`)).sort();
}

describe("one canonical form for every path", () => {
  it("issue 25: dvc.yaml in sub/, a stage with wdir .. writing sub/x, another reading x: linked, run in order, stale after an upstream change", async () => {
    const root = gitRepo({
      "sub/dvc.yaml": [
        "stages:",
        "  make:",
        "    wdir: ..",
        "    cmd: cat seed.txt > sub/x",
        "    deps: [seed.txt]",
        "    outs: [sub/x]",
        "  use:",
        "    cmd: (cat x; echo used) > y",
        "    deps: [x]",
        "    outs: [./y]",
        "  last:",
        "    wdir: ../sub/",
        "    cmd: (cat y; echo last) > z",
        "    deps: [../sub/y/]",
        "    outs: [z]",
        "",
      ].join("\n"),
      "seed.txt": "one\n",
    });
    const sub = path.join(root, "sub");
    expect(await edgesOf(sub)).toEqual(["make->use", "use->last"]);

    const dag = await cli(sub, "dag");
    expect(dag.exitCode).toBe(0);
    expect(dag.stdout).toMatch(/1\. make\n\s+2\. use\s+<- make\n\s+3\. last\s+<- use/);

    const first = await cli(sub, "repro");
    expect(first.exitCode, first.stderr).toBe(0);
    expect(fs.readFileSync(path.join(sub, "z"), "utf8")).toBe("one\nused\nlast\n");

    fs.writeFileSync(path.join(root, "seed.txt"), "two\n");
    const st = await cli(sub, "status");
    expect(st.exitCode).toBe(1);
    for (const s of ["make", "use", "last"]) expect(st.stdout).toContain(s);
    const again = await cli(sub, "repro");
    expect(again.exitCode, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(sub, "z"), "utf8")).toBe("two\nused\nlast\n");
  });

  it("property: over random layouts (pipeline depth x wdir x spelling) the graph equals the one from canonical paths", async () => {
    const FOLDERS = ["", "a", "a/b", "c"];
    const layout = fc.record({
      pipelineDir: fc.constantFrom("", "a", "a/b"),
      stages: fc.array(
        fc.record({
          wdir: fc.constantFrom(...FOLDERS),
          outDir: fc.constantFrom(...FOLDERS),
          role: fc.constantFrom("outs", "metrics", "plots", "params"),
          reads: fc.array(fc.nat(), { maxLength: 3 }),
          spell: fc.array(fc.nat({ max: 5 }), { minLength: 4, maxLength: 4 }),
        }),
        { minLength: 2, maxLength: 5 },
      ),
    });
    await fc.assert(
      fc.asyncProperty(layout, async ({ pipelineDir, stages }) => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "dvc-paths-prop-"));
        try {
          fs.mkdirSync(path.join(root, ".git"));
          const pdir = path.join(root, pipelineDir);
          fs.mkdirSync(pdir, { recursive: true });
          // repository-relative canonical paths: stage i writes <outDir>/o<i>.yaml
          const outOf = stages.map((s, i) => path.posix.join(s.outDir, `o${i}.yaml`));
          /** `target` (repo-relative) written relative to the stage's wdir in one of six spellings. */
          const spellFrom = (wdirRepo: string, target: string, how: number): string => {
            const rel = path.posix.relative(wdirRepo || ".", target);
            switch (how % 6) {
              case 0: return rel;
              case 1: return `./${rel}`;
              case 2: return path.join(root, target); // absolute, inside the repository
              case 3: return rel.replace(/\//g, "//");
              case 4: return `${rel}/`;
              default: {
                // a detour: up to the repository root and back down
                const ups = wdirRepo ? wdirRepo.split("/").map(() => "..").join("/") : ".";
                return `${ups}/${target}`;
              }
            }
          };
          const expected = new Set<string>();
          const lines = ["stages:"];
          stages.forEach((s, i) => {
            const wdirRel = path.posix.relative(pipelineDir || ".", s.wdir || ".") || ".";
            lines.push(`  s${i}:`, `    wdir: "${wdirRel}"`, `    cmd: echo ${i}`);
            const reads = i === 0 ? [] : [...new Set(s.reads.map((r) => r % i))]; // earlier stages only: no cycles
            const deps: string[] = [];
            const params: string[] = [];
            reads.forEach((r, k) => {
              expected.add(`s${r}->s${i}`);
              const spelled = spellFrom(s.wdir, outOf[r]!, s.spell[k]!);
              if (stages[r]!.role === "params") params.push(spelled);
              else deps.push(spelled);
            });
            if (deps.length) lines.push("    deps:", ...deps.map((d) => `      - "${d}"`));
            if (params.length) lines.push("    params:", ...params.map((p) => `      - "${p}": [k]`));
            const role = s.role === "params" ? "outs" : s.role;
            lines.push(`    ${role}:`, `      - "${spellFrom(s.wdir, outOf[i]!, s.spell[3]!)}"`);
          });
          fs.writeFileSync(path.join(pdir, "dvc.yaml"), lines.join("\n") + "\n");
          const project = await loadProject(resolveContext({ cwd: pdir }));
          // every out is the canonical path relative to the pipeline's folder
          project.stages.forEach((st, i) => {
            expect(st.outs.map((o) => o.path)).toEqual([path.relative(pdir, path.join(root, outOf[i]!)).split(path.sep).join("/")]);
          });
          const g = buildGraph(project.stages, () => false);
          const got = [...g.downstream].flatMap(([a, ds]) => ds.map((d) => `${a}->${d}`)).sort();
          expect(got).toEqual([...expected].sort());
        } finally {
          fs.rmSync(root, { recursive: true, force: true });
        }
      }),
      { numRuns: 150 },
    );
  });
});
