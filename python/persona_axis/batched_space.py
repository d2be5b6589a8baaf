"""Persona-space numbers for a batch of B versions of the role vectors at once (resamples, shuffles).

The PCA of R role vectors in d dimensions needs only the R x R Gram matrix of the centred vectors:
its eigenvectors v_k and eigenvalues l_k give the components p_k = Mc^T v_k / sqrt(l_k) and the
role scores sqrt(l_k) v_k. So B PCAs cost one batched (B, R, d) x (B, d, R) product and one batched
R x R ``eigh``, never a d x d or n x d SVD. Definitions and sign conventions are those of
:mod:`persona_axis.persona_space` (PC1 oriented so that cos(PC1, axis) >= 0); PC2 onwards are
oriented, when a reference set of components is given, to agree with it (the usual bootstrap
alignment), else by their largest-|score| role.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

EPS = 1e-12


@dataclass
class BatchedSpace:
    """Per batch element b: centred role vectors and their PCA (top ``k`` components)."""
    #: (B, R, d) role vectors minus their mean.
    centred: torch.Tensor
    #: (B, d) mean role vector.
    mean: torch.Tensor
    #: (B, d) axis = default - mean role vector.
    axis: torch.Tensor
    #: (B, d) default vector.
    default: torch.Tensor
    #: (B, k) eigenvalues of the Gram matrix, descending (= squared singular values).
    eigenvalues: torch.Tensor
    #: (B, k) explained-variance fraction of each kept component.
    evr: torch.Tensor
    #: (B, R, k) role scores on the oriented components.
    scores: torch.Tensor
    #: (B, k) the default's score (after centring) on each component.
    default_scores: torch.Tensor
    #: (B, k) sign applied to each eigenvector (for building the components on demand).
    signs: torch.Tensor
    #: (B, R, k) the oriented unit eigenvectors of the Gram matrix.
    eigenvectors: torch.Tensor

    def components(self, k: int | None = None) -> torch.Tensor:
        """(B, k, d) unit components p_k = Mc^T v_k / sqrt(l_k)."""
        k = self.eigenvalues.shape[1] if k is None else k
        v = self.eigenvectors[:, :, :k]
        p = torch.einsum("brk,brd->bkd", v, self.centred)
        return p / self.eigenvalues[:, :k].clamp_min(EPS).sqrt()[:, :, None]


def relative_position(value: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(value - min) / (max - min) over the last dim of ``values``; NaN where the range is 0."""
    lo, hi = values.min(dim=-1).values, values.max(dim=-1).values
    rng = hi - lo
    return torch.where(rng > 0, (value - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                       torch.full_like(rng, float("nan")))


def small_eigh(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched eigh of small (R x R) matrices on one thread: LAPACK's threading makes each small
    problem up to ~15x slower (measured on a loaded 2-core box), and the batch is the parallelism."""
    if gram.device.type != "cpu":
        return torch.linalg.eigh(gram)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(gram)
    finally:
        torch.set_num_threads(n)


def batched_space(role_vectors: torch.Tensor, default: torch.Tensor, k: int = 5,
                  align_to: torch.Tensor | None = None) -> BatchedSpace:
    """``role_vectors`` (B, R, d), ``default`` (B, d), float64. ``align_to`` (k', d): components whose
    signs PC2..k' should agree with (PC1 always follows the axis)."""
    M = role_vectors
    mean = M.mean(dim=1)
    centred = M - mean[:, None, :]
    axis = default - mean
    gram = centred @ centred.transpose(1, 2)
    evals, evecs = small_eigh(gram)  # ascending
    R = M.shape[1]
    k = max(1, min(k, R - 1))
    evals = evals.flip(-1)[:, :k].clamp_min(0.0)
    evecs = evecs.flip(-1)[:, :, :k]
    total = gram.diagonal(dim1=1, dim2=2).sum(-1)
    evr = evals / total.clamp_min(EPS)[:, None]
    sq = evals.clamp_min(EPS).sqrt()
    proj_axis = torch.einsum("brd,bd->br", centred, axis)  # Mc a
    default_raw = torch.einsum("br,brk->bk", proj_axis, evecs) / sq  # (m0 - mean) . p_k, unsigned
    scores_raw = evecs * sq[:, None, :]
    signs = torch.ones_like(evals)
    # PC1: cos(PC1, axis) >= 0  <=>  default's score on PC1 >= 0.
    signs[:, 0] = torch.where(default_raw[:, 0] < 0, -1.0, 1.0)
    if k > 1:
        if align_to is not None:
            kk = min(k, align_to.shape[0])
            comps = torch.einsum("brk,brd->bkd", evecs[:, :, 1:kk], centred)
            dots = torch.einsum("bkd,kd->bk", comps, align_to[1:kk].to(comps.dtype))
            signs[:, 1:kk] = torch.where(dots < 0, -1.0, 1.0)
            rest = slice(kk, k)
        else:
            rest = slice(1, k)
        s = scores_raw[:, :, rest]
        if s.shape[2]:
            idx = s.abs().argmax(dim=1, keepdim=True)
            top = torch.gather(s, 1, idx)[:, 0, :]
            signs[:, rest] = torch.where(top < 0, -1.0, 1.0)
    return BatchedSpace(centred=centred, mean=mean, axis=axis, default=default, eigenvalues=evals, evr=evr,
                        scores=scores_raw * signs[:, None, :], default_scores=default_raw * signs,
                        signs=signs, eigenvectors=evecs * signs[:, None, :])


def headline(space: BatchedSpace) -> dict[str, torch.Tensor]:
    """The persona-space headline numbers, each (B,): cos(axis, PC1), PC1 variance fraction, the
    default's position on PC1 and on the axis among the roles."""
    a = space.axis
    anorm = a.norm(dim=1).clamp_min(EPS)
    sq1 = space.eigenvalues[:, 0].clamp_min(EPS).sqrt()
    proj_axis = torch.einsum("brd,bd->br", space.centred, a)
    cos = torch.einsum("br,br->b", proj_axis, space.eigenvectors[:, :, 0]) / (sq1 * anorm)
    default_axis = (a * a).sum(1)  # (m0 - mean) . a; roles: Mc a
    return {
        "cos_axis_pc1": cos,
        "explained_variance_pc1": space.evr[:, 0],
        "default_pc1_position": relative_position(space.default_scores[:, 0], space.scores[:, :, 0]),
        "default_axis_position": relative_position(default_axis, proj_axis),
    }


HEADLINE_KEYS = ("cos_axis_pc1", "explained_variance_pc1", "default_pc1_position", "default_axis_position")
