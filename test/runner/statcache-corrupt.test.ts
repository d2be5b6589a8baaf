/**
 * Issue 14, fault 4: a corrupt stat cache entry (right stat values, a bad hash) is a miss, never
 * copied into pipeline.lock.
 */
import { describe, expect, it } from "vitest";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { inproc, makeProject, read } from "./helpers.ts";

describe("fault 4: corrupt stat cache entries", () => {
  for (const bad of ["not a hash: {broken", "Z".repeat(64), 42]) {
    it(`an entry whose hash is ${JSON.stringify(bad).slice(0, 20)} is re-hashed; the lock stays valid`, async () => {
      const dir = makeProject({
        "params.yaml": "{}\n",
        "src.txt": "hello\n",
        "pipeline.yaml": "stages:\n  copy:\n    cmd: cat src.txt > o.txt\n    deps: [src.txt]\n    outs: [o.txt]\n",
      });
      const st = fs.statSync(path.join(dir, "src.txt"), { bigint: true });
      fs.mkdirSync(path.join(dir, ".pipeline"), { recursive: true });
      const entry = [String(st.size), String(st.ino), String(st.mtimeNs), String(st.ctimeNs), bad];
      fs.writeFileSync(
        path.join(dir, ".pipeline/statcache.json"),
        JSON.stringify({ version: 1, algorithm: "sha256", fields: ["size", "ino", "mtimeNs", "ctimeNs", "hash"], entries: { "src.txt": entry } }),
      );
      const r = await inproc(dir, ["repro"]);
      expect(r.code, r.out).toBe(0);
      const real = crypto.createHash("sha256").update("hello\n").digest("hex");
      expect(read(dir, "pipeline.lock")).toContain(`hash: ${real}`);
      const st2 = await inproc(dir, ["status"]);
      expect(st2.code, st2.out).toBe(0); // the lock parses
    });
  }
});
