"""The researchers' report: PNG plots and one self-contained ``index.html`` (plots embedded as data URIs).

Reads the outputs of ``persona_space`` (reference checkpoint) and ``movement`` (all checkpoints).
Figures: variance explained; roles on PC1/PC2 with the default marked; the default and selected roles
along the reference axis across checkpoints; cos(axis, reference axis) and cos(own PC1, own axis) by
checkpoint and layer; and the PC1 extremes and movement tables. Output bytes are deterministic
(no timestamps, PNG without a Software/date entry).
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from persona_axis import report_on_policy, report_statistics  # noqa: E402
from persona_axis.activation_io import read_csv  # noqa: E402
from persona_axis.errors import InputError  # noqa: E402

plt.rcParams.update({
    "svg.hashsalt": "persona-axis",
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
})
PNG_METADATA = {"Software": None}
DEFAULT_COLOR = "#c0392b"
#: tab10 without its red (kept for the default) and grey (kept for the role range).
ROLE_COLORS = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i not in (3, 7)]


def _load_json(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: not found (run the stage that writes it first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise InputError(f"{path}: not found (run the stage that writes it first)")
    return read_csv(path)


def _num(x: str | float | None) -> float:
    if x is None or x == "":
        return float("nan")
    return float(x)


def _save(fig, path: Path) -> None:
    fig.savefig(path, format="png", metadata=PNG_METADATA, bbox_inches="tight")
    plt.close(fig)


# --- figures --------------------------------------------------------------------------------------

def plot_variance(summary: dict, path: Path, max_components: int = 20, stats: dict | None = None) -> None:
    evr = np.array(summary["pca"]["explained_variance_ratio"], dtype=float) * 100
    n = min(max_components, len(evr))
    cum = np.cumsum(evr)[:n]
    x = np.arange(1, n + 1)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.bar(x, evr[:n], color="#4c72b0", label="explained variance of the component")
    ax.plot(x, cum, "o-", color="#dd8452", label="cumulative")
    pc1 = (stats or {}).get("numbers", {}).get("explained_variance_pc1")
    if pc1:
        lo, hi, v = (_num(pc1[k]) * 100 for k in ("ci_low", "ci_high", "value"))
        if np.isfinite(lo):
            ax.errorbar([1], [v], yerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="none", ecolor="black", capsize=5,
                        lw=1.5, label="PC1: 95% bootstrap interval")
        nm, n95 = _num(pc1["null_mean"]) * 100, _num(pc1["null_p95"]) * 100
        if np.isfinite(nm):
            ax.fill_between([0.55, 1.45], [nm, nm], [n95, n95], color="#c44e52", alpha=0.35,
                            label="PC1: label-shuffle null (mean to 95th pct)")
    for t, k in sorted(summary["pca"]["components_for"].items(), key=lambda kv: int(kv[0])):
        ax.axhline(int(t), color="grey", lw=0.6, ls=":")
        ax.text(n + 0.6, int(t), f"{t}%: {k if k is not None else '-'} PCs", va="center", fontsize=8, color="dimgrey")
    ax.set_xlim(0.4, n + 0.6)
    ax.set_ylim(0, 100)
    ax.set_xticks(x)
    ax.set_xlabel("principal component")
    ax.set_ylabel("variance explained (%)")
    ax.set_title(f"Persona space at layer {summary['pca_layer']}: variance explained "
                 f"({summary['counts']['roles_kept']} role vectors, first {n} of {len(evr)} PCs)")
    ax.legend(loc="center right", frameon=False)
    _save(fig, path)


def plot_pc1_pc2(summary: dict, projections: list[dict], path: Path, label_k: int = 6) -> None:
    roles = [r for r in projections if r["kind"] == "role"]
    default = next(r for r in projections if r["kind"] == "default")
    pc1 = np.array([_num(r["pc1"]) for r in roles])
    pc2 = np.array([_num(r.get("pc2")) for r in roles])
    if np.isnan(pc2).all():  # only 2 roles: a single component
        pc2 = np.zeros_like(pc1)
    ax_proj = np.array([_num(r["axis_projection"]) for r in roles])
    evr = summary["pca"]["explained_variance_ratio"]
    fig, ax = plt.subplots(figsize=(9, 7))
    sc = ax.scatter(pc1, pc2, c=ax_proj, cmap="viridis", s=22, alpha=0.85, edgecolors="none")
    cb = fig.colorbar(sc, ax=ax, shrink=0.8)
    cb.set_label("projection on the Assistant Axis (activation units)")
    d1, d2 = _num(default["pc1"]), _num(default.get("pc2"))
    d2 = 0.0 if np.isnan(d2) else d2
    ax.scatter([d1], [d2], marker="*", s=320, color=DEFAULT_COLOR,
               edgecolors="black", linewidths=0.8, zorder=5, label="default Assistant (no system prompt)")
    ax.annotate("default", (d1, d2), xytext=(8, 8),
                textcoords="offset points", color=DEFAULT_COLOR, fontweight="bold")
    order = sorted(range(len(roles)), key=lambda i: (-pc1[i], roles[i]["role"]))
    k = min(label_k, len(roles) // 2)
    span_y = float(np.nanmax(pc2) - np.nanmin(pc2)) or 1.0
    span_x = float(np.nanmax(pc1) - np.nanmin(pc1)) or 1.0
    for side, idx in ((1, order[:k]), (-1, order[len(order) - k:])):
        # labels beside their points, pushed apart vertically so they never overlap
        idx = sorted(idx, key=lambda i: pc2[i])
        ys: list[float] = []
        for i in idx:
            y = float(pc2[i]) if not ys else max(float(pc2[i]), ys[-1] + 0.055 * span_y)
            ys.append(y)
        shift = (ys[-1] - max(float(pc2[i]) for i in idx)) / 2 if ys else 0.0
        for i, y in zip(idx, ys):
            ax.annotate(roles[i]["role"], (pc1[i], pc2[i]), xytext=(pc1[i] + side * 0.06 * span_x, y - shift),
                        fontsize=8, ha="left" if side > 0 else "right", va="center", color="#222222",
                        arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5})
    ax.margins(x=0.18, y=0.08)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"PC1 ({evr[0] * 100:.1f}% of variance; activation units, oriented towards the Assistant)")
    ax.set_ylabel(f"PC2 ({evr[1] * 100:.1f}% of variance)" if len(evr) > 1 else "PC2")
    ax.set_title(f"Roles on PC1/PC2 at the reference ({summary.get('checkpoint') or 'reference'}), layer {summary['pca_layer']}")
    ax.scatter([], [], s=22, color="#3b528b", label="role vector (colour: axis projection)")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.09), ncol=2, frameon=False)
    _save(fig, path)


def default_tracked_roles(summary: dict, n: int = 3) -> list[str]:
    ex = summary["pca"]["pc1_extremes"]
    names = [e["role"] for e in ex["top"][:n]] + [e["role"] for e in ex["bottom"][:n]]
    return list(dict.fromkeys(names))


def plot_axis_movement(movement: dict, by_role: list[dict], tracked: Sequence[str], path: Path,
                       intervals: Sequence[dict] = ()) -> None:
    names = [c["checkpoint"] for c in movement["checkpoints"]]
    x = np.arange(len(names))
    table: dict[str, dict[str, float]] = {}
    for r in by_role:
        table.setdefault(r["role"], {})[r["checkpoint"]] = _num(r["axis_projection"])
    role_names = movement["roles"]
    all_roles = np.array([[table[r][c] for c in names] for r in role_names])
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names) + 4), 5.2))
    ax.fill_between(x, all_roles.min(0), all_roles.max(0), color="#cccccc", alpha=0.5, label="range of all roles")
    ax.plot(x, all_roles.mean(0), ls="--", color="grey", label="mean of all roles")
    for i, role in enumerate(tracked):
        ax.plot(x, [table[role][c] for c in names], "o-", ms=4, lw=1.3, color=ROLE_COLORS[i % len(ROLE_COLORS)], label=role)
    ax.plot(x, [table["default"][c] for c in names], "*-", ms=12, lw=2.4, color=DEFAULT_COLOR, label="default Assistant")
    ci = {r["checkpoint"]: r for r in intervals if r["metric"] == "default_axis_projection"}
    if ci:
        v = np.array([_num(ci.get(c, {}).get("value")) for c in names])
        lo = np.array([_num(ci.get(c, {}).get("ci_low")) for c in names])
        hi = np.array([_num(ci.get(c, {}).get("ci_high")) for c in names])
        ok = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.errorbar(x[ok], v[ok], yerr=np.abs(np.vstack([v[ok] - lo[ok], hi[ok] - v[ok]])), fmt="none",
                        ecolor=DEFAULT_COLOR, capsize=4, lw=1.2, label="default: paired 95% interval")
    ref = movement["reference_checkpoint"]
    if ref in names:
        ax.axvline(names.index(ref), color="black", lw=0.6, ls=":")
        ax.text(names.index(ref), ax.get_ylim()[1], " reference", va="top", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_xlabel("checkpoint (training order)")
    ax.set_ylabel(f"projection on the reference Assistant Axis\n(unit axis, layer {movement['pca_layer']}; activation units)")
    ax.set_title("Default and selected roles along the reference Assistant Axis across checkpoints")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _save(fig, path)


def plot_axis_similarity(movement: dict, path: Path) -> None:
    names = [c["checkpoint"] for c in movement["checkpoints"]]
    layers = movement["layers"]
    a = np.array([c["cos_axis_ref_by_layer"] for c in movement["checkpoints"]], dtype=float)
    b = np.array([c["own_cos_pc1_axis_by_layer"] for c in movement["checkpoints"]], dtype=float)
    width = max(10, 0.32 * len(layers) * 2 + 4)
    fig, axes = plt.subplots(1, 2, figsize=(width, 0.45 * len(names) + 2.6), sharey=True)
    annotate = a.size <= 160
    im = None
    for ax, data, title in ((axes[0], a, "cos(axis, reference axis)"), (axes[1], b, "cos(own PC1, own axis)")):
        im = ax.imshow(data, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels([str(lyr) for lyr in layers], fontsize=8 if len(layers) <= 24 else 6)
        ax.set_xlabel("layer")
        ax.set_title(title)
        if annotate:
            for i in range(data.shape[0]):
                for j in range(data.shape[1]):
                    v = data[i, j]
                    ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 else "black")
        if movement["pca_layer"] in layers:
            j = layers.index(movement["pca_layer"])
            ax.add_patch(plt.Rectangle((j - 0.5, -0.5), 1, len(names), fill=False, ec="black", lw=1.2))
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels([f"{n} (ref)" if n == movement["reference_checkpoint"] else n for n in names])
    axes[0].set_ylabel("checkpoint (training order)")
    cb = fig.colorbar(im, ax=axes, shrink=0.9)
    cb.set_label("cosine similarity (unitless)")
    fig.suptitle(f"Axis stability by checkpoint and layer (boxed: PCA layer {movement['pca_layer']})", y=1.02)
    _save(fig, path)


# --- HTML -----------------------------------------------------------------------------------------

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;max-width:1250px;margin:24px auto;padding:0 18px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em} th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.9em;color:#555;margin-top:4px}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:8px;font-size:.82em;overflow-x:auto;max-height:420px}
.kv td:first-child{font-weight:bold;background:#fafafa} .note{color:#555;font-size:.9em}
.extremes{display:flex;gap:28px;flex-wrap:wrap}
"""

