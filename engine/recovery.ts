/**
 * Recovery after a kill -9 of the runner (next repro, mutex held): attempts that had not succeeded
 * are rolled back (stopping their orphaned process group first if it still runs, or re-attaching
 * to a scheduler job that is still active); those that had (phase promote) are rolled forward.
 *
 * Without a readable journal nothing is deleted: the jobs named by `running/` records are stopped
 * (the orphans of the dead runner), the stage's last good outs are put back from its backup folder
 * and the garbled journal is set aside; a journal of no known stage stops the run (exit 2).
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import type { Graph } from "./graph.ts";
import { InputError, PipelineError } from "./errors.ts";
import { removeJournal, scanJournals, writeJournal, type BadJournal, type Journal } from "./journal.ts";
import { safeName } from "./output.ts";
import { readRunning, removeRunning } from "./running.ts";
import { backupDir, deleteBackups, exists, rollback } from "./staging.ts";
import type { Executor } from "./types.ts";

export interface RecoveryDeps {
  ctx: ProjectContext;
  graph: Graph;
  executor(name: string): Promise<Executor>;
  /** Finish a journal at phase promote exactly as the run would have: cache, run-cache, lock, then backups and journal go. */
  promote(j: Journal): Promise<void>;
  say(msg: string): void;
}

export interface Recovered {
  /** Stages whose last attempt did not complete (persist outs kept, or a job to re-attach to). */
  interrupted: Set<string>;
  /** Scheduler jobs of interrupted attempts to re-attach to, by stage. */
  attach: Map<string, { journal: Journal }>;
}

/** Finish or undo what a killed runner left (journals). Call with the mutex held. */
export async function recover(d: RecoveryDeps): Promise<Recovered> {
  const interrupted = new Set<string>();
  const attach = new Map<string, { journal: Journal }>();
  const { journals, bad } = scanJournals(d.ctx);
  await stopOrphans(d, journals);
  for (const b of bad) {
    const stage = [...d.graph.stages.keys()].find((n) => safeName(n) === b.safe);
    if (stage === undefined) throw unknownJournal(d.ctx, b);
    restoreWithoutJournal(d, stage, b);
    interrupted.add(stage);
  }
  for (const j of journals) {
    const who = `pid ${j.pid} on ${j.host}, started ${j.startedAt}`;
    if (j.phase === "interrupted") {
      interrupted.add(j.stage);
      continue;
    }
    if (j.phase === "promote" && j.entry) {
      if (d.graph.stages.has(j.stage)) {
        await d.promote(j);
      } else {
        // a stage since removed from pipeline.yaml gets no lock entry
        deleteBackups(d.ctx, j);
        removeJournal(d.ctx, j.stage);
      }
      d.say(`recovered ${j.stage}: its run (${who}) had succeeded; stored its outs in the cache and recorded it in the lock`);
      continue;
    }
    // prepare / running
    if (j.jobId) {
      const ex = await d.executor(j.executor).catch(() => null);
      let active = false;
      if (ex?.isActive) {
        try {
          active = await ex.isActive(j.jobId);
        } catch (e) {
          // rolling back under a job that still writes its outs would be worse than stopping here
          throw new PipelineError(
            `cannot tell whether job ${j.jobId} of the interrupted stage ${j.stage} still runs: ${(e as Error).message}\n` +
              `retry when the ${j.executor} executor answers again (nothing was changed)`,
            1,
          );
        }
      }
      // A scheduler job that finished while no runner watched is attached to as well: attach returns
      // its recorded result at once, so 12 hours of capture are recorded, not resubmitted.
      const scheduled = j.executor !== "local";
      if ((active || scheduled) && ex?.attach && d.graph.stages.has(j.stage)) {
        attach.set(j.stage, { journal: j });
        interrupted.add(j.stage);
        d.say(`${j.stage}: job ${j.jobId} of an interrupted run (${who}) is ${active ? "still active" : "finished"}; will re-attach to it`);
        continue;
      }
      if (active && ex) {
        d.say(`${j.stage}: stopping job ${j.jobId} left running by an interrupted run (${who})`);
        await ex.cancel(j.jobId);
      }
    }
    rollback(d.ctx, j);
    const persist = j.outs.some((x) => x.persist);
    if (persist) {
      j.phase = "interrupted";
      writeJournal(d.ctx, j);
      interrupted.add(j.stage);
    } else {
      removeJournal(d.ctx, j.stage);
    }
    d.say(
      `recovered ${j.stage}: its run (${who}) was interrupted; restored its last good outputs` +
        (persist ? ` (persist outs kept for resuming: ${j.outs.filter((x) => x.persist).map((x) => x.path).join(", ")})` : ""),
    );
  }
  return { interrupted, attach };
}

