"""Movement of persona space across checkpoints, measured against a reference checkpoint.

Inputs: the ``persona_space`` output of the reference checkpoint (kept roles, filter, PCA) and the
capture directories of all checkpoints, in order (base, SFT, DPO, step_60 ... final).

Common role set and rows: every checkpoint uses exactly the roles kept at the reference, and for each
role exactly the same responses as the reference. All checkpoints are captured on the same transcripts,
so the judge scores (of those transcripts) select the same rows everywhere; ``min_count`` is applied only
at the reference. A checkpoint whose captured responses differ from the reference's is an error (it was
captured on other transcripts), so a role can never silently leave or change the comparison.

Per checkpoint (at the reference's PCA layer unless "by layer"):
its role vectors, default vector and axis (saved as tensors); cos(axis, reference axis) by layer; the
axis norm; the default and role vectors projected on the unit reference axis and on the reference
PC1-PC5 (after subtracting the reference PCA mean); its own PCA (explained variance of PC1-PC3,
components for 70%, cos(own PC1, own axis) by layer, both oriented by the persona_space sign
convention) and the Pearson correlation of its PC1 role projections with the reference's over the
common roles; the shift of each role since the previous checkpoint (L2 distance in activation space and
change of the projection on the reference axis).

Lineages, own-unit and basis-free numbers and the paired bootstrap (``--lineage``, ``--bootstrap``):
:func:`add_statistics`, :mod:`persona_axis.movement_statistics`, docs/statistics.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from persona_axis.activation_io import load_layer_tensors, write_csv, write_json
from persona_axis.capture_format import DEFAULT_ROLE, load_metadata
from persona_axis.errors import InputError
from persona_axis.persona_space import (
    NUM_REPORTED_PCS, SIGN_CONVENTION, CheckpointVectors, FilterSettings, PCAResult, components_for, compute_vectors,
    cosine, fit_pca, relative_position, select_roles, unit,
)

CHECKPOINT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Reference:
    directory: Path
    roles: list[str]
    filter: dict
    counts: dict[str, dict]
    pca_layer: int
    pca: PCAResult
    role_vectors: dict[int, np.ndarray]
    axis: dict[int, np.ndarray]


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: not found; --reference-dir must be a persona_space output directory")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def load_reference(reference_dir: str | os.PathLike) -> Reference:
    d = Path(reference_dir)
    roles_json = _read_json(d / "roles.json")
    summary = _read_json(d / "summary.json")
    for key in ("kept", "filter", "counts"):
        if key not in roles_json:
            raise InputError(f"{d / 'roles.json'}: missing key {key!r}")
    if "pca_layer" not in summary:
        raise InputError(f"{d / 'summary.json'}: missing key 'pca_layer'")
    pca_path = d / "pca.pt"
    if not pca_path.exists():
        raise InputError(f"{pca_path}: not found (run persona_space first)")
    p = torch.load(pca_path, map_location="cpu", weights_only=True)
    roles = list(roles_json["kept"])
    if list(p["roles"]) != roles:
        raise InputError(f"{pca_path}: roles differ from {d / 'roles.json'}; re-run persona_space")
    comps = p["components"].double().numpy()
    mean = p["mean"].double().numpy()
    role_vectors = load_layer_tensors(d / "role_vectors.pt")
    layer = int(summary["pca_layer"])
    centred = role_vectors[layer] - mean
    pca = PCAResult(components=comps, mean=mean, explained_variance_ratio=p["explained_variance_ratio"].double().numpy(),
                    singular_values=p["singular_values"].double().numpy(), scores=centred @ comps.T)
    return Reference(directory=d, roles=roles, filter=dict(roles_json["filter"]), counts=roles_json["counts"],
                     pca_layer=layer, pca=pca, role_vectors=role_vectors, axis=load_layer_tensors(d / "axis.pt"))


def parse_checkpoint(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise InputError(f"--checkpoint {spec!r}: expected NAME=ACTIVATIONS_DIR")
    if not CHECKPOINT_NAME.match(name):
        raise InputError(f"--checkpoint {spec!r}: name must match {CHECKPOINT_NAME.pattern}")
    return name, Path(path)


def filter_settings(reference: Reference, scores_dir: str | os.PathLike | None) -> FilterSettings:
    """The reference's filter, applied with min_count 0 (the rows must equal the reference's anyway)."""
    mode = reference.filter.get("filter")
    if mode == "judge" and scores_dir is None:
        raise InputError(f"{reference.directory / 'roles.json'}: the reference used the judge filter "
                         f"(min_score {reference.filter.get('min_score')}); pass the same --scores-dir")
    if mode == "none" and scores_dir is not None:
        raise InputError(f"{reference.directory / 'roles.json'}: the reference used no filter; drop --scores-dir "
                         "or re-run persona_space with it")
    min_score = int(reference.filter.get("min_score") or 0)
    return FilterSettings(Path(scores_dir) if scores_dir is not None else None, min_score, 0)


@dataclass
class CheckpointResult:
    name: str
    directory: Path
    vectors: CheckpointVectors
    own_pca: PCAResult
    own_cos_pc1_axis_by_layer: list[float]
    passing_keys: dict


def checkpoint_vectors(name: str, directory: Path, reference: Reference, settings: FilterSettings,
                       layers: Sequence[int]) -> CheckpointResult:
    selection = select_roles(directory, reference.roles, settings)
    empty = [r for r in reference.roles if r not in selection.kept]
    if empty:
        raise InputError(f"checkpoint {name} ({directory}): no responses pass the reference filter for roles "
                         f"{', '.join(empty)}; were they captured on the reference transcripts?")
    vectors = compute_vectors(directory, selection, layers)
    own = fit_pca(vectors.role_vectors[reference.pca_layer], vectors.roles, vectors.axis[reference.pca_layer])
    by_layer = []
    for layer in vectors.layers:
        p = own if layer == reference.pca_layer else fit_pca(vectors.role_vectors[layer], vectors.roles, vectors.axis[layer])
        by_layer.append(cosine(p.components[0], vectors.axis[layer]))
    return CheckpointResult(name=name, directory=directory, vectors=vectors, own_pca=own,
                            own_cos_pc1_axis_by_layer=by_layer, passing_keys=selection.passing_keys)


def common_layers(directories: Sequence[Path]) -> list[int]:
    sets = [set(load_metadata(d, DEFAULT_ROLE).layers) for d in directories]
    return sorted(set.intersection(*sets))


def check_reference_consistency(ref: CheckpointResult, reference: Reference) -> None:
    """The reference checkpoint's recomputed vectors must reproduce the persona_space output."""
    for role in reference.roles:
        want = reference.counts.get(role, {}).get("passing")
        got = len(ref.passing_keys[role])
        if want is not None and want != got:
            raise InputError(f"reference checkpoint {ref.name}: role {role!r} has {got} passing responses, "
                             f"{reference.directory / 'roles.json'} says {want}; use the same activations and scores")
    layer = reference.pca_layer
    for mine, theirs, what in ((ref.vectors.role_vectors[layer], reference.role_vectors[layer], "role_vectors.pt"),
                               (ref.vectors.axis[layer], reference.axis[layer], "axis.pt")):
        tol = 1e-4 * max(1.0, float(np.abs(theirs).max()))
        if mine.shape == theirs.shape and float(np.abs(mine - theirs).max()) <= tol:
            continue
        raise InputError(f"reference checkpoint {ref.name} ({ref.directory}) does not reproduce "
                         f"{reference.directory / what} at layer {layer}; --reference-checkpoint must name "
                         "the checkpoint persona_space was run on")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float("nan") if den == 0 else float(a @ b / den)


