/**
 * LogTail: following a log file another process appends to (SLURM writes the job's output on
 * the compute node; the runner tails it on the login node).
 */
import { afterEach, expect, it } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LogTail } from "../../engine/slurm/log-tail.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmpFile(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "logtail-"));
  dirs.push(d);
  return path.join(d, "job.log");
}

it("hands over appended lines, progress states with a trailing \\r, and the last partial line on flush", async () => {
  const file = tmpFile();
  const got: string[] = [];
  const tail = new LogTail(file, 0, (l) => got.push(l));
  await tail.poll(); // file not there yet (job pending): nothing, no error
  expect(got).toEqual([]);
  fs.writeFileSync(file, "first\nsec");
  await tail.poll();
  expect(got).toEqual(["first"]);
  fs.appendFileSync(file, "ond\n 10%|#  |\r 50%|## |\r");
  await tail.poll();
  expect(got).toEqual(["first", "second", " 10%|#  |\r", " 50%|## |\r"]);
  fs.appendFileSync(file, "100%|###|\nunterminated é");
  await tail.flush();
  expect(got.slice(4)).toEqual(["100%|###|", "unterminated é"]);
  // the failure message gets the last normal lines, not progress states
  expect(tail.lastLines()).toEqual(["first", "second", "100%|###|", "unterminated é"]);
});

it("starts at the given offset (attach: earlier output was already shown) and survives a truncation", async () => {
  const file = tmpFile();
  fs.writeFileSync(file, "old 1\nold 2\n");
  const got: string[] = [];
  const tail = new LogTail(file, fs.statSync(file).size, (l) => got.push(l));
  fs.appendFileSync(file, "new\n");
  await tail.poll();
  expect(got).toEqual(["new"]);
  fs.writeFileSync(file, "again\n");
  await tail.poll();
  expect(got).toEqual(["new", "again"]);
});

it("splits a multi-byte character across reads correctly", async () => {
  const file = tmpFile();
  const got: string[] = [];
  const tail = new LogTail(file, 0, (l) => got.push(l));
  const bytes = Buffer.from("naïve ✓\n");
  fs.writeFileSync(file, bytes.subarray(0, 4)); // cuts "ï" in half
  await tail.poll();
  fs.appendFileSync(file, bytes.subarray(4));
  await tail.flush();
  expect(got).toEqual(["naïve ✓"]);
});
