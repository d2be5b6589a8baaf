"""causal: the steering curves, slopes, transfer matrix and capping trade-off of every checkpoint, with
paired bootstrap intervals.

Units: the (role, question) prompts of the shared subset (every steer/cap run uses the same ones; this
is checked). One weight matrix - roles and questions drawn with replacement, a prompt weighted by
(times its role drawn) x (times its question drawn), seeded - is applied to every checkpoint,
direction, alpha and cap, so every difference (alpha vs 0, a control vs the axis, checkpoint vs
checkpoint) is paired. Unscored responses are left out of both numerator and denominator.

- P(score 3) and the mean judge score per (checkpoint, direction, alpha); alpha 0 is the shared
  unsteered run.
- Slope at 0: least-squares slope over the alphas with |alpha| <= the smallest non-zero |alpha| (for
  alphas -1, 0, 1: (y(1) - y(-1)) / 2), per resample; the controls' slopes also minus the primary's.
- Transfer matrix: slope of the mean score when checkpoint i's axis steers checkpoint j, within one
  lineage; pairs across lineages are refused (``lineage``), as movement refuses shared-basis numbers.
- Capping: per checkpoint and cap (percentile), mean score and P(3) on the role and jailbreak prompts,
  and the perplexity of the checkpoint's own uncapped default responses under the cap (and its ratio
  to the uncapped perplexity; questions resampled).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from persona_axis.activation_io import write_csv, write_json
from persona_axis.causal_runs import GENERATIONS, SCORES, parse_named
from persona_axis.errors import InputError
from persona_axis.lineage import parse_lineages, refusal
from persona_axis.space_statistics import percentile_interval
from persona_axis.transcripts import read_records

CURVE_HEADER = ["checkpoint", "lineage", "direction", "kind", "alpha", "n_scored", "mean_score", "mean_score_ci_low",
                "mean_score_ci_high", "p3", "p3_ci_low", "p3_ci_high"]
SLOPE_HEADER = ["checkpoint", "direction", "kind", "metric", "slope", "ci_low", "ci_high", "minus_primary",
                "minus_primary_ci_low", "minus_primary_ci_high"]
TRANSFER_HEADER = ["source", "target", "lineage", "slope_mean_score", "ci_low", "ci_high", "refused"]
CAP_HEADER = ["checkpoint", "condition", "percentile", "prompts", "n_scored", "mean_score", "mean_score_ci_low",
              "mean_score_ci_high", "p3", "p3_ci_low", "p3_ci_high", "perplexity", "perplexity_ratio",
              "perplexity_ratio_ci_low", "perplexity_ratio_ci_high"]


def _read(d: Path) -> tuple[dict, dict[str, dict], dict[str, int | None]]:
    plan_f = d / "plan.json"
    if not plan_f.exists():
        raise InputError(f"{plan_f}: not found (run the steer/cap stage first)")
    plan = json.loads(plan_f.read_text(encoding="utf-8"))
    gens = {r["key"]: r for r in read_records(d / GENERATIONS, required=("key",), error=InputError)}
    scores = {r["key"]: r.get("score") for r in read_records(d / SCORES, required=("key",), error=InputError)}
    return plan, gens, scores


def _units(plan: dict) -> list[tuple[str, int]]:
    return sorted({(p["role"], p["question_idx"]) for p in plan["prompts"] if p["kind"] == "role"})


def unit_weights(units: list[tuple[str, int]], n_boot: int, seed: int) -> np.ndarray:
    """(1 + n_boot, units): row 0 all ones (the point estimate), then role x question resamples."""
    rng = np.random.default_rng(int(seed))
    roles = sorted({r for r, _ in units})
    qs = sorted({q for _, q in units})
    wr = rng.multinomial(len(roles), np.full(len(roles), 1 / len(roles)), size=n_boot)
    wq = rng.multinomial(len(qs), np.full(len(qs), 1 / len(qs)), size=n_boot)
    ri = np.array([roles.index(r) for r, _ in units])
    qi = np.array([qs.index(q) for _, q in units])
    return np.vstack([np.ones(len(units)), wr[:, ri] * wq[:, qi]])


def stat_samples(scores: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """scores: (units,) float with NaN for unscored. -> mean score and P(3) per weight row."""
    m = np.isfinite(scores)
    s = np.where(m, scores, 0.0)
    den = W @ m
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"mean_score": (W @ s) / den, "p3": (W @ (m & (s == 3))) / den}


def _ci(x: np.ndarray) -> tuple[float, float]:
    x = x[1:]
    x = x[np.isfinite(x)]
    return percentile_interval(x) if len(x) > 1 else (float("nan"), float("nan"))


def slope_samples(alphas: list[float], ys: dict[float, np.ndarray]) -> np.ndarray:
    nz = [abs(a) for a in alphas if a != 0]
    if not nz:
        return np.full_like(ys[alphas[0]], np.nan)
    near = [a for a in alphas if abs(a) <= min(nz)]
    A = np.array(near)
    Y = np.stack([ys[a] for a in near])  # (k, B)
    Ac = A - A.mean()
    return (Ac[:, None] * (Y - Y.mean(0))).sum(0) / (Ac ** 2).sum()


def _scores_for(plan: dict, gens: dict, scores: dict, condition: str, units: list, kind: str = "role") -> np.ndarray:
    out = np.full(len(units), np.nan)
    by = {}
    for p in plan["prompts"]:
        if p["kind"] == kind:
            by[(p["role"], p["question_idx"])] = f"{condition}|{kind}|{p['role']}|{p['system_prompt_idx']}|{p['question_idx']}"
    for i, u in enumerate(units):
        k = by.get(u)
        if k is None or k not in gens:
            raise InputError(f"generation {k or u} missing: rerun its steer/cap stage")
        sc = scores.get(k)
        out[i] = np.nan if sc is None else float(sc)
    return out


def steering(steer_dirs: dict[str, Path], lineages: dict[str, str], W: np.ndarray, units: list) -> dict:
    curves, slopes, transfer = [], [], []
    slope_of: dict[tuple[str, str], np.ndarray] = {}
    for name, d in steer_dirs.items():
        plan, gens, scores = _read(d)
        alphas = [float(a) for a in plan["alphas"]]
        primary = plan["primary"]
        per_dir: dict[str, dict[str, np.ndarray]] = {}
        for direction, info in plan["directions"].items():
            ys: dict[str, dict[float, np.ndarray]] = {"mean_score": {}, "p3": {}}
            for al in alphas:
                cond = "none" if al == 0 else f"steer|{direction}|{al:g}"
                sc = _scores_for(plan, gens, scores, cond, units)
                st = stat_samples(sc, W)
                for k in ys:
                    ys[k][al] = st[k]
                curves.append({"checkpoint": name, "lineage": lineages[name], "direction": direction,
                               "kind": info["kind"], "alpha": al, "n_scored": int(np.isfinite(sc).sum()),
                               **{f"{k}{s}": v for k in ("mean_score", "p3")
                                  for s, v in zip(("", "_ci_low", "_ci_high"), (st[k][0], *_ci(st[k])))}})
            per_dir[direction] = {k: slope_samples(alphas, ys[k]) for k in ys}
            if info["kind"] == "axis":
                slope_of[(info["source"], name)] = per_dir[direction]["mean_score"]
        for direction, info in plan["directions"].items():
            for k in ("mean_score", "p3"):
                s = per_dir[direction][k]
                diff = s - per_dir[primary][k]
                lo, hi = _ci(s)
                dlo, dhi = _ci(diff)
                slopes.append({"checkpoint": name, "direction": direction, "kind": info["kind"], "metric": k,
                               "slope": s[0], "ci_low": lo, "ci_high": hi,
                               **({} if direction == primary else {"minus_primary": diff[0], "minus_primary_ci_low": dlo,
                                                                   "minus_primary_ci_high": dhi})})
    names = list(steer_dirs)
    for src in names:
        for tgt in names:
            why = refusal(tgt, lineages[tgt], src, lineages[src], "transfer")
            s = slope_of.get((src, tgt))
            row = {"source": src, "target": tgt, "lineage": lineages[tgt], "refused": why}
            if why is None and s is not None:
                lo, hi = _ci(s)
                row.update({"slope_mean_score": s[0], "ci_low": lo, "ci_high": hi})
            if why is not None or s is not None:
                transfer.append(row)
    return {"curves": curves, "slopes": slopes, "transfer": transfer}


def capping(cap_dirs: dict[str, Path], W: np.ndarray, units: list, n_boot: int, seed: int) -> list[dict]:
    rows = []
    for name, d in cap_dirs.items():
        plan, gens, scores = _read(d)
        if _units(plan) != units:
            raise InputError(f"{d / 'plan.json'}: its prompts differ from the steer runs'; use one steering/capping subset")
        ppl_f = d / "perplexity.json"
        ppl = json.loads(ppl_f.read_text(encoding="utf-8")) if ppl_f.exists() else {}
        keys = sorted(ppl.get("none", {}))
        qs = sorted({int(k.split("|")[-1]) for k in keys})
        rng = np.random.default_rng(int(seed) + 1)
        wq = np.vstack([np.ones(len(qs)), rng.multinomial(len(qs), np.full(len(qs), 1 / len(qs)), size=n_boot)]) if qs else None

        def ppl_samples(cond: str) -> np.ndarray | None:
            if wq is None or cond not in ppl:
                return None
            nll = np.array([ppl[cond][k][0] for k in keys])
            tok = np.array([ppl[cond][k][1] for k in keys], dtype=float)
            wk = wq[:, [qs.index(int(k.split("|")[-1])) for k in keys]]
            return np.exp((wk @ nll) / (wk @ tok))

        base_ppl = ppl_samples("none")
        conds = [("none", None)] + [(f"cap|p{q:g}", q) for q in plan["percentiles"]]
        for cond, q in conds:
            pp = ppl_samples(cond)
            ratio = pp / base_ppl if pp is not None and base_ppl is not None else None
            for kind in ("role", "jailbreak"):
                sc = _scores_for(plan, gens, scores, cond, units, kind)
                st = stat_samples(sc, W)
                row = {"checkpoint": name, "condition": cond, "percentile": q, "prompts": kind,
                       "n_scored": int(np.isfinite(sc).sum()),
                       **{f"{k}{s}": v for k in ("mean_score", "p3")
                          for s, v in zip(("", "_ci_low", "_ci_high"), (st[k][0], *_ci(st[k])))}}
                if pp is not None:
                    lo, hi = _ci(ratio)
                    row.update({"perplexity": pp[0], "perplexity_ratio": ratio[0], "perplexity_ratio_ci_low": lo,
                                "perplexity_ratio_ci_high": hi})
                rows.append(row)
    return rows


def analyse(steer_dirs: dict[str, Path], cap_dirs: dict[str, Path], lineages: dict[str, str], n_boot: int,
            seed: int) -> dict:
    if not steer_dirs:
        raise InputError("no --steer runs given")
    plans = {n: json.loads((d / "plan.json").read_text(encoding="utf-8")) for n, d in steer_dirs.items()
             if (d / "plan.json").exists()}
    units = None
    for n, plan in plans.items():
        u = _units(plan)
        if units is None:
            units = u
        elif u != units:
            raise InputError(f"{steer_dirs[n] / 'plan.json'}: its prompts differ from the other checkpoints'; all "
                             "steer runs must share one subset (same steering params)")
    if not units:
        raise InputError("the steer runs hold no role prompts")
    W = unit_weights(units, n_boot, seed)
    st = steering(steer_dirs, lineages, W, units)
    cap_rows = capping(cap_dirs, W, units, n_boot, seed)
    first = next(iter(plans.values()))
    summary = {"checkpoints": list(steer_dirs), "lineages": lineages,
               "primary": {n: p["primary"] for n, p in plans.items()},
               "alphas": first["alphas"], "layers": first["layers"], "scale": first["scale"],
               "prompts": {"roles": len({r for r, _ in units}), "questions": len({q for _, q in units}), "units": len(units)},
               "cap": {n: json.loads((d / "plan.json").read_text(encoding="utf-8"))["tau"] for n, d in cap_dirs.items()},
               "statistics": {"bootstrap": n_boot, "seed": seed, "resampled": "roles and questions of the prompt subset, "
                              "one weight matrix for every checkpoint, direction, alpha and cap (paired)",
                              "interval": "95% percentile"}}
    return {**st, "cap": cap_rows, "summary": summary}


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "steer_curves.csv", CURVE_HEADER, result["curves"])
    write_csv(out / "steer_slopes.csv", SLOPE_HEADER, result["slopes"])
    write_csv(out / "transfer.csv", TRANSFER_HEADER, result["transfer"])
    write_csv(out / "cap_tradeoff.csv", CAP_HEADER, result["cap"])
    write_json(out / "summary.json", result["summary"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-causal", description="Steering and capping statistics (docs/causal.md).")
    p.add_argument("--steer", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--cap", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--lineage", action="append", default=None, metavar="NAME=LINEAGE")
    p.add_argument("--bootstrap", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        steer_dirs = parse_named(a.steer, "--steer")
        cap_dirs = parse_named(a.cap, "--cap")
        lineages = parse_lineages(a.lineage, list(steer_dirs))
        if a.bootstrap < 0:
            raise InputError(f"--bootstrap must be >= 0, got {a.bootstrap}")
        result = analyse(steer_dirs, cap_dirs, lineages, a.bootstrap, a.seed)
        write(result, Path(a.output_dir))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"causal: {len(result['curves'])} curve points, {len(result['cap'])} cap rows -> {a.output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
