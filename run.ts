#!/usr/bin/env -S npx tsx
/**
 * The pipeline CLI: `tsx run.ts <command>`. Thin: parses flags and hands over to engine/commands/.
 * Exit codes: 0 ok; 1 stale (status) or a stage failed (repro); 2 bad input (pipeline.yaml,
 * params, targets, flags, unknown options and commands); 3 a bug of the tool (the stack with
 * --debug); 130 interrupted (Ctrl-C).
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { resolveContext, type ProjectContext } from "./engine/context.ts";
import { reportError } from "./engine/errors.ts";
import { relayIfUnderTsx } from "./engine/launcher.ts";
import { survivePipeClosure } from "./engine/closed-output.ts";

await relayIfUnderTsx(); // under the tsx CLI: the runner runs one process down (see launcher.ts)
survivePipeClosure(); // `run.ts checkout | true`: the work goes on (closed-output.ts)

/** The version in package.json (next to run.ts, or one folder up from a bundled dist/run.mjs). */
function packageVersion(): string {
  for (const rel of ["./package.json", "../package.json"]) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { version: string }).version;
    } catch {
      /* try the next */
    }
  }
  return "unknown";
}

const program = new Command("run.ts")
  .description("Reproducible pipeline runner: pipeline.yaml + params.yaml -> pipeline.lock")
  .option("-C, --cwd <dir>", "work on the project in <dir> (its pipeline.yaml, params.yaml, lock and .pipeline/ state)", ".")
  .option("-P, --params-file <file>", "profile: a complete params file used instead of params.yaml; it keeps its own lock (pipeline.<name>.lock) and state")
  .option("--debug", "on an internal error, print its stack")
  .version(packageVersion(), "-V, --version", "print the version")
  .configureOutput({ outputError: (str, write) => write(`${str.trimEnd()} (see run.ts --help)\n`) })
  .exitOverride()
  .enablePositionalOptions();

function context(): ProjectContext {
  const o = program.opts<{ cwd: string; paramsFile?: string }>();
  return resolveContext({ cwd: o.cwd, paramsFile: o.paramsFile });
}

function debug(): boolean {
  return !!program.opts<{ debug?: boolean }>().debug || !!process.env.PIPELINE_DEBUG;
}

async function main(action: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await action();
  } catch (err) {
    process.exitCode = reportError(err, debug());
  }
}

program
  .command("repro")
  .description("bring targets (default: all stages) up to date, running only what is stale")
  .argument("[targets...]", "stage names (`capture` = all its foreach instances, or `capture@base`)")
  .option("-f, --force", "rerun the targets even if they are current")
  .option("-n, --dry", "print what would run and why; run nothing")
  .option("--downstream", "the targets and every stage after them")
  .option("-s, --single-item", "only the targets, not the stages they depend on")
  .option("-k, --keep-going", "after a failure, still finish the stages that do not depend on it")
  .option("-j, --jobs <n>", "stages run at the same time", (v) => parseInt(v, 10))
  .option("--gpus <list>", "GPU ids to schedule on, e.g. 0,1,2,3 (default: CUDA_VISIBLE_DEVICES, else nvidia-smi, else none)")
  .addOption(new Option("--executor <name>", "where stages run (a stage's own `executor:` wins)").choices(["local", "slurm"]).default("local"))
  .option("--wait", "if another repro holds this project, wait for it instead of refusing")
  .option("--no-run-cache", "run stale stages even when an earlier run with the same identity is in the run-cache")
  .option("--pull", "first pull missing outs (and run-cache entries) from the remote")
  .option("-r, --remote <url>", "remote for --pull (default: PIPELINE_REMOTE or pipeline.config.yaml)")
  .action((targets: string[], opts) =>
    main(async () => (await import("./engine/commands/repro.ts")).repro(context(), targets, opts)),
  );

program
  .command("status")
  .description("what is stale and exactly why; exit 0 when all current, 1 when something is stale")
  .argument("[targets...]", "stage names")
  .option("--json", "machine-readable output")
  .action((targets: string[], opts) =>
    main(async () => (await import("./engine/commands/status.ts")).status(context(), targets, opts)),
  );

