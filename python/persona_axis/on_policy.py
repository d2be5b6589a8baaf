"""Fixed-transcript vs on-policy movement: "the same text is represented differently" against "the
behaviour changed".

Fixed transcripts (the study's default): every checkpoint reads the reference checkpoint's texts, so a
change between checkpoints is a change of representation of the same text. On-policy: every checkpoint
generated its own transcripts (same roles, system prompts, questions, seeds and sampling), which were
judged and captured on that checkpoint, so a change mixes representation and behaviour. Both are
measured here with the same numbers (:mod:`persona_axis.movement_metrics`), on the same roles, under
the same question resamples, so they can be put side by side and differenced:

* Roles: those the reference persona space kept (fixed transcripts, its judge filter) that also pass the
  same filter (min_score, min_count) on every on-policy checkpoint's own transcripts. A role that one
  checkpoint does not play is out of both columns, so neither side's numbers rest on other roles.
* Rows: fixed side, the reference's passing responses at every checkpoint (as ``movement``); on-policy
  side, each checkpoint's own passing responses (its own scores).
* Intervals: one weight matrix (questions and system-prompt slots drawn with replacement, the fixed
  reference's cells) is applied to both sides and every checkpoint, so the interval of
  on-policy - fixed for a checkpoint is paired.
* A checkpoint with no on-policy run (the random-init control: it has no behaviour to follow) keeps
  its fixed numbers; its on-policy column is empty and says why.
* Lineages: shared-basis numbers are refused across pretraining runs on both sides
  (:mod:`persona_axis.lineage`).

Outputs (``--output-dir``): ``summary.json`` (settings, roles, per-checkpoint mode, refusals),
``roles.json`` (per checkpoint: passing counts, kept and dropped roles), ``comparison.csv`` (one row
per checkpoint x metric: fixed, on-policy, difference, each with its 95% interval).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from persona_axis.activation_io import write_csv, write_json
from persona_axis.errors import InputError
from persona_axis.lineage import parse_lineages
from persona_axis.movement import load_reference, parse_checkpoint
from persona_axis.movement_statistics import METRICS, _basis, blank_refused, movement_samples
from persona_axis.persona_space import FilterSettings, select_roles
from persona_axis.space_statistics import StatSettings, percentile_interval

#: The numbers the report puts side by side (every METRICS number is in comparison.csv).
HEADLINE = ("own_cos_pc1_axis", "own_explained_variance_pc1", "own_default_pc1_position", "cka_ref", "rsa_ref",
            "cos_axis_ref", "default_axis_position")
COMPARISON_HEADER = ["checkpoint", "lineage", "metric", "basis", "fixed", "fixed_ci_low", "fixed_ci_high",
                     "on_policy", "on_policy_ci_low", "on_policy_ci_high", "difference", "difference_ci_low",
                     "difference_ci_high", "difference_excludes_zero"]


def common_roles(candidates: list[str], own: dict[str, Path], own_scores: dict[str, Path | None], min_score: int,
                 min_count: int) -> tuple[list[str], dict[str, dict]]:
    """The candidates that pass the filter on every on-policy checkpoint's own transcripts."""
    per: dict[str, dict] = {}
    keep = set(candidates)
    for name, acts in own.items():
        sel = select_roles(acts, candidates, FilterSettings(own_scores[name], min_score, min_count))
        per[name] = {"kept": sel.kept, "dropped": sel.dropped, "counts": sel.counts}
        keep &= set(sel.kept)
    return [r for r in candidates if r in keep], per


def _summary(samples: np.ndarray) -> tuple[float, float, float]:
    lo, hi = percentile_interval(samples[1:]) if len(samples) > 1 else (float("nan"), float("nan"))
    return float(samples[0]), lo, hi


