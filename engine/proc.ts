/** The one reader of Linux's /proc/<pid>/stat (man 5 proc); absent elsewhere (every reader says so). */
import fs from "node:fs";

export interface ProcStat {
  /** Field 3: R, S, D, Z (zombie: ended, not yet reaped), X (dead), ... */
  state: string;
  /** Field 4. */
  ppid: number;
  /** Field 5: the process group. */
  pgrp: number;
  /** Field 22: start time in clock ticks since boot, as written (tells a live pid from a reused one). */
  start: string;
  /** Field 24: resident set size in pages. */
  rssPages: number;
}

/** The stat of a process, or undefined if it is gone (or there is no /proc). */
export function procStat(pid: number | string): ProcStat | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // the fields after the command name, which may contain spaces and parentheses
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0]!, ppid: Number(rest[1]), pgrp: Number(rest[2]), start: rest[19]!, rssPages: Number(rest[21]) };
}

/** Ended: gone, a zombie or dead. */
export function procEnded(st: ProcStat | undefined): boolean {
  return st === undefined || st.state === "Z" || st.state === "X";
}

/** Start time (clock ticks since boot) of a process, from /proc: tells a live pid from a reused one. */
export function procStart(pid: number): string | undefined {
  return procStat(pid)?.start;
}

/** Pids of every process, or null if there is no /proc. */
export function allPids(): string[] | null {
  try {
    return fs.readdirSync("/proc").filter((e) => e.charCodeAt(0) >= 48 && e.charCodeAt(0) <= 57);
  } catch {
    return null;
  }
}
