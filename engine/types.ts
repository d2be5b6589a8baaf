/**
 * Shared types of the generic pipeline engine.
 *
 * The engine knows nothing of personas: it reads any `pipeline.yaml` + `params.yaml`,
 * decides what is stale, runs commands and records `pipeline.lock`.
 *
 * Module map (one concern a file):
 *   context.ts    where a project's files live (pipeline.yaml, params, lock, .pipeline/ state)
 *   schema.ts     zod schema of pipeline.yaml (+ JSON Schema export)
 *   config.ts     load + validate + interpolate + expand foreach -> Stage[]  (errors name file:line:col / key path)
 *   graph.ts      DAG from outs/deps: cycles, duplicate outs, target selection (pure)
 *   hashing.ts    hasha sha256 of files and directory manifests, stat cache under .pipeline/
 *   lock.ts       read/write pipeline.lock deterministically
 *   plan.ts       pure: stages + lock + current hashes -> StageStatus[] with reasons
 *   scheduler.ts  pure: ready queue, -j and the GPU pool
 *   executor-local.ts / executor-slurm.ts   run one job (implement Executor)
 *   runner.ts     repro: the scheduling loop, one stage's attempt, promotion, lock updates, failures
 *   staging.ts    outs around an attempt: backups, persist/stale, rollback
 *   recovery.ts   finish or undo what a killed runner left (journals)
 *   mutex.ts      one repro at a time per project (holder host/pid/start), stale takeover
 *   commands/*.ts the CLI actions called from run.ts
 */

/** A resolved out of a stage. */
export interface Out {
  /** Project-relative, normalized (posix separators, no trailing slash). */
  path: string;
  /** DVC's `persist: true`: left in place so an interrupted command can resume. */
  persist: boolean;
  /** DVC's `cache: false`: the out is tracked in the lock but not stored in a cache. Default true. */
  cache?: boolean;
  /** Which list of the stage declared it: `outs` (default), `metrics` or `plots` (DVC). */
  role?: "outs" | "metrics" | "plots";
  /** The other options written on the out (desc, push, remote, type, labels, meta, plot props...), as given. */
  options?: Record<string, unknown>;
}

export interface Resources {
  /** Number of GPUs of the pool this stage needs (0 = none). */
  gpus: number;
  cpus?: number;
  /** e.g. "64G" (SLURM --mem). */
  memory?: string;
  /** e.g. "12:00:00" (SLURM --time). */
  time?: string;
}

export interface SlurmOptions {
  partition?: string;
  account?: string;
  qos?: string;
  /** "gres" (--gres=gpu:k) or "gpus" (--gpus=k). */
  gpuFlag?: "gres" | "gpus";
  extraArgs?: string[];
}

/** One runnable stage instance after interpolation and foreach expansion. */
export interface Stage {
  /** "generate", or "capture@base" for a foreach instance. */
  name: string;
  /** The pipeline.yaml stage it comes from ("capture" for "capture@base"). */
  group: string;
  desc?: string;
  /** Resolved commands, run in order in the project directory. */
  cmd: string[];
  /** Project-relative normalized paths. */
  deps: string[];
  outs: Out[];
  /** Tracked params: dotted key -> value (interpolated keys and declared `params`). */
  params: Record<string, unknown>;
  /** Resolved env for the command; part of the stage's identity. */
  env: Record<string, string>;
  resources: Resources;
  /** Project-relative folder the commands run in (DVC's `wdir`); undefined = the project folder. */
  wdir?: string;
  /** DVC's `frozen: true`: never rerun because of its deps or params; only missing/changed outs or a changed cmd count. */
  frozen?: boolean;
  /** DVC's `always_changed: true`: always stale (runs on every repro). */
  alwaysChanged?: boolean;
  /** Declared params that are absent (file or key): planning reports them, repro refuses. key -> located message. */
  missingParams?: Record<string, string>;
  /** Files of the declared params (project-relative): a stage that writes one is upstream (as in DVC). */
  paramsFiles?: string[];
  /** Deps that are URLs (`https://...`, `s3://...`): recorded, not hashed (no edges, no status check). */
  externalDeps?: string[];
  /** Which executor runs this stage; undefined = the CLI default. */
  executor?: "local" | "slurm";
  slurm?: SlurmOptions;
}

