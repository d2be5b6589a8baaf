"""The `models` stage end to end through the runner, against a local Hub server: it pins and downloads
the Hub checkpoints, `generate` then runs with the Hub offline on the pinned commit, a moved branch is
kept until re-resolving is asked for, and then the log and `status` say which checkpoint moved.
`stages/models.ts --check` prints the table. The project is a copy of this one in a temporary dir."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fake_hub_server import FakeHub
from test_hub_checkpoints import BASE, MODEL, TOKEN, client_env, tiny_models  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    for d in ("stages", "python", "data", "engine"):
        shutil.copytree(ROOT / d, proj / d, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    for f in ("pipeline.yaml", "run.ts", "package.json", "tsconfig.json"):
        shutil.copy(ROOT / f, proj / f)
    for link in ("node_modules", ".venv"):
        os.symlink(os.path.realpath(ROOT / link), proj / link)
    shutil.copy(ROOT / "params" / "demo.yaml", proj / "params.yaml")
    return proj


def write_profile(proj: Path) -> Path:
    p = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    p.update(out="outputs/hubtest", roles=["default", "pirate"])
    p["checkpoints"] = {"base": {"model": BASE, "revision": "main", "build": "hub"},
                        "final": {"model": MODEL, "revision": "main", "build": "hub"}}
    p["generation"].update(question_count=1, max_tokens=4)
    f = proj / "hubtest.yaml"
    f.write_text(yaml.safe_dump(p, sort_keys=False))
    return f


def run(proj: Path, env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["node_modules/.bin/tsx", "run.ts", "-P", "hubtest.yaml", *args], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_models_stage_pins_downloads_and_generate_runs_offline(project, tiny_models, tmp_path):
    hub = FakeHub()
    hub.url = hub.start()
    try:
        sha_a = hub.commit_dir(MODEL, tiny_models["a"])
        hub.commit_dir(BASE, tiny_models["base"])
        write_profile(project)
        env = {**client_env(hub, tmp_path / "hf", token=TOKEN), "PATH": os.environ["PATH"]}
        env.pop("PYTHONPATH")

        chk = subprocess.run(["node_modules/.bin/tsx", "stages/models.ts", "--check", "-P", "hubtest.yaml"], cwd=project,
                             env=env, capture_output=True, text=True, timeout=300)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        assert "none: borrows final's" in chk.stdout and sha_a[:12] in chk.stdout

        r = run(project, env, "repro", "generate")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out = project / "outputs" / "hubtest"
        assert json.loads((out / "models" / "final" / "checkpoint.json").read_text())["sha"] == sha_a
        # generate loaded the pinned commit from the cache, with the Hub offline.
        assert f"--model-name {MODEL} --revision {sha_a}" in r.stdout + r.stderr
        rec = json.loads((out / "transcripts" / "pirate.jsonl").read_text().splitlines()[0])
        assert rec["model"] == MODEL and rec["checkpoint"] == sha_a
        n_seen = len(hub.log)

        # main moves: nothing notices until asked; a forced run keeps the pin and says how to re-resolve.
        sha_b = hub.commit_dir(MODEL, tiny_models["b"])
        st = run(project, env, "status", "generate")
        assert st.returncode == 0, st.stdout
        r = run(project, env, "repro", "-f", "models")
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"final: {MODEL}@main kept at {sha_a[:7]}" in r.stdout
        assert not any(x["path"].endswith("/revision/main") for x in hub.log[n_seen:])

        r = run(project, env | {"PERSONA_MODELS_UPDATE": "final"}, "repro", "-f", "models")
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"final: main moved {sha_a[:7]} -> {sha_b[:7]}" in r.stdout
        st = run(project, env, "status", "generate")
        assert st.returncode == 1
        assert "outputs/hubtest/models/final/checkpoint.json" in st.stdout, st.stdout
        # The token (HF_TOKEN, sent to the Hub) is in no log, lock, provenance record or output.
        assert any(x["auth"] for x in hub.log)
        for d, _, names in os.walk(project):  # does not enter the node_modules/.venv links
            for n in names:
                f = Path(d) / n
                if f.is_file() and not f.is_symlink():
                    assert TOKEN.encode() not in f.read_bytes(), f
    finally:
        hub.stop()
