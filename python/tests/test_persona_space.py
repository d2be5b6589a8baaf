"""persona_space on synthetic captures with planted structure, checked against numpy formulas."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_scores
from persona_axis.activation_io import read_csv
from persona_axis.capture_format import load_role_capture, write_capture
from persona_axis.errors import InputError
from persona_axis.persona_space import FilterSettings, analyse, fit_pca
from persona_axis.persona_space import main as persona_space_main

ROOT = Path(__file__).resolve().parents[2]
CLI = "persona_axis.persona_space"
LAYERS = (2, 5, 8)
D = 40


def samples(n: int) -> list[tuple[int, int, int]]:
    return [(i % 5, i // 5, 0) for i in range(n)]


def planted_capture(directory: Path, *, seed: int = 0, n_roles: int = 10, n_samples: int = 60, sign: float = 1.0,
                    role_names: list[str] | None = None) -> dict:
    """Roles spread along a planted unit direction ``u`` (the dominant variance) plus smaller
    orthogonal spread; the default sits far out along ``u``. Layer l scales everything by (1 + l/4)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    base = rng.normal(size=D) * 2
    names = role_names or [f"role_{i:02d}" for i in range(n_roles)]
    amps = np.linspace(-3, 3, len(names))
    rng.shuffle(amps)
    centers = {}
    for name, a in zip(names, amps):
        w = rng.normal(size=D) * 0.1
        w -= (w @ u) * u
        centers[name] = base + a * u + w
    centers["default"] = base + 8.0 * u
    for name, c in centers.items():
        acts = {layer: sign * (1 + layer / 4) * (c + rng.normal(size=(n_samples, D)) * 0.5) for layer in LAYERS}
        write_capture(directory, name, acts, samples(n_samples), model="test/olmo", checkpoint="stage-final")
    return {"u": u, "names": names}


def score_all(scores_dir: Path, names: list[str], n_samples: int, score: int = 3) -> None:
    for name in names:
        write_scores(scores_dir, name, {k: score for k in samples(n_samples)})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", CLI, *args], capture_output=True, text=True, cwd=ROOT)


def test_known_axis_is_recovered(tmp_path):
    truth = planted_capture(tmp_path / "acts")
    score_all(tmp_path / "scores", truth["names"], 60)
    ps = analyse(tmp_path / "acts", FilterSettings(tmp_path / "scores", 3, 50))
    for layer in LAYERS:
        axis = ps.vectors.axis[layer]
        assert axis @ truth["u"] / np.linalg.norm(axis) > 0.99
    pc1 = ps.pca.components[0]
    assert pc1 @ truth["u"] > 0.98  # oriented towards the default (Assistant) end
    assert ps.pca_layer == 5  # middle captured layer


def numpy_reference(acts_dir: Path, scores_dir: Path, roles: list[str], min_score: int, layer: int):
    """The paper's formulas, computed here independently from the raw files."""
    role_vecs = {}
    for role in roles:
        meta = json.loads((acts_dir / f"{role}_metadata.json").read_text())
        keys = [(s["system_prompt_idx"], s["question_idx"], s["rollout_idx"]) for s in meta["samples"]]
        scores = {}
        for line in (scores_dir / f"{role}.jsonl").read_text().splitlines():
            r = json.loads(line)
            scores[(r["system_prompt_idx"], r["question_idx"], r["rollout_idx"])] = r["score"]
        keep = np.array([scores.get(k) is not None and scores[k] >= min_score for k in keys])
        acts = torch.load(acts_dir / f"{role}_activations.pt", weights_only=True)
        role_vecs[role] = {lyr: acts[lyr].double().numpy()[keep].mean(0) for lyr in acts}
    default = {lyr: t.double().numpy().mean(0) for lyr, t in torch.load(acts_dir / "default_activations.pt", weights_only=True).items()}
    X = np.stack([role_vecs[r][layer] for r in roles])
    axis = {lyr: default[lyr] - np.mean([role_vecs[r][lyr] for r in roles], axis=0) for lyr in default}
    mu = X.mean(0)
    _, s, vt = np.linalg.svd(X - mu, full_matrices=False)
    if vt[0] @ axis[layer] < 0:
        vt[0] = -vt[0]
    return role_vecs, default, axis, mu, s, vt