const jobsOpt = (v: string) => parseInt(v, 10);
program
  .command("checkout")
  .description("make the outs of the targets (default: all stages) match the lock, from the cache")
  .argument("[targets...]", "stage names")
  .action((targets: string[]) => main(async () => (await import("./engine/commands/checkout.ts")).checkout(context(), targets)));

for (const [name, desc] of [
  ["push", "upload the cached outs that the lock records (and their run-cache entries) to the remote"],
  ["fetch", "download the outs that the lock records from the remote into the cache"],
  ["pull", "fetch, then checkout"],
] as const) {
  const c = program
    .command(name)
    .description(desc)
    .argument("[targets...]", "stage names (default: all stages)")
    .option("-r, --remote <url>", "remote: a directory or s3://bucket/prefix (default: PIPELINE_REMOTE or `remote:` of pipeline.config.yaml)")
    .option("-j, --jobs <n>", "files transferred at the same time (default 8)", jobsOpt);
  if (name === "push") c.option("--run-cache", "also every run-cache entry and its outs (not only the runs the lock records)");
  c.action((targets: string[], opts) => main(async () => (await import("./engine/commands/transfer.ts")).transfer(name, context(), targets, opts)));
}

program
  .command("gc")
  .description("remove cache entries that no lock of the workspace (or of the given git revisions) references")
  .option("--rev <rev...>", "also keep what the locks of these git revisions reference")
  .option("-A, --all-commits", "also keep what the locks of every commit reference")
  .option("-n, --dry", "list what would be removed; remove nothing")
  .action((opts) => main(async () => (await import("./engine/commands/gc.ts")).gc(context(), opts)));

program
  .command("dag")
  .description("print the stage graph")
  .addOption(new Option("--format <format>", "output format").choices(["ascii", "mermaid", "dot"]).default("ascii"))
  .action((opts) => main(async () => (await import("./engine/commands/dag.ts")).dag(context(), opts)));

const params = program.command("params").description("inspect params");
params
  .command("diff")
  .description("params, leaf by leaf: the workspace against the lock; with revisions, git revision a_rev against the workspace (or b_rev)")
  .argument("[revs...]", "a_rev [b_rev] (git revisions)")
  .option("--json", "machine-readable output")
  .action((revs: string[], opts) => main(async () => (await import("./engine/commands/params-diff.ts")).paramsDiff(context(), revs, opts)));

const metrics = program.command("metrics").description("metrics files of the pipeline (DVC's `metrics:`)");
metrics
  .command("show")
  .description("the metrics files (top-level `metrics:` and stages' `metrics:` outs), flattened to dotted keys")
  .option("--json", "machine-readable output")
  .action((opts) => main(async () => (await import("./engine/commands/metrics.ts")).metricsShow(context(), opts)));
metrics
  .command("diff")
  .description("metrics that differ between two git revisions (default: HEAD and the workspace)")
  .argument("[revs...]", "a_rev [b_rev]")
  .option("--json", "machine-readable output")
  .action((revs: string[], opts) => main(async () => (await import("./engine/commands/metrics.ts")).metricsDiff(context(), revs, opts)));

program
  .command("schema")
  .description("print the JSON Schema of pipeline.yaml (for editors)")
  .action(() => main(async () => (await import("./engine/commands/schema.ts")).schema()));

// usage errors (unknown option or command, a missing argument) are bad input: exit 2, not 1
for (const c of [...program.commands, ...program.commands.flatMap((c) => c.commands)]) {
  c.exitOverride();
  const name = c.parent && c.parent !== program ? `${c.parent.name()} ${c.name()}` : c.name();
  c.configureOutput({ outputError: (str, write) => write(`${str.trimEnd()} (see run.ts ${name} --help)\n`) });
}
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (!(e instanceof CommanderError)) throw e;
  process.exitCode = e.exitCode === 0 ? 0 : 2;
}
