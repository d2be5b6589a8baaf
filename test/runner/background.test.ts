/**
 * Issue 14, fault 7: background children of a successful stage are stopped when its command
 * exits (they could write into outs after they were hashed), with a warning naming the stage.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { inproc, makeProject, read } from "./helpers.ts";

describe("fault 7: background children of a successful stage", () => {
  it("are stopped and reported; nothing writes into the out after it was recorded", async () => {
    const dir = makeProject({
      "params.yaml": "{}\n",
      "pipeline.yaml": `stages:
  bg:
    cmd: (sleep 1.5; echo late >> o.txt; touch late.flag) > /dev/null 2>&1 & echo ok > o.txt
    outs: [o.txt]
`,
    });
    const r = await inproc(dir, ["repro"], { PIPELINE_KILL_GRACE_MS: "500" });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/bg: warning: the command exited but left \d+ background process(es)? running \(pid [\d, ]+\); stopping them/);
    await new Promise((res) => setTimeout(res, 2500));
    expect(fs.existsSync(path.join(dir, "late.flag"))).toBe(false);
    expect(read(dir, "o.txt")).toBe("ok\n");
    expect((await inproc(dir, ["status"])).code).toBe(0); // what was recorded is still what is there
  });
});
