"""The report's statistics sections: the label-shuffle null and bootstrap intervals of the reference's
headline numbers, per-checkpoint numbers with paired 95% intervals (error bars) against the
random-init floor and the null band, and the table of paired differences that exclude zero."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np

from persona_axis.activation_io import read_csv

FLOOR_COLOR = "#7f7f7f"
POINT_COLOR = "#4c72b0"
NULL_COLOR = "#dd8452"
HEADLINE_LABELS = {
    "cos_axis_pc1": "cos(Assistant Axis, PC1)",
    "explained_variance_pc1": "PC1 variance fraction",
    "default_pc1_position": "default's position on PC1 (0 = lowest role, 1 = highest)",
    "default_axis_position": "default's position on the axis among the roles",
}
#: Per-checkpoint panels: (metric in intervals.csv, label, headline null it is compared with).
PANELS = [
    ("own_cos_pc1_axis", "cos(own PC1, own axis)", "cos_axis_pc1"),
    ("own_explained_variance_pc1", "own PC1 variance fraction", "explained_variance_pc1"),
    ("own_default_pc1_position", "default's position on own PC1", "default_pc1_position"),
    ("own_unit_axis_norm", "axis norm / own role spread", None),
    ("cka_ref", "linear CKA of role geometry with the reference", None),
    ("own_unit_default_axis", "default on the reference axis (own units)", None),
]
DIFF_METRICS = ("own_cos_pc1_axis", "own_explained_variance_pc1", "own_unit_axis_norm", "own_unit_default_axis",
                "cka_ref", "pc1_loading_corr_ref", "cos_axis_ref", "default_axis_projection", "own_unit_role_shift")


def _n(x) -> float:
    return float("nan") if x in (None, "") else float(x)


def is_floor(row: dict) -> bool:
    return "random-init" in str(row.get("revision", ""))


def plot_nulls(stats: dict, null_rows: list[dict], path: Path, save: Callable) -> None:
    keys = [k for k in HEADLINE_LABELS if k in stats["numbers"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4))
    for ax, k in zip(np.atleast_1d(axes), keys):
        s = stats["numbers"][k]
        null = np.array([_n(r[k]) for r in null_rows]) if null_rows else np.zeros(0)
        null = null[np.isfinite(null)]
        if len(null):
            ax.hist(null, bins=30, color=NULL_COLOR, alpha=0.7, label="label-shuffle null")
        if np.isfinite(_n(s["ci_low"])):
            ax.axvspan(_n(s["ci_low"]), _n(s["ci_high"]), color=POINT_COLOR, alpha=0.25, label="95% bootstrap interval")
        ax.axvline(_n(s["value"]), color=POINT_COLOR, lw=2, label="observed")
        ax.set_title(f"{HEADLINE_LABELS[k]}\np = {_n(s['p_value']):.3g}", fontsize=9)
        ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(fontsize=7, frameon=False, loc="upper left")
    save(fig, path)


def plot_intervals(movement: dict, intervals: list[dict], stats: dict | None, path: Path, save: Callable) -> None:
    names = [c["checkpoint"] for c in movement["checkpoints"]]
    floors = [c["checkpoint"] for c in movement["checkpoints"] if is_floor(c)]
    table = {(r["checkpoint"], r["metric"]): r for r in intervals}
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    x = np.arange(len(names))
    for ax, (metric, label, null_key) in zip(axes.flat, PANELS):
        v = np.array([_n(table.get((n, metric), {}).get("value")) for n in names])
        lo = np.array([_n(table.get((n, metric), {}).get("ci_low")) for n in names])
        hi = np.array([_n(table.get((n, metric), {}).get("ci_high")) for n in names])
        err = np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])
        ax.errorbar(x, v, yerr=np.abs(err), fmt="o", color=POINT_COLOR, capsize=3, ms=4, label="value, 95% interval")
        for f in floors:
            i = names.index(f)
            if np.isfinite(v[i]):
                ax.axhline(v[i], color=FLOOR_COLOR, ls="--", lw=1, label="random-init floor")
                if np.isfinite(lo[i]):
                    ax.axhspan(lo[i], hi[i], color=FLOOR_COLOR, alpha=0.15)
        if stats and null_key and null_key in stats["numbers"]:
            s = stats["numbers"][null_key]
            ax.axhspan(_n(s["null_mean"]), _n(s["null_p95"]), color=NULL_COLOR, alpha=0.2,
                       label="label-shuffle null (mean to 95th pct, reference)")
        ax.set_title(label, fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    save(fig, path)


def _fmt(x, digits: int = 3) -> str:
    v = _n(x)
    return "—" if not np.isfinite(v) else f"{v:.{digits}f}"


def _ci(r: dict) -> str:
    return f"{_fmt(r['value'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"


def sections(stats: dict | None, movement: dict, differences: list[dict], table: Callable, figure: Callable,
             pngs: dict[str, Path]) -> list[str]:
    esc = html.escape
    parts = ["<h2>Is it signal? Nulls, floors and intervals</h2>"]
    if stats:
        st = stats["settings"]
        parts.append(table(["number (reference)", "value [95% interval]", "null mean", "null 95th pct", "p"],
                           [[esc(HEADLINE_LABELS[k]), _ci(s), _fmt(s["null_mean"]), _fmt(s["null_p95"]), _fmt(s["p_value"], 4)]
                            for k, s in stats["numbers"].items()], [False, True, True, True, True]))
        parts.append(f'<p class="note">{st["permutations"]} label shuffles ({esc(st["null"])}); p: {esc(st["p_value"])}. '
                     f'{st["bootstrap"]} bootstrap resamples of {esc(st["resample_unit"])}s (seed {st["seed"]}), '
                     f'{esc(st["ci_method"])} intervals.</p>')
        if "nulls" in pngs:
            parts.append(figure(pngs["nulls"], "null distributions of the headline numbers",
                                "<b>How to read this:</b> orange = what the number looks like when responses are shuffled "
                                "between roles (no persona structure); blue line = observed, blue band = its 95% interval. "
                                "A number is evidence of structure only if the blue band sits clear of the orange mass. "
                                "This null does not ask whether the texts alone produce the structure: see the random-init floor below."))
    if "intervals" in pngs:
        parts.append(figure(pngs["intervals"], "per-checkpoint numbers with intervals",
                            "<b>How to read this:</b> dots with bars = each checkpoint's number with its paired 95% interval "
                            "(questions resampled, the same resamples for every checkpoint). Dashed grey = the random-init "
                            "control (same architecture and transcripts, untrained weights): structure at or below it is "
                            "explained by the texts, not by training. Orange band = the reference's label-shuffle null. "
                            "Own units (centred on the checkpoint's own role mean, divided by its own role spread) make "
                            "a global shift of the residual stream invisible."))
    keep = [d for d in differences if d["metric"] in DIFF_METRICS]
    if keep:
        parts.append("<h3>Paired differences</h3>")
        parts.append('<p class="note"><b>How to read this:</b> the change of a number between two checkpoints with the '
                     "95% interval of the per-resample differences (paired: same questions). ✔ = the interval excludes "
                     "zero. Consecutive rows follow the training order; vs_reference compares each checkpoint with the reference.</p>")
        parts.append(table(["metric", "kind", "from → to", "change [95% interval]", "excludes 0"],
                           [[esc(d["metric"]), esc(d["kind"]), esc(f"{d['from']} → {d['to']}"), _ci(d),
                             "✔" if d["excludes_zero"] == "true" else ""] for d in keep],
                           [False, False, False, True, False]))
    refused = movement.get("refused") or []
    if refused:
        parts.append("<h3>Refused comparisons (different pretraining runs)</h3>")
        parts.append("<ul>" + "".join(f"<li>{esc(m)}</li>" for m in refused) + "</ul>")
    return parts


def load(ps: Path, mv: Path) -> tuple[dict | None, list[dict], list[dict], list[dict]]:
    import json
    summary = json.loads((ps / "summary.json").read_text())
    nulls = read_csv(ps / "null_samples.csv") if (ps / "null_samples.csv").exists() else []
    intervals = read_csv(mv / "intervals.csv") if (mv / "intervals.csv").exists() else []
    diffs = read_csv(mv / "differences.csv") if (mv / "differences.csv").exists() else []
    return summary.get("statistics"), nulls, intervals, diffs