export const HASH_ALGORITHM = "sha256" as const;

/** Hash record of one dep or out, as stored in the lock. */
export interface PathHash {
  path: string;
  /** sha256 of the file, or of the directory manifest. */
  hash: string;
  /** Bytes (sum over files for a directory). */
  size: number;
  /** Directories only: number of files. */
  nfiles?: number;
  isdir?: boolean;
}

/** One stage instance in pipeline.lock. */
export interface LockEntry {
  cmd: string[];
  deps: PathHash[];
  outs: PathHash[];
  params: Record<string, unknown>;
  env: Record<string, string>;
  hash: typeof HASH_ALGORITHM;
}

export interface LockFile {
  schema: "1";
  stages: Record<string, LockEntry>;
}

/** Why a stage must run. `format()` of each gives the user-facing line. */
export type Reason =
  | { kind: "new" } // no lock entry
  | { kind: "forced" }
  | { kind: "cmd"; before: string[]; after: string[] }
  | { kind: "dep"; path: string; change: "modified" | "added" | "removed" | "missing" }
  | { kind: "param"; key: string; before: unknown; after: unknown; change: "modified" | "added" | "removed" }
  | { kind: "env"; key: string; before?: string; after?: string }
  | { kind: "out"; path: string; change: "missing" | "modified" | "added" | "removed" }
  | { kind: "param-missing"; key: string; message: string } // a declared param (file or key) is absent
  | { kind: "always" } // `always_changed: true`
  | { kind: "upstream"; stage: string } // an upstream stage will run, so this one's deps will change
  | { kind: "interrupted"; runningBy?: string }; // a previous attempt was interrupted (journal found), or one runs right now

export interface StageStatus {
  stage: string;
  /** Empty = current. */
  reasons: Reason[];
}

/** What an executor is asked to run. */
export interface JobSpec {
  stage: Stage;
  /** Absolute project root; commands run here. */
  cwd: string;
  /** Full environment for the command (process env + stage env + CUDA_VISIBLE_DEVICES). */
  env: Record<string, string>;
  /** GPU ids given to this job (empty for CPU stages). */
  gpus: string[];
  /** Absolute path of the log file for this attempt. */
  logFile: string;
  /** Identity of the stage instance (hash of cmd, deps' hashes, params, env); executors may tag jobs with it. */
  identity: string;
  /** Called by executors that submit to a scheduler, as soon as the job id is known (the runner journals it). */
  onSubmitted?(jobId: string): void;
}

export interface JobResult {
  /** The executor's verdict: the job succeeded (exit 0, no signal, a successful final scheduler state). */
  ok: boolean;
  /** null when killed by a signal. */
  exitCode: number | null;
  signal?: string | null;
  startedAt: string;
  endedAt: string;
  /** Peak resident memory of the job in KiB, when known. */
  peakRssKb?: number;
  /** Executor-specific: SLURM job id and final state (FAILED, TIMEOUT, OUT_OF_MEMORY...). */
  jobId?: string;
  state?: string;
  /** Human explanation of a failure (exit code meaning, SLURM state). */
  message?: string;
}

export interface ExecutorIO {
  /** One line of the job's output (stdout+stderr); the runner prefixes and prints it. */
  onOutput(line: string): void;
  /** Aborted on Ctrl-C / fail-fast: the executor must stop the job (process group / scancel). */
  signal: AbortSignal;
  /** Optional state changes (SLURM: PENDING, RUNNING...). */
  onState?(state: string): void;
}

export interface Executor {
  readonly name: string;
  run(job: JobSpec, io: ExecutorIO): Promise<JobResult>;
  /**
   * Scheduler executors only: a runner restarted after a crash finds the journal of a stage whose
   * job may still be running. `isActive` says whether it is; `attach` waits for it (as `run` would)
   * instead of submitting it twice.
   */
  isActive?(jobId: string): Promise<boolean>;
  attach?(jobId: string, job: JobSpec, io: ExecutorIO): Promise<JobResult>;
  /**
   * Stop a job this runner does not follow (one left by an interrupted run) and wait until it has
   * ended: the local process group (SIGTERM, then SIGKILL), or `scancel`. A job already gone is fine.
   */
  cancel(jobId: string): Promise<void>;
}
