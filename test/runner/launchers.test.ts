/**
 * Issue 14, fault 6: SIGTERM / SIGHUP to the launcher alone (npx, an npm script, tsx), and SIGINT
 * to the launcher's process group (Ctrl-C), reach the runner: its stage is stopped and rolled
 * back, nothing runs on. Real launchers, real signals.
 */
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { REPO, makeProject, waitFor } from "./helpers.ts";

const TSX = path.join(REPO, "node_modules/.bin/tsx");
const RUN = path.join(REPO, "run.ts");

function project(): string {
  const dir = makeProject({
    "params.yaml": "{}\n",
    "pipeline.yaml": "stages:\n  slow:\n    cmd: echo partial > o.txt; touch started.flag; sleep 60; echo done > o.txt\n    outs: [o.txt]\n",
  });
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "launcher-test", private: true, scripts: { go: `bash -c true && ${TSX} ${RUN} -C . repro` } }),
  );
  return dir;
}

/** Live processes working in `dir` or naming it (the launchers, the runner and its stage). */
function procsIn(dir: string): number[] {
  return fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const state = fs.readFileSync(`/proc/${p}/stat`, "latin1");
        const here = fs.readlinkSync(`/proc/${p}/cwd`) === dir || fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dir);
        return here && !/\) [ZX] /.test(state);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const LAUNCHERS: { name: string; cmd: (dir: string) => [string, string[]]; cwd: (dir: string) => string }[] = [
  { name: "npx tsx run.ts", cmd: (dir) => ["npx", ["tsx", RUN, "-C", dir, "repro"]], cwd: () => REPO },
  { name: "npm run <script>", cmd: () => ["npm", ["run", "go"]], cwd: (dir) => dir },
  { name: "tsx run.ts", cmd: (dir) => [TSX, [RUN, "-C", dir, "repro"]], cwd: () => REPO },
];

describe("fault 6: signals through wrappers", () => {
  for (const l of LAUNCHERS) {
    for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) {
      // TERM and HUP to the launcher alone (`kill <pid>`, a lost SSH session); INT as Ctrl-C sends it: to the process group
      const target = sig === "SIGINT" ? "its process group (Ctrl-C)" : "the launcher's pid only";
      it(`${sig} to ${l.name}, ${target}: the runner stops its stage and ends`, async () => {
        const dir = project();
        const [bin, args] = l.cmd(dir);
        // its own session: nothing but the signal we send reaches it (no terminal, no process group kill)
        const child = spawn(bin, args, { cwd: l.cwd(dir), detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PIPELINE_KILL_GRACE_MS: "2000" } });
        let out = "";
        child.stdout!.on("data", (d) => (out += d));
        child.stderr!.on("data", (d) => (out += d));
        await waitFor(() => fs.existsSync(path.join(dir, "started.flag")), "the stage to start", 60_000);
        process.kill(sig === "SIGINT" ? -child.pid! : child.pid!, sig);
        await waitFor(() => procsIn(dir).length === 0, `the launcher, the runner and its stage to end after ${sig} (${out})`, 20_000);
        expect(fs.existsSync(path.join(dir, "o.txt"))).toBe(false); // the partial out was rolled back
        expect(fs.existsSync(path.join(dir, "pipeline.lock"))).toBe(false);
        expect(fs.existsSync(path.join(dir, ".pipeline/repro.mutex.json"))).toBe(false);
      }, 90_000);
    }
  }
});