def test_outputs_match_numpy_formulas(tmp_path):
    truth = planted_capture(tmp_path / "acts", seed=3)
    rng = np.random.default_rng(7)
    for name in truth["names"]:  # mixed scores: only score 3 rows enter the role vectors
        write_scores(tmp_path / "scores", name, {k: int(rng.choice([1, 2, 3, 3, 3, 3])) for k in samples(60)})
    out = tmp_path / "out"
    res = run_cli("--activations-dir", str(tmp_path / "acts"), "--scores-dir", str(tmp_path / "scores"),
                  "--output-dir", str(out), "--min-count", "10", "--extremes-k", "3")
    assert res.returncode == 0, res.stderr
    roles = json.loads((out / "roles.json").read_text())["kept"]
    assert roles == truth["names"]
    role_vecs, default, axis, mu, s, vt = numpy_reference(tmp_path / "acts", tmp_path / "scores", roles, 3, 5)

    rv = torch.load(out / "role_vectors.pt", weights_only=True)
    dv = torch.load(out / "default_vector.pt", weights_only=True)
    ax = torch.load(out / "axis.pt", weights_only=True)
    assert sorted(rv) == list(LAYERS)
    for layer in LAYERS:
        np.testing.assert_allclose(rv[layer].numpy(), np.stack([role_vecs[r][layer] for r in roles]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dv[layer].numpy(), default[layer], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ax[layer].numpy(), axis[layer], rtol=1e-5, atol=1e-5)
    pca = torch.load(out / "pca.pt", weights_only=True)
    assert pca["layer"] == 5
    n = len(roles)
    assert pca["components"].shape == (n - 1, D)
    np.testing.assert_allclose(pca["mean"].numpy(), mu, atol=1e-9)
    np.testing.assert_allclose(pca["singular_values"].numpy(), s[: n - 1], rtol=1e-9)
    evr = s[: n - 1] ** 2 / (s[: n - 1] ** 2).sum()
    np.testing.assert_allclose(pca["explained_variance_ratio"].numpy(), evr, rtol=1e-9)
    np.testing.assert_allclose(pca["components"][0].numpy(), vt[0], atol=1e-9)
    for i in range(1, n - 1):  # other components equal up to sign
        assert abs(abs(float(pca["components"][i].numpy() @ vt[i])) - 1) < 1e-8

    summary = json.loads((out / "summary.json").read_text())
    cum = np.cumsum(evr)
    for t in (70, 80, 90, 95):
        assert summary["pca"]["components_for"][str(t)] == int(np.argmax(cum >= t / 100)) + 1
    cos = vt[0] @ axis[5] / np.linalg.norm(axis[5])
    assert summary["pca"]["cos_axis_pc1"] == pytest.approx(cos, abs=1e-8)
    scores = (np.stack([role_vecs[r][5] for r in roles]) - mu) @ vt.T
    d_scores = (default[5] - mu) @ vt.T
    for i in range(3):
        sc = scores[:, i] * np.sign(pca["components"][i].numpy() @ vt[i])
        ds = d_scores[i] * np.sign(pca["components"][i].numpy() @ vt[i])
        expected = (ds - sc.min()) / (sc.max() - sc.min())
        assert summary["pca"]["default_position"][f"pc{i + 1}"] == pytest.approx(expected, abs=1e-8)
    assert summary["pca"]["default_position"]["pc1"] > 1  # the default lies beyond every role
    order = np.argsort(-scores[:, 0])
    assert [e["role"] for e in summary["pca"]["pc1_extremes"]["top"]] == [roles[i] for i in order[:3]]
    assert [e["role"] for e in summary["pca"]["pc1_extremes"]["bottom"]] == [roles[i] for i in order[::-1][:3]]
    assert summary["filter"] == {"filter": "judge", "min_score": 3, "min_count": 10, "scores_dir": str(tmp_path / "scores")}
    # per captured layer, cos(axis, PC1) is sign-aligned (>= 0) and matches numpy
    by_layer = {e["layer"]: e["cos"] for e in summary["cos_axis_pc1_by_layer"]}
    for layer in LAYERS:
        Xl = np.stack([role_vecs[r][layer] for r in roles])
        _, _, vtl = np.linalg.svd(Xl - Xl.mean(0), full_matrices=False)
        expect = abs(vtl[0] @ axis[layer]) / np.linalg.norm(axis[layer])
        assert by_layer[layer] == pytest.approx(expect, abs=1e-8)
    csv_rows = read_csv(out / "summary.csv")
    assert [int(r["layer"]) for r in csv_rows] == list(LAYERS)
    proj = {r["role"]: r for r in read_csv(out / "role_projections.csv")}
    u = axis[5] / np.linalg.norm(axis[5])
    for i, r in enumerate(roles):
        assert float(proj[r]["pc1"]) == pytest.approx(scores[i, 0], rel=1e-8, abs=1e-8)
        assert float(proj[r]["axis_projection"]) == pytest.approx(role_vecs[r][5] @ u, rel=1e-8)
    assert proj["default"]["kind"] == "default"
    assert float(proj["default"]["axis_projection"]) == pytest.approx(default[5] @ u, rel=1e-8)


def test_filter_and_min_count_drop_exactly_the_right_roles(tmp_path):
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    planted_capture(tmp_path / "acts", role_names=names, n_samples=60)
    keys = samples(60)
    sc = tmp_path / "scores"
    write_scores(sc, "alpha", {k: 3 for k in keys})                                   # 60 x 3
    write_scores(sc, "beta", {k: (3 if i < 49 else 2) for i, k in enumerate(keys)})    # 49 x 3, 11 x 2
    write_scores(sc, "gamma", {k: (3 if i < 50 else None) for i, k in enumerate(keys)})  # exactly 50 x 3
    write_scores(sc, "delta", {k: 3 for k in keys[:45]})                              # 15 responses unscored
    write_scores(sc, "epsilon", {k: (2 if i < 12 else 0) for i, k in enumerate(keys)})  # 12 x 2, no 3

    paper = analyse(tmp_path / "acts", FilterSettings(sc, 3, 50))
    assert paper.selection.kept == ["alpha", "gamma"]
    assert paper.selection.dropped == [
        {"role": "beta", "count": 49, "required": 50, "reason": "49 score >= 3 < min_count 50"},
        {"role": "delta", "count": 45, "required": 50, "reason": "45 score >= 3 < min_count 50"},
        {"role": "epsilon", "count": 0, "required": 50, "reason": "0 score >= 3 < min_count 50"},
    ]
    assert paper.selection.counts["delta"] == {"responses": 60, "passing": 45, "unscored": 15}

    variant = analyse(tmp_path / "acts", FilterSettings(sc, 2, 10))
    assert variant.selection.kept == sorted(names)  # row order: role names sorted (or the --roles order)
    assert variant.selection.counts["beta"]["passing"] == 60
    assert variant.selection.counts["gamma"]["passing"] == 50  # null never passes
    assert variant.selection.counts["epsilon"]["passing"] == 12

    # the role vector of gamma is the mean of exactly its 50 score-3 rows
    acts = load_role_capture(tmp_path / "acts", "gamma").activations[5].double().numpy()
    np.testing.assert_allclose(paper.vectors.role_vectors[5][1], acts[:50].mean(0), rtol=1e-12)

    # no judge: every response counts, outputs say so
    out = tmp_path / "nofilter"
    res = run_cli("--activations-dir", str(tmp_path / "acts"), "--output-dir", str(out), "--min-count", "60")
    assert res.returncode == 0, res.stderr
    roles_json = json.loads((out / "roles.json").read_text())
    assert roles_json["kept"] == sorted(names) and roles_json["dropped"] == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["filter"]["filter"] == "none" and summary["filter"]["min_score"] is None
    assert summary["counts"]["role_responses_used"] == 300


def test_sign_alignment_is_stable(tmp_path):
    truth = planted_capture(tmp_path / "pos", seed=5)
    planted_capture(tmp_path / "neg", seed=5, sign=-1.0)
    for d in ("pos", "neg"):
        score_all(tmp_path / f"scores_{d}", truth["names"], 60)
    pos = analyse(tmp_path / "pos", FilterSettings(tmp_path / "scores_pos", 3, 50))
    neg = analyse(tmp_path / "neg", FilterSettings(tmp_path / "scores_neg", 3, 50))
    assert pos.pca.components[0] @ pos.vectors.axis[5] > 0
    assert neg.pca.components[0] @ neg.vectors.axis[5] > 0
    np.testing.assert_allclose(neg.pca.components, -pos.pca.components, atol=1e-6)
    np.testing.assert_allclose(neg.pca.scores, pos.pca.scores, rtol=1e-5, atol=1e-5)

    shuffled = list(reversed(truth["names"]))
    rev = analyse(tmp_path / "pos", FilterSettings(tmp_path / "scores_pos", 3, 50), roles=shuffled)
    assert rev.vectors.roles == shuffled
    np.testing.assert_allclose(rev.pca.components, pos.pca.components, atol=1e-9)
    by_name = dict(zip(rev.vectors.roles, rev.pca.scores[:, 0]))
    np.testing.assert_allclose([by_name[r] for r in truth["names"]], pos.pca.scores[:, 0], atol=1e-9)


def test_sign_tie_falls_back_to_the_largest_role(tmp_path):
    """When the axis is orthogonal to PC1 the orientation still does not depend on role order or sign."""
    rng = np.random.default_rng(1)
    X = np.zeros((4, 6))
    X[:, 0] = [3.0, -1.0, -0.5, -1.5]  # PC1 along e0, the largest |projection| is role "a"
    X[:, 1] = [0.1, -0.1, 0.2, -0.2]
    axis = np.array([0, 0, 1.0, 0, 0, 0])  # orthogonal to every component
    names = ["a", "b", "c", "d"]
    p = fit_pca(X, names, axis)
    assert p.scores[0, 0] > 0
    perm = rng.permutation(4)
    q = fit_pca(X[perm], [names[i] for i in perm], axis)
    np.testing.assert_allclose(q.components, p.components, atol=1e-12)
    r = fit_pca(-X, names, -axis)
    np.testing.assert_allclose(r.scores, p.scores, atol=1e-12)


def test_outputs_are_byte_identical_on_rerun(tmp_path):
    truth = planted_capture(tmp_path / "acts")
    score_all(tmp_path / "scores", truth["names"], 60)
    digests = []
    for i in range(2):
        out = tmp_path / "out"
        res = run_cli("--activations-dir", str(tmp_path / "acts"), "--scores-dir", str(tmp_path / "scores"),
                      "--output-dir", str(out), "--layer", "8")
        assert res.returncode == 0, res.stderr
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())})
    assert digests[0] == digests[1]
    assert sorted(digests[0]) == ["axis.pt", "default_vector.pt", "pca.pt", "role_projections.csv", "role_vectors.pt",
                                  "roles.json", "summary.csv", "summary.json"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["pca_layer"] == 8


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    def run_main(*args: str) -> tuple[int, str]:  # main() in-process: real files, no extra torch import
        capsys.readouterr()
        code = persona_space_main(list(args))
        return code, capsys.readouterr().err

    truth = planted_capture(tmp_path / "acts", n_roles=3)
    score_all(tmp_path / "scores", truth["names"], 60)
    base = ["--activations-dir", str(tmp_path / "acts"), "--output-dir", str(tmp_path / "out")]

    code, err = run_main(*base, "--scores-dir", str(tmp_path / "missing"))
    assert code == 2 and "missing/role_00.jsonl: judge scores not found" in err

    (tmp_path / "scores" / "role_01.jsonl").write_text('{"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "score": 7}\n')
    code, err = run_main(*base, "--scores-dir", str(tmp_path / "scores"))
    assert code == 2 and "role_01.jsonl:1: score must be 0, 1, 2, 3 or null" in err

    code, err = run_main(*base, "--layer", "3")
    assert code == 2 and "--layer 3 was not captured" in err

    code, err = run_main(*base, "--min-count", "61")
    assert code == 2 and "only 0 role(s) passed the filter" in err

    meta_path = tmp_path / "acts" / "role_02_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["aggregation"] = "none"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="role_02_metadata.json: aggregation 'none' is not supported"):
        analyse(tmp_path / "acts", FilterSettings(None, 3, 1))


def test_score_file_reading_follows_the_judge(tmp_path):
    from persona_axis.activation_io import load_scores

    lines = [
        {"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "score": None, "raw": ""},
        {"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "score": 3, "raw": "3"},   # resumed: scored now
        {"system_prompt_idx": 0, "question_idx": 1, "rollout_idx": 0, "score": 2, "raw": "2"},
        {"system_prompt_idx": 0, "question_idx": 1, "rollout_idx": 0, "score": None, "error": "timeout"},  # never replaces
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert load_scores(tmp_path, "r") == {(0, 0, 0): 3, (0, 1, 0): 2}
    (tmp_path / "r.jsonl").write_text('{"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "score": 3}\n{oops\n')
    with pytest.raises(InputError, match=r"r.jsonl:2: invalid JSON"):
        load_scores(tmp_path, "r")


def test_rows_must_match_the_metadata(tmp_path):
    write_capture(tmp_path, "x", {0: np.zeros((5, 4))}, samples(5))
    meta = json.loads((tmp_path / "x_metadata.json").read_text())
    meta["samples"] = meta["samples"][:4]
    (tmp_path / "x_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"x_activations.pt: layer 0 has 5 rows but x_metadata.json lists 4 samples"):
        load_role_capture(tmp_path, "x")