@dataclass
class Movement:
    reference: Reference
    reference_name: str
    layers: list[int]
    rows: list[dict]
    role_rows: list[dict]
    results: list[CheckpointResult]
    lineages: dict[str, str] = field(default_factory=dict)
    #: persona_axis.movement_statistics.MovementStatistics, once add_statistics ran.
    statistics: object = None


def analyse_movement(reference: Reference, checkpoints: Sequence[tuple[str, Path]], scores_dir: str | os.PathLike | None,
                     reference_name: str | None = None) -> Movement:
    if not checkpoints:
        raise InputError("give at least one --checkpoint NAME=ACTIVATIONS_DIR")
    names = [n for n, _ in checkpoints]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"--checkpoint names repeat: {', '.join(dupes)}")
    reference_name = reference_name or names[-1]
    if reference_name not in names:
        raise InputError(f"--reference-checkpoint {reference_name!r} is not one of the --checkpoint names {names}")
    settings = filter_settings(reference, scores_dir)
    layers = common_layers([d for _, d in checkpoints])
    L = reference.pca_layer
    if L not in layers:
        raise InputError(f"the reference PCA layer {L} is not captured at every checkpoint (common layers: {layers})")
    dirs = dict(checkpoints)
    ref = checkpoint_vectors(reference_name, dirs[reference_name], reference, settings, layers)
    check_reference_consistency(ref, reference)
    ref_units = {layer: unit(ref.vectors.axis[layer]) for layer in layers}
    u = ref_units[L]
    k = min(NUM_REPORTED_PCS, reference.pca.components.shape[0])
    ref_pc1 = reference.pca.project(ref.vectors.role_vectors[L], 1)[:, 0]
    roles = reference.roles

    rows: list[dict] = []
    role_rows: list[dict] = []
    results: list[CheckpointResult] = []
    prev: CheckpointResult | None = None
    for index, (name, directory) in enumerate(checkpoints):
        cur = ref if name == reference_name else checkpoint_vectors(name, directory, reference, settings, layers)
        if cur is not ref:
            for role in roles:
                if cur.passing_keys[role] != ref.passing_keys[role]:
                    raise InputError(f"checkpoint {name} ({directory}): role {role!r} selects other responses than the "
                                     f"reference {reference_name}; all checkpoints must be captured on the same transcripts")
        v = cur.vectors
        role_axis = v.role_vectors[L] @ u
        default_axis = float(v.default_vector[L] @ u)
        role_pc = reference.pca.project(v.role_vectors[L], k)
        default_pc = reference.pca.project(v.default_vector[L], k)
        own = cur.own_pca
        evr = own.explained_variance_ratio
        row = {
            "index": index, "checkpoint": name, "is_reference": name == reference_name,
            "model": v.model, "revision": v.checkpoint, "activations_dir": str(directory),
            "axis_norm": float(np.linalg.norm(v.axis[L])),
            "axis_norm_by_layer": [float(np.linalg.norm(v.axis[layer])) for layer in layers],
            "cos_axis_ref": cosine(v.axis[L], ref.vectors.axis[L]),
            "cos_axis_ref_by_layer": [cosine(v.axis[layer], ref.vectors.axis[layer]) for layer in layers],
            "default_axis_projection": default_axis,
            "default_axis_position": relative_position(default_axis, role_axis),
            "mean_role_axis_projection": float(role_axis.mean()),
            "own_components_for_70": components_for(evr, (0.70,))["70"],
            "own_cos_pc1_axis": cosine(own.components[0], v.axis[L]),
            "own_cos_pc1_axis_by_layer": cur.own_cos_pc1_axis_by_layer,
            "cos_own_pc1_ref_pc1": cosine(own.components[0], reference.pca.components[0]),
            "pc1_loading_corr_ref": pearson(own.scores[:, 0], ref_pc1),
        }
        for j in range(k):
            row[f"default_pc{j + 1}"] = float(default_pc[j])
        for j in range(3):
            row[f"own_explained_variance_pc{j + 1}"] = float(evr[j]) if j < len(evr) else None
        if prev is None:
            shift_l2 = np.full(len(roles), np.nan)
            shift_axis = np.full(len(roles), np.nan)
            default_shift = float("nan")
        else:
            pv = prev.vectors
            shift_l2 = np.linalg.norm(v.role_vectors[L] - pv.role_vectors[L], axis=1)
            shift_axis = role_axis - pv.role_vectors[L] @ u
            default_shift = default_axis - float(pv.default_vector[L] @ u)
        row["mean_role_shift_l2"] = float(shift_l2.mean()) if prev is not None else None
        row["mean_role_shift_axis"] = float(shift_axis.mean()) if prev is not None else None
        row["default_shift_axis"] = default_shift if prev is not None else None
        rows.append(row)
        for i, role in enumerate(roles):
            rr = {"checkpoint": name, "index": index, "role": role, "kind": "role", "axis_projection": role_axis[i],
                  "shift_l2": shift_l2[i], "shift_axis": shift_axis[i]}
            rr.update({f"pc{j + 1}": role_pc[i, j] for j in range(k)})
            role_rows.append(rr)
        rr = {"checkpoint": name, "index": index, "role": DEFAULT_ROLE, "kind": "default", "axis_projection": default_axis,
              "shift_l2": (float(np.linalg.norm(v.default_vector[L] - prev.vectors.default_vector[L])) if prev else None),
              "shift_axis": default_shift}
        rr.update({f"pc{j + 1}": default_pc[j] for j in range(k)})
        role_rows.append(rr)
        results.append(cur)
        prev = cur
    return Movement(reference=reference, reference_name=reference_name, layers=layers, rows=rows,
                    role_rows=role_rows, results=results)