/**
 * Stop the jobs the `running/` records name whose journal does not account for them (missing or
 * unreadable): the mutex is ours, so whatever still runs there was left by a dead runner.
 * Jobs a readable journal names are handled (stopped or re-attached) with that journal.
 */
async function stopOrphans(d: RecoveryDeps, journals: Journal[]): Promise<void> {
  const known = new Set(journals.filter((j) => j.jobId).map((j) => `${j.stage}\0${j.jobId}`));
  for (const { job } of readRunning(d.ctx)) {
    if (known.has(`${job.stage}\0${job.jobId}`)) continue;
    const ex = await d.executor(job.executor).catch(() => null);
    const active = ex?.isActive ? await ex.isActive(job.jobId).catch(() => true) : false;
    if (active) {
      d.say(`${job.stage}: stopping job ${job.jobId} left running by a dead runner (pid ${job.pid} on ${job.host})`);
      try {
        await ex!.cancel(job.jobId);
      } catch (e) {
        throw new PipelineError(
          `job ${job.jobId} of stage ${job.stage}, left by a dead runner (pid ${job.pid} on ${job.host}), still runs and its journal is gone, ` +
            `and cancelling it failed (${(e as Error).message}): cancel it with the ${job.executor} scheduler, then rerun (nothing was changed)`,
          1,
        );
      }
    }
    removeRunning(d.ctx, job.stage);
  }
}

/** Put a stage's last good outs back from its backups when its journal cannot be read. */
function restoreWithoutJournal(d: RecoveryDeps, stage: string, b: BadJournal): void {
  const st = d.graph.stages.get(stage)!;
  const restored: string[] = [];
  for (const o of st.outs) {
    if (o.persist) continue;
    const abs = path.join(d.ctx.root, o.path);
    const candidates = [path.join(backupDir(d.ctx, stage), o.path), path.join(path.dirname(abs), `.${path.basename(abs)}.pipeline-backup`)];
    const backup = candidates.find(exists);
    if (!backup) continue;
    fs.rmSync(abs, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.renameSync(backup, abs);
    restored.push(o.path);
  }
  const aside = `${b.file}.unreadable-${Date.now()}`;
  fs.renameSync(b.file, aside);
  d.say(
    `warning: the journal of ${stage} could not be read (${b.why}); ` +
      (restored.length ? `restored its last good outputs from the backup (${restored.join(", ")})` : "it had no backed-up outputs to restore") +
      `; it will rerun. The journal was kept as ${path.relative(d.ctx.root, aside)}`,
  );
}

function unknownJournal(ctx: ProjectContext, b: BadJournal): InputError {
  const backups = path.join(ctx.profileStateDir, "backup", b.safe);
  return new InputError(
    `unreadable journal ${path.relative(ctx.root, b.file)} (${b.why}) of no stage in pipeline.yaml: ` +
      `the last good outputs of its stage may be in ${path.relative(ctx.root, backups)}/; ` +
      `move them back by hand if needed, then delete the journal (nothing was changed)`,
  );
}
