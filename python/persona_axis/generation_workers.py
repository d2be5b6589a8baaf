"""``--gpus N``: N data-parallel workers of generate.py, one per GPU, for the hf backend.

The parent deals the run's static request groups round-robin (group g to worker g mod N; see
``generate.hf_groups``). Each worker is this same program with ``--worker i/N`` and
``CUDA_VISIBLE_DEVICES`` set to one GPU; it reads what is done from the role files and appends its
lines to its own part files (``<out>/.parts/w<i>/<role>.jsonl``). The parent follows the part files
for progress, and when the workers end - all well, or one failed (the others are then stopped) -
merges every complete part line into the role files. A failed run exits 1; the next run starts by
merging any parts left behind, so it redoes only the responses that are missing. Since a response
depends only on its own group and the fixed batch shapes, the files equal a one-worker run's.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .transcripts import read_records, record_key, write_records_sorted

PARTS = ".parts"
#: where this persona_axis lives: each worker imports the same code as the run that starts it
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class WorkerFailed(RuntimeError):
    """A worker of a --gpus run ended badly (its lines so far are kept)."""


def parse_worker(spec: str | None) -> tuple[int, int] | None:
    if not spec:
        return None
    i, n = (int(x) for x in spec.split("/"))
    if not 0 <= i < n:
        raise SystemExit(f"--worker {spec}: expected i/N with 0 <= i < N")
    return i, n


def part_dir(out_dir: Path, index: int) -> Path:
    return out_dir / PARTS / f"w{index}"


def merge_parts(out_dir: Path, by_role: dict[str, list]) -> int:
    """Fold every complete line of the part files into the role files (key order); remove the parts.
    Returns the number of lines taken from parts."""
    parts_root = out_dir / PARTS
    if not parts_root.is_dir():
        return 0
    taken = 0
    for role in sorted(by_role):
        parts = sorted(parts_root.glob(f"w*/{role}.jsonl"))
        if not parts:
            continue
        main = out_dir / f"{role}.jsonl"
        records: dict[tuple, dict] = {}
        for rec in read_records(main, repair=True) if main.exists() else []:
            records.setdefault(record_key(rec), rec)
        for p in parts:
            for rec in read_records(p, repair=True):
                if record_key(rec) not in records:
                    records[record_key(rec)] = rec
                    taken += 1
        write_records_sorted(main, records)
    shutil.rmtree(parts_root)
    return taken


def _gpu_for(index: int) -> str | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [x for x in visible.split(",") if x.strip()]
        return ids[index % len(ids)]
    try:
        import torch

        if torch.cuda.device_count() > index:
            return str(index)
    except Exception:
        pass
    return None


class _PartFollower:
    """Reads the complete lines appended to the part files since the last look (for progress)."""

    def __init__(self, root: Path):
        self.root = root
        self.offsets: dict[Path, int] = {}

    def poll(self, progress) -> None:
        for p in sorted(self.root.glob("w*/*.jsonl")):
            off = self.offsets.get(p, 0)
            with open(p, "rb") as f:
                f.seek(off)
                data = f.read()
            end = data.rfind(b"\n") + 1
            if not end:
                continue
            self.offsets[p] = off + end
            per_role: dict[str, list[int]] = {}
            for line in data[:end].splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                per_role.setdefault(rec["role"], []).append(int(rec.get("num_tokens", 0)))
            for role, toks in per_role.items():
                progress.update(role, len(toks), sum(toks))


def run_workers(a, out_dir: Path, progress) -> None:  # a: generate.GenerateSettings
    n = a.gpus
    argv = [x for x in a.argv]
    procs = []
    for i in range(n):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        gpu = _gpu_for(i)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        part_dir(out_dir, i).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "persona_axis.generate", *argv, "--output-dir", str(out_dir), "--worker", f"{i}/{n}", "--no-progress"]
        procs.append(subprocess.Popen(cmd, env=env))
    follower = _PartFollower(out_dir / PARTS)
    failed: list[str] = []
    try:
        while True:
            follower.poll(progress)
            codes = [p.poll() for p in procs]
            bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed = [f"worker {i} (pid {procs[i].pid}) exited with {c}" for i, c in bad]
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.5)
    finally:
        for p in procs:  # stop the others (their flushed lines are kept)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        follower.poll(progress)
        by_role = {p.stem: [] for p in (out_dir / PARTS).glob("w*/*.jsonl")}
        merge_parts(out_dir, by_role)
    if failed:
        raise WorkerFailed("; ".join(failed) + f"; the lines written so far are kept in {out_dir}: run again to "
                           "generate only the missing responses")
