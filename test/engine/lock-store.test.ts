/** LockStore (issue 14, fault 5): the lock in memory, written atomically and coalesced. */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LockStore } from "../../engine/lock-store.ts";
import { readLock } from "../../engine/lock.ts";
import type { LockEntry } from "../../engine/types.ts";

const entry = (i: number): LockEntry => ({
  cmd: [`echo ${i}`],
  deps: [],
  outs: [{ path: `out/${i}.txt`, hash: i.toString(16).padStart(64, "0"), size: 2 }],
  params: {},
  env: {},
  hash: "sha256",
});

describe("LockStore", () => {
  it("500 entries set at once are written in a few coalesced atomic writes", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lockstore-"));
    const file = path.join(dir, "pipeline.lock");
    const store = new LockStore(file, 100);
    let writes = 0;
    const watcher = fs.watch(dir, (ev, name) => {
      if (ev === "rename" && name === "pipeline.lock") writes++;
    });
    const done = Array.from({ length: 500 }, (_, i) => store.set(`t@${i}`, entry(i)));
    await Promise.all(done);
    await store.flush();
    await new Promise((r) => setTimeout(r, 100));
    watcher.close();
    expect(Object.keys(readLock(file).stages)).toHaveLength(500);
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(3);
    expect(fs.readdirSync(dir)).toEqual(["pipeline.lock"]); // no temp file left
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a failed write rejects the waiting entries; they are written once the file system allows", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lockstore-"));
    const file = path.join(dir, "pipeline.lock");
    const store = new LockStore(file, 0);
    store.get(); // read (missing: empty) before the path is blocked
    fs.mkdirSync(path.join(file, "blocker"), { recursive: true }); // rename onto a non-empty directory fails (also as root)
    await expect(store.set("a", entry(1))).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST|ENOTDIR/);
    expect(fs.readdirSync(dir)).toEqual(["pipeline.lock"]); // no temp file left
    fs.rmSync(file, { recursive: true });
    await store.set("b", entry(2));
    expect(Object.keys(readLock(file).stages).sort()).toEqual(["a", "b"]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
