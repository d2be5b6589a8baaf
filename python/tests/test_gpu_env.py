"""The GPU environment's lock (python/requirements-gpu.lock, installed by `setup.sh --gpu` into
.venv-gpu) and how ``backend: auto`` picks vLLM: only where the vllm package is importable and a GPU
is present. vLLM itself is not installed here: these check the lock file and the selection logic,
with a real vllm-less interpreter and a stand-in ``vllm`` package on the path."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from conftest import ROOT
from persona_axis import generate

LOCK = ROOT / "python" / "requirements-gpu.lock"
IN = ROOT / "python" / "requirements-gpu.in"
PYPROJECT = ROOT / "python" / "pyproject.toml"


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes), from the uv/pip-compile format (continuation lines)."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text(encoding="utf-8"))
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *opts = line.split(" --hash=")
        req = Requirement(spec.strip())
        (pin,) = req.specifier
        assert pin.operator == "==", line
        hashes = [h.strip() for h in opts]
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), line
        out[req.name.lower()] = (pin.version, hashes)
    return out


def test_gpu_lock_pins_every_package_with_hashes_and_vllm_brings_its_torch():
    entries = lock_entries()
    wanted = [Requirement(x.split("#")[0].strip()) for x in IN.read_text().splitlines() if x.split("#")[0].strip()]
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    wanted += [Requirement(x) for x in project["dependencies"] + project["optional-dependencies"]["test"]]
    for r in wanted:
        assert r.name.lower() in entries, f"{r.name} (python/requirements-gpu.in or pyproject.toml) is not in {LOCK.name}: run scripts/lock-python.sh"
        if r.specifier:
            assert entries[r.name.lower()][0] in r.specifier
    assert entries["vllm"][0] == "0.33.0"
    assert "torch" in entries and "transformers" in entries  # vLLM's own pins, resolved in the lock
    assert len(entries) > 50


def test_auto_is_hf_in_a_real_environment_without_vllm():
    code = "from persona_axis import generate; print(generate.choose_backend('auto'))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "python", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hf"
    r = subprocess.run([sys.executable, "-c", "from persona_axis import generate; generate.choose_backend('vllm')"],
                       cwd=ROOT / "python", capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "--backend vllm: the vllm package is not installed" in r.stderr


@pytest.mark.parametrize("gpu,expected", [(False, "hf"), (True, "vllm")])
def test_auto_picks_vllm_only_when_importable_and_a_gpu_is_present(tmp_path, monkeypatch, gpu, expected):
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("")  # an importable vllm (stand-in; not loaded)
    monkeypatch.syspath_prepend(str(tmp_path))
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert generate.choose_backend("auto") == expected
    assert generate.choose_backend("hf") == "hf"