#: Columns that add_statistics fills (own-unit and basis-free numbers; see persona_axis.lineage).
STAT_COLUMNS = ["own_unit_axis_norm", "own_unit_default_axis", "own_unit_role_shift", "own_default_pc1_position",
                "abs_cos_own_pc2_ref_pc2", "abs_cos_own_pc3_ref_pc3", "pc2_abs_loading_corr_ref",
                "pc3_abs_loading_corr_ref", "cka_ref", "rsa_ref"]
#: Raw columns that need the reference's basis (blanked for another lineage), and the previous one's.
REF_BASIS_COLUMNS = ["axis_norm", "cos_axis_ref", "default_axis_projection", "default_axis_position",
                     "mean_role_axis_projection", "cos_own_pc1_ref_pc1", "mean_role_shift_axis", "default_shift_axis"]
PREV_BASIS_COLUMNS = ["mean_role_shift_l2", "mean_role_shift_axis", "default_shift_axis"]


def add_statistics(m: Movement, checkpoints: Sequence[tuple[str, Path]], scores_dir, lineages: dict[str, str],
                   settings) -> None:
    """Lineage rules, own-unit and basis-free numbers, and (settings.bootstrap > 0) paired intervals."""
    from persona_axis.movement_statistics import movement_statistics
    st = movement_statistics(list(checkpoints), m.reference_name, m.reference.roles, filter_settings(m.reference, scores_dir),
                             m.reference.pca_layer, m.reference.pca.components, lineages, settings)
    m.lineages, m.statistics = dict(lineages), st
    names = [r["checkpoint"] for r in m.rows]
    ref_lineage = lineages[m.reference_name]
    for i, row in enumerate(m.rows):
        name = row["checkpoint"]
        row["lineage"] = lineages[name]
        row["shared_basis_with_reference"] = lineages[name] == ref_lineage
        row.update({k: st.values[name][k] for k in STAT_COLUMNS})
        blank = []
        if lineages[name] != ref_lineage:
            blank += REF_BASIS_COLUMNS + [c for c in row if c.startswith("default_pc")]
            row["cos_axis_ref_by_layer"] = [None] * len(row["cos_axis_ref_by_layer"])
        if i > 0 and lineages[name] != lineages[names[i - 1]]:
            blank += PREV_BASIS_COLUMNS
        for c in blank:
            row[c] = None
    for rr in m.role_rows:
        name = rr["checkpoint"]
        rr["cos_ref_centred"] = st.role_cos_ref.get(name, {}).get(rr["role"])
        if lineages[name] != ref_lineage:
            for c in [c for c in rr if c.startswith("pc") or c in ("axis_projection", "shift_axis", "shift_l2")]:
                rr[c] = None


