/**
 * The processes that launched the runner (`npm run`, `npx`, `tsx`, and the `sh -c` of an npm
 * script) may die of a signal without passing it on: npx and an npm script's shell do not forward
 * SIGTERM or SIGHUP, so the runner went on alone (issue 14). The runner notes that chain of
 * wrappers when it starts and, when one of them is gone, stops as if it had been signalled.
 * The chain ends at the first process that is not a wrapper (the user's shell, nohup, a
 * scheduler), so `nohup tsx run.ts repro &` outlives a logout as intended.
 */
import fs from "node:fs";
import { procEnded, procStart, procStat } from "./proc.ts";

interface Proc {
  pid: number;
  start: string | undefined;
  what: string;
}

function ppidOf(pid: number): number | null {
  return procStat(pid)?.ppid ?? null;
}

function argvOf(pid: number): string[] {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    // npm sets its process title ("npm exec tsx run.ts"): one string with spaces
    return argv.length === 1 ? argv[0]!.split(" ") : argv;
  } catch {
    return [];
  }
}

const WRAPPER = /(^|\/)(npm|npx|tsx|npm-cli\.js|npx-cli\.js|cli\.mjs|cli\.cjs)$/;

/** A launcher that may not forward signals: npm, npx, tsx (as node scripts or binaries). */
function isWrapper(argv: string[]): boolean {
  return argv.slice(0, 2).some((a) => WRAPPER.test(a) && (!/cli\.[mc]?js$/.test(a) || /tsx|npm/.test(a)));
}

/** `sh -c <script>` run by npm for a package.json script. */
function isScriptShell(argv: string[], parentArgv: string[]): boolean {
  return /(^|\/)(sh|bash|dash)$/.test(argv[0] ?? "") && argv[1] === "-c" && isWrapper(parentArgv);
}

/** The wrapper processes above this one, nearest first (empty where /proc is missing). */
function launcherChain(pid = process.pid): Proc[] {
  const chain: Proc[] = [];
  let p = ppidOf(pid);
  while (p !== null && p > 1) {
    const argv = argvOf(p);
    const pp = ppidOf(p);
    const relay = p === process.ppid && process.env.PIPELINE_RELAYED === "1";
    const wrapper = relay || isWrapper(argv) || (pp !== null && isScriptShell(argv, argvOf(pp)));
    if (!wrapper) break;
    chain.push({ pid: p, start: procStart(p), what: argv.slice(0, 3).join(" ") });
    p = pp;
  }
  return chain;
}

/** The same process, still running (a zombie has ended: only its parent has not reaped it yet). */
function alive(l: Proc): boolean {
  const st = procStat(l.pid);
  return st?.start === l.start && !procEnded(st);
}

/** Calls `onGone` once when a process of the launcher chain has ended. Returns a stop function. */
export function watchLaunchers(onGone: (what: string) => void, intervalMs = 500): () => void {
  const chain = launcherChain();
  if (chain.length === 0) return () => {};
  const timer = setInterval(() => {
    for (const l of chain) {
      if (!alive(l)) {
        clearInterval(timer);
        onGone(`${l.what} (pid ${l.pid})`);
        return;
      }
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Under the tsx CLI (`tsx run.ts`, `npx tsx run.ts`), SIGTERM/SIGINT are relayed to its child and
 * the child is SIGKILLed when it does not acknowledge within 30 ms (tsx's relaySignals), which a
 * busy machine easily misses: the runner died and its stage ran on. So under tsx, run.ts runs the
 * runner one process further down and stays a thin relay: if tsx kills the relay, the runner sees
 * its launcher gone (watchLaunchers) and stops its stages properly. Returns false where no relay is
 * needed; otherwise never resolves (the relay exits with the runner's exit code).
 */
export async function relayIfUnderTsx(): Promise<false> {
  if (process.env.PIPELINE_RELAYED === "1" || !underTsxCli()) return false;
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, PIPELINE_RELAYED: "1" },
  });
  let last = 0;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      // a Ctrl-C reaches the runner directly too (same process group): pass on only what it may have missed
      if (Date.now() - last > 1000) child.kill(sig);
      last = Date.now();
    });
  }
  child.on("exit", (code, signal) => {
    process.exitCode = code ?? 128 + (signal === "SIGKILL" ? 9 : signal === "SIGINT" ? 2 : 15);
    process.exit();
  });
  return new Promise<false>(() => {});
}

function underTsxCli(): boolean {
  const argv = argvOf(process.ppid);
  return argv.slice(0, 2).some((a) => /(^|\/)tsx$|tsx\/dist\/cli\.[mc]?js$/.test(a));
}
