"""The report's "fixed vs on-policy transcripts" section (the on_policy_compare stage's output,
:mod:`persona_axis.on_policy`): per checkpoint, each headline number on the fixed transcripts and on
the checkpoint's own transcripts, with paired 95% intervals, and their difference.

Reading: fixed moves, on-policy moves alike -> the same text is represented differently; on-policy
moves beyond fixed (the difference's interval excludes 0) -> the behaviour (the text the checkpoint
writes) changed as well."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np

from persona_axis.activation_io import read_csv

FIXED_COLOR = "#4c72b0"
OWN_COLOR = "#c44e52"
LABELS = {
    "own_cos_pc1_axis": "cos(own PC1, own axis)",
    "own_explained_variance_pc1": "own PC1 variance fraction",
    "own_default_pc1_position": "default's position on own PC1",
    "cka_ref": "linear CKA with the reference",
    "rsa_ref": "RSA with the reference",
    "cos_axis_ref": "cos(axis, reference axis)",
    "default_axis_position": "default's position on the reference axis",
}


def _n(x) -> float:
    return float("nan") if x in (None, "") else float(x)


def _fmt(x, digits: int = 3) -> str:
    v = _n(x)
    return "—" if not np.isfinite(v) else f"{v:.{digits}f}"


def _ci(r: dict, key: str) -> str:
    if r.get(key) in (None, ""):
        return "—"
    return f"{_fmt(r[key])} [{_fmt(r[key + '_ci_low'])}, {_fmt(r[key + '_ci_high'])}]"


def load(directory: Path | None) -> tuple[dict | None, list[dict]]:
    if directory is None or not (directory / "summary.json").exists():
        return None, []
    summary = json.loads((directory / "summary.json").read_text())
    rows = read_csv(directory / "comparison.csv") if (directory / "comparison.csv").exists() else []
    return summary, rows


def _bars(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.abs(np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)]))


#: Panels compared with the reference's label-shuffle null (persona_space summary.json statistics).
NULLS = {"own_cos_pc1_axis": "cos_axis_pc1", "own_explained_variance_pc1": "explained_variance_pc1",
         "own_default_pc1_position": "default_pc1_position"}


def plot(summary: dict, rows: list[dict], path: Path, save: Callable, stats: dict | None = None) -> None:
    names = summary.get("order") or list(summary["checkpoints"])
    floors = [n for n in names if summary["checkpoints"][n]["on_policy"] == "skipped"]
    metrics = [m for m in summary["headline_metrics"] if m in LABELS]
    table = {(r["checkpoint"], r["metric"]): r for r in rows}
    cols = 4
    nrow = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(4.2 * cols, 3.4 * nrow), squeeze=False)
    x = np.arange(len(names))
    for ax, m in zip(axes.flat, metrics):
        for key, color, dx, label in (("fixed", FIXED_COLOR, -0.12, "fixed transcripts"),
                                      ("on_policy", OWN_COLOR, 0.12, "own (on-policy) transcripts")):
            get = lambda n, k: _n(table.get((n, m), {}).get(k))  # noqa: E731
            v = np.array([get(n, key) for n in names])
            lo = np.array([get(n, f"{key}_ci_low") for n in names])
            hi = np.array([get(n, f"{key}_ci_high") for n in names])
            ax.errorbar(x + dx, v, yerr=_bars(v, lo, hi), fmt="o", color=color, capsize=3, ms=4, label=label)
        null = (stats or {}).get("numbers", {}).get(NULLS.get(m, ""))
        if null and np.isfinite(_n(null["null_mean"])):
            ax.axhspan(_n(null["null_mean"]), _n(null["null_p95"]), color="#dd8452", alpha=0.2,
                       label="label-shuffle null (reference, mean to 95th pct)")
        for n in floors:
            v = _n(table.get((n, m), {}).get("fixed"))
            if np.isfinite(v):
                ax.axhline(v, color="#7f7f7f", ls="--", lw=1, label=f"{n} (no on-policy run): floor")
        ax.set_title(LABELS[m], fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    save(fig, path)


def section(summary: dict | None, rows: list[dict], table: Callable, figure: Callable, png: Path | None) -> list[str]:
    esc = html.escape
    parts = ["<h2>Same text or changed behaviour? Fixed vs on-policy transcripts</h2>"]
    if summary is None or summary.get("transcripts") != "on_policy":
        parts.append('<p class="note">On-policy variant off (<code>study.transcripts: fixed</code>): every checkpoint '
                     "reads the final checkpoint's transcripts, so every change above is a change in how the same text "
                     "is represented. Set <code>study.transcripts: on_policy</code> to also let each checkpoint write its "
                     "own transcripts and compare (docs/statistics.md).</p>")
        return parts
    skipped = {n: c["reason"] for n, c in summary["checkpoints"].items() if c["on_policy"] == "skipped"}
    parts.append(f'<p class="note">Each checkpoint also generated its own transcripts (same roles, prompts, questions, '
                 f"seeds and sampling; the reference's chat template), judged and captured on itself. Both columns use the "
                 f"{len(summary['roles'])} roles that pass the filter in every checkpoint "
                 f"({esc(', '.join(summary['roles'][:12]))}{'…' if len(summary['roles']) > 12 else ''}) and the same "
                 f"question resamples, so the difference is paired."
                 + (" No on-policy run: " + esc("; ".join(f"{n} ({r})" for n, r in skipped.items())) + "." if skipped else "")
                 + "</p>")
    if png is not None:
        parts.append(figure(png, "fixed vs on-policy numbers per checkpoint",
                            "Blue = on the final checkpoint's (fixed) transcripts, red = on the checkpoint's own transcripts; "
                            "bars = paired 95% intervals; dashed grey = a checkpoint without an on-policy run (the random-init "
                            "control) on the fixed transcripts, the floor; orange band = the reference's label-shuffle null. At the reference the two coincide when its own generation "
                            "reproduces the fixed transcripts. <b>How to read this:</b> where red tracks blue, a change "
                            "across checkpoints is the same text represented differently; where red departs from blue "
                            "(the difference's interval excludes 0 in the table) the checkpoint's behaviour, the text it "
                            "writes in a role, changed too. Shared-basis panels (cos with the reference axis, position "
                            "on it) are blank across pretraining runs."))
    keep = [r for r in rows if r["metric"] in summary["headline_metrics"]]
    parts.append('<p class="note"><b>How to read this:</b> value [95% interval]; difference = own − fixed for the same '
                 "checkpoint, ✔ where its interval excludes zero.</p>")
    parts.append(table(["checkpoint", "metric", "fixed", "on-policy", "on-policy − fixed", "excludes 0"],
                       [[esc(r["checkpoint"]), esc(LABELS.get(r["metric"], r["metric"])), _ci(r, "fixed"),
                         _ci(r, "on_policy"), _ci(r, "difference"),
                         "✔" if r.get("difference_excludes_zero") == "true" else ""] for r in keep],
                       [False, False, True, True, True, False]))
    return parts
