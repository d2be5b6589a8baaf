import { describe, expect, it } from "vitest";
import { Scheduler, checkGpuNeeds, type SchedStage } from "../../engine/scheduler.ts";
import { InputError } from "../../engine/errors.ts";

const st = (name: string, upstream: string[] = [], gpus = 0, ownGpus?: boolean): SchedStage => ({ name, upstream, gpus, ownGpus });
const names = (ls: { stage: string }[]) => ls.map((l) => l.stage);

describe("scheduler (pure)", () => {
  it("respects the -j limit and launches in stable (given) order", () => {
    const s = new Scheduler([st("a"), st("b"), st("c"), st("d")], { jobs: 2, gpuPool: [], keepGoing: false });
    expect(names(s.launchable())).toEqual(["a", "b"]);
    expect(s.launchable()).toEqual([]); // slots full
    s.finish("b", "ok");
    expect(names(s.launchable())).toEqual(["c"]);
    s.finish("a", "ok");
    expect(names(s.launchable())).toEqual(["d"]);
    s.finish("c", "ok");
    s.finish("d", "ok");
    expect(s.done()).toBe(true);
    expect(s.states().map(([, x]) => x)).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it("is deterministic: the same inputs give the same launch sequence", () => {
    const run = () => {
      const s = new Scheduler([st("x"), st("y", ["x"]), st("z"), st("w", ["y", "z"])], { jobs: 3, gpuPool: [], keepGoing: false });
      const seq: string[][] = [];
      for (;;) {
        const l = s.launchable();
        if (l.length === 0 && s.done()) break;
        seq.push(names(l));
        // finish the first running one in schedule order
        const running = s.states().find(([, v]) => v === "running")!;
        s.finish(running[0], "ok");
      }
      return seq;
    };
    const first = run();
    expect(first).toEqual([["x", "z"], ["y"], [], ["w"]]);
    expect(run()).toEqual(first);
  });

  it("waits for upstream stages; upstream outside the schedule counts as done", () => {
    const s = new Scheduler([st("b", ["a-not-scheduled"]), st("c", ["b"])], { jobs: 4, gpuPool: [], keepGoing: false });
    expect(names(s.launchable())).toEqual(["b"]);
    expect(names(s.launchable())).toEqual([]);
    s.finish("b", "ok");
    expect(names(s.launchable())).toEqual(["c"]);
  });

  it("assigns GPU ids from the pool and frees them on finish", () => {
    const s = new Scheduler([st("g1", [], 1), st("g2", [], 1), st("g3", [], 1), st("cpu")], { jobs: 8, gpuPool: ["0", "1"], keepGoing: false });
    expect(s.launchable()).toEqual([
      { stage: "g1", gpus: ["0"] },
      { stage: "g2", gpus: ["1"] },
      { stage: "cpu", gpus: [] },
    ]);
    s.finish("g1", "ok");
    expect(s.launchable()).toEqual([{ stage: "g3", gpus: ["0"] }]);
  });

  it("a big GPU stage is not starved by later small ones; CPU stages still start", () => {
    const s = new Scheduler([st("small", [], 1), st("big", [], 2), st("small2", [], 1), st("cpu")], {
      jobs: 8,
      gpuPool: ["0", "1"],
      keepGoing: false,
    });
    expect(s.launchable()).toEqual([
      { stage: "small", gpus: ["0"] },
      { stage: "cpu", gpus: [] },
    ]);
    s.finish("small", "ok");
    expect(s.launchable()).toEqual([{ stage: "big", gpus: ["0", "1"] }]);
    s.finish("big", "ok");
    expect(s.launchable()).toEqual([{ stage: "small2", gpus: ["0"] }]);
  });

  it("SLURM stages (ownGpus: false) take nothing from the pool and are exempt from the pool check", () => {
    const s = new Scheduler([st("slurm", [], 8, false), st("g", [], 1)], { jobs: 4, gpuPool: ["3"], keepGoing: false });
    expect(s.launchable()).toEqual([
      { stage: "slurm", gpus: [] },
      { stage: "g", gpus: ["3"] },
    ]);
  });

  it("a stage needing more GPUs than the pool is an InputError naming it", () => {
    expect(() => checkGpuNeeds([st("train", [], 3)], ["0", "1"])).toThrow(InputError);
    expect(() => new Scheduler([st("ok"), st("train", [], 3)], { jobs: 1, gpuPool: ["0", "1"], keepGoing: false })).toThrow(
      /pool: 2 \(0,1\).*train needs 3 GPUs/s,
    );
    expect(() => checkGpuNeeds([st("t", [], 1)], [])).toThrow(/pool: none/);
  });

  it("a failure blocks the downstream and, without -k, stops launching", () => {
    const s = new Scheduler([st("a"), st("b", ["a"]), st("c", ["b"]), st("d"), st("e")], { jobs: 2, gpuPool: [], keepGoing: false });
    expect(names(s.launchable())).toEqual(["a", "d"]);
    s.finish("a", "failed");
    expect(s.launchable()).toEqual([]);
    expect(s.stateOf("b")).toBe("blocked");
    expect(s.stateOf("c")).toBe("blocked");
    expect(s.stateOf("e")).toBe("cancelled");
    expect(s.stateOf("d")).toBe("running"); // running ones finish normally
    expect(s.done()).toBe(false);
    s.finish("d", "ok");
    expect(s.done()).toBe(true);
  });

  it("with -k independent stages continue, downstream of the failure never runs", () => {
    const s = new Scheduler([st("a"), st("b", ["a"]), st("c", ["b"]), st("d"), st("e", ["d"])], { jobs: 1, gpuPool: [], keepGoing: true });
    expect(names(s.launchable())).toEqual(["a"]);
    s.finish("a", "failed");
    expect(names(s.launchable())).toEqual(["d"]);
    s.finish("d", "ok");
    expect(names(s.launchable())).toEqual(["e"]);
    s.finish("e", "ok");
    expect(s.done()).toBe(true);
    expect(Object.fromEntries(s.states())).toEqual({ a: "failed", b: "blocked", c: "blocked", d: "ok", e: "ok" });
  });

  it("stop() (Ctrl-C) cancels everything not started", () => {
    const s = new Scheduler([st("a"), st("b"), st("c", ["a"])], { jobs: 1, gpuPool: [], keepGoing: true });
    s.launchable();
    s.stop();
    expect(s.launchable()).toEqual([]);
    expect(Object.fromEntries(s.states())).toEqual({ a: "running", b: "cancelled", c: "cancelled" });
  });

  it("rejects a bad -j", () => {
    expect(() => new Scheduler([], { jobs: 0, gpuPool: [], keepGoing: false })).toThrow(/--jobs/);
  });
});
