"""The responses that enter a persona space, at one layer, in one canonical order, and their sums per
(label, system prompt, question) cell: the input of the label-shuffle null and the paired bootstrap.

Labels are the kept roles sorted by name, then ``default`` (last). Rows are ordered by (label, key),
so the order in which roles were given never changes a shuffle or a resample.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from persona_axis.capture_format import DEFAULT_ROLE, load_metadata, load_role_capture
from persona_axis.errors import InputError
from persona_axis.persona_space import RoleSelection


@dataclass
class LayerRows:
    labels: list[str]
    #: (n, d) float32 activations.
    rows: torch.Tensor
    #: (n,) int64 index into ``labels``.
    label: torch.Tensor
    #: (n,) system_prompt_idx and question_idx of each row.
    prompt: np.ndarray
    question: np.ndarray

    @property
    def counts(self) -> torch.Tensor:
        return torch.bincount(self.label, minlength=len(self.labels))


def load_layer_rows(activations_dir: str | os.PathLike, selection: RoleSelection, layer: int) -> LayerRows:
    """The passing responses of the kept roles and all default responses, at ``layer``."""
    labels = sorted(selection.kept) + [DEFAULT_ROLE]
    parts, lab, prompts, questions = [], [], [], []
    for i, role in enumerate(labels):
        meta = load_metadata(activations_dir, role)
        mask = np.ones(len(meta.samples), dtype=bool) if role == DEFAULT_ROLE else selection.masks[role]
        if len(mask) != len(meta.samples):
            raise InputError(f"{meta.path}: {len(meta.samples)} samples, but the selection has {len(mask)} rows")
        idx = np.flatnonzero(mask)
        keys = [meta.samples[j] for j in idx]
        order = sorted(range(len(idx)), key=lambda j: keys[j])
        idx = idx[order]
        cap = load_role_capture(activations_dir, role, [layer])
        parts.append(cap.activations[layer].index_select(0, torch.from_numpy(idx)).to(torch.float32))
        lab.append(torch.full((len(idx),), i, dtype=torch.int64))
        prompts.append(np.array([meta.samples[j][0] for j in idx], dtype=np.int64))
        questions.append(np.array([meta.samples[j][1] for j in idx], dtype=np.int64))
        del cap
    return LayerRows(labels=labels, rows=torch.cat(parts), label=torch.cat(lab),
                     prompt=np.concatenate(prompts), question=np.concatenate(questions))


@dataclass
class Cells:
    """Sums and counts of the rows per (prompt, question) cell and label; the cells are the units the
    bootstrap resamples (questions, and optionally system-prompt slots)."""
    labels: list[str]
    #: (C, L, d) float32 sums, C = P * Q cells (cell = prompt * Q + question).
    sums: torch.Tensor
    #: (C, L) float64 counts.
    counts: torch.Tensor
    prompts: np.ndarray   # the prompt indices present
    questions: np.ndarray  # the question indices present
    P: int
    Q: int


def cell_sums(data: LayerRows, P: int | None = None, Q: int | None = None) -> Cells:
    P = int(data.prompt.max()) + 1 if P is None else P
    Q = int(data.question.max()) + 1 if Q is None else Q
    L, d = len(data.labels), data.rows.shape[1]
    cell = torch.from_numpy(data.prompt * Q + data.question)
    flat = cell * L + data.label
    sums = torch.zeros(P * Q * L, d, dtype=torch.float32).index_add_(0, flat, data.rows)
    counts = torch.bincount(flat, minlength=P * Q * L).to(torch.float64)
    return Cells(labels=list(data.labels), sums=sums.view(P * Q, L, d), counts=counts.view(P * Q, L),
                 prompts=np.unique(data.prompt), questions=np.unique(data.question), P=P, Q=Q)


def weighted_means(cells: Cells, weights: torch.Tensor) -> torch.Tensor:
    """(B, C) cell weights -> (B, L, d) float64 weighted means per label (NaN where a label's
    resampled count is 0)."""
    C, L, d = cells.sums.shape
    sums = (weights.to(torch.float32) @ cells.sums.view(C, L * d)).view(-1, L, d).to(torch.float64)
    counts = weights.to(torch.float64) @ cells.counts
    return sums / torch.where(counts > 0, counts, torch.full_like(counts, float("nan")))[:, :, None]
