/**
 * Directory remotes with the real CLI: push/pull into a fresh clone (then everything current,
 * nothing run), `repro --pull` and the remote run-cache, a corrupted cache object detected and
 * fetched again, an interrupted push (SIGKILL mid-file) resumed, bad remotes.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cli, commitAll, filesUnder, git, gitProject, read, runs, tempDir } from "./helpers.ts";

function clone(src: string): string {
  const dest = path.join(tempDir("clone-"), "p");
  git(src, "clone", "-q", src, dest);
  return dest;
}

function sha(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

describe("directory remote", () => {
  it("push, then pull into a fresh clone: status all current and nothing ran there", async () => {
    const dir = gitProject("a");
    const remote = path.join(tempDir("remote-"), "r");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "a");
    const p = await cli(dir, ["push", "-r", remote]);
    expect(p.code, p.out).toBe(0);
    expect(p.stdout).toMatch(/push to .*: 5 objects uploaded \(\d+ B\), 0 already there, 2 run-cache entries/);
    const p2 = await cli(dir, ["push"], { PIPELINE_REMOTE: remote });
    expect(p2.stdout).toContain("0 objects uploaded (0 B), 5 already there");

    const c = clone(dir);
    expect((await cli(c, ["status"])).code).toBe(1);
    fs.writeFileSync(path.join(c, "pipeline.config.yaml"), `remote: ${remote}\n`);
    const pull = await cli(c, ["pull"]);
    expect(pull.code, pull.out).toBe(0);
    expect(pull.stdout).toContain("5 objects downloaded");
    expect(pull.stdout).toContain("checkout: 3 restored");
    const st = await cli(c, ["status"]);
    expect(st.code, st.out).toBe(0);
    expect(st.stdout).toContain("all 2 stages current");
    expect(st.stdout).toContain(`remote: ${remote}`);
    expect(read(c, "final.txt")).toBe("a\na-f\n");
    expect(runs(c)).toEqual([]);

    // repro --pull in another clone: everything comes from the remote, nothing runs
    const c2 = clone(dir);
    const r = await cli(c2, ["repro", "--pull", "-r", remote]);
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain("--pull: 5 objects downloaded");
    expect(r.stdout).toContain("summary: current 2");
    expect(runs(c2)).toEqual([]);
  });

  it("repro --pull restores a stage from the remote's run-cache (pushed with --run-cache)", async () => {
    const dir = gitProject("a");
    const remote = path.join(tempDir("remote-"), "r");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "a");
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    git(dir, "checkout", "-q", "--", "params.yaml", "pipeline.lock"); // back to x: a (the b run stays in the run-cache)
    const p = await cli(dir, ["push", "--run-cache", "-r", remote]);
    expect(p.code, p.out).toBe(0);
    expect(p.stdout).toContain("4 run-cache entries");

    const c = clone(dir);
    fs.writeFileSync(path.join(c, "params.yaml"), "x: b\n");
    const r = await cli(c, ["repro", "--pull", "-r", remote]);
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain("make: restored from run-cache");
    expect(r.stdout).toContain("use: restored from run-cache");
    expect(read(c, "final.txt")).toBe("b\nb-f\n");
    expect(runs(c)).toEqual([]);
  });

  it("a corrupted cache object is detected (checkout refuses it) and fetched again by pull", async () => {
    const dir = gitProject("a");
    const remote = path.join(tempDir("remote-"), "r");
    expect((await cli(dir, ["repro"], { PIPELINE_CACHE_LINK: "copy" })).code).toBe(0);
    expect((await cli(dir, ["push", "-r", remote])).code).toBe(0);
    const want = sha(path.join(dir, "f.txt"));
    const obj = path.join(dir, ".pipeline/cache/files/sha256", want.slice(0, 2), want.slice(2));
    fs.chmodSync(obj, 0o644);
    fs.writeFileSync(obj, "bit rot\n");
    fs.rmSync(path.join(dir, "f.txt"));

    const co = await cli(dir, ["checkout"], { PIPELINE_CACHE_LINK: "copy" });
    expect(co.code, co.out).toBe(1);
    expect(co.stdout).toContain("not in the cache: f.txt");
    expect(co.stdout).toContain("1 corrupt cache object(s) moved aside");
    expect(fs.existsSync(path.join(dir, "f.txt"))).toBe(false);

    // corrupt it again in place (pull must find it by itself, not rely on the checkout above)
    fs.mkdirSync(path.dirname(obj), { recursive: true });
    fs.writeFileSync(obj, "bit rot again\n");
    const pull = await cli(dir, ["pull", "-r", remote], { PIPELINE_CACHE_LINK: "copy" });
    expect(pull.code, pull.out).toBe(0);
    expect(pull.stdout).toContain("1 corrupt in the cache (moved to <cache>/corrupt/), fetched again");
    expect(sha(obj)).toBe(want);
    expect(sha(path.join(dir, "f.txt"))).toBe(want);
    expect((await cli(dir, ["status"])).code).toBe(0);
  });

  it("an interrupted push (killed mid-file) resumes from the bytes already on the remote, verified", async () => {
    const size = 6 * 1024 * 1024;
    const dir = gitProject("a", {
      "pipeline.yaml": `stages:
  big:
    cmd: python3 -c "import random; random.seed(7); open('big.bin','wb').write(random.randbytes(${size}))"
    outs: [big.bin]
`,
    });
    const remote = path.join(tempDir("remote-"), "r");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    const want = sha(path.join(dir, "big.bin"));
    const dest = path.join(remote, "files/sha256", want.slice(0, 2), want.slice(2));

    const killed = await cli(dir, ["push", "-r", remote, "-j", "1"], { PIPELINE_TRANSFER_KILL_AFTER_BYTES: String(2 * 1024 * 1024) });
    expect(killed.signal).toBe("SIGKILL");
    expect(fs.existsSync(dest)).toBe(false); // never visible half-written
    const partial = fs.statSync(`${dest}.partial`).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(size);

    const resumed = await cli(dir, ["push", "-r", remote], { PIPELINE_PROGRESS_INTERVAL_MS: "0" });
    expect(resumed.code, resumed.out).toBe(0);
    expect(resumed.stderr).toMatch(/push: 0\/1 files, [\d.]+ MiB\/6\.0 MiB/); // progress while it streams
    expect(resumed.stdout).toContain("1 object uploaded");
    expect(resumed.stdout).toContain("1 resumed from an interrupted transfer");
    expect(fs.existsSync(`${dest}.partial`)).toBe(false);
    expect(sha(dest)).toBe(want);

    // a partial whose bytes are wrong is detected by the hash and the object sent again whole
    fs.chmodSync(dest, 0o644);
    fs.renameSync(dest, `${dest}.partial`);
    fs.writeFileSync(`${dest}.partial`, Buffer.alloc(1024 * 1024, 1));
    const again = await cli(dir, ["push", "-r", remote]);
    expect(again.code, again.out).toBe(0);
    expect(sha(dest)).toBe(want);
  });

  it("bad remotes: none configured, or one that does not exist, is one clear line and exit 2", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    const none = await cli(dir, ["pull"], { PIPELINE_REMOTE: "" });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no remote: pass -r/--remote <dir or s3://bucket/prefix>, set PIPELINE_REMOTE, or add `remote: ...` to pipeline.config.yaml");
    const missing = await cli(dir, ["fetch", "-r", "/nonexistent/remote"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("remote /nonexistent/remote does not exist");
    const s3 = await cli(dir, ["push", "-r", "s3://Bad_Bucket/x"]);
    expect(s3.code).toBe(2);
    expect(s3.stderr).toContain("remote s3://Bad_Bucket/x: expected s3://<bucket>/<prefix> with a valid bucket name");
    const other = await cli(dir, ["push", "-r", "gs://bucket/x"]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain("remote gs://bucket/x: unsupported scheme; a remote is a directory path or s3://bucket/prefix");
    expect(filesUnder(path.join(dir, "nonexistent"))).toEqual([]);
  });
});
