"""Fixed vs on-policy comparison (python/on_policy.py) on planted data: a checkpoint that reads the
same text the same way but writes other text shows the change only in the on-policy column; the roles
are those that pass the judge filter everywhere; the reference's two columns coincide."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from persona_axis.activation_io import read_csv
from persona_axis.capture_format import write_capture

ROOT = Path(__file__).resolve().parents[2]
PERSONA_SPACE = "persona_axis.persona_space"
ON_POLICY = "persona_axis.on_policy"
D, N = 24, 40
ROLES = [f"r{i}" for i in range(7)]


def keys():
    return [(i % 2, i // 2, 0) for i in range(N)]


def write_scores(d: Path, role: str, score: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{role}.jsonl", "w") as f:
        for p, q, r in keys():
            f.write(json.dumps({"system_prompt_idx": p, "question_idx": q, "rollout_idx": r, "score": score, "raw": str(score)}) + "\n")


def write_study(root: Path, seed: int = 0) -> None:
    """Fixed transcripts: final and base read the final's texts identically (no representation change);
    rand is unrelated noise (the random-init control, no on-policy run). Own transcripts: final's equal
    its fixed ones; base's default writes role-like text (its activations pulled back along u).
    Judge: r6 fails on base's own transcripts (score 0); r5 fails on the fixed transcripts."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    centers = {r: a * u + rng.normal(size=D) * 0.3 for r, a in zip(ROLES, np.linspace(-2, 2, len(ROLES)))}
    centers["default"] = 6.0 * u
    for name, c in centers.items():
        x = c + rng.normal(size=(N, D)) * 0.4
        for ckpt in ("final", "base"):
            write_capture(root / "fixed" / ckpt, name, {0: x}, keys(), checkpoint=ckpt)
        write_capture(root / "fixed" / "rand", name, {0: rng.normal(size=(N, D))}, keys(), checkpoint="rand")
        write_capture(root / "own" / "final", name, {0: x}, keys(), checkpoint="final")
        own_base = x - 3.5 * u if name == "default" else c + rng.normal(size=(N, D)) * 0.4
        write_capture(root / "own" / "base", name, {0: own_base}, keys(), checkpoint="base")
        if name == "default":
            continue
        write_scores(root / "scores" / "fixed", name, 0 if name == "r5" else 3)
        write_scores(root / "scores" / "final", name, 0 if name == "r5" else 3)
        write_scores(root / "scores" / "base", name, 0 if name == "r6" else 3)


