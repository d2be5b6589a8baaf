"""Persona space of one checkpoint: role vectors, default vector, the Assistant Axis and PCA.

Definitions (Lu et al. 2026, "The Assistant Axis"):

* Role vector (per role, per layer): mean activation of the role's responses whose judge score is
  ``>= min_score`` (paper: only score 3, i.e. ``min_score=3``; variant: ``min_score=2``,
  ``min_count=10``). A role with fewer than ``min_count`` such responses (paper: 50) is dropped and
  listed with its count. Without a judge directory there is no filter (``"filter": "none"``): every
  response counts, and ``min_count`` applies to the number of responses.
* Default vector: mean of ALL default-role responses (no system prompt), unfiltered.
* Assistant Axis (per layer): default vector minus the unweighted mean of the role vectors, stored
  unnormalized; it is normalized only when projecting onto it.
* PCA on the role vectors of one layer: mean-centred, no scaling, SVD in float64, all
  ``min(n_roles - 1, hidden_dim)`` components of the centred data.
* Sign convention: PC1 is oriented so that ``cos(PC1, axis) >= 0`` (PC1's high end is the
  Assistant-like end). When that cosine is 0 (|cos| < 1e-9), and for PC2 onwards, a component is
  oriented so that the role with the largest |projection| on it (ties: first role name in sort order)
  has a positive projection. So reordering roles never changes a result, and negating all activations
  negates the axis and the components while every role's PC projections stay the same.
* Default's position on PCk: ``(proj_default - min_roles) / (max_roles - min_roles)`` of the
  projections of the centred vectors (0 = the lowest role, 1 = the highest; may fall outside [0, 1]).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from persona_axis.activation_io import load_scores, save_layer_tensors, write_csv, write_json
from persona_axis.capture_format import DEFAULT_ROLE, Key, RoleMetadata, list_roles, load_metadata, load_role_capture
from persona_axis.errors import InputError

VARIANCE_THRESHOLDS = (0.70, 0.80, 0.90, 0.95)
TIE_TOLERANCE = 1e-9
NUM_REPORTED_PCS = 5
SIGN_CONVENTION = (
    "PC1 is oriented so that cos(PC1, axis) >= 0 (its high end is the Assistant-like end). When that cosine "
    "is 0 (|cos| < 1e-9), and for PC2 onwards, a component is oriented so that the role with the largest "
    "|projection| on it (ties: first role name) projects positively.")


# --- filter ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FilterSettings:
    scores_dir: Path | None
    min_score: int = 3
    min_count: int = 50

    @property
    def mode(self) -> str:
        return "judge" if self.scores_dir is not None else "none"

    def describe(self) -> dict:
        return {"filter": self.mode, "min_score": self.min_score if self.scores_dir is not None else None,
                "min_count": self.min_count, "scores_dir": str(self.scores_dir) if self.scores_dir is not None else None}


@dataclass
class RoleSelection:
    """Which roles and which of their responses enter the role vectors."""
    settings: FilterSettings
    #: Roles kept, in row order.
    kept: list[str]
    #: role -> bool mask over the role's rows (metadata.samples order); kept roles only.
    masks: dict[str, np.ndarray]
    #: role -> the passing response keys (sorted); kept roles only.
    passing_keys: dict[str, list[Key]]
    #: role -> {"responses", "passing", "unscored"} for every role considered.
    counts: dict[str, dict[str, int]]
    #: [{"role", "count", "required", "reason"}] in the order considered.
    dropped: list[dict]
    metadata: dict[str, RoleMetadata] = field(default_factory=dict)


def passing_mask(samples: Sequence[Key], scores: dict[Key, int | None] | None, min_score: int) -> tuple[np.ndarray, int]:
    """Rows whose score is >= min_score (all rows when ``scores`` is None) and the number of rows
    with no score line at all (these never pass)."""
    if scores is None:
        return np.ones(len(samples), dtype=bool), 0
    mask = np.zeros(len(samples), dtype=bool)
    unscored = 0
    for i, key in enumerate(samples):
        if key not in scores:
            unscored += 1
            continue
        s = scores[key]
        mask[i] = s is not None and s >= min_score
    return mask, unscored


def select_roles(activations_dir: str | os.PathLike, roles: Sequence[str], settings: FilterSettings) -> RoleSelection:
    """Apply the judge filter and ``min_count`` to ``roles`` (reads metadata and scores only)."""
    kept: list[str] = []
    masks: dict[str, np.ndarray] = {}
    passing: dict[str, list[Key]] = {}
    counts: dict[str, dict[str, int]] = {}
    dropped: list[dict] = []
    metas: dict[str, RoleMetadata] = {}
    for role in roles:
        meta = load_metadata(activations_dir, role)
        metas[role] = meta
        scores = load_scores(settings.scores_dir, role) if settings.scores_dir is not None else None
        mask, unscored = passing_mask(meta.samples, scores, settings.min_score)
        n = int(mask.sum())
        counts[role] = {"responses": len(meta.samples), "passing": n, "unscored": unscored}
        if n < settings.min_count:
            what = f"score >= {settings.min_score}" if settings.scores_dir is not None else "responses"
            dropped.append({"role": role, "count": n, "required": settings.min_count,
                            "reason": f"{n} {what} < min_count {settings.min_count}"})
            continue
        kept.append(role)
        masks[role] = mask
        passing[role] = sorted(k for k, m in zip(meta.samples, mask) if m)
    return RoleSelection(settings=settings, kept=kept, masks=masks, passing_keys=passing, counts=counts,
                         dropped=dropped, metadata=metas)


# --- vectors --------------------------------------------------------------------------------------

def masked_mean(activations: dict[int, torch.Tensor], mask: np.ndarray | None) -> dict[int, np.ndarray]:
    """Per layer, the float64 mean of the rows selected by ``mask`` (all rows when None)."""
    out = {}
    idx = None if mask is None else torch.from_numpy(np.flatnonzero(mask))
    for layer, t in activations.items():
        rows = t if idx is None else t.index_select(0, idx)
        if rows.shape[0] == 0:
            raise InputError(f"no responses selected for layer {layer}")
        out[layer] = rows.to(torch.float64).mean(dim=0).numpy()
    return out


@dataclass
class CheckpointVectors:
    roles: list[str]
    layers: list[int]
    #: layer -> (n_roles, d) float64, rows in ``roles`` order.
    role_vectors: dict[int, np.ndarray]
    #: layer -> (d,) float64.
    default_vector: dict[int, np.ndarray]
    #: layer -> (d,) float64, unnormalized.
    axis: dict[int, np.ndarray]
    default_count: int
    model: str
    checkpoint: str
    aggregation: str


def compute_axis(role_vectors: dict[int, np.ndarray], default_vector: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Assistant Axis per layer: default vector - unweighted mean of the role vectors."""
    return {layer: default_vector[layer] - role_vectors[layer].mean(axis=0) for layer in role_vectors}


