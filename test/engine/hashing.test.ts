import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Hasher, canonicalManifest } from "../../engine/hashing.ts";
import { errorOf, tmpProject } from "./helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
const sha = (s: string | Buffer) => crypto.createHash("sha256").update(s).digest("hex");

function proj(files: Record<string, string>) {
  const p = tmpProject(files);
  cleanups.push(p.cleanup);
  return p;
}

describe("Hasher", () => {
  it("hashes files with sha256 and reports missing paths as null", async () => {
    const p = proj({ "a.txt": "hello\n", "sub/b.bin": "x".repeat(1000) });
    const h = new Hasher(p.ctx(), { racyWindowMs: 0 });
    const r = await h.hashPaths(["a.txt", "sub/b.bin", "nope.txt", "sub/nope/deeper"]);
    expect(r.get("a.txt")).toEqual({ path: "a.txt", hash: sha("hello\n"), size: 6 });
    expect(r.get("sub/b.bin")).toEqual({ path: "sub/b.bin", hash: sha("x".repeat(1000)), size: 1000 });
    expect(r.get("nope.txt")).toBeNull();
    expect(r.get("sub/nope/deeper")).toBeNull();
  });

  it("hashes a directory as its manifest (every file, dotfiles and .git included), stored content-addressed", async () => {
    const p = proj({ "d/pirate.json": "{}", "d/poet.json": "[]", "d/.hidden": "h", "d/.git/HEAD": "ref", "d/nested/deep/x.txt": "xx" });
    const h = new Hasher(p.ctx(), { racyWindowMs: 0 });
    const r = (await h.hashPaths(["d"])).get("d")!;
    const expected = canonicalManifest([
      ["pirate.json", { hash: sha("{}"), size: 2 }],
      ["poet.json", { hash: sha("[]"), size: 2 }],
      [".hidden", { hash: sha("h"), size: 1 }],
      [".git/HEAD", { hash: sha("ref"), size: 3 }],
      ["nested/deep/x.txt", { hash: sha("xx"), size: 2 }],
    ]);
    expect(expected.startsWith('{".git/HEAD":{"hash":')).toBe(true); // sorted, no spaces
    expect(r).toEqual({ path: "d", hash: sha(expected), size: 10, nfiles: 5, isdir: true });
    const stored = path.join(p.root, ".pipeline/manifests", r.hash.slice(0, 2), `${r.hash}.json`);
    expect(fs.readFileSync(stored, "utf8")).toBe(expected);
    expect(await h.manifest(r.hash)).toEqual(JSON.parse(expected));
    expect(await h.manifest("0".repeat(64))).toBeNull();
    // an empty directory is a directory with no files
    fs.mkdirSync(path.join(p.root, "empty"));
    expect((await h.hashPaths(["empty"])).get("empty")).toEqual({ path: "empty", hash: sha("{}"), size: 0, nfiles: 0, isdir: true });
  });

  it("does not hash an unchanged file twice, also across processes (the saved stat cache)", async () => {
    const p = proj({ "a.txt": "aaa", "d/1": "1", "d/2": "2" });
    const h1 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    const first = await h1.hashPaths(["a.txt", "d"]);
    expect(h1.stats).toMatchObject({ filesHashed: 3, cacheHits: 0 });
    await h1.hashPaths(["a.txt", "d"]);
    expect(h1.stats).toMatchObject({ filesHashed: 3, cacheHits: 3 });
    await h1.save();
    const cache = JSON.parse(fs.readFileSync(path.join(p.root, ".pipeline/statcache.json"), "utf8"));
    expect(Object.keys(cache.entries)).toEqual(["a.txt", "d/1", "d/2"]);
    expect(cache.fields).toEqual(["size", "ino", "mtimeNs", "ctimeNs", "hash"]);

    const h2 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    expect(await h2.hashPaths(["a.txt", "d"])).toEqual(first);
    expect(h2.stats).toMatchObject({ filesHashed: 0, cacheHits: 3 });
  });

  it("detects a same-size rewrite even when the mtime is put back (ctime changes)", async () => {
    const p = proj({ "a.txt": "aaa" });
    const abs = path.join(p.root, "a.txt");
    const h = new Hasher(p.ctx(), { racyWindowMs: 0 });
    fs.utimesSync(abs, 1_700_000_000, 1_700_000_000); // whole seconds: restorable exactly
    const mtimeNs = fs.statSync(abs, { bigint: true }).mtimeNs;
    const before = (await h.hashPaths(["a.txt"])).get("a.txt")!;
    await new Promise((r) => setTimeout(r, 20));
    fs.writeFileSync(abs, "bbb");
    fs.utimesSync(abs, 1_700_000_000, 1_700_000_000); // same size, same mtime to the ns; only ctime (and the content) differ
    expect(fs.statSync(abs, { bigint: true }).mtimeNs).toBe(mtimeNs);
    const after = (await h.hashPaths(["a.txt"])).get("a.txt")!;
    expect(after.hash).toBe(sha("bbb"));
    expect(after.hash).not.toBe(before.hash);
    expect(h.stats.filesHashed).toBe(2);
    // a file replaced by another (new inode, e.g. written elsewhere and renamed over) is rehashed too
    fs.writeFileSync(abs + ".new", "ccc");
    fs.renameSync(abs + ".new", abs);
    expect((await h.hashPaths(["a.txt"])).get("a.txt")!.hash).toBe(sha("ccc"));
    // What the cache cannot see: a rewrite that keeps size, inode, mtime and ctime; ctime cannot
    // be set from user space, so that takes a write within one timestamp tick of our stat
    // ("racy"), which the racy window below guards against.
  });

  it("does not cache files modified within the racy window, so they are hashed again next time", async () => {
    const p = proj({ "fresh.txt": "new" });
    const h = new Hasher(p.ctx()); // default window 2 s: the file was just written
    await h.hashPaths(["fresh.txt"]);
    await h.hashPaths(["fresh.txt"]);
    expect(h.stats).toMatchObject({ filesHashed: 2, cacheHits: 0 });
    await h.save();
    expect(fs.existsSync(path.join(p.root, ".pipeline/statcache.json"))).toBe(false);
  });

  it("merges the stat cache with what another process saved meanwhile", async () => {
    const p = proj({ "a.txt": "a", "b.txt": "b" });
    const h1 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    const h2 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    await h1.hashPaths(["a.txt"]);
    await h2.hashPaths(["b.txt"]);
    await h1.save();
    await h2.save(); // h2 loaded its cache before h1 saved: it must not drop a.txt
    const cache = JSON.parse(fs.readFileSync(path.join(p.root, ".pipeline/statcache.json"), "utf8"));
    expect(Object.keys(cache.entries)).toEqual(["a.txt", "b.txt"]);
  });

  it("drops cache entries of files that disappeared", async () => {
    const p = proj({ "a.txt": "a", "b.txt": "b" });
    const h = new Hasher(p.ctx(), { racyWindowMs: 0 });
    await h.hashPaths(["a.txt", "b.txt"]);
    await h.save();
    fs.rmSync(path.join(p.root, "b.txt"));
    const h2 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    expect((await h2.hashPaths(["b.txt"])).get("b.txt")).toBeNull();
    await h2.save();
    const cache = JSON.parse(fs.readFileSync(path.join(p.root, ".pipeline/statcache.json"), "utf8"));
    expect(Object.keys(cache.entries)).toEqual(["a.txt"]);
    // also files deleted from inside a directory
    p.write("d/1", "1");
    p.write("d/2", "2");
    const h3 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    await h3.hashPaths(["d"]);
    await h3.save();
    fs.rmSync(path.join(p.root, "d/2"));
    const h4 = new Hasher(p.ctx(), { racyWindowMs: 0 });
    expect((await h4.hashPaths(["d"])).get("d")!.nfiles).toBe(1);
    await h4.save();
    const cache2 = JSON.parse(fs.readFileSync(path.join(p.root, ".pipeline/statcache.json"), "utf8"));
    expect(Object.keys(cache2.entries)).toEqual(["a.txt", "d/1"]);
  });

  it("follows symlinks and reports a symlink loop", async () => {
    const p = proj({ "real/x.txt": "x" });
    fs.mkdirSync(path.join(p.root, "d"));
    fs.symlinkSync("../real", path.join(p.root, "d/link"));
    const h = new Hasher(p.ctx(), { racyWindowMs: 0 });
    const r = (await h.hashPaths(["d"])).get("d")!;
    expect(await h.manifest(r.hash)).toEqual({ "link/x.txt": { hash: sha("x"), size: 1 } });
    fs.symlinkSync("..", path.join(p.root, "real/up"));
    const e = await errorOf(() => h.hashPaths(["real"]));
    expect(e.message).toContain("symlink loop inside real: real/up");
  });

  it("hashes many files at once with the same results as one by one", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`many/f${i}.txt`] = `file ${i}\n`.repeat(i + 1);
    const p = proj(files);
    const h = new Hasher(p.ctx(), { racyWindowMs: 0, concurrency: 4 });
    const all = await h.hashPaths(Object.keys(files));
    for (const [f, c] of Object.entries(files)) expect(all.get(f)!.hash).toBe(sha(c));
  });
});
