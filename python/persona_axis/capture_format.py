"""The capture format: writing (the capture stage) and reading (the analysis) one checkpoint's directory.

    <dir>/<role>_activations.pt   {layer (int): tensor (num_samples, hidden_dim)}; aggregation 'none':
                                  (total response tokens, hidden_dim), rows of sample i in
                                  token_offsets[i]:token_offsets[i+1]
    <dir>/<role>_metadata.json    {"format", "role", "model", "checkpoint", "layers": [...], "aggregation",
                                   "dtype", "samples": [{"system_prompt_idx", "question_idx",
                                   "rollout_idx"}, ...] (row order), "num_tokens": [...], ...}

The metadata is written last, each file atomically: its presence marks the role complete, and a rerun
with the same identity (model, checkpoint, layers, aggregation, dtypes, max_length, transcript and chat
template hashes) skips the role. The default (no system prompt) role is ``default``.

Every reading problem raises :class:`InputError` naming the file (and key) and how to fix it.
"""
from __future__ import annotations

import json
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from .atomic import atomic_write
from .errors import InputError

FORMAT = "persona-axis-capture/1"
DEFAULT_ROLE = "default"
ACTIVATIONS_SUFFIX = "_activations.pt"
METADATA_SUFFIX = "_metadata.json"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
#: Aggregations the analysis can use: one vector per response.
SUPPORTED_AGGREGATIONS = ("mean", "last")
_TMP_MARK = ".tmp-capture-"

Key = tuple[int, int, int]


def activations_path(directory: str | os.PathLike, role: str) -> Path:
    return Path(directory) / f"{role}{ACTIVATIONS_SUFFIX}"


def metadata_path(directory: str | os.PathLike, role: str) -> Path:
    return Path(directory) / f"{role}{METADATA_SUFFIX}"


# --- writing (the capture stage) ---------------------------------------------------------------

def write_role(out_dir: Path, role: str, tensors: dict[int, torch.Tensor], metadata: dict, storage_dtype: str) -> None:
    """Activations first, then metadata (the completion marker); each via temp file + os.replace."""
    dtype = DTYPES[storage_dtype]
    data = {int(k): v.to(dtype).contiguous() for k, v in sorted(tensors.items())}
    _write(activations_path(out_dir, role), lambda f: torch.save(data, f))
    _write(metadata_path(out_dir, role), json.dumps(metadata, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def _write(path: Path, content: Any) -> None:
    atomic_write(path, content, tmp=path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}"))


class CaptureWriter:
    """A writer thread with a bounded queue (at most ``depth`` finished roles wait in host memory)."""

    def __init__(self, out_dir: Path, storage_dtype: str, depth: int = 1):
        self.out_dir = out_dir
        self.storage_dtype = storage_dtype
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="capture-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    write_role(self.out_dir, *item, self.storage_dtype)
                except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                    self.error = e

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, role: str, tensors: dict[int, torch.Tensor], metadata: dict) -> None:
        self._check()
        self.q.put((role, tensors, metadata))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        self._check()


def role_is_complete(out_dir: Path, role: str, identity: dict) -> bool:
    mp, ap = metadata_path(out_dir, role), activations_path(out_dir, role)
    if not (mp.exists() and ap.exists()):
        return False
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return all(meta.get(k) == v for k, v in identity.items())


def clean_stale_temps(out_dir: Path) -> None:
    for p in out_dir.glob(f".*{_TMP_MARK}*"):
        try:
            p.unlink()
        except OSError:
            pass


# --- reading (the analysis) ----------------------------------------------------------------------

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


def load_role_capture(directory: str | os.PathLike, role: str, layers: Iterable[int] | None = None) -> RoleCapture:
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


# --- a minimal writer of the format, for tests and tools ----------------------------------------

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