def compute_vectors(activations_dir: str | os.PathLike, selection: RoleSelection,
                    layers: Sequence[int] | None = None) -> CheckpointVectors:
    """Role vectors of the kept roles, the default vector and the axis, for every captured layer
    (or ``layers``). Checks that all roles come from one model, checkpoint and aggregation."""
    if len(selection.kept) < 2:
        raise InputError(f"{activations_dir}: only {len(selection.kept)} role(s) passed the filter "
                         f"({selection.settings.describe()}); need at least 2 for a persona space "
                         "(lower --min-count or --min-score)")
    default_meta = load_metadata(activations_dir, DEFAULT_ROLE)
    layers = sorted(int(x) for x in (layers if layers is not None else default_meta.layers))
    default = load_role_capture(activations_dir, DEFAULT_ROLE, layers)
    default_vector = masked_mean(default.activations, None)
    identity = (default_meta.model, default_meta.checkpoint, default_meta.aggregation)
    per_role: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    for role in selection.kept:
        cap = load_role_capture(activations_dir, role, layers)
        got = (cap.metadata.model, cap.metadata.checkpoint, cap.metadata.aggregation)
        if got != identity:
            raise InputError(f"{cap.metadata.path}: model/checkpoint/aggregation {got} differ from the default role's "
                             f"{identity} in {default_meta.path}; capture all roles of a checkpoint with one setup")
        if cap.hidden_dim != default.hidden_dim:
            raise InputError(f"{cap.path}: hidden size {cap.hidden_dim} differs from the default role's {default.hidden_dim}")
        means = masked_mean(cap.activations, selection.masks[role])
        for layer in layers:
            per_role[layer].append(means[layer])
        del cap
    role_vectors = {layer: np.stack(per_role[layer]) for layer in layers}
    return CheckpointVectors(
        roles=list(selection.kept), layers=layers, role_vectors=role_vectors, default_vector=default_vector,
        axis=compute_axis(role_vectors, default_vector), default_count=len(default_meta.samples),
        model=default_meta.model, checkpoint=default_meta.checkpoint, aggregation=default_meta.aggregation)