def compare(reference_dir: Path, fixed: list[tuple[str, Path]], fixed_scores: Path | None, own: dict[str, Path],
            own_scores: dict[str, Path | None], lineages: dict[str, str], settings: StatSettings,
            reference_name: str = "final", skipped: dict[str, str] | None = None) -> dict:
    skipped = dict(skipped or {})
    ref = load_reference(reference_dir)
    names = [n for n, _ in fixed]
    if reference_name not in own:
        raise InputError(f"the reference checkpoint {reference_name} has no on-policy run; it is the on-policy reference")
    unknown = sorted(set(own) - set(names))
    if unknown:
        raise InputError(f"on-policy checkpoints {unknown} are not among the fixed-transcript checkpoints {names}")
    missing = [n for n in names if n not in own and n not in skipped]
    if missing:
        raise InputError(f"checkpoints {missing} have neither an on-policy run nor a reason to skip one")
    min_score = int(ref.filter.get("min_score") or 0)
    min_count = int(ref.filter.get("min_count") or 0)
    if ref.filter.get("filter") == "judge":
        if fixed_scores is None or any(own_scores.get(n) is None for n in own):
            raise InputError(f"{reference_dir / 'roles.json'}: the reference used the judge filter; give the fixed "
                             "scores and every on-policy checkpoint's scores")
    else:
        fixed_scores, own_scores = None, {n: None for n in own}
    roles, per = common_roles(list(ref.roles), own, own_scores, min_score, min_count)
    if len(roles) < 3:
        raise InputError(f"only {len(roles)} role(s) ({', '.join(roles) or 'none'}) pass the filter on every on-policy "
                         "checkpoint; need at least 3 for an axis and a PCA (lower judge.min_count or drop a checkpoint)")
    layer = ref.pca_layer
    align = ref.pca.components
    fixed_fs = FilterSettings(fixed_scores, min_score, 0)
    fx, _, W = movement_samples(fixed, reference_name, roles, fixed_fs, layer, align, settings)
    own_list = [(n, own[n]) for n in names if n in own]
    own_fs = {n: FilterSettings(own_scores[n], min_score, 0) for n in own}
    try:
        op, _, _ = movement_samples(own_list, reference_name, roles, own_fs, layer, align, settings, weights=W)
    except RuntimeError as e:  # the cell grids differ: other questions or system prompts
        raise InputError(f"on-policy transcripts of {reference_name} do not cover the same system prompts x questions "
                         f"as the fixed ones ({e}); generate them with the same roles and questions") from None
    refused = blank_refused(names, reference_name, lineages, fx)
    blank_refused([n for n, _ in own_list], reference_name, {n: lineages[n] for n, _ in own_list}, op)
    rows = []
    for n in names:
        for k in METRICS:
            f, flo, fhi = _summary(fx[n][k])
            row = {"checkpoint": n, "lineage": lineages[n], "metric": k, "basis": _basis(k),
                   "fixed": f, "fixed_ci_low": flo, "fixed_ci_high": fhi}
            if n in op:
                o, olo, ohi = _summary(op[n][k])
                d, dlo, dhi = _summary(op[n][k] - fx[n][k])
                row.update({"on_policy": o, "on_policy_ci_low": olo, "on_policy_ci_high": ohi, "difference": d,
                            "difference_ci_low": dlo, "difference_ci_high": dhi,
                            "difference_excludes_zero": bool(dlo > 0 or dhi < 0) if np.isfinite(dlo) else None})
            if not np.isfinite(row["fixed"]) and not np.isfinite(row.get("on_policy", float("nan"))):
                continue
            rows.append(row)
    return {
        "rows": rows,
        "summary": {
            "transcripts": "on_policy",
            "reference_checkpoint": reference_name,
            "order": names,
            "reference_dir": str(reference_dir),
            "pca_layer": layer,
            "roles": roles,
            "roles_note": "roles kept by the reference persona space (fixed transcripts) that also pass the same "
                          "judge filter on every on-policy checkpoint's own transcripts; both columns use only these",
            "filter": {"filter": ref.filter.get("filter"), "min_score": min_score, "min_count": min_count},
            "checkpoints": {n: ({"on_policy": "own transcripts", "activations_dir": str(own[n])} if n in own
                                else {"on_policy": "skipped", "reason": skipped[n]}) for n in names},
            "lineages": lineages,
            "refused": refused,
            "headline_metrics": list(HEADLINE),
            "statistics": {**settings.describe(), "pairing": "the same question / prompt-slot resamples for both "
                           "columns and every checkpoint; the difference's interval is of the per-resample differences"},
        },
        "roles_json": {"candidates": list(ref.roles), "common": roles, "per_checkpoint": per},
    }


def write_comparison(result: dict, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "summary.json", result["summary"])
    write_json(output_dir / "roles.json", result["roles_json"])
    write_csv(output_dir / "comparison.csv", COMPARISON_HEADER, result["rows"])


def _named_dirs(specs: Sequence[str] | None, what: str) -> dict[str, Path]:
    out = {}
    for s in specs or []:
        name, p = parse_checkpoint(s)
        if name in out:
            raise InputError(f"{what} {name} given twice")
        out[name] = p
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-on-policy", description="Fixed-transcript and on-policy movement, side by side (docs/statistics.md).")
    p.add_argument("--reference-dir", required=True, help="persona_space output (fixed transcripts) of the reference")
    p.add_argument("--checkpoint", action="append", required=True, metavar="NAME=ACTIVATIONS_DIR",
                   help="a checkpoint's capture of the fixed transcripts; repeat, in order")
    p.add_argument("--scores-dir", default=None, help="judge scores of the fixed transcripts (when the reference filtered)")
    p.add_argument("--own", action="append", default=[], metavar="NAME=ACTIVATIONS_DIR",
                   help="a checkpoint's capture of its own transcripts")
    p.add_argument("--own-scores", action="append", default=[], metavar="NAME=SCORES_DIR",
                   help="judge scores of a checkpoint's own transcripts")
    p.add_argument("--skip", action="append", default=[], metavar="NAME=REASON", help="a checkpoint without an on-policy run")
    p.add_argument("--reference-checkpoint", default="final")
    p.add_argument("--lineage", action="append", default=None, metavar="NAME=LINEAGE")
    p.add_argument("--bootstrap", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resample-prompts", action="store_true")
    p.add_argument("--output-dir", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        fixed = [parse_checkpoint(s) for s in a.checkpoint]
        own = _named_dirs(a.own, "--own")
        own_scores: dict[str, Path | None] = {n: None for n in own}
        for n, p in _named_dirs(a.own_scores, "--own-scores").items():
            if n not in own:
                raise InputError(f"--own-scores {n}=...: no --own {n}=... given")
            own_scores[n] = p
        skipped = {}
        for s in a.skip:
            n, sep, why = s.partition("=")
            if not sep or not why:
                raise InputError(f"--skip {s!r}: expected NAME=REASON")
            skipped[n] = why
        if a.bootstrap < 0:
            raise InputError(f"--bootstrap must be >= 0, got {a.bootstrap}")
        lineages = parse_lineages(a.lineage, [n for n, _ in fixed])
        result = compare(Path(a.reference_dir), fixed, Path(a.scores_dir) if a.scores_dir else None, own, own_scores,
                         lineages, StatSettings(0, a.bootstrap, a.seed, not a.no_resample_prompts),
                         a.reference_checkpoint, skipped)
        write_comparison(result, Path(a.output_dir))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = result["summary"]
    print(f"on-policy vs fixed: {len(s['roles'])} common roles; "
          + ", ".join(f"{n}: {c['on_policy']}" for n, c in s["checkpoints"].items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