def run(cli, *args):
    return subprocess.run([sys.executable, "-m", cli, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def compare_args(root: Path, out: str, *extra) -> list:
    args = ["--reference-dir", root / "ps", "--scores-dir", root / "scores" / "fixed", "--output-dir", root / out,
            "--bootstrap", 200, "--seed", 5, "--lineage", "rand=random-init-rand",
            "--skip", "rand=random-init control"]
    for c in ("rand", "base", "final"):
        args += ["--checkpoint", f"{c}={root / 'fixed' / c}"]
    for c in ("base", "final"):
        args += ["--own", f"{c}={root / 'own' / c}", "--own-scores", f"{c}={root / 'scores' / c}"]
    return args + list(extra)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("onpolicy")
    write_study(root)
    res = run(PERSONA_SPACE, "--activations-dir", root / "fixed" / "final", "--scores-dir", root / "scores" / "fixed",
              "--output-dir", root / "ps", "--min-score", 3, "--min-count", 10)
    assert res.returncode == 0, res.stderr
    res = run(ON_POLICY, *compare_args(root, "cmp"))
    assert res.returncode == 0, res.stderr
    rows = {(r["checkpoint"], r["metric"]): r for r in read_csv(root / "cmp" / "comparison.csv")}
    return root, rows, json.loads((root / "cmp" / "summary.json").read_text())


def f(x):
    return float("nan") if x in (None, "") else float(x)


def test_roles_pass_the_filter_everywhere(study):
    root, _, summary = study
    assert summary["roles"] == ["r0", "r1", "r2", "r3", "r4"]  # r5: fixed filter, r6: base's own filter
    roles = json.loads((root / "cmp" / "roles.json").read_text())
    assert [d["role"] for d in roles["per_checkpoint"]["base"]["dropped"]] == ["r6"]
    assert summary["checkpoints"]["rand"] == {"on_policy": "skipped", "reason": "random-init control"}


def test_behaviour_change_shows_only_on_policy(study):
    _, rows, _ = study
    r = rows[("base", "own_unit_default_axis")]
    # the same text, read the same way: no change on the fixed side (base == final exactly)
    assert f(r["fixed"]) == pytest.approx(f(rows[("final", "own_unit_default_axis")]["fixed"]), abs=1e-9)
    # base's own default text is role-like: lower on the axis, and the paired interval excludes 0
    assert f(r["difference"]) < 0 and f(r["difference_ci_high"]) < 0
    assert r["difference_excludes_zero"] == "true"
    assert f(rows[("base", "default_axis_position")]["difference"]) < 0


def test_reference_columns_coincide_and_intervals_bracket(study):
    _, rows, _ = study
    for m in ("own_cos_pc1_axis", "own_explained_variance_pc1", "cka_ref"):
        r = rows[("final", m)]
        assert f(r["on_policy"]) == pytest.approx(f(r["fixed"]), abs=1e-9)
        assert f(r["difference_ci_low"]) == pytest.approx(0, abs=1e-9) and f(r["difference_ci_high"]) == pytest.approx(0, abs=1e-9)
        assert f(r["fixed_ci_low"]) <= f(r["fixed"]) + 1e-9 <= f(r["fixed_ci_high"]) + 2e-9


def test_random_init_keeps_fixed_only_and_shared_basis_is_refused(study):
    _, rows, summary = study
    r = rows[("rand", "own_cos_pc1_axis")]
    assert np.isfinite(f(r["fixed"])) and r["on_policy"] in ("", None)
    assert ("rand", "cos_axis_ref") not in rows  # another lineage: shared-basis numbers are left out
    assert any("rand" in m for m in summary["refused"])


def test_too_few_common_roles_is_one_clear_error(study, tmp_path):
    root, _, _ = study
    for r in ROLES:
        write_scores(tmp_path / "s", r, 0 if r in ("r0", "r1", "r2", "r3") else 3)
    args = compare_args(root, "cmp_bad")
    i = args.index(f"base={root / 'scores' / 'base'}")
    args[i] = f"base={tmp_path / 's'}"
    res = run(ON_POLICY, *args)
    assert res.returncode == 2
    assert "only 2 role(s) (r4, r6) pass the filter on every on-policy checkpoint" in res.stderr
    assert not (root / "cmp_bad").exists()


def test_report_shows_both_columns_and_marks_the_behaviour_change(study):
    root, rows, _ = study
    args = ["--reference-dir", root / "ps", "--scores-dir", root / "scores" / "fixed", "--output-dir", root / "mv",
            "--bootstrap", 50, "--seed", 5, "--lineage", "rand=random-init-rand"]
    for c in ("rand", "base", "final"):
        args += ["--checkpoint", f"{c}={root / 'fixed' / c}"]
    res = run("persona_axis.movement", *args)
    assert res.returncode == 0, res.stderr
    res = run("persona_axis.report", "--persona-space-dir", root / "ps", "--movement-dir", root / "mv",
              "--on-policy-dir", root / "cmp", "--output-dir", root / "report")
    assert res.returncode == 0, res.stderr
    page = (root / "report" / "index.html").read_text()
    assert "Fixed vs on-policy transcripts" in page and 'data-file="fixed_vs_on_policy.png"' in page
    assert (root / "report" / "fixed_vs_on_policy.png").stat().st_size > 10_000
    assert page.count("How to read this") >= 8  # every figure and table says how to read it
    row = rows[("base", "default_axis_position")]
    assert row["difference_excludes_zero"] == "true"
    cell = page[page.index("default&#x27;s position on the reference axis", page.index("Fixed vs on-policy")):]
    assert cell.split("</tr>")[0].rstrip().endswith("<td>✔</td>")
    res = run("persona_axis.report", "--persona-space-dir", root / "ps", "--movement-dir", root / "mv",
              "--output-dir", root / "report_fixed")
    assert res.returncode == 0, res.stderr
    assert "On-policy variant off" in (root / "report_fixed" / "index.html").read_text()