# --- PCA ------------------------------------------------------------------------------------------

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


@dataclass
class PCAResult:
    #: (k, d) unit rows, oriented by the sign convention.
    components: np.ndarray
    #: (d,) the mean role vector subtracted before the SVD.
    mean: np.ndarray
    #: (k,) fraction of the total variance per component.
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray
    #: (n_roles, k) projections of the centred role vectors on the components.
    scores: np.ndarray

    def project(self, vectors: np.ndarray, k: int | None = None) -> np.ndarray:
        """Projections of (n, d) or (d,) vectors on the first ``k`` components, after centring."""
        comps = self.components if k is None else self.components[:k]
        return (np.asarray(vectors, dtype=np.float64) - self.mean) @ comps.T


def _orientation(k: int, component: np.ndarray, scores: np.ndarray, names: Sequence[str], axis: np.ndarray | None) -> float:
    if k == 0 and axis is not None:
        c = cosine(component, axis)
        if np.isfinite(c) and abs(c) >= TIE_TOLERANCE:
            return 1.0 if c > 0 else -1.0
    mags = np.abs(scores)
    top = float(mags.max()) if len(mags) else 0.0
    if top > 0:
        candidates = [i for i in range(len(names)) if mags[i] >= top * (1 - 1e-9)]
        i = min(candidates, key=lambda j: names[j])
        return 1.0 if scores[i] > 0 else -1.0
    j = int(np.argmax(np.abs(component)))
    return 1.0 if component[j] >= 0 else -1.0


def fit_pca(role_vectors: np.ndarray, names: Sequence[str], axis: np.ndarray | None = None) -> PCAResult:
    """Mean-centred, unscaled PCA of (n_roles, d) role vectors (float64 SVD), sign-oriented."""
    x = np.asarray(role_vectors, dtype=np.float64)
    n, d = x.shape
    if n < 2:
        raise InputError(f"PCA needs at least 2 roles, got {n}")
    if len(names) != n:
        raise ValueError("names must match the rows of role_vectors")
    mean = x.mean(axis=0)
    centred = x - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(n - 1, d)
    s, vt = s[:k], vt[:k].copy()
    total = float((s ** 2).sum())
    evr = (s ** 2) / total if total > 0 else np.zeros_like(s)
    scores = centred @ vt.T
    for i in range(k):
        sign = _orientation(i, vt[i], scores[:, i], names, axis)
        vt[i] *= sign
        scores[:, i] *= sign
    return PCAResult(components=vt, mean=mean, explained_variance_ratio=evr, singular_values=s, scores=scores)


def components_for(evr: np.ndarray, thresholds: Sequence[float] = VARIANCE_THRESHOLDS) -> dict[str, int | None]:
    """Smallest number of components whose cumulative explained variance reaches each threshold."""
    cum = np.cumsum(evr)
    out: dict[str, int | None] = {}
    for t in thresholds:
        hits = np.flatnonzero(cum >= t - 1e-12)
        out[f"{round(t * 100)}"] = int(hits[0]) + 1 if len(hits) else None
    return out


