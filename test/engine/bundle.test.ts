/** The bundled CLI (dist/run.mjs, built by scripts/build-cli.sh) behaves as `tsx run.ts`: repro, no-op, status. */
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { tmpProject } from "./helpers.ts";

const repo = path.resolve(import.meta.dirname, "../..");
let p: ReturnType<typeof tmpProject>;

beforeAll(async () => {
  await execa("bash", [path.join(repo, "scripts/build-cli.sh")], { cwd: repo });
  p = tmpProject({
    "params.yaml": "n: 3\n",
    "src/in.txt": "hello\n",
    "pipeline.yaml": "stages:\n  copy:\n    cmd: mkdir -p out && (cat src/in.txt; echo ${n}) > out/x.txt\n    deps: [src/in.txt]\n    outs: [out/x.txt]\n",
  });
});
afterAll(() => p.cleanup());

const cli = (...args: string[]) => execa("node", [path.join(repo, "dist/run.mjs"), "-C", p.root, ...args], { reject: false });

it("runs, records the lock (hashing in hasha's worker beside the bundle), then is current", async () => {
  expect((await cli("status")).exitCode).toBe(1);
  const r = await cli("repro");
  expect(r.exitCode, r.stderr + r.stdout).toBe(0);
  expect(fs.readFileSync(path.join(p.root, "out/x.txt"), "utf8")).toBe("hello\n3\n");
  expect(fs.readFileSync(path.join(p.root, "pipeline.lock"), "utf8")).toContain("n: 3");
  const s = await cli("status");
  expect(s.exitCode).toBe(0);
  expect(s.stdout).toContain("current");
  p.write("params.yaml", "n: 4\n");
  const s2 = await cli("status");
  expect(s2.exitCode).toBe(1);
  expect(s2.stdout).toContain("params: n 3 -> 4");
});
