"""Per-checkpoint movement numbers for a batch of resamples at once (row 0 of a batch can be the
unresampled data: the point estimate), so the values and their paired intervals come from one formula.

Own units: each checkpoint's role vectors are centred on their own mean and divided by their own
spread s = sqrt(mean_r |M_r - mean|^2). A global shift (or rescaling) of a checkpoint's residual stream
moves its raw vectors but none of its own-unit numbers. The names of the numbers and which of them
need a shared basis are in :mod:`persona_axis.lineage`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from persona_axis.batched_space import EPS, BatchedSpace, batched_space, relative_position

K = 5


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(EPS)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _cos(a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True))


def _spread(space: BatchedSpace) -> torch.Tensor:
    return space.centred.pow(2).sum(-1).mean(-1).sqrt().clamp_min(EPS)


def _geometry(space: BatchedSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, R, R) centred Gram and the off-diagonal role-by-role cosines (B, R*(R-1)/2)."""
    g = space.centred @ space.centred.transpose(1, 2)
    n = g.diagonal(dim1=1, dim2=2).clamp_min(EPS).sqrt()
    cosm = g / (n[:, :, None] * n[:, None, :])
    R = g.shape[1]
    iu = torch.triu_indices(R, R, 1)
    return g, cosm[:, iu[0], iu[1]]


@dataclass
class RefBatch:
    space: BatchedSpace
    unit_axis: torch.Tensor     # (B, d)
    components: torch.Tensor    # (B, K, d)
    gram: torch.Tensor          # (B, R, R)
    cosines: torch.Tensor       # (B, R(R-1)/2)


def reference_batch(role_means: torch.Tensor, align_to: torch.Tensor) -> RefBatch:
    sp = batched_space(role_means[:, :-1], role_means[:, -1], k=K, align_to=align_to)
    g, c = _geometry(sp)
    return RefBatch(space=sp, unit_axis=sp.axis / sp.axis.norm(dim=1, keepdim=True).clamp_min(EPS),
                    components=sp.components(), gram=g, cosines=c)


def checkpoint_metrics(means: torch.Tensor, ref: RefBatch, prev: torch.Tensor | None,
                       align_to: torch.Tensor) -> tuple[dict[str, torch.Tensor], BatchedSpace]:
    """``means`` (B, L, d): role vectors then the default (last); ``prev`` likewise for the previous
    checkpoint (None for the first). Every number is (B,)."""
    sp = batched_space(means[:, :-1], means[:, -1], k=K, align_to=align_to)
    M, m0 = means[:, :-1], means[:, -1]
    u = ref.unit_axis
    s = _spread(sp)
    own = sp.components(min(3, sp.eigenvalues.shape[1]))
    role_axis = torch.einsum("brd,bd->br", M, u)
    default_axis = (m0 * u).sum(1)
    out = {
        "cos_axis_ref": _cos(sp.axis, ref.space.axis),
        "default_axis_projection": default_axis,
        "default_axis_position": relative_position(default_axis, role_axis),
        "mean_role_axis_projection": role_axis.mean(1),
        "cos_own_pc1_ref_pc1": _cos(sp.components(1)[:, 0], ref.components[:, 0]),
        **{f"abs_cos_own_pc{j + 1}_ref_pc{j + 1}": (_cos(own[:, j], ref.components[:, j]).abs()
                                                     if j < min(own.shape[1], ref.components.shape[1])
                                                     else torch.full_like(s, float("nan"))) for j in (1, 2)},
        "own_unit_default_axis": (sp.axis * u).sum(1) / s,
        "own_unit_axis_norm": sp.axis.norm(dim=1) / s,
        "own_cos_pc1_axis": torch.einsum("brd,bd->br", sp.centred, sp.axis).mul(sp.eigenvectors[:, :, 0]).sum(1)
        / (sp.eigenvalues[:, 0].clamp_min(EPS).sqrt() * sp.axis.norm(dim=1).clamp_min(EPS)),
        "own_default_pc1_position": relative_position(sp.default_scores[:, 0], sp.scores[:, :, 0]),
        "pc1_loading_corr_ref": _pearson(sp.scores[:, :, 0], ref.space.scores[:, :, 0]),
    }
    dpc = torch.einsum("bd,bkd->bk", m0 - ref.space.mean, ref.components)
    for j in range(K):
        out[f"default_pc{j + 1}"] = dpc[:, j] if j < dpc.shape[1] else torch.full_like(s, float("nan"))
    for j in range(3):
        ok = j < sp.evr.shape[1]
        out[f"own_explained_variance_pc{j + 1}"] = sp.evr[:, j] if ok else torch.full_like(s, float("nan"))
        if j:
            ok = ok and j < ref.space.scores.shape[2]
            out[f"pc{j + 1}_abs_loading_corr_ref"] = (_pearson(sp.scores[:, :, j], ref.space.scores[:, :, j]).abs() if ok
                                                     else torch.full_like(s, float("nan")))
    g, cosines = _geometry(sp)
    out["cka_ref"] = (g * ref.gram).sum((1, 2)) / (g.norm(dim=(1, 2)) * ref.gram.norm(dim=(1, 2))).clamp_min(EPS)
    out["rsa_ref"] = _pearson(cosines, ref.cosines) if cosines.shape[1] > 1 else torch.full_like(s, float("nan"))
    nan = torch.full_like(s, float("nan"))
    if prev is None:
        out.update({"mean_role_shift_l2": nan, "mean_role_shift_axis": nan, "default_shift_axis": nan,
                    "own_unit_role_shift": nan})
    else:
        pM, pm0 = prev[:, :-1], prev[:, -1]
        pc = pM - pM.mean(1, keepdim=True)
        ps = pc.pow(2).sum(-1).mean(-1).sqrt().clamp_min(EPS)
        out["mean_role_shift_l2"] = (M - pM).norm(dim=-1).mean(1)
        out["mean_role_shift_axis"] = (role_axis - torch.einsum("brd,bd->br", pM, u)).mean(1)
        out["default_shift_axis"] = default_axis - (pm0 * u).sum(1)
        out["own_unit_role_shift"] = (sp.centred / s[:, None, None] - pc / ps[:, None, None]).norm(dim=-1).mean(1)
    return out, sp