def relative_position(value: float, values: np.ndarray) -> float:
    """(value - min) / (max - min) of ``values``: 0 = the lowest, 1 = the highest."""
    lo, hi = float(np.min(values)), float(np.max(values))
    return float("nan") if hi == lo else (float(value) - lo) / (hi - lo)


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    if n == 0:
        raise InputError("the axis is zero (default vector equals the mean role vector); cannot project onto it")
    return v / n


def layer_summary(layer: int, vectors: CheckpointVectors) -> dict:
    """The per-layer numbers: axis norm, own PCA and cos(axis, PC1), default's position."""
    pca = fit_pca(vectors.role_vectors[layer], vectors.roles, vectors.axis[layer])
    axis = vectors.axis[layer]
    u = unit(axis)
    role_axis = vectors.role_vectors[layer] @ u
    default_axis = float(vectors.default_vector[layer] @ u)
    default_pc = pca.project(vectors.default_vector[layer], 1)
    evr = pca.explained_variance_ratio
    row = {
        "layer": layer,
        "axis_norm": float(np.linalg.norm(axis)),
        "cos_axis_pc1": cosine(pca.components[0], axis),
        "default_axis_projection": default_axis,
        "default_axis_position": relative_position(default_axis, role_axis),
        "mean_role_axis_projection": float(role_axis.mean()),
        "default_pc1_position": relative_position(default_pc[0], pca.scores[:, 0]),
    }
    for i in range(3):
        row[f"explained_variance_pc{i + 1}"] = float(evr[i]) if i < len(evr) else None
    for key, val in components_for(evr).items():
        row[f"components_for_{key}"] = val
    return row


# --- the whole analysis ---------------------------------------------------------------------------

@dataclass
class PersonaSpace:
    selection: RoleSelection
    vectors: CheckpointVectors
    pca_layer: int
    pca: PCAResult
    per_layer: list[dict]
    extremes_k: int
    activations_dir: str
    #: null / bootstrap results (persona_axis.space_statistics), when computed.
    statistics: dict | None = None

    def default_projection(self) -> np.ndarray:
        return self.pca.project(self.vectors.default_vector[self.pca_layer])


