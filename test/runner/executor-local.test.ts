import { afterAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LocalExecutor } from "../../engine/executor-local.ts";
import { LineSplitter, LogWriter, Terminal, safeName, tailLines } from "../../engine/output.ts";
import type { JobSpec, Stage } from "../../engine/types.ts";

const made: string[] = [];
afterAll(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "exec-local-"));
  made.push(d);
  return d;
}

function job(dir: string, cmd: string[], env: Record<string, string> = {}): JobSpec {
  const stage: Stage = { name: "s@x", group: "s", cmd, deps: [], outs: [], params: {}, env: {}, resources: { gpus: 0 } };
  return { stage, cwd: dir, env: { ...(process.env as Record<string, string>), ...env }, gpus: [], logFile: path.join(dir, "s.log"), identity: "id" };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Alive and not a zombie (an exited process its parent has not reaped yet). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

describe("LineSplitter", () => {
  it("splits lines, CRLF, and turns '\\r' redraws into progress states", () => {
    const sp = new LineSplitter();
    const evs = [
      ...sp.push("hello\nwor"),
      ...sp.push("ld\r\n"),
      ...sp.push("\r 10%|#"),
      ...sp.push("  |\r 50%|##   |"),
      ...sp.push("\r100%|#####|\n"),
      ...sp.push("tail"),
      ...sp.flush(),
    ];
    expect(evs).toEqual([
      { text: "hello", progress: false },
      { text: "world", progress: false },
      { text: " 10%|#", progress: true },
      { text: " 10%|#  |", progress: true },
      { text: " 50%|##   |", progress: true },
      { text: "100%|#####|", progress: false },
      { text: "tail", progress: false },
    ]);
  });
});

describe("LogWriter and Terminal", () => {
  it("throttles progress states in the log but keeps the last one", () => {
    const dir = tmp();
    const w = new LogWriter(path.join(dir, "l.log"), 1000);
    w.line("start");
    for (let i = 0; i <= 100; i++) w.progress(`${i}%`, 5000 + i * 10); // 1 s of updates every 10 ms
    w.close();
    expect(fs.readFileSync(path.join(dir, "l.log"), "utf8")).toBe("start\n0%\n100%\n");
  });

  it("prefixes stage lines and rate-limits progress when not a TTY", () => {
    let out = "";
    const write = (s: string) => {
      out += s;
      return true;
    };
    const t = new Terminal({ stream: { write, isTTY: false }, progressIntervalMs: 1000 });
    t.stageOutput("capture@base", "loading");
    t.progress("capture@base", "1%", 0);
    t.progress("capture@base", "2%", 500);
    t.progress("capture@base", "3%", 1000);
    t.info("done");
    expect(out).toBe("[capture@base] loading\n[capture@base] 1%\n[capture@base] 3%\ndone\n");
  });

  it("on a TTY keeps one status line and clears it before normal lines", () => {
    let out = "";
    const write = (s: string) => {
      out += s;
      return true;
    };
    const t = new Terminal({ stream: { write, isTTY: true, columns: 80 } });
    t.progress("a", "50%");
    t.stageOutput("a", "line");
    t.close();
    expect(out).toBe("[a] 50%\r\x1b[K[a] line\n");
  });

  it("makes stage names file-safe and tails files", () => {
    expect(safeName("capture@base")).toBe("capture@base");
    expect(safeName("a/b c")).toMatch(/^a_b_c-[0-9a-f]{8}$/);
    expect(safeName("a/b c")).not.toBe(safeName("a_b c"));
    const dir = tmp();
    fs.writeFileSync(path.join(dir, "f"), Array.from({ length: 50 }, (_, i) => `l${i}`).join("\n") + "\n");
    expect(tailLines(path.join(dir, "f"), 3)).toEqual(["l47", "l48", "l49"]);
  });
});

describe("LocalExecutor (real processes)", () => {
  it("runs cmds in order in the project dir with the env, streams stdout+stderr to the log", async () => {
    const dir = tmp();
    const lines: string[] = [];
    const r = await new LocalExecutor().run(job(dir, ["echo one; echo err >&2", "pwd; echo $FOO"], { FOO: "bar" }), {
      onOutput: (l) => lines.push(l),
      signal: new AbortController().signal,
    });
    expect(r.exitCode).toBe(0);
    expect(lines).toEqual(["one", "err", fs.realpathSync(dir), "bar"]);
    const log = fs.readFileSync(path.join(dir, "s.log"), "utf8");
    expect(log).toContain("$ echo one; echo err >&2\none\nerr\n");
  });

  it("stops at the first failing cmd and explains the exit code", async () => {
    const dir = tmp();
    const r = await new LocalExecutor().run(job(dir, ["exit 137", "touch never"]), { onOutput: () => {}, signal: new AbortController().signal });
    expect(r.exitCode).toBe(137);
    expect(r.message).toMatch(/exit code 137: killed \(SIGKILL\), often out of memory/);
    expect(fs.existsSync(path.join(dir, "never"))).toBe(false);
  });

  it("passes tqdm-style progress through as '\\r'-marked states", async () => {
    const dir = tmp();
    const lines: string[] = [];
    const script = `for i in 1 2 3; do printf '\\r%d%%|' $((i*33)) >&2; sleep 0.05; done; printf '\\r100%%|\\n' >&2`;
    const r = await new LocalExecutor().run(job(dir, [script]), { onOutput: (l) => lines.push(l), signal: new AbortController().signal });
    expect(r.exitCode).toBe(0);
    expect(lines.filter((l) => l.endsWith("\r")).length).toBeGreaterThanOrEqual(2);
    expect(lines[lines.length - 1]).toBe("100%|");
    // the log holds no '\r' and only a few progress lines
    const log = fs.readFileSync(path.join(dir, "s.log"), "utf8");
    expect(log).not.toContain("\r");
    expect(log.trim().split("\n").length).toBeLessThanOrEqual(4);
  });

  it("abort kills the whole process group (including grandchildren)", async () => {
    const dir = tmp();
    const ac = new AbortController();
    const p = new LocalExecutor().run(job(dir, ["sleep 30 & echo $! > child.pid; wait"]), { onOutput: () => {}, signal: ac.signal });
    const pidFile = path.join(dir, "child.pid");
    for (let i = 0; i < 100 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    const grandchild = Number(fs.readFileSync(pidFile, "utf8"));
    expect(alive(grandchild)).toBe(true);
    ac.abort();
    const r = await p;
    expect(r.exitCode === 0).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(running(grandchild)).toBe(false);
  });

  it("measures peak memory of the group from /proc", async () => {
    const dir = tmp();
    const r = await new LocalExecutor().run(job(dir, [`node -e "const b=Buffer.alloc(80*1024*1024,1); setTimeout(()=>console.log(b[5]),800)"`]), {
      onOutput: () => {},
      signal: new AbortController().signal,
    });
    expect(r.exitCode).toBe(0);
    expect(r.peakRssKb).toBeGreaterThan(80 * 1024);
  });
});