ONLOAD_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img');
  var ok = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) { ok++; im.setAttribute('data-loaded', '1'); } });
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok));
});
"""


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: object, digits: int = 3) -> str:
    if x is None or x == "":
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _esc(x)
    if np.isnan(v):
        return "–"
    if float(v).is_integer() and abs(v) < 1e6 and not isinstance(x, float):
        return str(int(v))
    return f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] | None = None, cls: str = "") -> str:
    numeric = numeric or [False] * len(header)
    out = [f'<table class="{cls}">' if cls else "<table>", "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{c}</td>' if numeric[i] else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _figure(png: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}" data-file="{_esc(png.name)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def build_html(*, title: str, summary: dict, roles_json: dict, movement: dict, pngs: dict[str, Path],
               params_text: str | None, params_source: str | None, tracked: Sequence[str],
               statistics_parts: Sequence[str] = (), on_policy_parts: Sequence[str] = ()) -> str:
    pca = summary["pca"]
    flt = summary["filter"]
    filt = ("none (no judge: every response counts)" if flt["filter"] == "none"
            else f"judge score ≥ {flt['min_score']}")
    ck = movement["checkpoints"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{CSS}</style><script>{ONLOAD_SCRIPT}</script></head><body>",
        f"<h1>{_esc(title)}</h1>",
        '<p class="note">Replication of “The Assistant Axis” (Lu et al. 2026): role vectors, the Assistant Axis '
        "(default vector − mean of role vectors) and persona space (PCA of role vectors), tracked across "
        "post-training checkpoints. Projections are in the model's residual-stream activation units; cosines are unitless.</p>",
        "<h2>Key numbers (reference checkpoint)</h2>",
        _table(["quantity", "value"], [
            ["reference checkpoint", _esc(movement["reference_checkpoint"])],
            ["model / revision", f"{_esc(summary['model'])} @ {_esc(summary['checkpoint'])}"],
            ["PCA layer / captured layers", f"{summary['pca_layer']} / {_esc(', '.join(map(str, summary['layers'])))}"],
            ["activation aggregation", _esc(summary["aggregation"])],
            ["filter", _esc(f"{filt}, min_count {flt['min_count']}")],
            ["roles kept / dropped", f"{summary['counts']['roles_kept']} / {summary['counts']['roles_dropped']}"],
            ["responses used (roles) / default responses",
             f"{summary['counts']['role_responses_used']} / {summary['counts']['default_responses']}"],
            ["PC1, PC2, PC3 variance explained",
             ", ".join(f"{v * 100:.1f}%" for v in pca["explained_variance_ratio"][:3])],
            ["components for 70 / 80 / 90 / 95%", " / ".join(_fmt(pca["components_for"][k]) for k in ("70", "80", "90", "95"))],
            ["cos(Assistant Axis, PC1)", _fmt(pca["cos_axis_pc1"])],
            ["default's position on PC1 / PC2 / PC3 (0 = lowest role, 1 = highest)",
             " / ".join(_fmt(v) for _, v in sorted(pca["default_position"].items()))],
        ], cls="kv"),
        "<h2>Variance explained</h2>",
        _figure(pngs["variance"], "variance explained by principal components",
                "Bars: fraction of the role vectors' variance on each component (mean-centred PCA, no scaling). "
                "Line: cumulative. Dotted: the 70/80/90/95% levels with the number of components needed. On PC1: black "
                "bar = its 95% bootstrap interval, red band = its label-shuffle null (mean to 95th percentile). "
                "<b>How to read this:</b> a tall first bar means one direction dominates persona space, but only if its "
                "interval sits above the red null band (shuffled role labels); the random-init floor is in the statistics section."),
        "<h2>Persona space at the reference</h2>",
        _figure(pngs["pc1_pc2"], "roles on PC1 and PC2",
                "Each dot is a role vector (mean activation of its responses that passed the filter), coloured by its "
                "projection on the Assistant Axis. The star is the default Assistant. Labels: the roles at both ends of PC1. "
                "PC1 is oriented so that cos(PC1, axis) ≥ 0. <b>How to read this:</b> the Assistant-like roles should sit "
                "near the star at the high-PC1 end; the axis colouring shows how far PC1 and the axis agree. The default's "
                "position on PC1 and cos(axis, PC1), with intervals and label-shuffle nulls, are in the statistics section."),
        "<h2>PC1 extremes</h2>",
        '<div class="extremes" id="pc1-extremes">',
        _table(["#", "Assistant-like end (high PC1)", "PC1"],
               [[i + 1, _esc(e["role"]), _fmt(e["pc1"])] for i, e in enumerate(pca["pc1_extremes"]["top"])],
               [True, False, True]),
        _table(["#", "other end (low PC1)", "PC1"],
               [[i + 1, _esc(e["role"]), _fmt(e["pc1"])] for i, e in enumerate(pca["pc1_extremes"]["bottom"])],
               [True, False, True]),
        "</div>",
        "<h2>Movement along the Assistant Axis across checkpoints</h2>",
        _figure(pngs["movement"], "default and selected roles projected on the reference axis by checkpoint",
                f"Projection of each checkpoint's default vector and role vectors onto the unit reference axis "
                f"(layer {movement['pca_layer']}). Every checkpoint uses the same {len(movement['roles'])} roles and the same "
                f"responses (transcripts and judge scores shared). Tracked roles: {_esc(', '.join(tracked))}. Bars on the "
                "default: paired 95% intervals (questions resampled, the same resamples for every checkpoint); the "
                "role lines are point estimates (the spread of the grey band shows how far roles lie apart). "
                "<b>How to read this:</b> raw activation units of one shared basis: valid only within one pretraining run "
                "(other lineages are left blank), and a global shift of the residual stream moves every line together; "
                "the own-unit numbers with intervals below separate persona movement from such shifts."),
        _figure(pngs["similarity"], "cosine heatmaps by checkpoint and layer",
                "Left: cosine of each checkpoint's axis with the reference checkpoint's axis, per layer. Right: cosine of "
                "each checkpoint's own PC1 with its own axis (PC1 sign-aligned to the axis, so ≥ 0). <b>How to read "
                "this:</b> the right panel is basis-free; read it against the random-init row, the floor given the same texts. "
                "Both at the PCA layer, with paired 95% intervals, are in the per-checkpoint panels below."),
        "<h2>Movement table</h2>",
        _table(["checkpoint", "cos(axis, ref axis)", "axis norm", "default on ref axis", "default position (0–1)",
                "mean role on ref axis", "default on ref PC1", "own PC1 var.", "own PCs for 70%", "cos(own PC1, own axis)",
                "corr(PC1 loadings, ref)", "mean role shift (L2)"],
               [[_esc(c["checkpoint"]) + (" (ref)" if c["is_reference"] else "")
                 + (" (random-init floor)" if report_statistics.is_floor(c) else ""), _fmt(c["cos_axis_ref"]),
                 _fmt(c["axis_norm"], 2), _fmt(c["default_axis_projection"], 2), _fmt(c["default_axis_position"]),
                 _fmt(c["mean_role_axis_projection"], 2), _fmt(c.get("default_pc1"), 2),
                 f"{c['own_explained_variance_pc1'] * 100:.1f}%", _fmt(c["own_components_for_70"]),
                 _fmt(c["own_cos_pc1_axis"]), _fmt(c["pc1_loading_corr_ref"]), _fmt(c["mean_role_shift_l2"], 3)]
                for c in ck], [False] + [True] * 11),
        *statistics_parts,
        *on_policy_parts,
        "<h2>Models and revisions</h2>",
        _table(["#", "checkpoint", "model", "revision", "activations"],
               [[c["index"], _esc(c["checkpoint"]), _esc(c["model"]), _esc(c["revision"]), _esc(c["activations_dir"])] for c in ck],
               [True, False, False, False, False]),
        "<h2>Dropped roles</h2>",
    ]
    dropped = roles_json.get("dropped", [])
    if dropped:
        parts.append(f"<p>{len(dropped)} role(s) had fewer than {flt['min_count']} responses passing the filter at the "
                     "reference and are left out at every checkpoint.</p>")
        parts.append(_table(["role", "passing responses", "required", "reason"],
                            [[_esc(d["role"]), d["count"], d["required"], _esc(d["reason"])] for d in dropped],
                            [False, True, True, False]))
    else:
        parts.append("<p>None: every role passed the filter.</p>")
    parts.append("<h2>Parameters</h2>")
    if params_text is not None:
        parts.append(f'<p class="note">From {_esc(params_source)}:</p><pre id="params">{_esc(params_text)}</pre>')
    else:
        parts.append('<p class="note">No params file was given.</p>')
    parts.append(f'<p class="note">Sign convention: {_esc(summary["sign_convention"])}</p>')
    parts.append(f'<p class="note">Rows: {_esc(movement["rows_note"])}.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_report(persona_space_dir: str | os.PathLike, movement_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                 params_file: str | None = None, params_json: str | None = None, title: str | None = None,
                 roles_to_track: Sequence[str] | None = None, on_policy_dir: str | os.PathLike | None = None) -> Path:
    ps, mv, out = Path(persona_space_dir), Path(movement_dir), Path(output_dir)
    summary = _load_json(ps / "summary.json")
    roles_json = _load_json(ps / "roles.json")
    projections = _csv(ps / "role_projections.csv")
    movement = _load_json(mv / "movement.json")
    by_role = _csv(mv / "roles_by_checkpoint.csv")
    if movement["roles"] != roles_json["kept"]:
        raise InputError(f"{mv / 'movement.json'}: roles differ from {ps / 'roles.json'}; the movement was not computed "
                         "from this persona space")
    tracked = list(roles_to_track) if roles_to_track else default_tracked_roles(summary)
    unknown = [r for r in tracked if r not in movement["roles"]]
    if unknown:
        raise InputError(f"--roles-to-track: {', '.join(unknown)} not in the common role set "
                         f"(dropped or not captured); choose from {', '.join(movement['roles'][:20])}...")
    params_text = params_source = None
    if params_file is not None:
        p = Path(params_file)
        if not p.exists():
            raise InputError(f"--params-file {p}: not found")
        params_text, params_source = p.read_text(), p.name
    elif params_json is not None:
        try:
            params_text = json.dumps(json.loads(params_json), indent=2, sort_keys=True)
        except json.JSONDecodeError as e:
            raise InputError(f"--params-json: invalid JSON ({e.msg} at column {e.colno})") from None
        params_source = "--params-json"
    out.mkdir(parents=True, exist_ok=True)
    pngs = {"variance": out / "variance_explained.png", "pc1_pc2": out / "persona_space_pc1_pc2.png",
            "movement": out / "axis_movement.png", "similarity": out / "axis_similarity.png"}
    stats, nulls, intervals, diffs = report_statistics.load(ps, mv)
    plot_variance(summary, pngs["variance"], stats=stats)
    plot_pc1_pc2(summary, projections, pngs["pc1_pc2"])
    plot_axis_movement(movement, by_role, tracked, pngs["movement"], intervals)
    plot_axis_similarity(movement, pngs["similarity"])
    if stats:
        pngs["nulls"] = out / "null_distributions.png"
        report_statistics.plot_nulls(stats, nulls, pngs["nulls"], _save)
    if intervals:
        pngs["intervals"] = out / "checkpoint_intervals.png"
        report_statistics.plot_intervals(movement, intervals, stats, pngs["intervals"], _save)
    stat_parts = report_statistics.sections(stats, movement, diffs, _table, _figure, pngs)
    op_summary, op_rows = report_on_policy.load(Path(on_policy_dir) if on_policy_dir is not None else None)
    if op_rows:
        pngs["on_policy"] = out / "fixed_vs_on_policy.png"
        report_on_policy.plot(op_summary, op_rows, pngs["on_policy"], _save, stats)
    op_parts = report_on_policy.section(op_summary, op_rows, _table, _figure, pngs.get("on_policy"))
    title = title or f"Assistant Axis across checkpoints: {summary['model']}"
    page = build_html(title=title, summary=summary, roles_json=roles_json, movement=movement, pngs=pngs,
                      params_text=params_text, params_source=params_source, tracked=tracked, statistics_parts=stat_parts,
                      on_policy_parts=op_parts)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="persona-axis-report", description="Self-contained HTML report of persona space and its movement.")
    p.add_argument("--persona-space-dir", required=True)
    p.add_argument("--movement-dir", required=True)
    p.add_argument("--output-dir", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--params-file", default=None, help="shown verbatim on the page (e.g. params.yaml)")
    g.add_argument("--params-json", default=None, help="params as a JSON string, shown on the page")
    p.add_argument("--on-policy-dir", default=None, help="on_policy_compare output: fixed vs on-policy side by side")
    p.add_argument("--title", default=None)
    p.add_argument("--roles-to-track", default=None, help="comma-separated roles for the movement plot "
                   "(default: the 3 roles at each end of PC1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tracked = [r.strip() for r in args.roles_to_track.split(",") if r.strip()] if args.roles_to_track else None
    try:
        index = build_report(args.persona_space_dir, args.movement_dir, args.output_dir, params_file=args.params_file,
                             params_json=args.params_json, title=args.title, roles_to_track=tracked,
                             on_policy_dir=args.on_policy_dir)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
