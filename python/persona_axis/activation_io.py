"""Reading (and, for tests and tools, writing) the capture stage's activations and the judge's scores.

Capture directory of one checkpoint::

    <dir>/<role>_activations.pt   {layer (int): float32 tensor (num_samples, hidden_dim)}
    <dir>/<role>_metadata.json    {"role", "model", "checkpoint", "layers": [...], "aggregation",
                                   "dtype", "samples": [{"system_prompt_idx", "question_idx",
                                   "rollout_idx"}, ...] (row order), "num_tokens": ...}

The default (no system prompt) role is ``default``. Judge directory: ``<dir>/<role>.jsonl`` with one
line per response ``{"system_prompt_idx", "question_idx", "rollout_idx", "score": 0|1|2|3|null, ...}``
(``null``: the judge's answer could not be parsed; it never passes a filter).

Every problem raises :class:`InputError` naming the file (and line or key) and how to fix it.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

DEFAULT_ROLE = "default"
ACTIVATIONS_SUFFIX = "_activations.pt"
METADATA_SUFFIX = "_metadata.json"
#: Aggregations the analysis can use: one vector per response.
SUPPORTED_AGGREGATIONS = ("mean", "last")
VALID_SCORES = (0, 1, 2, 3)

Key = tuple[int, int, int]


class InputError(ValueError):
    """Bad or inconsistent input files; the message names the file and the fix."""


@dataclass(frozen=True)
class RoleMetadata:
    role: str
    path: Path
    model: str
    checkpoint: str
    layers: list[int]
    aggregation: str
    dtype: str
    samples: list[Key]
    raw: dict


@dataclass(frozen=True)
class RoleCapture:
    metadata: RoleMetadata
    path: Path
    #: layer -> float32 tensor (num_samples, hidden_dim), rows in metadata.samples order.
    activations: dict[int, torch.Tensor]

    @property
    def hidden_dim(self) -> int:
        return int(next(iter(self.activations.values())).shape[1])


def activations_path(directory: str | os.PathLike, role: str) -> Path:
    return Path(directory) / f"{role}{ACTIVATIONS_SUFFIX}"


def metadata_path(directory: str | os.PathLike, role: str) -> Path:
    return Path(directory) / f"{role}{METADATA_SUFFIX}"


def list_roles(directory: str | os.PathLike) -> list[str]:
    """Names of the non-default roles captured in ``directory``, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: activations directory not found (run the capture stage first)")
    roles = sorted(p.name[: -len(ACTIVATIONS_SUFFIX)] for p in directory.glob(f"*{ACTIVATIONS_SUFFIX}"))
    for role in roles:
        if not metadata_path(directory, role).exists():
            raise InputError(f"{metadata_path(directory, role)}: missing metadata for {activations_path(directory, role).name} "
                             "(the capture of this role did not finish; re-run capture)")
    return [r for r in roles if r != DEFAULT_ROLE]


def _sample_key(sample: object, path: Path, i: int) -> Key:
    if not isinstance(sample, dict):
        raise InputError(f"{path}: samples[{i}] must be an object with system_prompt_idx, question_idx, rollout_idx")
    try:
        return (int(sample["system_prompt_idx"]), int(sample["question_idx"]), int(sample["rollout_idx"]))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: samples[{i}] lacks an integer {e} (need system_prompt_idx, question_idx, rollout_idx)") from None


def load_metadata(directory: str | os.PathLike, role: str) -> RoleMetadata:
    path = metadata_path(directory, role)
    if not path.exists():
        raise InputError(f"{path}: metadata file not found (capture role {role!r} first, or drop it from --roles)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object")
    for key in ("layers", "aggregation", "samples"):
        if key not in raw:
            raise InputError(f"{path}: missing key {key!r}")
    aggregation = str(raw["aggregation"])
    if aggregation not in SUPPORTED_AGGREGATIONS:
        raise InputError(
            f"{path}: aggregation {aggregation!r} is not supported by the analysis (it needs one vector per response); "
            f"re-run capture with aggregation one of {', '.join(SUPPORTED_AGGREGATIONS)}")
    if not isinstance(raw["layers"], list) or not raw["layers"]:
        raise InputError(f"{path}: 'layers' must be a non-empty list of layer indices")
    try:
        layers = [int(x) for x in raw["layers"]]
    except (TypeError, ValueError):
        raise InputError(f"{path}: 'layers' must hold integers, got {raw['layers']!r}") from None
    if not isinstance(raw["samples"], list):
        raise InputError(f"{path}: 'samples' must be a list")
    samples = [_sample_key(s, path, i) for i, s in enumerate(raw["samples"])]
    if len(set(samples)) != len(samples):
        raise InputError(f"{path}: 'samples' holds duplicate (system_prompt_idx, question_idx, rollout_idx) keys")
    return RoleMetadata(
        role=str(raw.get("role", role)), path=path, model=str(raw.get("model", "")),
        checkpoint=str(raw.get("checkpoint", "")), layers=layers, aggregation=aggregation,
        dtype=str(raw.get("dtype", "")), samples=samples, raw=raw)


