/**
 * Pure parsing of what squeue and sacct print. The executor runs them with the formats below
 * (`SQUEUE_FORMAT`, `SACCT_FIELDS`, `-P` for `|`-separated fields) and hands the text here.
 */

/** `squeue -h -o` format: id | state | node list or pending reason | job name | comment (last: free text). */
export const SQUEUE_FORMAT = "%i|%T|%R|%j|%k";

export interface SqueueEntry {
  jobId: string;
  /** Long state name: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED... */
  state: string;
  /** Node list when running, `(Reason)` stripped of parentheses when pending. */
  where: string;
  name: string;
  comment: string;
}

/** Parse `squeue -h -o SQUEUE_FORMAT` output. Blank lines are skipped; a malformed line throws. */
export function parseSqueue(text: string): SqueueEntry[] {
  const out: SqueueEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const f = line.split("|");
    if (f.length < 5) throw new Error(`unexpected squeue line "${line}" (expected ${SQUEUE_FORMAT})`);
    const [jobId, state, where, name, ...comment] = f;
    out.push({ jobId, state, where: where.replace(/^\((.*)\)$/, "$1"), name, comment: comment.join("|") });
  }
  return out;
}

/** sacct fields, in this order, for `sacct -j ID -n -P -o <fields>` (all steps, not -X: MaxRSS lives on steps). */
export const SACCT_FIELDS = ["JobID", "State", "ExitCode", "Elapsed", "MaxRSS", "Start", "End", "NodeList", "Timelimit"] as const;

export interface SacctRecord {
  jobId: string;
  /** Base state: COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED... */
  state: string;
  /** The state as sacct printed it, e.g. "CANCELLED by 1000". */
  rawState: string;
  /** uid from "CANCELLED by <uid>". */
  cancelledByUid?: number;
  /** Exit code of the batch script (left of ExitCode's colon). */
  exitCode: number;
  /** Signal that ended it (right of the colon), 0 if none. */
  exitSignal: number;
  /** Exit code/signal of the batch step when the allocation row has none (TIMEOUT, CANCELLED). */
  stepExitCode?: number;
  stepExitSignal?: number;
  elapsed: string;
  elapsedSeconds: number;
  /** sacct's local timestamps (`2026-11-26T23:53:28`), undefined when Unknown/None. */
  start?: string;
  end?: string;
  nodeList?: string;
  timelimit?: string;
  /** Peak RSS over the job's steps (the batch script and any srun steps), KiB. */
  maxRssKb?: number;
}

/** `3:0` -> {code 3, signal 0}. */
export function parseExitCode(s: string): { code: number; signal: number } {
  const m = /^(\d+):(\d+)$/.exec(s.trim());
  if (!m) return { code: 0, signal: 0 };
  return { code: Number(m[1]), signal: Number(m[2]) };
}

/** sacct memory (`64.50M`, `3012K`, `2G`, `0`; bare numbers are bytes) -> KiB, undefined when empty. */
export function parseMemoryKb(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGTP]?)$/i.exec(s.trim());
  if (!m) return undefined;
  const v = Number(m[1]);
  const unit = m[2].toUpperCase();
  const factor: Record<string, number> = { "": 1 / 1024, K: 1, M: 1024, G: 1024 ** 2, T: 1024 ** 3, P: 1024 ** 4 };
  return Math.round(v * factor[unit]);
}

/** SLURM durations (`[D-]HH:MM:SS`, `MM:SS`, `MM:SS.mmm`) -> seconds; NaN when not a duration. */
export function parseDuration(s: string): number {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$/.exec(s.trim());
  if (!m) return NaN;
  const [, d, h, mi, se] = m;
  return Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(mi) * 60 + Number(se);
}

function timestamp(s: string | undefined): string | undefined {
  if (!s || s === "Unknown" || s === "None") return undefined;
  return s;
}

/**
 * The record of job `jobId` from `sacct -j ID -n -P -o SACCT_FIELDS` output: the allocation
 * row (JobID == id) plus the steps (`id.batch`, `id.extern`, `id.0`...) for MaxRSS and, when
 * the allocation row carries no exit status, the batch step's. undefined when the job is absent.
 */
export function parseSacct(text: string, jobId: string): SacctRecord | undefined {
  let main: string[] | undefined;
  let batch: string[] | undefined;
  let maxRss: number | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const f = line.split("|");
    if (f.length < SACCT_FIELDS.length) throw new Error(`unexpected sacct line "${line}" (expected ${SACCT_FIELDS.join("|")})`);
    const id = f[0];
    if (id === jobId) {
      // A requeued job has several rows with the same id; the last one is the latest attempt.
      main = f;
    } else if (id.startsWith(`${jobId}.`)) {
      if (id === `${jobId}.batch`) batch = f;
      const rss = parseMemoryKb(f[4]);
      if (rss !== undefined) maxRss = Math.max(maxRss ?? 0, rss);
    }
  }
  if (!main) return undefined;
  const rawState = main[1].trim();
  const state = rawState.split(/\s+/)[0].replace(/\+$/, "");
  const by = /\bby (\d+)/.exec(rawState);
  const ec = parseExitCode(main[2]);
  const rec: SacctRecord = {
    jobId,
    state,
    rawState,
    exitCode: ec.code,
    exitSignal: ec.signal,
    elapsed: main[3],
    elapsedSeconds: parseDuration(main[3]),
  };
  if (by) rec.cancelledByUid = Number(by[1]);
  if (batch) {
    const bec = parseExitCode(batch[2]);
    rec.stepExitCode = bec.code;
    rec.stepExitSignal = bec.signal;
  }
  const start = timestamp(main[5]);
  const end = timestamp(main[6]);
  if (start) rec.start = start;
  if (end) rec.end = end;
  if (main[7] && main[7] !== "None assigned") rec.nodeList = main[7];
  if (main[8]) rec.timelimit = main[8];
  if (maxRss !== undefined) rec.maxRssKb = maxRss;
  return rec;
}

/**
 * Fallback for clusters without accounting (sacct disabled): `scontrol show job -o ID` while the
 * controller still remembers the job (MinJobAge). undefined when the job is unknown.
 */
export function parseScontrolJob(text: string, jobId: string): SacctRecord | undefined {
  const line = text.split("\n").find((l) => new RegExp(`(^|\\s)JobId=${jobId}(\\s|$)`).test(l));
  if (!line) return undefined;
  const get = (key: string) => new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(line)?.[1];
  const state = get("JobState");
  if (!state) return undefined;
  const ec = parseExitCode(get("ExitCode") ?? "0:0");
  const elapsed = get("RunTime") ?? "";
  const rec: SacctRecord = {
    jobId,
    state,
    rawState: state,
    exitCode: ec.code,
    exitSignal: ec.signal,
    elapsed,
    elapsedSeconds: parseDuration(elapsed),
  };
  const start = timestamp(get("StartTime"));
  const end = timestamp(get("EndTime"));
  if (start) rec.start = start;
  if (end) rec.end = end;
  const nodes = get("NodeList");
  if (nodes && nodes !== "(null)") rec.nodeList = nodes;
  const tl = get("TimeLimit");
  if (tl) rec.timelimit = tl;
  return rec;
}
