/**
 * Pure scheduling of stage instances: which stage starts next, with how many of `-j` slots and
 * which GPU ids of the pool. No I/O, no clocks: the runner drives it with `launchable()` and
 * `finish()`, and tests drive it the same way on literal graphs.
 *
 * Rules
 * - A stage is ready when every upstream stage that is part of this schedule finished "ok"
 *   (upstream stages that are not in the schedule - current or not selected - count as done).
 * - At most `jobs` stages run at once.
 * - A stage that needs k GPUs gets k free ids of the pool, lowest pool position first. GPUs are
 *   handed out in order: when the first ready GPU stage does not fit, later GPU stages wait
 *   behind it (no starvation of big GPU stages), while CPU-only stages still start.
 * - Stages with `ownGpus: false` (SLURM stages: the cluster schedules their GPUs) take no GPU of
 *   the pool.
 * - Order is stable: ties are broken by the order of the `stages` array (topological order).
 * - A failed stage blocks its whole downstream ("blocked"). Without keep-going, a failure also
 *   stops all launching: stages not started yet end "cancelled", running ones finish normally.
 */
import { InputError } from "./errors.ts";

export interface SchedStage {
  name: string;
  /** Names of upstream stages; those not in the schedule are ignored (treated as done). */
  upstream: string[];
  /** GPUs needed from the pool (0 = none). */
  gpus: number;
  /** false: the stage's GPUs are not taken from the pool (SLURM). Default true. */
  ownGpus?: boolean;
}

export interface SchedulerOptions {
  /** Maximum stages running at once (>= 1). */
  jobs: number;
  /** GPU ids available, in preference order. */
  gpuPool: string[];
  keepGoing: boolean;
}

export type SchedState = "pending" | "running" | "ok" | "failed" | "blocked" | "cancelled";

export interface Launch {
  stage: string;
  gpus: string[];
}

/** Throws InputError when a stage needs more GPUs than the pool has (before anything runs). */
export function checkGpuNeeds(stages: SchedStage[], gpuPool: string[]): void {
  const bad = stages.filter((s) => s.ownGpus !== false && s.gpus > gpuPool.length);
  if (bad.length === 0) return;
  const pool = gpuPool.length ? `${gpuPool.length} (${gpuPool.join(",")})` : "none";
  const lines = bad.map((s) => `  ${s.name} needs ${s.gpus} GPU${s.gpus === 1 ? "" : "s"}`);
  throw new InputError(
    `stage${bad.length > 1 ? "s" : ""} need${bad.length > 1 ? "" : "s"} more GPUs than the pool has (pool: ${pool}):\n` +
      lines.join("\n") +
      `\nfix: pass --gpus with enough ids (e.g. --gpus 0,1,2,3), set CUDA_VISIBLE_DEVICES, lower resources.gpus, or run the stage on SLURM (executor: slurm)`,
  );
}

export class Scheduler {
  private readonly order: string[];
  private readonly byName = new Map<string, SchedStage>();
  private readonly state = new Map<string, SchedState>();
  private readonly downstream = new Map<string, string[]>();
  private readonly freeGpus: string[];
  private readonly gpuOf = new Map<string, string[]>();
  private readonly pool: string[];
  private running = 0;
  private stopped = false;

  constructor(
    stages: SchedStage[],
    private readonly opts: SchedulerOptions,
  ) {
    if (!Number.isInteger(opts.jobs) || opts.jobs < 1) throw new InputError(`--jobs must be a positive integer, got ${opts.jobs}`);
    checkGpuNeeds(stages, opts.gpuPool);
    this.pool = [...opts.gpuPool];
    this.freeGpus = [...opts.gpuPool];
    this.order = stages.map((s) => s.name);
    for (const s of stages) {
      if (this.byName.has(s.name)) throw new Error(`scheduler: stage ${s.name} given twice`);
      this.byName.set(s.name, s);
      this.state.set(s.name, "pending");
    }
    for (const s of stages) {
      for (const u of s.upstream) {
        if (!this.byName.has(u)) continue;
        const d = this.downstream.get(u) ?? [];
        d.push(s.name);
        this.downstream.set(u, d);
      }
    }
  }

  stateOf(stage: string): SchedState {
    const s = this.state.get(stage);
    if (!s) throw new Error(`scheduler: unknown stage ${stage}`);
    return s;
  }

  /** All stages with their state, in schedule order. */
  states(): Array<[string, SchedState]> {
    return this.order.map((n) => [n, this.state.get(n)!]);
  }

  runningCount(): number {
    return this.running;
  }

  /** True when nothing runs and nothing more can start. */
  done(): boolean {
    return this.running === 0 && this.peekLaunchable().length === 0;
  }

  /** Launch what can start now: marks them running and assigns their GPUs. */
  launchable(): Launch[] {
    const launches = this.peekLaunchable();
    for (const l of launches) {
      this.state.set(l.stage, "running");
      this.running++;
      if (l.gpus.length) {
        this.gpuOf.set(l.stage, l.gpus);
        for (const g of l.gpus) this.freeGpus.splice(this.freeGpus.indexOf(g), 1);
      }
    }
    return launches;
  }

  /** A running stage ended. "ok" includes "found current at launch time". */
  finish(stage: string, outcome: "ok" | "failed"): void {
    if (this.stateOf(stage) !== "running") throw new Error(`scheduler: ${stage} is not running`);
    this.running--;
    const gpus = this.gpuOf.get(stage);
    if (gpus) {
      this.gpuOf.delete(stage);
      this.freeGpus.push(...gpus);
      // keep the pool's preference order
      this.freeGpus.sort((a, b) => this.pool.indexOf(a) - this.pool.indexOf(b));
    }
    this.state.set(stage, outcome);
    if (outcome === "failed") {
      this.blockDownstream(stage);
      if (!this.opts.keepGoing) this.stop();
    }
  }

  /** Launch nothing more (fail-fast, Ctrl-C): every pending stage becomes "cancelled". */
  stop(): void {
    this.stopped = true;
    for (const n of this.order) if (this.state.get(n) === "pending") this.state.set(n, "cancelled");
  }

  private blockDownstream(stage: string): void {
    const todo = [...(this.downstream.get(stage) ?? [])];
    while (todo.length) {
      const n = todo.shift()!;
      const st = this.state.get(n);
      if (st === "pending" || st === "cancelled") {
        this.state.set(n, "blocked");
        todo.push(...(this.downstream.get(n) ?? []));
      }
    }
  }

  private peekLaunchable(): Launch[] {
    if (this.stopped) return [];
    const out: Launch[] = [];
    let slots = this.opts.jobs - this.running;
    const free = [...this.freeGpus];
    let gpuQueueBlocked = false;
    for (const name of this.order) {
      if (slots <= 0) break;
      if (this.state.get(name) !== "pending") continue;
      const s = this.byName.get(name)!;
      const ready = s.upstream.every((u) => !this.byName.has(u) || this.state.get(u) === "ok");
      if (!ready) continue;
      const need = s.ownGpus === false ? 0 : s.gpus;
      if (need > 0) {
        if (gpuQueueBlocked || free.length < need) {
          gpuQueueBlocked = true; // later GPU stages wait behind this one
          continue;
        }
        out.push({ stage: name, gpus: free.splice(0, need) });
      } else {
        out.push({ stage: name, gpus: [] });
      }
      slots--;
    }
    return out;
  }
}
