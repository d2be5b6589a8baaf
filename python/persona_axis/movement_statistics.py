"""Own-unit and basis-free movement numbers, their paired bootstrap intervals, and paired differences
between checkpoints (consecutive, and each vs the reference), with lineage rules applied.

One weight matrix (row 0: every cell once = the point estimate; rows 1..B: question / prompt-slot
resamples, :func:`persona_axis.space_statistics.resample_weights`) is applied to every checkpoint, so
the resamples are paired: a difference's interval comes from the per-resample differences. Memory:
the per-cell sums of at most three checkpoints (reference, previous, current) at a time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from persona_axis.layer_rows import Cells, cell_sums, load_layer_rows, weighted_means
from persona_axis.lineage import BASIS_FREE, SHARED_BASIS_PREV, SHARED_BASIS_REF, refusal
from persona_axis.movement_metrics import checkpoint_metrics, reference_batch
from persona_axis.persona_space import select_roles
from persona_axis.space_statistics import StatSettings, chunk_size, percentile_interval, resample_weights

METRICS = SHARED_BASIS_REF + SHARED_BASIS_PREV + BASIS_FREE
#: Shifts along the reference axis need the reference's basis as well as the previous checkpoint's.
NEEDS_BOTH = ("mean_role_shift_axis", "default_shift_axis")


@dataclass
class MovementStatistics:
    #: checkpoint -> metric -> point value (None where refused / undefined).
    values: dict[str, dict[str, float | None]]
    intervals: list[dict]
    differences: list[dict]
    refusals: list[str]
    #: checkpoint -> role -> cos(centred role vector, the reference's) (same lineage only).
    role_cos_ref: dict[str, dict[str, float]]
    settings: dict


def _cells(directory: Path, roles, fs, layer: int, P=None, Q=None) -> Cells:
    sel = select_roles(directory, roles, fs)
    return cell_sums(load_layer_rows(directory, sel, layer), P, Q)


def movement_samples(checkpoints: list[tuple[str, Path]], reference_name: str, roles: list[str], fs, layer: int,
                     align_to: np.ndarray, settings: StatSettings, weights: torch.Tensor | None = None):
    """Every metric of every checkpoint over the weight rows (row 0 = the point estimate).

    ``fs``: one FilterSettings for all checkpoints (fixed transcripts), or {checkpoint: FilterSettings}
    (on-policy: each checkpoint's own judge scores). ``weights``: the (B+1, C) rows to apply (default:
    row 0 = every cell once, then ``settings.bootstrap`` resamples of the reference's cells); pass the
    same rows to two calls to pair them. Returns (samples {name: {metric: (B+1,)}}, role_cos, weights).
    """
    fs_of = fs if isinstance(fs, dict) else {n: fs for n, _ in checkpoints}
    dirs = dict(checkpoints)
    names = [n for n, _ in checkpoints]
    ref_cells = _cells(dirs[reference_name], roles, fs_of[reference_name], layer)
    C, L, d = ref_cells.sums.shape
    W = weights
    if W is None:
        W = torch.ones(1, C, dtype=torch.float64)
        if settings.bootstrap:
            W = torch.cat([W, resample_weights(ref_cells, settings.bootstrap, settings.seed, settings.resample_prompts)])
    align = torch.from_numpy(np.asarray(align_to, dtype=np.float64))
    step = chunk_size(L, d)
    chunks = [slice(i, min(i + step, W.shape[0])) for i in range(0, W.shape[0], step)]
    refs = [reference_batch(weighted_means(ref_cells, W[c]), align) for c in chunks]
    samples: dict[str, dict[str, np.ndarray]] = {}
    role_cos: dict[str, dict[str, float]] = {}
    labels = ref_cells.labels[:-1]
    prev_cells: Cells | None = None
    for name in names:
        cur = ref_cells if name == reference_name else _cells(dirs[name], roles, fs_of[name], layer, ref_cells.P, ref_cells.Q)
        parts: dict[str, list[np.ndarray]] = {}
        for ci, (c, ref) in enumerate(zip(chunks, refs)):
            means = weighted_means(cur, W[c])
            prev = weighted_means(prev_cells, W[c]) if prev_cells is not None else None
            metrics, sp = checkpoint_metrics(means, ref, prev, align)
            for k, v in metrics.items():
                parts.setdefault(k, []).append(v.numpy())
            if ci == 0:
                a, b = sp.centred[0], ref.space.centred[0]
                cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)
                role_cos[name] = {r: float(x) for r, x in zip(labels, cos)}
        samples[name] = {k: np.concatenate(v) for k, v in parts.items()}
        prev_cells = cur
    return samples, role_cos, W


def movement_statistics(checkpoints: list[tuple[str, Path]], reference_name: str, roles: list[str], fs, layer: int,
                        align_to: np.ndarray, lineages: dict[str, str], settings: StatSettings) -> MovementStatistics:
    samples, role_cos, _ = movement_samples(checkpoints, reference_name, roles, fs, layer, align_to, settings)
    return _assemble([n for n, _ in checkpoints], reference_name, lineages, samples, role_cos, settings)


def blank_refused(names, reference_name, lineages, samples, role_cos=None) -> list[str]:
    """NaN every shared-basis sample across lineages (in place); the refusal messages."""
    refusals: list[str] = []
    for i, name in enumerate(names):
        blank: set[str] = set()
        msg = refusal(name, lineages[name], reference_name, lineages[reference_name], "reference")
        if msg:
            refusals.append(msg)
            blank |= set(SHARED_BASIS_REF) | set(NEEDS_BOTH)
            if role_cos is not None:
                role_cos.pop(name, None)
        if i > 0:
            msg = refusal(name, lineages[name], names[i - 1], lineages[names[i - 1]], "previous-checkpoint")
            if msg:
                refusals.append(msg)
                blank |= set(SHARED_BASIS_PREV)
        for k in blank:
            samples[name][k] = np.full_like(samples[name][k], np.nan)
    return refusals


def _assemble(names, reference_name, lineages, samples, role_cos, settings) -> MovementStatistics:
    refusals = blank_refused(names, reference_name, lineages, samples, role_cos)
    values = {n: {k: (float(v[0]) if np.isfinite(v[0]) else None) for k, v in samples[n].items()} for n in names}
    intervals = []
    for n in names:
        for k in METRICS:
            v = samples[n][k]
            lo, hi = percentile_interval(v[1:]) if len(v) > 1 else (float("nan"), float("nan"))
            intervals.append({"checkpoint": n, "lineage": lineages[n], "metric": k, "basis": _basis(k),
                              "value": v[0], "ci_low": lo, "ci_high": hi})
    pairs = [("consecutive", names[i - 1], names[i]) for i in range(1, len(names))]
    pairs += [("vs_reference", reference_name, n) for n in names if n != reference_name]
    differences = []
    for kind, a, b in pairs:
        for k in METRICS:
            diff = samples[b][k] - samples[a][k]
            if not np.isfinite(diff[0]):
                continue
            lo, hi = percentile_interval(diff[1:]) if len(diff) > 1 else (float("nan"), float("nan"))
            differences.append({"metric": k, "kind": kind, "from": a, "to": b, "value": diff[0], "ci_low": lo,
                                "ci_high": hi, "excludes_zero": bool(lo > 0 or hi < 0) if np.isfinite(lo) else None})
    return MovementStatistics(values=values, intervals=intervals, differences=differences, refusals=refusals,
                              role_cos_ref=role_cos, settings=settings.describe())


def _basis(metric: str) -> str:
    if metric in BASIS_FREE:
        return "basis-free"
    return "shared (reference)" if metric in SHARED_BASIS_REF else "shared (previous)"


INTERVALS_HEADER = ["checkpoint", "lineage", "metric", "basis", "value", "ci_low", "ci_high"]
DIFFERENCES_HEADER = ["metric", "kind", "from", "to", "value", "ci_low", "ci_high", "excludes_zero"]


def write_statistics(stats: MovementStatistics, out: str | os.PathLike) -> None:
    from persona_axis.activation_io import write_csv
    write_csv(Path(out) / "intervals.csv", INTERVALS_HEADER, stats.intervals)
    write_csv(Path(out) / "differences.csv", DIFFERENCES_HEADER, stats.differences)
