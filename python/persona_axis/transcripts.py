"""Transcript files: one ``<role>.jsonl`` per role, one JSON object per line.

A line holds at least ``role, system_prompt_idx, question_idx, rollout_idx, question_id,
system_prompt, question, response, finish_reason, num_tokens, seed``: everything needed to rebuild
the exact conversation. Lines are appended and flushed as responses finish, so a kill loses at most
the responses in flight; a torn last line (a crash mid-write) is dropped on read/repair.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from .atomic import atomic_write
from .jsonl import read_json_lines

Key = tuple[int, int, int]

REQUIRED_KEYS = ("system_prompt_idx", "question_idx", "rollout_idx", "response")


def record_key(rec: dict) -> Key:
    return (int(rec["system_prompt_idx"]), int(rec["question_idx"]), int(rec["rollout_idx"]))


def read_records(
    path: str | os.PathLike,
    *,
    repair: bool = False,
    required: tuple[str, ...] = REQUIRED_KEYS,
    what: str = "transcript",
    error: type[Exception] = ValueError,
) -> list[dict]:
    """Complete records of a JSONL file (transcripts, or judge scores with their own ``required`` keys).
    A torn or unparseable LAST line is dropped (and, with ``repair``, truncated away on disk). A bad
    line elsewhere raises ``error`` naming file:line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict] = []
    good_end = 0
    pos = 0
    lineno = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        lineno += 1
        if nl == -1:  # no newline: torn last line
            break
        line = data[pos:nl]
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or any(k not in rec for k in required):
                    raise ValueError("missing keys")
            except ValueError as e:
                if data[nl + 1 :].strip():
                    raise error(f"{path}:{lineno}: corrupt {what} line ({e}); delete the line or the file") from None
                break  # corrupt final line: treat as torn
            records.append(rec)
        pos = nl + 1
        good_end = pos
    if repair and good_end != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
    return records


def read_finished_records(
    path: str | os.PathLike,
    *,
    required: tuple[str, ...] = REQUIRED_KEYS,
    what: str = "transcript",
    error: type[Exception] = ValueError,
) -> list[dict]:
    """Every record of a finished JSONL file, strictly: each non-blank line must be a JSON object with
    the ``required`` keys, the last one included (it may lack its final newline). A bad line raises
    ``error`` naming file:line. For readers of finished files (capture); tolerance of a torn last line
    belongs to the writer that resumes (``read_records``)."""
    records: list[dict] = []
    lines = read_json_lines(
        path, unreadable=lambda e: error(f"{path}: cannot read {what} file: {e.strerror}"),
        invalid=lambda lineno, e: error(f"{path}:{lineno}: corrupt {what} line ({e}); regenerate it (rerun generate) "
                                        "or delete the line"))
    for lineno, rec in lines:
        if not isinstance(rec, dict) or any(k not in rec for k in required):
            missing = [k for k in required if not isinstance(rec, dict) or k not in rec]
            raise error(f"{path}:{lineno}: {what} line lacks {', '.join(missing)}; regenerate it (rerun generate)")
        records.append(rec)
    return records


def dumps_record(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False, sort_keys=True)


class RecordAppender:
    """Append records to a JSONL file, each line written whole and flushed."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")
        self._fsync = fsync

    def write(self, recs: Iterable[dict]) -> None:
        buf = "".join(dumps_record(r) + "\n" for r in recs)
        if not buf:
            return
        self._f.write(buf)
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "RecordAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_records_sorted(path: str | os.PathLike, records: dict) -> None:
    """Rewrite a JSONL file with ``records`` (key -> record) in key order, atomically (temp + replace)."""
    atomic_write(path, "".join(dumps_record(records[k]) + "\n" for k in sorted(records)))


def iter_role_files(transcript_dir: str | os.PathLike) -> Iterator[tuple[str, Path]]:
    for p in sorted(Path(transcript_dir).glob("*.jsonl")):
        yield p.stem, p
