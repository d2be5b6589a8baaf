"""The directions a checkpoint is steered (and capped) along, per layer, from the captures of the fixed
transcripts and the reference persona space's role selection.

* ``axis@<source>``: the Assistant Axis (default vector - mean of the role vectors) computed on the
  source checkpoint's capture, with the reference's kept roles and passing responses. The primary
  direction is ``axis@<reference>`` when the target shares the reference's lineage, else the target's
  own axis (across pretraining runs the residual streams share no basis: ``lineage``); the other
  ``axis@<source>`` of the target's lineage make the transfer matrix (source's axis applied at target).
* Scale ``sd`` (the default): unit(axis) x the standard deviation (ddof 1) of the TARGET's role
  vectors projected on unit(axis), so alpha = 1 moves the residual by one role-spread on that axis,
  comparable across checkpoints. Scale ``raw``: the unnormalised axis (what the paper's code adds).
* Controls, each with the primary vector's norm at every layer: ``random`` (seeded Gaussian),
  ``shuffled`` (the axis of a persona space whose response labels, the default's included, were
  permuted once, seeded: the same permutation at every layer), ``orthogonal`` (the top principal
  direction of the primary source's centred role vectors after removing their component along the
  axis: a direction of real role variation that is orthogonal to the axis; the role projecting
  furthest on it projects positively).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from persona_axis.errors import InputError
from persona_axis.layer_rows import load_layer_rows
from persona_axis.movement import filter_settings, load_reference
from persona_axis.persona_space import compute_vectors, select_roles

CONTROLS = ("random", "shuffled", "orthogonal")


@dataclass
class DirectionSet:
    primary: str
    #: name -> layer -> (d,) float32: the vector added at alpha = 1
    vectors: dict[str, dict[int, torch.Tensor]]
    #: name -> description (source, kind, per-layer norm and SD)
    info: dict[str, dict] = field(default_factory=dict)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n == 0:
        raise InputError("a zero axis (the default vector equals the mean of the roles): cannot steer along it")
    return v / n


def _vectors(acts: Path, ref_dir: Path, scores_dir: Path | None, layers: Sequence[int]):
    ref = load_reference(ref_dir)
    sel = select_roles(acts, ref.roles, filter_settings(ref, scores_dir))
    return compute_vectors(acts, sel, layers), sel


def shuffled_axis(acts: Path, selection, layers: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    out = {}
    perm = None
    for layer in layers:
        rows = load_layer_rows(acts, selection, layer)
        if perm is None:
            perm = torch.randperm(len(rows.label), generator=torch.Generator().manual_seed(int(seed)))
        lab = rows.label[perm]
        L = len(rows.labels)
        sums = torch.zeros(L, rows.rows.shape[1], dtype=torch.float64).index_add_(0, lab, rows.rows.double())
        means = sums / torch.bincount(lab, minlength=L).clamp(min=1)[:, None].double()
        out[layer] = (means[-1] - means[:-1].mean(0)).numpy()  # labels: roles sorted, then default last
    return out


def orthogonal_direction(role_vectors: np.ndarray, axis: np.ndarray) -> np.ndarray:
    u = _unit(axis)
    centred = role_vectors - role_vectors.mean(0)
    resid = centred - np.outer(centred @ u, u)
    _, _, vt = np.linalg.svd(resid, full_matrices=False)
    w = vt[0] - (vt[0] @ u) * u
    w = _unit(w)
    proj = resid @ w
    return w if proj[int(np.argmax(np.abs(proj)))] >= 0 else -w


def build_directions(target: str, activations: dict[str, Path], lineages: dict[str, str], reference: str,
                     reference_dir: Path, scores_dir: Path | None, layers: Sequence[int], scale: str,
                     transfer: bool, seed: int, controls: bool = True) -> DirectionSet:
    if scale not in ("sd", "raw"):
        raise InputError(f"scale {scale!r}: expected sd or raw")
    if target not in activations:
        raise InputError(f"no capture given for the target checkpoint {target}")
    lineage = lineages[target]
    primary_src = reference if lineages.get(reference) == lineage and reference in activations else target
    sources = [n for n in activations if lineages[n] == lineage] if transfer else [primary_src]
    if primary_src not in sources:
        sources.insert(0, primary_src)
    tgt, _ = _vectors(activations[target], reference_dir, scores_dir, layers)
    src_vecs = {n: (tgt if n == target else _vectors(activations[n], reference_dir, scores_dir, layers)[0])
                for n in sources}
    vectors: dict[str, dict[int, torch.Tensor]] = {}
    info: dict[str, dict] = {}
    for n in sources:
        per, norms, sds = {}, {}, {}
        for layer in layers:
            axis = src_vecs[n].axis[layer]
            sd = float(np.std(tgt.role_vectors[layer] @ _unit(axis), ddof=1))
            v = _unit(axis) * sd if scale == "sd" else axis
            per[layer] = torch.from_numpy(np.ascontiguousarray(v)).float()
            norms[str(layer)], sds[str(layer)] = float(np.linalg.norm(v)), sd
        name = f"axis@{n}"
        vectors[name] = per
        info[name] = {"kind": "axis", "source": n, "scale": scale, "norm": norms, "role_projection_sd": sds,
                      "note": "the reference axis" if n == reference else ("own axis" if n == target else "transfer")}
    primary = f"axis@{primary_src}"
    if controls:
        pv = vectors[primary]
        psrc = src_vecs[primary_src]
        _, psel = _vectors(activations[primary_src], reference_dir, scores_dir, layers)
        shuf = shuffled_axis(activations[primary_src], psel, layers, seed + 1)
        g = torch.Generator().manual_seed(int(seed))
        raw = {
            "random": {x: torch.randn(pv[x].shape[0], generator=g, dtype=torch.float64).numpy() for x in layers},
            "shuffled": shuf,
            "orthogonal": {x: orthogonal_direction(psrc.role_vectors[x], psrc.axis[x]) for x in layers},
        }
        for c in CONTROLS:
            vectors[c] = {x: torch.from_numpy(_unit(raw[c][x]) * float(pv[x].norm())).float() for x in layers}
            info[c] = {"kind": "control", "source": primary_src, "norm": {str(x): float(pv[x].norm()) for x in layers},
                       "cos_with_primary": {str(x): float(torch.nn.functional.cosine_similarity(
                           vectors[c][x], pv[x], dim=0)) for x in layers}}
    return DirectionSet(primary=primary, vectors=vectors, info=info)


def default_projections(activations_dir: str | os.PathLike, directions: dict[int, torch.Tensor]) -> dict[int, np.ndarray]:
    """Per layer, each default-role response's (mean) activation projected on unit(direction)."""
    from persona_axis.capture_format import DEFAULT_ROLE, load_role_capture

    cap = load_role_capture(activations_dir, DEFAULT_ROLE, list(directions))
    return {x: cap.activations[x].double().numpy() @ _unit(directions[x].double().numpy()) for x in directions}
