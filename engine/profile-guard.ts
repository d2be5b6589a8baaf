/**
 * Outs shared between profiles (issue 14, fault 2). Each profile has its own mutex, so two
 * profiles could run at once over an out they both declare, and one would then record (and call
 * current) what the other wrote. A repro therefore publishes the outs of its selected stages next
 * to its mutex (`<profileStateDir>/repro.outs.json`, with the mutex's token), then checks the
 * claims of the other profiles' live repros: an overlap refuses, naming the holder and the out
 * (or, with --wait, waits for it). Claims are published before checking, so two repros starting
 * at once cannot both go ahead; a claim counts only while its profile's mutex holds that token.
 */
import fs from "node:fs";
import path from "node:path";
import type { ProjectContext } from "./context.ts";
import { PipelineError } from "./errors.ts";
import { overlaps } from "./graph.ts";
import { writeFileAtomicSync } from "./journal.ts";
import { describeHolder, holderIsDead, type MutexHolder } from "./mutex.ts";

interface Claim {
  profile: string;
  token: string;
  outs: string[];
}

const CLAIM = "repro.outs.json";
const MUTEX = "repro.mutex.json";

/** The state directories of every profile of the project (default first). */
function profileDirs(ctx: ProjectContext): { profile: string; dir: string }[] {
  const out = [{ profile: "default", dir: ctx.stateDir }];
  try {
    for (const n of fs.readdirSync(path.join(ctx.stateDir, "profiles")).sort()) out.push({ profile: n, dir: path.join(ctx.stateDir, "profiles", n) });
  } catch {
    /* no profiles */
  }
  return out;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return null;
  }
}

export interface Conflict {
  profile: string;
  holder: MutexHolder;
  out: string;
  theirs: string;
}

/** Live repros of other profiles whose claimed outs overlap ours. */
function conflicts(ctx: ProjectContext, outs: string[]): Conflict[] {
  const found: Conflict[] = [];
  for (const p of profileDirs(ctx)) {
    if (p.dir === ctx.profileStateDir) continue;
    const claim = readJson<Claim>(path.join(p.dir, CLAIM));
    if (!claim || !Array.isArray(claim.outs)) continue;
    const holder = readJson<MutexHolder>(path.join(p.dir, MUTEX));
    if (!holder || holder.token !== claim.token || holderIsDead(holder)) continue;
    for (const o of outs) {
      const theirs = claim.outs.find((t) => overlaps(o, t));
      if (theirs !== undefined) {
        found.push({ profile: p.profile, holder, out: o, theirs });
        break;
      }
    }
  }
  return found;
}

export interface GuardOptions {
  wait?: boolean;
  pollMs?: number;
  say?: (msg: string) => void;
  signal?: AbortSignal;
}

/**
 * Publish our claim on `outs` and make sure no other profile's live repro claims any of them
 * (refuse, or wait with `wait`). Returns a release function (removes our claim).
 */
export async function guardSharedOuts(ctx: ProjectContext, token: string, outs: string[], opts: GuardOptions = {}): Promise<() => void> {
  const file = path.join(ctx.profileStateDir, CLAIM);
  const release = () => {
    const c = readJson<Claim>(file);
    if (c && c.token === token) fs.rmSync(file, { force: true });
  };
  let announced = false;
  for (;;) {
    try {
      writeFileAtomicSync(file, JSON.stringify({ profile: ctx.profile, token, outs } satisfies Claim) + "\n", { durable: false });
    } catch (e) {
      // a full disk: no other repro can write its outs either; check, and go on unclaimed (recovery must run)
      if (!["ENOSPC", "EDQUOT"].includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
    }
    const c = conflicts(ctx, outs);
    if (c.length === 0) return release;
    release(); // never hold a claim while waiting: the other repro must not see a conflict with us
    const first = c[0]!;
    const what =
      `the repro of profile ${first.profile} (${describeHolder(first.holder)}) is writing ${first.theirs}, ` +
      `${first.theirs === first.out ? "an out of this profile too" : `which overlaps this profile's out ${first.out}`}`;
    if (!opts.wait) {
      throw new PipelineError(`${what}; two profiles must not write the same outs at once. Wait for it, or use --wait to queue behind it.`, 1);
    }
    if (!announced) {
      opts.say?.(`waiting: ${what}`);
      announced = true;
    }
    if (opts.signal?.aborted) throw new PipelineError("interrupted while waiting for another profile's repro", 130);
    await new Promise((r) => setTimeout(r, (opts.pollMs ?? 500) + Math.floor(Math.random() * 200)));
  }
}
