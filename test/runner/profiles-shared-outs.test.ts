/**
 * Issue 14, fault 2: two profiles (each with its own mutex) over a shared out. The second repro
 * refuses naming the holder and the out, or with --wait runs after it; neither records the
 * other's output.
 */
import { describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { exists, makeProject, read, startCli, waitFor } from "./helpers.ts";

const PROJECT = {
  "params.yaml": "tag: default\n",
  "params/a.yaml": "tag: a\n",
  "params/b.yaml": "tag: b\n",
  "pipeline.yaml": `stages:
  write:
    cmd: echo \${tag} > shared.txt && touch started-\${tag}.flag && while [ -e hold ]; do sleep 0.05; done
    outs: [shared.txt]
`,
};

describe("fault 2: outs shared between profiles", () => {
  it("a second profile refuses while the first writes the shared out; with --wait it runs after it", async () => {
    const dir = makeProject(PROJECT);
    fs.writeFileSync(path.join(dir, "hold"), "");
    const a = startCli(dir, ["-P", "params/a.yaml", "repro"]);
    await waitFor(() => exists(dir, "started-a.flag"), "profile a's stage to start");

    const b = await startCli(dir, ["-P", "params/b.yaml", "repro"]).done;
    expect(b.code, b.out).toBe(1);
    expect(b.stderr).toMatch(new RegExp(`the repro of profile a \\(pid ${a.child.pid} on .*\\) is writing shared\\.txt, an out of this profile too; .*--wait`));
    expect(exists(dir, "started-b.flag")).toBe(false);

    const bw = startCli(dir, ["-P", "params/b.yaml", "repro", "--wait"]);
    await new Promise((r) => setTimeout(r, 2500));
    expect(exists(dir, "started-b.flag")).toBe(false); // still waiting
    fs.rmSync(path.join(dir, "hold"));
    expect((await a.done).code).toBe(0);
    const rb = await bw.done;
    expect(rb.code, rb.out).toBe(0);
    expect(rb.out).toMatch(/waiting: the repro of profile a/);
    expect(read(dir, "shared.txt")).toBe("b\n");
    // a's lock records a's output; a's status now says it changed (b wrote it), never "current"
    const sa = await startCli(dir, ["-P", "params/a.yaml", "status"]).done;
    expect(sa.code, sa.out).toBe(1);
    expect(sa.out).toMatch(/shared\.txt modified/);
  });
});
