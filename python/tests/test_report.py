"""report.py: renders a self-contained page from real persona_space + project outputs, checked in
headless Chromium (Debian's ``chromium`` package); the screenshot is kept as test-artifacts/report.png."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


from conftest import write_scores
from persona_axis.capture_format import write_capture

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
LAYERS = (4, 8, 12, 16, 20, 24)
D = 48
N = 30
ROLES = ["accountant", "actor", "alchemist", "anarchist", "archivist", "assassin", "bard", "coach", "comedian",
         "conspiracist", "critic", "cultist", "demon", "detective", "diplomat", "editor", "ghost", "hermit",
         "journalist", "librarian", "mentor", "mystic", "narcissist", "nurse", "oracle", "pirate", "poet",
         "researcher", "saboteur", "scientist", "shaman", "spy", "teacher", "trickster", "tutor", "villain",
         "void", "wanderer", "witch", "zealot"]
CHECKPOINTS = ["base", "sft", "dpo", "step_60", "step_120", "step_240", "final"]
ASSISTANT_LIKE = {"accountant", "archivist", "coach", "editor", "librarian", "mentor", "nurse", "researcher",
                  "scientist", "teacher", "tutor", "diplomat", "journalist", "critic"}


def keys(n: int = N) -> list[tuple[int, int, int]]:
    return [(i % 3, i // 3, 0) for i in range(n)]


def write_study(root: Path) -> None:
    """A persona space along a planted direction; the default moves towards the Assistant end over training."""
    rng = np.random.default_rng(11)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    base = rng.normal(size=D)
    off = {r: (1.5 if r in ASSISTANT_LIKE else -1.0) * rng.uniform(0.3, 1.6) * u + 0.4 * rng.normal(size=D) for r in ROLES}
    noise = {r: 0.3 * rng.normal(size=(N, D)) for r in ROLES + ["default"]}
    along = np.linspace(0.5, 4.0, len(CHECKPOINTS))
    for ci, ck in enumerate(CHECKPOINTS):
        d = root / "acts" / ck
        for r in ROLES:
            c = base + off[r] + (0.15 * ci * u if r in ASSISTANT_LIKE else 0)
            write_capture(d, r, {lyr: (1 + lyr / 8) * (c + noise[r]) for lyr in LAYERS}, keys(),
                          model="allenai/OLMo-2-1124-7B-Instruct", checkpoint=f"stage-{ck}")
        write_capture(d, "default", {lyr: (1 + lyr / 8) * (base + along[ci] * u + noise["default"]) for lyr in LAYERS},
                      keys(), model="allenai/OLMo-2-1124-7B-Instruct", checkpoint=f"stage-{ck}")
    for i, r in enumerate(ROLES):
        n3 = 8 if r in ("void", "demon") else N - (i % 4)
        write_scores(root / "scores", r, {k: (3 if j < n3 else 2) for j, k in enumerate(keys())})
    (root / "params.yaml").write_text("model: allenai/OLMo-2-1124-7B-Instruct\nanalysis:\n  min_score: 3\n"
                                      "  min_count: 20\n  layer: 12\n")


def run(step: str, *args: str) -> None:
    res = subprocess.run([sys.executable, "-m", f"persona_axis.{step}", *args], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, f"{step} failed:\n{res.stderr}"


def render(root: Path, out: Path) -> None:
    run("report", "--persona-space-dir", str(root / "ps"), "--movement-dir", str(root / "mv"), "--output-dir", str(out),
        "--params-file", str(root / "params.yaml"), "--roles-to-track", "pirate,teacher,witch,librarian")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    write_study(root)
    run("persona_space", "--activations-dir", str(root / "acts" / "final"), "--scores-dir", str(root / "scores"),
        "--output-dir", str(root / "ps"), "--min-count", "20", "--layer", "12", "--extremes-k", "8",
        "--permutations", "60", "--bootstrap", "40")
    args = []
    for c in CHECKPOINTS:
        args += ["--checkpoint", f"{c}={root / 'acts' / c}"]
    run("movement", "--reference-dir", str(root / "ps"), "--scores-dir", str(root / "scores"), "--output-dir",
        str(root / "mv"), "--bootstrap", "40", *args)
    render(root, root / "report")
    return root


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "headless Chromium is needed for this test: apt-get install -y chromium (Debian package 'chromium')"
    return exe


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--virtual-time-budget=10000"]


def test_report_is_self_contained_and_complete(report):
    page = (report / "report" / "index.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", page), "the page must not load anything external"
    assert page.count('<img src="data:image/png;base64,') == 6
    assert page.count("How to read this") >= 7 and "Paired differences" in page and "label-shuffle" in page
    for name in ("variance_explained.png", "persona_space_pc1_pc2.png", "axis_movement.png", "axis_similarity.png",
                 "null_distributions.png", "checkpoint_intervals.png"):
        assert (report / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for text in ("allenai/OLMo-2-1124-7B-Instruct", "stage-base", "stage-final", "min_count: 20",  # params, model, revisions
                 "Dropped roles", "demon", "void", "8 score &gt;= 3 &lt; min_count 20", "step_120"):
        assert text in page, text


def test_report_bytes_are_deterministic(report, tmp_path):
    render(report, tmp_path / "again")
    for f in sorted((report / "report").iterdir()):
        assert hashlib.sha256(f.read_bytes()).digest() == hashlib.sha256((tmp_path / "again" / f.name).read_bytes()).digest(), f.name


def test_report_renders_in_headless_chromium(report, tmp_path):
    exe = chromium()
    url = (report / "report" / "index.html").resolve().as_uri()
    dom = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert 'data-images-total="6"' in body.group(0) and 'data-images-loaded="6"' in body.group(0), body.group(0)
    assert dom.stdout.count('data-loaded="1"') == 6
    assert 'id="pc1-extremes"' in dom.stdout and "Assistant-like end (high PC1)" in dom.stdout
    assert dom.stdout.count("<table") >= 5

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    res = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}",
                          "--window-size=1400,3000", "--hide-scrollbars", url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    shutil.copytree(report / "report", ARTIFACTS / "report", dirs_exist_ok=True)


def test_report_with_a_single_checkpoint(report, tmp_path):
    from persona_axis.movement import main as project_main
    from persona_axis.report import build_report

    assert project_main(["--reference-dir", str(report / "ps"), "--scores-dir", str(report / "scores"), "--output-dir",
                         str(tmp_path / "mv"), "--checkpoint", f"final={report / 'acts' / 'final'}"]) == 0
    index = build_report(report / "ps", tmp_path / "mv", tmp_path / "r", params_json='{"analysis": {"min_count": 20}}')
    page = index.read_text()
    assert page.count("data:image/png;base64,") == 6 and "&quot;min_count&quot;: 20" in page
    assert "No params file" not in page
    with pytest.raises(Exception, match="not in the common role set"):
        build_report(report / "ps", tmp_path / "mv", tmp_path / "r2", roles_to_track=["void"])
