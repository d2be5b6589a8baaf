"""Own-unit numbers, lineage rules and paired bootstrap intervals of the movement stage."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from persona_axis.activation_io import read_csv
from persona_axis.capture_format import write_capture
from persona_axis.lineage import LineageError, require_same_lineage

ROOT = Path(__file__).resolve().parents[2]
PERSONA_SPACE = "persona_axis.persona_space"
PROJECT = "persona_axis.movement"
D, N = 24, 40
ROLES = [f"r{i}" for i in range(7)]


def keys():
    return [(i % 2, i // 2, 0) for i in range(N)]


def write_checkpoints(root: Path, seed: int = 0) -> dict:
    """final: planted roles along u, default far out on u. shifted: final + one constant vector and x3
    scale (a global change of the residual stream, no persona movement). moved: final with the default
    pulled back towards the roles along u. other: an unrelated random rotation of final (another lineage)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    centers = {r: a * u + rng.normal(size=D) * 0.3 for r, a in zip(ROLES, np.linspace(-2, 2, len(ROLES)))}
    centers["default"] = 6.0 * u
    noise = {r: rng.normal(size=(N, D)) * 0.4 for r in centers}
    shift = rng.normal(size=D) * 10
    rot, _ = np.linalg.qr(rng.normal(size=(D, D)))
    for name in centers:
        x = centers[name] + noise[name]
        moved = x - (3.0 * u if name == "default" else 0)
        for ckpt, acts in (("final", x), ("shifted", 3 * x + shift), ("moved", moved), ("other", x @ rot)):
            write_capture(root / ckpt, name, {0: acts}, keys(), checkpoint=ckpt)
    return {"u": u}


def run(cli, *args):
    return subprocess.run([sys.executable, "-m", cli, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvstats")
    write_checkpoints(root)
    res = run(PERSONA_SPACE, "--activations-dir", root / "final", "--output-dir", root / "ps", "--min-count", 1)
    assert res.returncode == 0, res.stderr
    args = ["--reference-dir", root / "ps", "--output-dir", root / "mv", "--bootstrap", 300, "--seed", 3,
            "--lineage", "other=run-b"]
    for c in ("other", "shifted", "moved", "final"):
        args += ["--checkpoint", f"{c}={root / c}"]
    res = run(PROJECT, *args)
    assert res.returncode == 0, res.stderr
    return root, res


def by_ckpt(root):
    return {r["checkpoint"]: r for r in read_csv(root / "mv" / "movement.csv")}


def test_global_shift_is_not_movement_in_own_units(study):
    root, _ = study
    rows = by_ckpt(root)
    sh, fin = rows["shifted"], rows["final"]
    # raw numbers see the shift and the rescaling ...
    assert abs(float(sh["default_axis_projection"]) - float(fin["default_axis_projection"])) > 1.0
    assert float(sh["axis_norm"]) == pytest.approx(3 * float(fin["axis_norm"]), rel=1e-5)
    # ... own-unit numbers do not
    for k in ("own_unit_axis_norm", "own_unit_default_axis", "own_default_pc1_position", "own_cos_pc1_axis", "cka_ref"):
        assert float(sh[k]) == pytest.approx(float(fin[k]), rel=1e-4, abs=1e-6), k
    # the genuinely moved default is movement in own units, and its paired interval excludes zero
    assert float(rows["moved"]["own_unit_axis_norm"]) < float(fin["own_unit_axis_norm"]) - 0.5
    diffs = {(d["metric"], d["kind"], d["from"], d["to"]): d for d in read_csv(root / "mv" / "differences.csv")}
    moved = diffs[("own_unit_axis_norm", "consecutive", "moved", "final")]
    assert moved["excludes_zero"] == "true" and float(moved["ci_low"]) > 0
    shifted = diffs[("own_unit_axis_norm", "vs_reference", "final", "shifted")]
    assert abs(float(shifted["value"])) < 1e-4 and shifted["excludes_zero"] == "false"


def test_intervals_bracket_values_and_reference_is_exact(study):
    root, _ = study
    iv = read_csv(root / "mv" / "intervals.csv")
    ref = {r["metric"]: r for r in iv if r["checkpoint"] == "final"}
    assert float(ref["cos_axis_ref"]["value"]) == pytest.approx(1.0, abs=1e-9)
    assert float(ref["cka_ref"]["ci_low"]) == pytest.approx(1.0, abs=1e-6)
    assert float(ref["abs_cos_own_pc2_ref_pc2"]["value"]) == pytest.approx(1.0, abs=1e-9)
    for r in iv:
        if r["ci_low"] and r["metric"] in ("own_cos_pc1_axis", "own_unit_axis_norm", "pc1_loading_corr_ref"):
            assert float(r["ci_low"]) <= float(r["ci_high"])
            assert float(r["ci_low"]) - 0.05 <= float(r["value"]) <= float(r["ci_high"]) + 0.05


def test_cross_lineage_shared_basis_is_refused_basis_free_kept(study):
    root, res = study
    rows = by_ckpt(root)
    other = rows["other"]
    assert other["lineage"] == "run-b" and rows["final"]["lineage"] == "main"
    for k in ("cos_axis_ref", "default_axis_projection", "default_pc1", "cos_own_pc1_ref_pc1", "own_unit_default_axis",
              "abs_cos_own_pc2_ref_pc2"):
        assert other[k] == "", k
    # a rotation is invisible to basis-free numbers: same geometry as the reference
    assert float(other["cka_ref"]) == pytest.approx(1.0, abs=1e-5)
    assert float(other["rsa_ref"]) == pytest.approx(1.0, abs=1e-5)
    assert float(other["pc1_loading_corr_ref"]) == pytest.approx(1.0, abs=1e-5)
    assert float(other["own_cos_pc1_axis"]) == pytest.approx(float(rows["final"]["own_cos_pc1_axis"]), abs=1e-5)
    # the step other -> shifted crosses lineages: no shift numbers
    assert rows["shifted"]["mean_role_shift_l2"] == ""
    mv = json.loads((root / "mv" / "movement.json").read_text())
    assert any("share no basis" in m and "other" in m for m in mv["refused"])
    assert "share no basis" in res.stderr
    diffs = read_csv(root / "mv" / "differences.csv")
    assert not any(d["metric"] == "cos_axis_ref" and "other" in (d["from"], d["to"]) for d in diffs)
    assert any(d["metric"] == "cka_ref" and d["from"] == "final" and d["to"] == "other" for d in diffs)
    roles = [r for r in read_csv(root / "mv" / "roles_by_checkpoint.csv") if r["checkpoint"] == "other"]
    assert all(r["axis_projection"] == "" and r["cos_ref_centred"] == "" for r in roles)


def test_require_same_lineage_names_both_and_the_alternative():
    require_same_lineage("x", "a", "main", "b", "main")
    with pytest.raises(LineageError, match=r"a \(lineage main\) and b \(lineage run-b\).*basis-free.*cka_ref"):
        require_same_lineage("projection onto the reference axis", "a", "main", "b", "run-b")
