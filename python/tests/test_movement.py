"""project.py (movement across checkpoints) on fake checkpoints with a planted drift."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_scores
from persona_axis.activation_io import read_csv
from persona_axis.capture_format import write_capture
from persona_axis.movement import main as project_main

ROOT = Path(__file__).resolve().parents[2]
PERSONA_SPACE = "persona_axis.persona_space"
PROJECT = "persona_axis.movement"
LAYERS = (3, 6)
D = 32
N = 60
ROLES = [f"role_{i:02d}" for i in range(8)]
CHECKPOINTS = ["base", "sft", "dpo", "final"]
#: The default's coordinate along the planted direction u, per checkpoint.
DEFAULT_ALONG_U = {"base": 2.0, "sft": 5.0, "dpo": 7.0, "final": 8.0}
#: Extra off-axis displacement of the default at base (rotates its axis away from the reference's).
BASE_OFF_AXIS = 3.0
#: role_03 moves by this much along u at dpo (and stays there).
ROLE_DRIFT = 1.5
DRIFT_ROLE = "role_03"


def keys(n: int = N) -> list[tuple[int, int, int]]:
    return [(i % 4, i // 4, 0) for i in range(n)]


def write_study(root: Path, seed: int = 0) -> dict:
    """Four checkpoints sharing transcripts (same rows, same noise), differing only by planted moves.
    role_07 gets only 20 score-3 responses, so the reference drops it (min_count 50)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    v = rng.normal(size=D)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    base = rng.normal(size=D)
    amps = np.linspace(-2, 2, len(ROLES))
    offsets = {r: a * u + 0.1 * rng.normal(size=D) for r, a in zip(ROLES, amps)}
    noise = {r: rng.normal(size=(N, D)) * 0.3 for r in ROLES + ["default"]}
    for ci, ckpt in enumerate(CHECKPOINTS):
        for r in ROLES:
            c = base + offsets[r] + (ROLE_DRIFT * u if r == DRIFT_ROLE and ci >= 2 else 0)
            write_capture(root / "acts" / ckpt, r, {lyr: (1 + lyr / 3) * (c + noise[r]) for lyr in LAYERS}, keys(),
                          model="allenai/OLMo-2-test", checkpoint=f"rev-{ckpt}")
        c = base + DEFAULT_ALONG_U[ckpt] * u + (BASE_OFF_AXIS * v if ckpt == "base" else 0)
        write_capture(root / "acts" / ckpt, "default", {lyr: (1 + lyr / 3) * (c + noise["default"]) for lyr in LAYERS},
                      keys(), model="allenai/OLMo-2-test", checkpoint=f"rev-{ckpt}")
    for i, r in enumerate(ROLES):
        n3 = 20 if r == "role_07" else N - 5 * (i % 3)
        write_scores(root / "scores", r, {k: (3 if j < n3 else 1) for j, k in enumerate(keys())})
    return {"u": u, "v": v}