def movement_csv_header(layers: Sequence[int], k: int) -> list[str]:
    return (["index", "checkpoint", "is_reference", "lineage", "model", "revision", "axis_norm", "cos_axis_ref",
             "default_axis_projection", "default_axis_position", "mean_role_axis_projection"]
            + [f"default_pc{j + 1}" for j in range(k)]
            + ["own_explained_variance_pc1", "own_explained_variance_pc2", "own_explained_variance_pc3",
               "own_components_for_70", "own_cos_pc1_axis", "cos_own_pc1_ref_pc1", "pc1_loading_corr_ref",
               "mean_role_shift_l2", "mean_role_shift_axis", "default_shift_axis"] + STAT_COLUMNS
            + [f"cos_axis_ref_L{layer}" for layer in layers]
            + [f"own_cos_pc1_axis_L{layer}" for layer in layers])


def write_outputs(m: Movement, output_dir: str | os.PathLike) -> None:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = min(NUM_REPORTED_PCS, m.reference.pca.components.shape[0])
    csv_rows = []
    for row in m.rows:
        r = dict(row)
        for i, layer in enumerate(m.layers):
            r[f"cos_axis_ref_L{layer}"] = row["cos_axis_ref_by_layer"][i]
            r[f"own_cos_pc1_axis_L{layer}"] = row["own_cos_pc1_axis_by_layer"][i]
        csv_rows.append(r)
    write_csv(out / "movement.csv", movement_csv_header(m.layers, k), csv_rows)
    write_json(out / "movement.json", {
        "reference_checkpoint": m.reference_name,
        "reference_dir": str(m.reference.directory),
        "pca_layer": m.reference.pca_layer,
        "layers": m.layers,
        "roles": m.reference.roles,
        "filter": m.reference.filter,
        "rows_note": ("every checkpoint uses the roles kept at the reference and the same responses (same transcripts "
                      "and judge scores); min_count is applied only at the reference"),
        "sign_convention": SIGN_CONVENTION,
        "checkpoints": m.rows,
        "lineages": m.lineages,
        "refused": m.statistics.refusals if m.statistics is not None else [],
        "statistics": m.statistics.settings if m.statistics is not None else None,
    })
    write_csv(out / "roles_by_checkpoint.csv",
              ["index", "checkpoint", "role", "kind", "axis_projection"] + [f"pc{j + 1}" for j in range(k)]
              + ["shift_l2", "shift_axis", "cos_ref_centred"], m.role_rows)
    if m.statistics is not None:
        from persona_axis.movement_statistics import write_statistics
        write_statistics(m.statistics, out)
    vec_dir = out / "vectors"
    vec_dir.mkdir(exist_ok=True)
    for res in m.results:
        v = res.vectors
        as_t = lambda d: {int(layer): torch.from_numpy(np.ascontiguousarray(x)).float() for layer, x in sorted(d.items())}  # noqa: E731
        torch.save({"roles": list(v.roles), "layers": list(v.layers), "role_vectors": as_t(v.role_vectors),
                    "default_vector": as_t(v.default_vector), "axis": as_t(v.axis)}, vec_dir / f"{res.name}.pt")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-movement", description="Project every checkpoint's persona space onto the reference's.")
    p.add_argument("--reference-dir", required=True, help="persona_space output of the reference checkpoint")
    p.add_argument("--checkpoint", action="append", required=True, metavar="NAME=ACTIVATIONS_DIR",
                   help="a checkpoint's capture directory; repeat, in order (base, SFT, ..., final)")
    p.add_argument("--scores-dir", default=None, help="judge output used by the reference (required if it filtered)")
    p.add_argument("--reference-checkpoint", default=None, help="the checkpoint persona_space ran on (default: the last)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--lineage", action="append", default=None, metavar="NAME=LINEAGE",
                   help="the pretraining run a checkpoint belongs to (default: main); shared-basis numbers are refused "
                        "across lineages")
    p.add_argument("--bootstrap", type=int, default=0, help="paired question-bootstrap resamples (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resamples (the same for every checkpoint)")
    p.add_argument("--no-resample-prompts", action="store_true", help="resample questions only, not system-prompt slots")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        checkpoints = [parse_checkpoint(s) for s in args.checkpoint]
        reference = load_reference(args.reference_dir)
        m = analyse_movement(reference, checkpoints, args.scores_dir, args.reference_checkpoint)
        from persona_axis.lineage import parse_lineages
        from persona_axis.space_statistics import StatSettings
        if args.bootstrap < 0:
            raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
        lineages = parse_lineages(args.lineage, [n for n, _ in checkpoints])
        add_statistics(m, checkpoints, args.scores_dir, lineages,
                       StatSettings(0, args.bootstrap, args.seed, not args.no_resample_prompts))
        write_outputs(m, args.output_dir)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for msg in m.statistics.refusals:
        print(f"note: {msg}", file=sys.stderr)
    f = lambda x: "   n/a" if x is None else f"{x:+.3f}"  # noqa: E731
    for row in m.rows:
        print(f"{row['checkpoint']:>16}: cos(axis, ref) {f(row['cos_axis_ref'])}  default on ref axis "
              f"{f(row['default_axis_projection'])}  PC1 corr {f(row['pc1_loading_corr_ref'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
