"""``--gpus N`` workers with real processes on CPU and the tiny local OLMo-2: a worker killed mid-run
fails the run cleanly (exit 1, a message naming the worker, its lines kept), and the next run
generates only the missing responses and ends byte-identical to an uninterrupted one-worker run."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT
from persona_axis import generate
from persona_axis.transcripts import read_records
from test_generate import SCRIPT, gen_args, read_dir, role_data  # noqa: F401  (role_data: a fixture)

ARGS = ("--num-rollouts", "4", "--seed", "11", "--model-display-name", "TinyOLMo")
TOTAL = 3 * 2 * 3 * 4  # roles x system prompts x questions x rollouts


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


def worker_pid(parent: int, index: int, n: int) -> int | None:
    for pid in children(parent):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if f"{index}/{n}".encode() in argv and b"--worker" in argv:
            return pid
    return None


def lines_in(d: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in d.glob("*.jsonl")) if d.is_dir() else 0


def test_a_killed_worker_fails_the_run_and_the_resume_redoes_only_what_is_missing(tiny_olmo2, role_data, tmp_path):
    clean = tmp_path / "one-worker"
    assert generate.main(gen_args(tiny_olmo2, role_data, clean, *ARGS)) == 0
    assert sum(len(read_records(p)) for p in clean.glob("*.jsonl")) == TOTAL

    out = tmp_path / "two-workers"
    cmd = [sys.executable, "-m", SCRIPT, *gen_args(tiny_olmo2, role_data, out, *ARGS, "--gpus", "2")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 300
    try:
        # Kill worker 1 (SIGKILL, as a crash or an OOM kill) once it has written a line of its own.
        while time.monotonic() < deadline and proc.poll() is None:
            if lines_in(out / ".parts" / "w1") >= 1:
                victim = worker_pid(proc.pid, 1, 2)
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
                    break
            time.sleep(0.005)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert victim is not None, f"worker 1 finished before it could be killed:\n{err[-2000:]}"
    assert proc.returncode == 1, err[-2000:]
    assert re.search(rf"error: worker 1 \(pid {victim}\) exited with -9; the lines written so far are kept in .*"
                     "run again to generate only the missing responses", err), err[-2000:]
    assert not (out / ".parts").exists()  # the parts were merged into the role files
    kept = sum(len(read_records(p)) for p in out.glob("*.jsonl"))
    assert 1 <= kept < TOTAL, kept
    # Every kept line is the one-worker run's line for that request.
    want_lines = {line for p in clean.glob("*.jsonl") for line in p.read_text().splitlines()}
    assert {line for p in out.glob("*.jsonl") for line in p.read_text().splitlines()} <= want_lines

    resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"({TOTAL} requests, {TOTAL - kept} to generate, backend hf, 2 workers)" in resumed.stderr
    assert read_dir(out) == read_dir(clean)  # byte-identical, run.json included
