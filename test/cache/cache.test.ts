/**
 * The local cache with the real CLI and real processes: outs stored on repro, `checkout` after
 * switching lock versions (git), the run-cache after a param round trip, `cache: false`, link
 * types, gc and bad settings.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cli, commitAll, exists, filesUnder, git, gitProject, read, runs } from "./helpers.ts";

describe("cache and checkout", () => {
  it("stores every out on repro and checks out the outs of an older lock from the cache without running anything", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "x=a");
    const objects = filesUnder(path.join(dir, ".pipeline/cache/files"));
    // out/a.txt, out/sub/b.txt, the out/ manifest, f.txt, final.txt
    expect(objects.length).toBe(5);
    expect(objects.filter((f) => f.endsWith(".dir")).length).toBe(1);

    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "x=b");
    expect(read(dir, "final.txt")).toBe("b\nb-f\n");
    expect(runs(dir)).toEqual(["make", "use", "make", "use"]);

    git(dir, "checkout", "-q", "HEAD~1");
    const stale = await cli(dir, ["status"]);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toContain("outs: out/a.txt modified");

    const co = await cli(dir, ["checkout"]);
    expect(co.code, co.out).toBe(0);
    expect(co.stdout).toContain("restored f.txt");
    expect(co.stdout).toContain("restored out (1 of 2 files placed)"); // out/sub/b.txt was already right
    expect(co.stdout).toMatch(/checkout: 3 restored \((hardlink|reflink|copy)\); 0 already current/);
    expect(read(dir, "out/a.txt")).toBe("a\n");
    expect(read(dir, "final.txt")).toBe("a\na-f\n");
    const st = await cli(dir, ["status"]);
    expect(st.code, st.out).toBe(0);
    expect(st.stdout).toContain("all 2 stages current");
    expect(runs(dir)).toHaveLength(4); // nothing ran

    // a second checkout touches nothing
    const again = await cli(dir, ["checkout", "use"]);
    expect(again.stdout).toContain("checkout: 0 restored; 1 already current");

    // a file that is not an out is never touched; an extra file inside a directory out is removed (the out must match)
    fs.writeFileSync(path.join(dir, "mine.txt"), "keep");
    fs.rmSync(path.join(dir, "out/a.txt"), { force: true });
    fs.writeFileSync(path.join(dir, "out/extra.txt"), "x");
    expect((await cli(dir, ["checkout"])).code).toBe(0);
    expect(read(dir, "mine.txt")).toBe("keep");
    expect(exists(dir, "out/extra.txt")).toBe(false);
    expect(read(dir, "out/a.txt")).toBe("a\n");
  });

  it("records what checkout placed in the stat cache: the next status reads none of those files", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    fs.rmSync(path.join(dir, "out"), { recursive: true });
    fs.rmSync(path.join(dir, "f.txt"));
    fs.rmSync(path.join(dir, "final.txt")); // replaced, not edited in place (a hardlinked out is the cache object)
    fs.writeFileSync(path.join(dir, "final.txt"), "edited\n");
    for (const link of ["hardlink", "copy"]) {
      const co = await cli(dir, ["checkout"], { PIPELINE_CACHE_LINK: link });
      expect(co.code, co.out).toBe(0);
      const { resolveContext } = await import("../../engine/context.ts");
      const { Hasher } = await import("../../engine/hashing.ts");
      const h = new Hasher(resolveContext({ cwd: dir }));
      const got = await h.hashPaths(["out", "f.txt", "final.txt"]);
      expect(h.stats.filesHashed).toBe(0);
      // what was recorded is what is there
      for (const f of ["f.txt", "final.txt", "out/a.txt"]) {
        const want = crypto.createHash("sha256").update(fs.readFileSync(path.join(dir, f))).digest("hex");
        if (f === "out/a.txt") expect(h.manifestSync(got.get("out")!.hash)!["a.txt"]!.hash).toBe(want);
        else expect(got.get(f)!.hash).toBe(want);
      }
      expect((await cli(dir, ["status"])).code).toBe(0);
      fs.rmSync(path.join(dir, "out/sub"), { recursive: true });
    }
  });

  it("names what the cache lacks and leaves it as it is (exit 1)", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    fs.rmSync(path.join(dir, ".pipeline/cache"), { recursive: true });
    fs.writeFileSync(path.join(dir, "f.txt"), "edited by hand\n");
    const co = await cli(dir, ["checkout"]);
    expect(co.code, co.out).toBe(1);
    expect(co.stdout).toContain("not in the cache: f.txt (make; 1 object missing)");
    expect(co.stdout).toContain("1 not in the cache");
    expect(read(dir, "f.txt")).toBe("edited by hand\n");
  });

  it("restores from the run-cache after a param round trip a -> b -> a (the command does not run), unless --no-run-cache", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    expect(runs(dir)).toEqual(["make", "use", "make", "use"]);

    fs.writeFileSync(path.join(dir, "params.yaml"), "x: a\n");
    const r = await cli(dir, ["repro"]);
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain("make: restored from run-cache");
    expect(r.stdout).toContain("use: restored from run-cache");
    expect(r.stdout).not.toContain("running make");
    expect(r.stdout).toContain("summary: restored from run-cache 2 (make, use)");
    expect(runs(dir)).toHaveLength(4); // neither command ran a third time
    expect(read(dir, "final.txt")).toBe("a\na-f\n");
    expect((await cli(dir, ["status"])).code).toBe(0);

    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    const n = await cli(dir, ["repro", "--no-run-cache"]);
    expect(n.code, n.out).toBe(0);
    expect(n.stdout).toContain("running make");
    expect(runs(dir)).toHaveLength(6);

    // -f runs the command even though the run-cache has it
    const f = await cli(dir, ["repro", "-f", "make"]);
    expect(f.stdout).toContain("running make");
    expect(runs(dir)).toHaveLength(7);
  });

  it("does not cache `cache: false` outs (and says so); a persist out is cached as a copy, never a hardlink", async () => {
    const dir = gitProject("a", {
      "pipeline.yaml": `stages:
  big:
    cmd: echo big > big.bin; echo small > small.txt; echo p >> p.txt
    outs:
      - big.bin: {cache: false}
      - small.txt
      - p.txt: {persist: true}
`,
    });
    const r = await cli(dir, ["repro"], { PIPELINE_CACHE_LINK: "hardlink,copy" });
    expect(r.code, r.out).toBe(0);
    const objects = filesUnder(path.join(dir, ".pipeline/cache/files"));
    expect(objects).toHaveLength(2); // small.txt, p.txt
    expect(fs.statSync(path.join(dir, "small.txt")).nlink).toBe(2); // hardlinked with its object
    expect(fs.statSync(path.join(dir, "p.txt")).nlink).toBe(1); // persist: a copy, stays writable
    fs.rmSync(path.join(dir, "big.bin"));
    const co = await cli(dir, ["checkout"], { PIPELINE_CACHE_LINK: "hardlink,copy" });
    expect(co.stdout).toContain("1 not cached (cache: false): big.bin");
    expect(exists(dir, "big.bin")).toBe(false);
  });

  it("links by the configured type and status says which one", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"], { PIPELINE_CACHE_LINK: "copy" })).code).toBe(0);
    expect(fs.statSync(path.join(dir, "f.txt")).nlink).toBe(1);
    const st = await cli(dir, ["status"], { PIPELINE_CACHE_LINK: "copy" });
    expect(st.stdout).toContain("cache: .pipeline/cache; outs are linked by copy");
    const hl = await cli(dir, ["status"], { PIPELINE_CACHE_LINK: "reflink,hardlink" });
    // ext4/tmpfs cannot reflink: the first type that works is named, with why the others were skipped
    expect(hl.stdout).toMatch(/outs are linked by (reflink|hardlink \(reflink not supported here\))/);
    const json = JSON.parse((await cli(dir, ["status", "--json"], { PIPELINE_CACHE_LINK: "copy" })).stdout);
    expect(json.cache.link).toBe("copy");
    fs.rmSync(path.join(dir, "f.txt"));
    expect((await cli(dir, ["checkout"], { PIPELINE_CACHE_LINK: "copy" })).code).toBe(0);
    expect(fs.statSync(path.join(dir, "f.txt")).mode & 0o200).toBeTruthy(); // a copy is writable
  });

  it("falls back to copies when the cache is on another file system (hardlinks impossible)", async () => {
    const other = fs.mkdtempSync("/dev/shm/cache-test-"); // tmpfs: another device than the project in /tmp
    try {
      const dir = gitProject("a");
      const env = { PIPELINE_CACHE_DIR: other, PIPELINE_CACHE_LINK: "hardlink,copy" };
      expect((await cli(dir, ["repro"], env)).code).toBe(0);
      expect(filesUnder(path.join(other, "files"))).toHaveLength(5);
      const st = await cli(dir, ["status"], env);
      expect(st.stdout).toContain(`cache: ${other} (from PIPELINE_CACHE_DIR); outs are linked by copy (hardlink not supported here)`);
      fs.rmSync(path.join(dir, "out"), { recursive: true });
      const co = await cli(dir, ["checkout"], env);
      expect(co.stdout).toContain("checkout: 1 restored (copy)");
      expect(fs.statSync(path.join(dir, "out/a.txt")).nlink).toBe(1);
      expect((await cli(dir, ["status"], env)).code).toBe(0);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it("puts the cache where PIPELINE_CACHE_DIR or pipeline.config.yaml says; a bad config is one clear line, exit 2", async () => {
    const shared = path.join(gitProject("a"), "shared-cache");
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"], { PIPELINE_CACHE_DIR: shared })).code).toBe(0);
    expect(filesUnder(path.join(shared, "files"))).toHaveLength(5);
    expect(exists(dir, ".pipeline/cache/files")).toBe(false);

    fs.writeFileSync(path.join(dir, "pipeline.config.yaml"), "cache:\n  dir: ../elsewhere\n  link: [hardlnk]\n");
    const bad = await cli(dir, ["status"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/pipeline\.config\.yaml:3:\d+: cache\.link\[0\]: expected reflink, hardlink or copy/);
  });

  it("gc removes what no lock references, keeps what a lock of a given revision references, and --dry removes nothing", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "x=a");
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(dir, "x=b");
    const files = path.join(dir, ".pipeline/cache/files");
    const before = filesUnder(files);
    // per version: out/a.txt, out's manifest, f.txt, final.txt; out/sub/b.txt is the same in both
    expect(before).toHaveLength(9);

    const keepOld = await cli(dir, ["gc", "--rev", "HEAD~1"]);
    expect(keepOld.code, keepOld.out).toBe(0);
    expect(keepOld.stdout).toContain("removed 0 objects");
    expect(filesUnder(files)).toEqual(before);

    const dry = await cli(dir, ["gc", "--dry"]);
    expect(dry.stdout).toContain("would remove 4 objects");
    expect(filesUnder(files)).toEqual(before);

    const gc = await cli(dir, ["gc"]);
    expect(gc.stdout).toContain("removed 4 objects");
    expect(gc.stdout).toContain("2 run-cache entries");
    expect(filesUnder(files)).toHaveLength(5);
    // what the lock references is all there: checkout works, and the old version is gone
    fs.rmSync(path.join(dir, "out"), { recursive: true });
    expect((await cli(dir, ["checkout"])).code).toBe(0);
    expect(read(dir, "out/a.txt")).toBe("b\n");
    git(dir, "checkout", "-q", "HEAD~1");
    const co = await cli(dir, ["checkout"]);
    expect(co.code).toBe(1);
    expect(co.stdout).toContain("not in the cache: f.txt");
  });
});