def load_role(directory: str | os.PathLike, role: str, layers: Iterable[int] | None = None) -> RoleCapture:
    """Activations + metadata of one role, checked against each other. ``layers``: keep only these."""
    meta = load_metadata(directory, role)
    path = activations_path(directory, role)
    if not path.exists():
        raise InputError(f"{path}: activations file not found (capture role {role!r} first)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any load failure is a bad file
        raise InputError(f"{path}: cannot load ({type(e).__name__}: {e}); re-run capture for role {role!r}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a dict {{layer: tensor}}, got {type(data).__name__}")
    wanted = list(meta.layers) if layers is None else [int(x) for x in layers]
    acts: dict[int, torch.Tensor] = {}
    keys = {int(k): k for k in data}
    hidden = None
    for layer in wanted:
        if layer not in keys:
            raise InputError(f"{path}: layer {layer} missing (file has layers {sorted(keys)}, metadata says {meta.layers})")
        t = data[keys[layer]]
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            raise InputError(f"{path}: layer {layer} must be a 2-D tensor (num_samples, hidden_dim); "
                             f"got {getattr(t, 'shape', type(t).__name__)} (aggregation 'none' is not supported)")
        if t.shape[0] != len(meta.samples):
            raise InputError(f"{path}: layer {layer} has {t.shape[0]} rows but {meta.path.name} lists "
                             f"{len(meta.samples)} samples; re-run capture for role {role!r}")
        if hidden is not None and t.shape[1] != hidden:
            raise InputError(f"{path}: layer {layer} has hidden size {t.shape[1]}, other layers {hidden}")
        hidden = int(t.shape[1])
        acts[layer] = t
    if not acts:
        raise InputError(f"{path}: no layers selected")
    return RoleCapture(metadata=meta, path=path, activations=acts)


def load_scores(scores_dir: str | os.PathLike, role: str) -> dict[Key, int | None]:
    """The judge's score of every response of ``role``: key -> 0..3, or None when unparseable.
    A key on several lines (a resumed judge appends) takes its last score; null never replaces a score."""
    path = Path(scores_dir) / f"{role}.jsonl"
    if not path.exists():
        raise InputError(f"{path}: judge scores not found for role {role!r} (run the judge stage, or leave out "
                         "--scores-dir to analyse without a filter)")
    scores: dict[Key, int | None] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: invalid JSON ({e.msg}); fix or delete the line and re-run judge") from None
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


# --- writers (the capture/judge formats; used by tests and tools) ---------------------------------

def write_capture(directory: str | os.PathLike, role: str, activations: Mapping[int, np.ndarray | torch.Tensor],
                  samples: list[Key], *, model: str = "test/model", checkpoint: str = "main",
                  aggregation: str = "mean", num_tokens: list[int] | None = None) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {int(k): torch.as_tensor(np.asarray(v), dtype=torch.float32).contiguous() for k, v in sorted(activations.items())}
    torch.save(tensors, activations_path(directory, role))
    meta = {
        "role": role, "model": model, "checkpoint": checkpoint, "layers": sorted(tensors),
        "aggregation": aggregation, "dtype": "float32",
        "samples": [{"system_prompt_idx": s, "question_idx": q, "rollout_idx": r} for s, q, r in samples],
        "num_tokens": num_tokens if num_tokens is not None else [0] * len(samples),
    }
    metadata_path(directory, role).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def write_scores(scores_dir: str | os.PathLike, role: str, scores: Mapping[Key, int | None]) -> None:
    scores_dir = Path(scores_dir)
    scores_dir.mkdir(parents=True, exist_ok=True)
    with open(scores_dir / f"{role}.jsonl", "w", encoding="utf-8") as f:
        for (s, q, r), score in scores.items():
            f.write(json.dumps({"system_prompt_idx": s, "question_idx": q, "rollout_idx": r, "score": score}) + "\n")


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
