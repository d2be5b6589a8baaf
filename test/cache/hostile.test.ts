/**
 * Hostile input for checkout and pull (issue 28): manifests and locks that name paths outside an
 * out or outside the project, and outs that are symlinks. Nothing may be written or deleted
 * outside the project; the refusal is one line naming what is wrong, exit 2.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cli, exists, gitProject, read, tempDir } from "./helpers.ts";

const sha = (s: string | Buffer) => crypto.createHash("sha256").update(s).digest("hex");
const objRel = (h: string, dir = false) => `files/sha256/${h.slice(0, 2)}/${h.slice(2)}${dir ? ".dir" : ""}`;

/** Put an object (by its own sha256) into a cache or remote directory. */
function putObject(base: string, body: string, dir = false): string {
  const h = sha(body);
  const f = path.join(base, objRel(h, dir));
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, body);
  return h;
}

/** A manifest (canonical JSON) whose only entry is `entry`, with its file object, in `base`. */
function hostileManifest(base: string, entry: string, content = "pwned\n"): string {
  const fh = putObject(base, content);
  return putObject(base, `{${JSON.stringify(entry)}:{"hash":"${fh}","size":${Buffer.byteLength(content)}}}`, true);
}

/** Point the lock's `out` entry at another directory hash. */
function setOutHash(dir: string, hash: string): void {
  const lock = read(dir, "pipeline.lock");
  const m = /- path: out\n\s+hash: ([0-9a-f]{64})/.exec(lock)!;
  fs.writeFileSync(path.join(dir, "pipeline.lock"), lock.replace(m[1]!, hash));
}

describe("manifest entries never leave their out", () => {
  it("pull refuses a remote manifest with ../ entries: exit 2, one line naming the object and the entry, nothing written outside", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    const remote = tempDir("remote-");
    expect((await cli(dir, ["push", "-r", remote])).code).toBe(0);
    const victim = `escaped-${crypto.randomBytes(4).toString("hex")}.txt`;
    const outside = path.join(path.dirname(dir), victim);
    const h = hostileManifest(remote, `../../${victim}`);
    setOutHash(dir, h);
    fs.rmSync(path.join(dir, ".pipeline/cache"), { recursive: true });
    fs.rmSync(path.join(dir, "out"), { recursive: true });
    try {
      const r = await cli(dir, ["pull", "-r", remote]);
      expect(fs.existsSync(outside)).toBe(false);
      expect(r.code, r.out).toBe(2);
      const err = r.stderr.trim().split("\n");
      expect(err).toHaveLength(1);
      expect(err[0]).toContain(`${h.slice(2)}.dir`);
      expect(err[0]).toContain(`../../${victim}`);
      // the bad manifest did not enter the cache
      expect(exists(dir, `.pipeline/cache/${objRel(h, true)}`)).toBe(false);
    } finally {
      fs.rmSync(outside, { force: true });
    }
  });

  it("checkout refuses a manifest in the local cache whose entries are absolute, .., .git or empty components", async () => {
    const dir = gitProject("a");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    const lock = read(dir, "pipeline.lock");
    for (const entry of ["/tmp/abs.txt", "a/../../b.txt", ".git/hooks/post-checkout", "sub/.GIT/config", "a//b", "./a", ""]) {
      fs.writeFileSync(path.join(dir, "pipeline.lock"), lock);
      const h = hostileManifest(path.join(dir, ".pipeline/cache"), entry);
      setOutHash(dir, h);
      const r = await cli(dir, ["checkout"]);
      expect(r.code, `${entry}: ${r.out}`).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(`${h.slice(2)}.dir`);
      expect(r.stderr).toContain(JSON.stringify(entry));
      expect(read(dir, "out/a.txt")).toBe("a\n"); // nothing placed, nothing removed
      expect(exists(dir, "out/.git")).toBe(false);
    }
  });
});