def middle_layer(layers: Sequence[int]) -> int:
    s = sorted(layers)
    return s[len(s) // 2]


def analyse(activations_dir: str | os.PathLike, settings: FilterSettings, roles: Sequence[str] | None = None,
            layer: int | None = None, extremes_k: int = 10) -> PersonaSpace:
    found = list_roles(activations_dir)
    if roles is None:
        roles = found
    else:
        missing = [r for r in roles if r not in found]
        if missing:
            raise InputError(f"{activations_dir}: --roles names roles with no capture: {', '.join(missing)}")
        if len(set(roles)) != len(roles):
            raise InputError("--roles lists a role twice")
    if DEFAULT_ROLE in roles:
        raise InputError(f"--roles must not include {DEFAULT_ROLE!r} (it is the default vector, not a role)")
    selection = select_roles(activations_dir, roles, settings)
    vectors = compute_vectors(activations_dir, selection)
    if layer is None:
        layer = middle_layer(vectors.layers)
    if layer not in vectors.layers:
        raise InputError(f"--layer {layer} was not captured in {activations_dir} (captured: {vectors.layers})")
    pca = fit_pca(vectors.role_vectors[layer], vectors.roles, vectors.axis[layer])
    per_layer = [layer_summary(lyr, vectors) for lyr in vectors.layers]
    return PersonaSpace(selection=selection, vectors=vectors, pca_layer=layer, pca=pca, per_layer=per_layer,
                        extremes_k=extremes_k, activations_dir=str(activations_dir))


def pc1_extremes(names: Sequence[str], pc1: np.ndarray, k: int) -> dict:
    """Top (high PC1: Assistant-like end) and bottom k roles; ties broken by name."""
    order = sorted(range(len(names)), key=lambda i: (-pc1[i], names[i]))
    k = min(k, len(names))
    top = [{"role": names[i], "pc1": float(pc1[i])} for i in order[:k]]
    bottom = [{"role": names[i], "pc1": float(pc1[i])} for i in reversed(order[-k:])]
    return {"top": top, "bottom": bottom}


def summary_dict(ps: PersonaSpace) -> dict:
    v, pca, layer = ps.vectors, ps.pca, ps.pca_layer
    evr = pca.explained_variance_ratio
    default_pc = ps.default_projection()
    sel = ps.selection
    return {
        "activations_dir": ps.activations_dir,
        "model": v.model,
        "checkpoint": v.checkpoint,
        "aggregation": v.aggregation,
        "layers": v.layers,
        "hidden_dim": int(v.axis[layer].shape[0]),
        "pca_layer": layer,
        "filter": sel.settings.describe(),
        "counts": {
            "roles_considered": len(sel.counts),
            "roles_kept": len(sel.kept),
            "roles_dropped": len(sel.dropped),
            "default_responses": v.default_count,
            "role_responses_used": int(sum(sel.counts[r]["passing"] for r in sel.kept)),
        },
        "pca": {
            "num_components": int(len(evr)),
            "explained_variance_ratio": evr.tolist(),
            "cumulative_explained_variance": np.cumsum(evr).tolist(),
            "components_for": components_for(evr),
            "cos_axis_pc1": cosine(pca.components[0], v.axis[layer]),
            "default_position": {f"pc{i + 1}": relative_position(default_pc[i], pca.scores[:, i])
                                 for i in range(min(3, len(evr)))},
            "pc1_extremes": pc1_extremes(v.roles, pca.scores[:, 0], ps.extremes_k),
        },
        "cos_axis_pc1_by_layer": [{"layer": r["layer"], "cos": r["cos_axis_pc1"]} for r in ps.per_layer],
        "per_layer": ps.per_layer,
        "sign_convention": SIGN_CONVENTION,
        **({"statistics": {"numbers": ps.statistics["numbers"], "settings": ps.statistics["settings"]}}
           if ps.statistics else {}),
    }


SUMMARY_CSV_HEADER = [
    "layer", "axis_norm", "cos_axis_pc1", "explained_variance_pc1", "explained_variance_pc2", "explained_variance_pc3",
    "components_for_70", "components_for_80", "components_for_90", "components_for_95",
    "default_pc1_position", "default_axis_projection", "default_axis_position", "mean_role_axis_projection",
]


def role_projection_rows(ps: PersonaSpace) -> list[dict]:
    v, pca, layer = ps.vectors, ps.pca, ps.pca_layer
    u = unit(v.axis[layer])
    k = min(NUM_REPORTED_PCS, pca.components.shape[0])
    role_pc = pca.project(v.role_vectors[layer], k)
    role_axis = v.role_vectors[layer] @ u
    rows = []
    for i, role in enumerate(v.roles):
        row = {"role": role, "kind": "role", "responses_used": ps.selection.counts[role]["passing"],
               "axis_projection": role_axis[i], "axis_position": relative_position(role_axis[i], role_axis)}
        row.update({f"pc{j + 1}": role_pc[i, j] for j in range(k)})
        rows.append(row)
    d_pc = pca.project(v.default_vector[layer], k)
    d_axis = float(v.default_vector[layer] @ u)
    row = {"role": DEFAULT_ROLE, "kind": "default", "responses_used": v.default_count,
           "axis_projection": d_axis, "axis_position": relative_position(d_axis, role_axis)}
    row.update({f"pc{j + 1}": d_pc[j] for j in range(k)})
    rows.append(row)
    return rows


ROLE_PROJECTIONS_HEADER = ["role", "kind", "responses_used"] + [f"pc{j + 1}" for j in range(NUM_REPORTED_PCS)] + [
    "axis_projection", "axis_position"]


def write_outputs(ps: PersonaSpace, output_dir: str | os.PathLike) -> None:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    v, pca = ps.vectors, ps.pca
    save_layer_tensors(out / "role_vectors.pt", v.role_vectors)
    save_layer_tensors(out / "default_vector.pt", v.default_vector)
    save_layer_tensors(out / "axis.pt", v.axis)
    torch.save({
        "layer": int(ps.pca_layer),
        "components": torch.from_numpy(np.ascontiguousarray(pca.components)),
        "mean": torch.from_numpy(np.ascontiguousarray(pca.mean)),
        "explained_variance_ratio": torch.from_numpy(np.ascontiguousarray(pca.explained_variance_ratio)),
        "singular_values": torch.from_numpy(np.ascontiguousarray(pca.singular_values)),
        "roles": list(v.roles),
    }, out / "pca.pt")
    sel = ps.selection
    write_json(out / "roles.json", {
        "kept": sel.kept,
        "dropped": sel.dropped,
        "counts": sel.counts,
        "filter": sel.settings.describe(),
    })
    write_json(out / "summary.json", summary_dict(ps))
    write_csv(out / "summary.csv", SUMMARY_CSV_HEADER, ps.per_layer)
    write_csv(out / "role_projections.csv", ROLE_PROJECTIONS_HEADER, role_projection_rows(ps))
    null = (ps.statistics or {}).get("null_samples") or {}
    if null:
        keys = sorted(null)
        write_csv(out / "null_samples.csv", ["permutation"] + keys,
                  [{"permutation": i, **{k: null[k][i] for k in keys}} for i in range(len(null[keys[0]]))])


def parse_roles(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    return [r for v in values for r in v.split(",") if r]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-persona-space", description="Role vectors, default vector, Assistant Axis and PCA of one checkpoint.")
    p.add_argument("--activations-dir", required=True, help="capture output of one checkpoint")
    p.add_argument("--scores-dir", default=None, help="judge output (<role>.jsonl); omit for no filter")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--layer", type=int, default=None, help="PCA layer (default: the middle captured layer)")
    p.add_argument("--min-score", type=int, default=3, help="keep responses scored >= this (paper: 3)")
    p.add_argument("--min-count", type=int, default=50, help="drop roles with fewer kept responses (paper: 50)")
    p.add_argument("--roles", nargs="+", default=None, help="roles to analyse (names or comma lists; default: all captured)")
    p.add_argument("--extremes-k", type=int, default=10, help="roles listed at each end of PC1")
    p.add_argument("--permutations", type=int, default=0, help="label-shuffle null draws (0 = none; 1000 resolves p < 0.01)")
    p.add_argument("--bootstrap", type=int, default=0, help="question-bootstrap resamples for 95%% intervals (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles and resamples")
    p.add_argument("--no-resample-prompts", action="store_true", help="resample questions only, not system-prompt slots")
    p.add_argument("--null", choices=("stratified", "plain"), default="stratified",
                   help="label shuffle within each (system-prompt slot, question) cell (default), or across all responses")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.min_score not in (0, 1, 2, 3):
        print(f"error: --min-score must be 0..3, got {args.min_score}", file=sys.stderr)
        return 2
    if args.min_count < 1:
        print(f"error: --min-count must be >= 1, got {args.min_count}", file=sys.stderr)
        return 2
    if args.permutations < 0 or args.bootstrap < 0:
        print("error: --permutations and --bootstrap must be >= 0", file=sys.stderr)
        return 2
    settings = FilterSettings(Path(args.scores_dir) if args.scores_dir else None, args.min_score, args.min_count)
    try:
        ps = analyse(args.activations_dir, settings, parse_roles(args.roles), args.layer, args.extremes_k)
        if args.permutations or args.bootstrap:
            from persona_axis.space_statistics import StatSettings, persona_space_statistics
            ps.statistics = persona_space_statistics(ps, StatSettings(args.permutations, args.bootstrap, args.seed,
                                                                      not args.no_resample_prompts, args.null))
        write_outputs(ps, args.output_dir)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = summary_dict(ps)
    print(f"persona space: {len(ps.selection.kept)} roles kept, {len(ps.selection.dropped)} dropped "
          f"(filter: {settings.mode}); layer {ps.pca_layer}: PC1 explains "
          f"{s['pca']['explained_variance_ratio'][0]:.3f}, cos(axis, PC1) = {s['pca']['cos_axis_pc1']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
