/**
 * Issue 14, fault 9 (smaller ones): `status` during a run says "running, by pid N on host H";
 * a removed stage's lock entry is dropped (and `status` says so); a stage that modifies its own
 * dep is warned about; no `*.tmp-*` files or empty backup folders are left.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { exists, inproc, makeProject, read, startCli, waitFor } from "./helpers.ts";

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [path.join(dir, e.name), ...walk(path.join(dir, e.name))] : [path.join(dir, e.name)]));
}

describe("fault 9: smaller ones", () => {
  it("status during a run: 'running now, by pid N on host H', not 'interrupted'", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": "stages:\n  slow:\n    cmd: touch started.flag; while [ ! -e release ]; do sleep 0.05; done; echo ok > o.txt\n    outs: [o.txt]\n",
    });
    const { child, done } = startCli(dir, ["repro"]);
    await waitFor(() => exists(dir, "started.flag"), "the stage to start");
    const st = await inproc(dir, ["status"]);
    expect(st.code).toBe(1);
    expect(st.out).toContain(`running now, by pid ${child.pid} on host ${os.hostname()}`);
    expect(st.out).not.toMatch(/interrupted/);
    fs.writeFileSync(path.join(dir, "release"), "");
    expect((await done).code).toBe(0);
  });

  it("a removed stage's lock entry is reported by status and dropped by the next repro", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: echo b > b.txt\n    outs: [b.txt]\n",
    });
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "pipeline.yaml"), "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n");
    const st = await inproc(dir, ["status"]);
    expect(st.out).toMatch(/removed from pipeline\.yaml \(their lock entries are dropped at the next repro\): b/);
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/dropped the lock entry of b \(no longer in pipeline\.yaml\)/);
    expect(read(dir, "pipeline.lock")).not.toMatch(/^ {2}b:/m);
    expect((await inproc(dir, ["status"])).out).not.toMatch(/removed from pipeline/);
  });

  it("a stage that modifies its own dep is warned about; no temp files or empty backup folders are left", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "dep.txt": "1\n",
      "pipeline.yaml": "stages:\n  self:\n    cmd: echo more >> dep.txt; cat dep.txt > o.txt\n    deps: [dep.txt]\n    outs: [o.txt]\n",
    });
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning: self changed its own dep dep\.txt while running: .* will run again at every repro \(make it an out, or stop writing it\)/);
    expect((await inproc(dir, ["repro"])).code).toBe(0); // reruns (o.txt exists now: a backup was made and deleted)
    const files = walk(dir);
    expect(files.filter((f) => /\.tmp-/.test(f))).toEqual([]);
    expect(files.filter((f) => f.includes(`${path.sep}backup`))).toEqual([]);
  });
});
