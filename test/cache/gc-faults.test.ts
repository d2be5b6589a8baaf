/**
 * Issue 28, items 4 and 6: `gc` under a shared cache and in a git subfolder. gc of one profile
 * must not delete what another profile's running repro stores (a cache-wide lock: gc takes it
 * exclusively, every writer shared); `gc --rev` of a project in a subfolder of its git repository
 * reads that project's lock at the revision, not the repository root's.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { makeProject } from "../runner/helpers.ts";
import { cli, commitAll, filesUnder, git, read } from "./helpers.ts";

const PIPELINE = `stages:
  make:
    cmd: echo "\${x}" > a.txt
    params: [x]
    outs: [a.txt]
`;

describe("gc", () => {
  it("gc --rev in a project inside a git subfolder keeps the objects of that project's lock at the revision", async () => {
    // the repository root holds another project with its own (empty) pipeline.lock
    const repo = makeProject({
      "pipeline.yaml": "stages: {}\n",
      "pipeline.lock": "schema: '2.0'\nstages: {}\n",
      "sub/pipeline.yaml": PIPELINE,
      "sub/params.yaml": "x: a\n",
      ".gitignore": "a.txt\n.pipeline/\n",
    });
    const dir = path.join(repo, "sub");
    git(repo, "init", "-q");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(repo, "x=a");
    fs.writeFileSync(path.join(dir, "params.yaml"), "x: b\n");
    expect((await cli(dir, ["repro"])).code).toBe(0);
    commitAll(repo, "x=b");
    const files = path.join(dir, ".pipeline/cache/files");
    expect(filesUnder(files)).toHaveLength(2);

    const gc = await cli(dir, ["gc", "--rev", "HEAD~1"]);
    expect(gc.code, gc.out).toBe(0);
    expect(gc.stdout).toContain("removed 0 objects");
    expect(gc.stdout).toContain("HEAD~1:pipeline.lock");
    expect(filesUnder(files)).toHaveLength(2);
    // the old version checks out from the cache
    git(repo, "checkout", "-q", "HEAD~1");
    const co = await cli(dir, ["checkout"]);
    expect(co.code, co.out).toBe(0);
    expect(read(dir, "a.txt")).toBe("a\n");

    // --all-commits from the subfolder too (the first commit's tree may lack the subfolder)
    git(repo, "checkout", "-q", "-");
    const all = await cli(dir, ["gc", "--all-commits"]);
    expect(all.code, all.out).toBe(0);
    expect(all.stdout).toContain("removed 0 objects");
  });
});
