/**
 * Issue 14, fault 3: a full disk, a read-only disk and a closed stdout never kill the runner.
 * Real file systems: a small tmpfs per test (`mount -t tmpfs`, needs root), filled for real or
 * remounted read-only; a real `| head -1` pipe.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO, groupMembers, inproc, read, startCli, waitFor } from "./helpers.ts";

const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  for (const m of mounts) fs.rmSync(m, { recursive: true, force: true });
});

/** A fresh tmpfs of `size` holding the project files, or null where mounting is not permitted. */
function tmpfsProject(size: string, files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "disk-fault-"));
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  if (r.status !== 0) throw new Error(`these tests need root to mount a tmpfs: ${r.stderr}`);
  mounts.push(dir);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

/** Fill the file system to its last byte. */
function fill(dir: string): void {
  spawnSync("bash", ["-c", `head -c 100000000 /dev/zero > ${dir}/filler; true`]);
  expect(spawnSync("bash", ["-c", `echo x > ${dir}/probe`]).status).not.toBe(0);
}

const PROJECT = {
  "params.yaml": "{}\n",
  "src.txt": "v1\n",
  "pipeline.yaml": `stages:
  slow:
    cmd: echo started > started.flag && if [ -e spam ]; then yes spam-spam-spam-spam-spam-spam; fi; if [ -e hold ]; then sleep 600; fi; cat src.txt > o.txt
    deps: [src.txt]
    outs: [o.txt]
`,
};

describe("fault 3: full disk, read-only disk, closed stdout", () => {
  it("a stage filling the disk with its output is stopped and reported; the last good output stays; the next repro runs", async () => {
    const dir = tmpfsProject("4m", PROJECT);
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "src.txt"), "v2\n");
    fs.writeFileSync(path.join(dir, "spam"), "");
    const { done } = startCli(dir, ["repro"]);
    const r = await done;
    expect(r.code, r.out.slice(-2000)).toBe(1);
    expect(r.stderr).not.toMatch(/internal error| {4}at /);
    expect(r.out).toMatch(/FAILED slow: .*stopped: no space left on device while writing .*\.pipeline\/logs\/slow\.log/);
    expect(read(dir, "o.txt")).toBe("v1\n");
    expect(fs.readdirSync(dir).some((n) => n.includes(".tmp-"))).toBe(false);
    // nothing of the stage runs on
    const cwdHere = () => fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return fs.readlinkSync(`/proc/${p}/cwd`) === dir;
      } catch {
        return false;
      }
    });
    await waitFor(() => cwdHere().length === 0, "the stage's processes to end", 10_000);

    fs.rmSync(path.join(dir, "spam"));
    const again = await inproc(dir, ["repro"]);
    expect(again.code, again.out).toBe(0);
    expect(read(dir, "o.txt")).toBe("v2\n");
  });

  it("recovery works with zero free bytes: mutex taken, last good output restored, a clear failure; then a run once there is room", async () => {
    const dir = tmpfsProject("2m", PROJECT);
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "src.txt"), "v2\n");
    fs.writeFileSync(path.join(dir, "hold"), "");
    fs.rmSync(path.join(dir, "started.flag"));
    const { child, done } = startCli(dir, ["repro"]);
    const journal = path.join(dir, ".pipeline/journal/slow.json");
    await waitFor(() => fs.existsSync(path.join(dir, "started.flag")) && fs.existsSync(journal) && !!JSON.parse(fs.readFileSync(journal, "utf8")).jobId, "the stage to start");
    const pgid = Number(JSON.parse(fs.readFileSync(journal, "utf8")).jobId.split(":").at(-2));
    process.kill(child.pid!, "SIGKILL"); // the runner dies; its stage lives on
    await done;
    fs.rmSync(path.join(dir, "hold"));
    fill(dir);

    const r = await inproc(dir, ["repro"]);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.out).toMatch(/taking over the repro mutex left by a dead process/);
    expect(r.out).toMatch(/stopping job/);
    expect(r.out).toMatch(/recovered slow: .*restored its last good outputs/);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/FAILED slow: no space left on device while writing \S+/);
    expect(groupMembers(pgid)).toEqual([]);
    expect(read(dir, "o.txt")).toBe("v1\n");
    expect(fs.existsSync(path.join(dir, ".pipeline/repro.mutex.json"))).toBe(false);

    fs.rmSync(path.join(dir, "filler"));
    const ok = await inproc(dir, ["repro"]);
    expect(ok.code, ok.out).toBe(0);
    expect(read(dir, "o.txt")).toBe("v2\n");
  });

  it("status on a read-only disk answers (without saving its cache); repro refuses with exit 2", async () => {
    const dir = tmpfsProject("2m", PROJECT);
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.rmSync(path.join(dir, ".pipeline/statcache.json"), { force: true }); // status must hash and would save
    await new Promise((r) => setTimeout(r, 2100)); // past the racy window: hashes are cacheable
    expect(spawnSync("mount", ["-o", "remount,ro", dir]).status).toBe(0);
    const st = await inproc(dir, ["status"]);
    expect(st.code, st.out).toBe(0);
    expect(st.stdout).toMatch(/all 1 stage current/);
    expect(st.stderr).toMatch(/^warning: could not save the stat cache .* \(read-only file system\); answered without saving it\n$/);
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(2);
    expect(r.stderr).toMatch(/^error: cannot take the repro mutex .*read-only file system/);
  });

  it("repro | head -1: the closed pipe does not kill the runner; the pipeline completes", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "epipe-"));
    mounts.push(dir);
    for (const [rel, text] of Object.entries(PROJECT)) fs.writeFileSync(path.join(dir, rel), text);
    fs.writeFileSync(
      path.join(dir, "pipeline.yaml"),
      PROJECT["pipeline.yaml"] + "  next:\n    cmd: seq 1 20000; cat o.txt > n.txt\n    deps: [o.txt]\n    outs: [n.txt]\n",
    );
    const r = spawnSync("bash", ["-c", `node --import tsx run.ts -C ${dir} repro | head -1; echo "rc=\${PIPESTATUS[0]}" >&2`], { cwd: REPO, encoding: "utf8" });
    // no crash and no stack: at most the one line that says stdout was closed (engine/closed-output.ts)
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(r.stderr.split("\n").filter((l) => /EPIPE/.test(l) && !l.startsWith("warning: stdout was closed")).length).toBe(0);
    expect(r.stderr).toMatch(/rc=0/);
    expect(read(dir, "n.txt")).toBe("v1\n");
    expect(read(dir, "pipeline.lock")).toMatch(/next:/);
  });
});