def run(cli: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", cli, *args], capture_output=True, text=True, cwd=ROOT)


def build(root: Path, *, checkpoints=CHECKPOINTS, reference="final") -> subprocess.CompletedProcess:
    res = run(PERSONA_SPACE, "--activations-dir", str(root / "acts" / reference), "--scores-dir", str(root / "scores"),
              "--output-dir", str(root / "ps"))
    assert res.returncode == 0, res.stderr
    args = ["--reference-dir", str(root / "ps"), "--scores-dir", str(root / "scores"), "--output-dir", str(root / "mv")]
    for c in checkpoints:
        args += ["--checkpoint", f"{c}={root / 'acts' / c}"]
    if reference != checkpoints[-1]:
        args += ["--reference-checkpoint", reference]
    return run(PROJECT, *args)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    truth = write_study(root)
    res = build(root)
    assert res.returncode == 0, res.stderr
    return root, truth


def numpy_vectors(root: Path, ckpt: str, roles: list[str], layer: int):
    """Role vectors (score-3 rows), default vector and axis from the raw files, independently."""
    vecs = []
    for r in roles:
        sc = [json.loads(x)["score"] for x in (root / "scores" / f"{r}.jsonl").read_text().splitlines()]
        acts = torch.load(root / "acts" / ckpt / f"{r}_activations.pt", weights_only=True)[layer].double().numpy()
        vecs.append(acts[np.array(sc) == 3].mean(0))
    X = np.stack(vecs)
    default = torch.load(root / "acts" / ckpt / "default_activations.pt", weights_only=True)[layer].double().numpy().mean(0)
    return X, default, default - X.mean(0)


def test_planted_drift_appears_with_right_sign_and_size(study):
    root, truth = study
    rows = read_csv(root / "mv" / "movement.csv")
    assert [r["checkpoint"] for r in rows] == CHECKPOINTS
    assert [r["is_reference"] for r in rows] == ["false", "false", "false", "true"]
    assert [r["revision"] for r in rows] == [f"rev-{c}" for c in CHECKPOINTS]
    scale = 1 + 6 / 3  # the PCA layer is 6 (the middle of 3, 6)
    proj = [float(r["default_axis_projection"]) for r in rows]
    for i in range(1, len(CHECKPOINTS)):
        planted = (DEFAULT_ALONG_U[CHECKPOINTS[i]] - DEFAULT_ALONG_U[CHECKPOINTS[i - 1]]) * scale
        # off-axis component at base leaves the projection on the (reference) axis nearly untouched
        assert proj[i] - proj[i - 1] == pytest.approx(planted, rel=0.03)
        assert float(rows[i]["default_shift_axis"]) == pytest.approx(proj[i] - proj[i - 1], rel=1e-8)
    assert rows[0]["default_shift_axis"] == "" and rows[0]["mean_role_shift_l2"] == ""
    # the role drift: only role_03 moves, at dpo, by ROLE_DRIFT along u
    per_role = read_csv(root / "mv" / "roles_by_checkpoint.csv")
    dpo = {r["role"]: r for r in per_role if r["checkpoint"] == "dpo"}
    assert float(dpo[DRIFT_ROLE]["shift_axis"]) == pytest.approx(ROLE_DRIFT * scale, rel=0.03)
    assert float(dpo[DRIFT_ROLE]["shift_l2"]) == pytest.approx(ROLE_DRIFT * scale, rel=1e-6)
    for r, row in dpo.items():
        if r not in (DRIFT_ROLE, "default"):
            assert float(row["shift_l2"]) == 0.0
    n_roles = len(ROLES) - 1
    assert float(rows[2]["mean_role_shift_l2"]) == pytest.approx(ROLE_DRIFT * scale / n_roles, rel=1e-6)
    assert float(rows[3]["mean_role_shift_l2"]) == 0.0
    # cos with the reference axis: 1 at the reference, lower at base (off-axis default), exact per numpy
    assert float(rows[3]["cos_axis_ref"]) == pytest.approx(1.0, abs=1e-12)
    assert float(rows[0]["cos_axis_ref"]) < 0.95


def test_table_matches_numpy_formulas(study):
    root, truth = study
    mv = json.loads((root / "mv" / "movement.json").read_text())
    roles = mv["roles"]
    layers = mv["layers"]
    assert layers == list(LAYERS) and mv["pca_layer"] == 6 and mv["reference_checkpoint"] == "final"
    refs = {lyr: numpy_vectors(root, "final", roles, lyr) for lyr in LAYERS}
    Xr, dr, ar = refs[6]
    mu = Xr.mean(0)
    _, _, vt = np.linalg.svd(Xr - mu, full_matrices=False)
    if vt[0] @ ar < 0:
        vt[0] = -vt[0]
    ref_pc1_scores = (Xr - mu) @ vt[0]
    for row in mv["checkpoints"]:
        c = row["checkpoint"]
        for i, lyr in enumerate(LAYERS):
            X, d, a = numpy_vectors(root, c, roles, lyr)
            cos = a @ refs[lyr][2] / np.linalg.norm(a) / np.linalg.norm(refs[lyr][2])
            assert row["cos_axis_ref_by_layer"][i] == pytest.approx(cos, abs=1e-7)
        X, d, a = numpy_vectors(root, c, roles, 6)
        u_ref = ar / np.linalg.norm(ar)
        assert row["axis_norm"] == pytest.approx(np.linalg.norm(a), rel=1e-7)
        assert row["default_axis_projection"] == pytest.approx(d @ u_ref, rel=1e-7)
        assert row["mean_role_axis_projection"] == pytest.approx((X @ u_ref).mean(), rel=1e-6, abs=1e-7)
        assert abs(row["default_pc1"]) == pytest.approx(abs((d - mu) @ vt[0]), rel=1e-7)
        assert row["default_pc1"] == pytest.approx((d - mu) @ vt[0], rel=1e-7)  # oriented like the reference
        own_mu = X.mean(0)
        _, s, ovt = np.linalg.svd(X - own_mu, full_matrices=False)
        evr = s[: len(roles) - 1] ** 2 / (s[: len(roles) - 1] ** 2).sum()
        assert row["own_explained_variance_pc1"] == pytest.approx(evr[0], rel=1e-7)
        assert row["own_components_for_70"] == int(np.argmax(np.cumsum(evr) >= 0.7)) + 1
        own_pc1 = ovt[0] if ovt[0] @ a >= 0 else -ovt[0]
        assert row["own_cos_pc1_axis"] == pytest.approx(own_pc1 @ a / np.linalg.norm(a), abs=1e-7)
        corr = np.corrcoef((X - own_mu) @ own_pc1, ref_pc1_scores)[0, 1]
        assert row["pc1_loading_corr_ref"] == pytest.approx(corr, abs=1e-7)
    assert mv["checkpoints"][-1]["pc1_loading_corr_ref"] == pytest.approx(1.0, abs=1e-9)
    vec = torch.load(root / "mv" / "vectors" / "dpo.pt", weights_only=True)
    X, d, a = numpy_vectors(root, "dpo", roles, 3)
    assert vec["roles"] == roles
    np.testing.assert_allclose(vec["role_vectors"][3].numpy(), X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vec["axis"][3].numpy(), a, rtol=1e-4, atol=1e-5)


def test_common_role_set_holds_across_checkpoints(study):
    root, _ = study
    kept = json.loads((root / "ps" / "roles.json").read_text())
    assert [d["role"] for d in kept["dropped"]] == ["role_07"]
    mv = json.loads((root / "mv" / "movement.json").read_text())
    assert mv["roles"] == kept["kept"] == ROLES[:-1]
    per_role = read_csv(root / "mv" / "roles_by_checkpoint.csv")
    for c in CHECKPOINTS:
        assert [r["role"] for r in per_role if r["checkpoint"] == c] == ROLES[:-1] + ["default"]
    for c in CHECKPOINTS:
        assert torch.load(root / "mv" / "vectors" / f"{c}.pt", weights_only=True)["role_vectors"][6].shape == (7, D)


def project_in_process(capsys, *args: str) -> tuple[int, str]:
    """The CLI's main() in this process (bad-input cases; saves a torch import per case)."""
    capsys.readouterr()
    code = project_main(list(args))
    return code, capsys.readouterr().err


def test_reference_in_the_middle_and_bad_inputs(tmp_path, capsys):
    write_study(tmp_path)
    res = build(tmp_path, reference="dpo")
    assert res.returncode == 0, res.stderr
    rows = read_csv(tmp_path / "mv" / "movement.csv")
    assert [r["is_reference"] for r in rows] == ["false", "false", "true", "false"]
    assert float(rows[2]["cos_axis_ref"]) == pytest.approx(1.0, abs=1e-12)

    base = ["--reference-dir", str(tmp_path / "ps"), "--scores-dir", str(tmp_path / "scores"), "--output-dir", str(tmp_path / "o")]
    # the reference checkpoint must be the one persona_space ran on
    code, err = project_in_process(capsys, *base, "--checkpoint", f"base={tmp_path / 'acts' / 'base'}", "--checkpoint", f"final={tmp_path / 'acts' / 'final'}")
    assert code == 2 and "does not reproduce" in err
    # no scores for a judge-filtered reference
    code, err = project_in_process(capsys, "--reference-dir", str(tmp_path / "ps"), "--output-dir", str(tmp_path / "o"),
              "--checkpoint", f"dpo={tmp_path / 'acts' / 'dpo'}")
    assert code == 2 and "pass the same --scores-dir" in err
    # a checkpoint captured on other transcripts
    other = tmp_path / "acts" / "other"
    for f in (tmp_path / "acts" / "sft").iterdir():
        (other / f.name).parent.mkdir(exist_ok=True)
        (other / f.name).write_bytes(f.read_bytes())
    acts = torch.load(other / "role_01_activations.pt", weights_only=True)  # 55 score-3 rows, keep 50
    write_capture(other, "role_01", {k: t.numpy()[:50] for k, t in acts.items()}, keys(50),
                  model="allenai/OLMo-2-test", checkpoint="rev-sft")
    code, err = project_in_process(capsys, *base, "--checkpoint", f"other={other}", "--checkpoint", f"dpo={tmp_path / 'acts' / 'dpo'}")
    assert code == 2 and "role 'role_01' selects other responses" in err
    code, err = project_in_process(capsys, *base, "--checkpoint", "bad name=x")
    assert code == 2 and "name must match" in err


def test_outputs_are_byte_identical_on_rerun(study):
    root, _ = study
    args = ["--reference-dir", str(root / "ps"), "--scores-dir", str(root / "scores"), "--output-dir", str(root / "mv2")]
    for c in CHECKPOINTS:
        args += ["--checkpoint", f"{c}={root / 'acts' / c}"]
    res = run(PROJECT, *args)
    assert res.returncode == 0, res.stderr
    files = sorted(p.relative_to(root / "mv") for p in (root / "mv").rglob("*") if p.is_file())
    assert [str(f) for f in files] == ["differences.csv", "intervals.csv", "movement.csv", "movement.json",
                                       "roles_by_checkpoint.csv"] + [
        f"vectors/{c}.pt" for c in sorted(CHECKPOINTS)]
    for f in files:
        assert (root / "mv" / f).read_bytes() == (root / "mv2" / f).read_bytes(), f
