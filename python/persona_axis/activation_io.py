"""The judge's scores (reading, and a writer for tests and tools) and the analysis outputs' files.

Judge directory: ``<dir>/<role>.jsonl`` with one line per response ``{"system_prompt_idx",
"question_idx", "rollout_idx", "score": 0|1|2|3|null, ...}`` (``null``: the judge's answer could not be
parsed; it never passes a filter). The capture stage's activations: see :mod:`persona_axis.capture_format`.

Every problem raises :class:`InputError` naming the file (and line or key) and how to fix it.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from .errors import InputError
from .jsonl import read_json_lines

VALID_SCORES = (0, 1, 2, 3)

Key = tuple[int, int, int]


def load_scores(scores_dir: str | os.PathLike, role: str) -> dict[Key, int | None]:
    """The judge's score of every response of ``role``: key -> 0..3, or None when unparseable.
    A key on several lines (a resumed judge appends) takes its last score; null never replaces a score."""
    path = Path(scores_dir) / f"{role}.jsonl"
    if not path.exists():
        raise InputError(f"{path}: judge scores not found for role {role!r} (run the judge stage, or leave out "
                         "--scores-dir to analyse without a filter)")
    scores: dict[Key, int | None] = {}
    lines = read_json_lines(
        path, unreadable=lambda e: InputError(f"{path}: cannot read judge scores: {e.strerror}"),
        invalid=lambda lineno, e: InputError(f"{path}:{lineno}: invalid JSON ({getattr(e, 'msg', e)}); fix or delete "
                                             "the line and re-run judge"))
    for lineno, rec in lines:
        if not isinstance(rec, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object")
        try:
            key = (int(rec["system_prompt_idx"]), int(rec["question_idx"]), int(rec["rollout_idx"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}:{lineno}: missing or non-integer key {e}") from None
        if "score" not in rec:
            raise InputError(f"{path}:{lineno}: missing key 'score' (use null for an unparseable judgement)")
        score = rec["score"]
        if score is not None and (isinstance(score, bool) or score not in VALID_SCORES):
            raise InputError(f"{path}:{lineno}: score must be 0, 1, 2, 3 or null, got {score!r}")
        if key in scores and scores[key] is not None and score is None:
            continue  # like the judge's own reading: a later failed retry never replaces a score
        scores[key] = None if score is None else int(score)
    return scores


# --- analysis outputs: deterministic bytes (fixed float format, sorted keys, no timestamps) -------

FLOAT_FORMAT = ".10g"


def clean_number(x: object) -> object:
    """Floats rounded to 10 significant digits (NaN/inf -> None); containers recursively."""
    if isinstance(x, (bool, type(None), str, int)) and not isinstance(x, np.integer):
        return x
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return float(format(v, FLOAT_FORMAT)) if np.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, dict):
        return {str(k): clean_number(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [clean_number(v) for v in x]
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def write_json(path: str | os.PathLike, obj: object) -> None:
    Path(path).write_text(json.dumps(clean_number(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def format_cell(x: object) -> str:
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (float, np.floating)):
        return format(float(x), FLOAT_FORMAT) if np.isfinite(float(x)) else ""
    return str(x)


def write_csv(path: str | os.PathLike, header: list[str], rows: Iterable[Mapping[str, object]]) -> None:
    """CSV (the csv module: quoted only where a cell needs it), cells formatted by ``format_cell``."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows([format_cell(row.get(h)) for h in header] for row in rows)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def save_layer_tensors(path: str | os.PathLike, by_layer: Mapping[int, np.ndarray], dtype=torch.float32) -> None:
    torch.save({int(k): torch.as_tensor(np.ascontiguousarray(v)).to(dtype) for k, v in sorted(by_layer.items())}, path)


def load_layer_tensors(path: str | os.PathLike) -> dict[int, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found (run persona_space first)")
    data = torch.load(path, map_location="cpu", weights_only=True)
    return {int(k): v.double().numpy() for k, v in data.items()}
