import { describe, expect, it } from "vitest";
import { buildGraph, missingDepError, selectStages } from "../../engine/graph.ts";
import { errorOf, stage } from "./helpers.ts";

const none = () => false;
const all = () => true;

describe("buildGraph", () => {
  it("links stages through outs and deps (exact, inside an out dir, or a dir containing outs)", () => {
    const g = buildGraph(
      [
        stage("report", { deps: ["res/space", "res/move"], outs: ["report"] }),
        stage("gen", { deps: ["src/gen.py"], outs: ["gen/out"] }),
        stage("space", { deps: ["gen/out/file.json"], outs: ["res/space"] }), // dep inside an out dir
        stage("move", { deps: ["gen"], outs: ["res/move"] }), // dep that contains an out
      ],
      (p) => p === "src/gen.py" || p === "gen",
    );
    expect(g.upstream.get("space")).toEqual(["gen"]);
    expect(g.upstream.get("move")).toEqual(["gen"]);
    expect(g.upstream.get("report")).toEqual(["space", "move"]);
    expect(g.downstream.get("gen")).toEqual(["space", "move"]);
    expect(g.order).toEqual(["gen", "space", "move", "report"]);
    expect(g.stages.get("gen")!.outs[0]!.path).toBe("gen/out");
  });

  it("orders independent stages by declaration", () => {
    const g = buildGraph(
      [stage("c", { deps: ["b.txt"], outs: ["c.txt"] }), stage("a", { outs: ["a.txt"] }), stage("b", { deps: ["a.txt"], outs: ["b.txt"] }), stage("z")],
      none,
    );
    expect(g.order).toEqual(["a", "b", "c", "z"]);
    const g2 = buildGraph([stage("y"), stage("x"), stage("w", { deps: ["x.txt"] }), stage("v", { outs: ["x.txt"] })], none);
    expect(g2.order).toEqual(["y", "x", "v", "w"]);
  });

  it("reports a cycle with its stages in order", async () => {
    const e = await errorOf(() =>
      buildGraph(
        [
          stage("a", { deps: ["c.txt"], outs: ["a.txt"] }),
          stage("b", { deps: ["a.txt"], outs: ["b.txt"] }),
          stage("c", { deps: ["b.txt"], outs: ["c.txt"] }),
          stage("d", { deps: ["c.txt"] }),
        ],
        none,
      ),
    );
    expect(e.name).toBe("InputError");
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain("a -> b -> c -> a");
  });

  it("reports a stage reading its own out as a cycle", async () => {
    const e = await errorOf(() => buildGraph([stage("a", { deps: ["x/y"], outs: ["x"] })], all));
    expect(e.message).toContain("cycle: a -> a");
  });

  it("rejects two stages with the same out, and an out inside another out", async () => {
    expect((await errorOf(() => buildGraph([stage("a", { outs: ["o/x"] }), stage("b", { outs: ["o/x"] })], none))).message).toBe(
      "two stages write the same out o/x: a and b; each out must belong to one stage",
    );
    const e = await errorOf(() => buildGraph([stage("a", { outs: ["o"] }), stage("b", { outs: ["o/x/y"] })], none));
    expect(e.message).toContain("out o/x/y (stage b) is inside the out directory o (stage a)");
    // a common prefix that is not a directory boundary is fine
    expect(() => buildGraph([stage("a", { outs: ["o/x"] }), stage("b", { outs: ["o/xy"] })], none)).not.toThrow();
  });

  it("lists a dep that is neither a file nor an out (planning goes on; repro refuses that stage)", async () => {
    const g = buildGraph([stage("a", { deps: ["nope.txt", "yes.txt"] }), stage("b", { deps: ["a.out"] }), stage("c", { outs: ["a.out"] })], (p) => p === "yes.txt");
    expect([...g.missingDeps]).toEqual([["a", ["nope.txt"]]]);
    expect(g.upstream.get("b")).toEqual(["c"]);
    expect(missingDepError("a", "nope.txt").message).toBe(
      "stage a: dep nope.txt is neither an existing file or directory nor an out of any stage (check the path, or add the stage that writes it)",
    );
  });
});

describe("selectStages", () => {
  const g = buildGraph(
    [
      stage("models", { outs: ["m"] }),
      stage("gen", { deps: ["m/final"], outs: ["t"] }),
      stage("capture@base", { deps: ["m/base", "t"], outs: ["a/base"] }),
      stage("capture@final", { deps: ["m/final", "t"], outs: ["a/final"] }),
      stage("space", { deps: ["a/final"], outs: ["s"] }),
      stage("other"),
    ],
    none,
  );

  it("selects everything by default", () => {
    expect(selectStages(g, [], {})).toEqual(g.order);
  });
  it("adds upstream stages of the targets", () => {
    expect(selectStages(g, ["capture@base"], {})).toEqual(["models", "gen", "capture@base"]);
    expect(selectStages(g, ["space"], {})).toEqual(["models", "gen", "capture@final", "space"]);
  });
  it("expands a foreach group to all its instances", () => {
    expect(selectStages(g, ["capture"], {})).toEqual(["models", "gen", "capture@base", "capture@final"]);
  });
  it("with downstream: the targets and everything after them", () => {
    expect(selectStages(g, ["gen"], { downstream: true })).toEqual(["gen", "capture@base", "capture@final", "space"]);
    expect(selectStages(g, ["capture@final", "other"], { downstream: true })).toEqual(["capture@final", "space", "other"]);
  });
  it("rejects an unknown target, listing the known names", async () => {
    const e = await errorOf(() => selectStages(g, ["captur"], {}));
    expect(e.name).toBe("InputError");
    expect(e.message).toBe('unknown stage "captur"; known stages: models, gen, capture, capture@base, capture@final, space, other');
  });
});
