/**
 * No failure loses a last good output (issue 14, fault 1): a garbled journal after a kill -9 of
 * the runner, backups that no journal accounts for, and the orphaned process group of the dead
 * runner, found without the journal (running/ records). Real processes, real files.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { exists, groupMembers, inproc, makeProject, read, startCli, waitFor } from "./helpers.ts";

const PROJECT = {
  "params.yaml": "{}\n",
  "src.txt": "v1\n",
  "pipeline.yaml": `stages:
  slow:
    cmd: echo partial > o.txt && touch started.flag && if [ -e hold ]; then while [ ! -e release ]; do echo late > late.txt; sleep 0.05; done; fi && if [ -e fail ]; then exit 1; fi && cat src.txt > o.txt
    deps: [src.txt]
    outs: [o.txt]
`,
};

const journal = (dir: string) => path.join(dir, ".pipeline/journal/slow.json");

/** Good run, then an attempt killed -9 (runner only: its stage group lives on), then a garbled journal. */
async function crashWithGarbledJournal(dir: string): Promise<number> {
  expect((await inproc(dir, ["repro"])).code).toBe(0);
  fs.writeFileSync(path.join(dir, "src.txt"), "v2\n");
  fs.writeFileSync(path.join(dir, "hold"), "");
  const { child, done } = startCli(dir, ["repro"]);
  await waitFor(() => exists(dir, "started.flag") && fs.existsSync(journal(dir)) && !!JSON.parse(fs.readFileSync(journal(dir), "utf8")).jobId, "the stage to start");
  const pgid = Number(JSON.parse(fs.readFileSync(journal(dir), "utf8")).jobId.split(":").at(-2));
  process.kill(child.pid!, "SIGKILL");
  await done;
  expect(groupMembers(pgid).length).toBeGreaterThan(0); // the orphan still runs
  expect(read(dir, ".pipeline/backup/slow/o.txt")).toBe("v1\n"); // the last good out is in the backup
  fs.writeFileSync(journal(dir), '{"version": 1, "stage": "slo'); // garbled (a torn write, a bad disk)
  return pgid;
}

describe("fault 1: lost data", () => {
  it("garbled journal: status is not 'current'; repro stops the orphan, restores the backup, and a failing rerun keeps it", async () => {
    const dir = makeProject(PROJECT);
    const pgid = await crashWithGarbledJournal(dir);

    const st = await inproc(dir, ["status"]);
    expect(st.code).toBe(1);
    expect(st.out).toMatch(/slow: stale[\s\S]*interrupted/);

    fs.writeFileSync(path.join(dir, "fail"), ""); // the rerun fails
    fs.rmSync(path.join(dir, "hold"));
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(new RegExp(`slow: stopping job \\S+:${pgid}:\\S* left running by a dead runner`));
    expect(r.out).toMatch(/journal of slow could not be read .*restored its last good outputs from the backup \(o\.txt\)/);
    expect(r.out).toMatch(/FAILED slow[\s\S]*its last good outputs were kept/);
    expect(groupMembers(pgid)).toEqual([]);
    expect(read(dir, "o.txt")).toBe("v1\n"); // what the message promises
    // the orphan is gone for good: nothing writes into the project any more
    fs.rmSync(path.join(dir, "late.txt"), { force: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(exists(dir, "late.txt")).toBe(false);
    expect(fs.readdirSync(path.join(dir, ".pipeline/journal")).some((n) => /^slow\.json\.unreadable-\d+$/.test(n))).toBe(true);

    fs.rmSync(path.join(dir, "fail"));
    const ok = await inproc(dir, ["repro"]);
    expect(ok.code, ok.out).toBe(0);
    expect(read(dir, "o.txt")).toBe("v2\n");
    expect(exists(dir, ".pipeline/backup/slow")).toBe(false); // no empty backup folders left behind
  });

  it("a garbled journal of no known stage: exit 2 naming it, its backup untouched", async () => {
    const dir = makeProject(PROJECT);
    await crashWithGarbledJournal(dir);
    // the stage is renamed in pipeline.yaml: the journal belongs to no stage any more
    fs.writeFileSync(path.join(dir, "pipeline.yaml"), read(dir, "pipeline.yaml").replace("  slow:", "  slower:"));
    fs.rmSync(path.join(dir, "hold"));
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(2);
    expect(r.stderr).toMatch(/unreadable journal \.pipeline\/journal\/slow\.json .*\.pipeline\/backup\/slow\/.*nothing was changed/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(read(dir, ".pipeline/backup/slow/o.txt")).toBe("v1\n");
  });

  it("backups that no journal accounts for are set aside, never deleted", async () => {
    const dir = makeProject(PROJECT);
    expect((await inproc(dir, ["repro"])).code).toBe(0);
    fs.mkdirSync(path.join(dir, ".pipeline/backup/slow"), { recursive: true });
    fs.writeFileSync(path.join(dir, ".pipeline/backup/slow/o.txt"), "precious\n");
    fs.writeFileSync(path.join(dir, "src.txt"), "v2\n");
    const r = await inproc(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/moved earlier backups that no journal accounts for to \.pipeline\/stale\/slow\/1\/backup/);
    expect(read(dir, ".pipeline/stale/slow/1/backup/o.txt")).toBe("precious\n");
  });
});
