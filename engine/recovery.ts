/**
 * Recovery after a kill -9 of the runner (next repro, mutex held): attempts that had not succeeded
 * are rolled back (stopping their orphaned process group first if it still runs, or re-attaching
 * to a scheduler job that is still active); those that had (phase promote) are rolled forward.
 */
import type { ProjectContext } from "./context.ts";
import type { Graph } from "./graph.ts";
import { PipelineError } from "./errors.ts";
import { readJournals, removeJournal, writeJournal, type Journal } from "./journal.ts";
import { deleteBackups, rollback } from "./staging.ts";
import type { Executor, LockEntry } from "./types.ts";

export interface RecoveryDeps {
  ctx: ProjectContext;
  graph: Graph;
  executor(name: string): Promise<Executor>;
  updateLock(stage: string, entry: LockEntry): Promise<void>;
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
  const journals = readJournals(d.ctx, (file, why) => d.say(`warning: ignoring unreadable journal ${file}: ${why}`));
  for (const j of journals) {
    const who = `pid ${j.pid} on ${j.host}, started ${j.startedAt}`;
    if (j.phase === "interrupted") {
      interrupted.add(j.stage);
      continue;
    }
    if (j.phase === "promote" && j.entry) {
      // (a stage since removed from pipeline.yaml gets no lock entry)
      if (d.graph.stages.has(j.stage)) await d.updateLock(j.stage, j.entry);
      deleteBackups(j);
      removeJournal(d.ctx, j.stage);
      d.say(`recovered ${j.stage}: its run (${who}) had succeeded; recorded it in the lock`);
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
        if (ex instanceof Object && "kill" in ex && typeof (ex as { kill: unknown }).kill === "function") {
          d.say(`${j.stage}: stopping process group ${j.jobId} left running by an interrupted run (${who})`);
          await (ex as unknown as { kill(id: string): Promise<void> }).kill(j.jobId);
        }
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
