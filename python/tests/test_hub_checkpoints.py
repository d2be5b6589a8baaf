"""Pinning, checking and downloading Hub checkpoints through the real huggingface_hub client, against a
local server answering the Hub's endpoints (fake_hub_server.py) for tiny models built locally.

The client runs in subprocesses: huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE /
HF_TOKEN when it is imported, and this test process runs offline (conftest)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
TOKEN = "hf_TESTtokenVALUEnever_written_0123456789"
MODEL = "allenai/Tiny-OLMo-Instruct"
BASE = "allenai/Tiny-OLMo-Base"
GATED = "geodesic-research/tiny_gated_dpo"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from persona_axis.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("hubmodels")
    a = build_tiny_model(root / "a", "olmo2", seed=0)
    b = build_tiny_model(root / "b", "olmo2", seed=1)
    base = root / "base"
    shutil.copytree(a, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(cfg))
    return {"a": a, "b": b, "base": base}


@pytest.fixture
def hub(tiny_models):
    h = FakeHub(tokens=(TOKEN,))
    h.url = h.start()
    h.sha_a = h.commit_dir(MODEL, tiny_models["a"])
    h.commit_dir(MODEL, tiny_models["a"], branch="step_60")
    h.commit_dir(MODEL, tiny_models["a"], branch="step_120")
    h.sha_base = h.commit_dir(BASE, tiny_models["base"])
    h.sha_gated = h.commit_dir(GATED, tiny_models["a"], gated=True)
    yield h
    h.stop()


def client_env(hub: FakeHub, hf_home: Path, *, token: str | None = None, offline: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1" if offline else "0",
               HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "python"))
    if token:
        env["HF_TOKEN"] = token
    return env


def models_py(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "persona_axis.pin_models", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def cps(**kw: tuple) -> str:
    return json.dumps({n: {"model": m, "revision": r, **({"sha": s[0]} if s else {})} for n, (m, r, *s) in kw.items()})


def test_pin_resolves_keeps_and_reports_a_moved_branch(hub, tiny_models, tmp_path):
    env, out = client_env(hub, tmp_path / "hf"), tmp_path / "models"
    spec = cps(final=(MODEL, "main"), step_60=(MODEL, "step_60"), base=(BASE, "main"))
    r = models_py(env, "pin", "--checkpoints", spec, "--output-dir", str(out))
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "final" / "checkpoint.json").read_text())
    assert rec == {"name": "final", "model": MODEL, "revision": "main", "sha": hub.sha_a, "build": "hub"}
    assert json.loads((out / "step_60" / "checkpoint.json").read_text())["sha"] == hub.resolve(MODEL, "step_60")
    # The final checkpoint's template is saved from the pinned commit; the base model has none.
    assert (out / "final" / "chat_template.jinja").read_text() == (tiny_models["a"] / "chat_template.jinja").read_text()
    assert not (out / "base" / "chat_template.jinja").exists()
    assert f"sha: {hub.sha_a}" in (out / "pins.yaml").read_text()

    # main moves on the Hub: a plain rerun keeps the pin without asking the Hub.
    sha_b = hub.commit_dir(MODEL, tiny_models["b"])
    n_before = len(hub.requests("GET", "/revision/main"))
    r = models_py(env, "pin", "--checkpoints", spec, "--output-dir", str(out))
    assert r.returncode == 0, r.stderr
    assert f"final: {MODEL}@main kept at {hub.sha_a[:7]}" in r.stdout
    assert len(hub.requests("GET", "/revision/main")) == n_before
    assert json.loads((out / "final" / "checkpoint.json").read_text())["sha"] == hub.sha_a

    # Re-resolving is explicit, and says which checkpoint moved.
    r = models_py(env, "pin", "--checkpoints", spec, "--output-dir", str(out), "--update", "final")
    assert r.returncode == 0, r.stderr
    assert f"final: main moved {hub.sha_a[:7]} -> {sha_b[:7]}" in r.stdout
    assert json.loads((out / "final" / "checkpoint.json").read_text())["sha"] == sha_b
    hist = [json.loads(x) for x in (out / "pins-history.jsonl").read_text().splitlines()]
    assert hist == [{"checkpoint": "final", "model": MODEL, "revision": "main", "from": hub.sha_a, "to": sha_b}]
    assert "step_60" in r.stdout and "kept" in r.stdout.split("step_60:")[1].splitlines()[0]

    # A sha in the params wins over the branch, and --update says where the branch is now.
    frozen = cps(final=(MODEL, "main", hub.sha_a))
    r = models_py(env, "pin", "--checkpoints", frozen, "--output-dir", str(out), "--update", "all")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "final" / "checkpoint.json").read_text())["sha"] == hub.sha_a
    assert f"pinned by the params at {hub.sha_a[:7]}; main is now at {sha_b[:7]}" in r.stdout
    # An unknown name to update is bad input.
    r = models_py(env, "pin", "--checkpoints", spec, "--output-dir", str(out), "--update", "finall")
    assert r.returncode == 2 and "unknown checkpoint(s) finall" in r.stderr


def test_check_table_and_missing_names(hub, tmp_path):
    env = client_env(hub, tmp_path / "hf")
    ok = cps(base=(BASE, "main"), step_60=(MODEL, "step_60"), final=(MODEL, "main"))
    r = models_py(env, "check", "--checkpoints", ok)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["checkpoint", "model@revision", "commit", "size", "gated", "chat", "template"]
    row = next(x for x in lines if x.startswith("base "))
    assert hub.sha_base[:12] in row and "none: borrows final's" in row and "MB" in row
    assert "own" in next(x for x in lines if x.startswith("final "))

    bad = cps(step_6=(MODEL, "step_6"), typo=("allenai/Tiny-OLMo-Instruc", "main"), final=(MODEL, "main"))
    r = models_py(env, "check", "--checkpoints", bad)
    assert r.returncode == 2
    assert "step_6: allenai/Tiny-OLMo-Instruct: revision 'step_6' not found; closest branches/tags: step_60" in r.stdout
    assert "closest: allenai/Tiny-OLMo-Instruct" in r.stdout
    assert "1/3 checkpoint(s) ok" in r.stdout
    # The final checkpoint must have a template: the others borrow it.
    r = models_py(env, "check", "--checkpoints", cps(final=(BASE, "main")))
    assert r.returncode == 2 and "final: no chat template" in r.stdout


def test_gated_repository_needs_a_token_that_is_never_written(hub, tmp_path):
    spec = cps(final=(GATED, "main"))
    out = tmp_path / "models"
    r = models_py(client_env(hub, tmp_path / "hf"), "check", "--checkpoints", spec)
    assert r.returncode == 2
    assert "gated repository, no access (no token: set HF_TOKEN" in r.stdout
    r = models_py(client_env(hub, tmp_path / "hf"), "pin", "--checkpoints", spec, "--output-dir", str(out))
    assert r.returncode == 2 and "gated" in r.stderr

    outputs = []
    env = client_env(hub, tmp_path / "hf", token=TOKEN)
    for args in (["check", "--checkpoints", spec], ["pin", "--checkpoints", spec, "--output-dir", str(out)],
                 ["download", "--output-dir", str(out), "--no-progress"]):
        r = models_py(env, *args)
        assert r.returncode == 0, r.stdout + r.stderr
        outputs.append(r.stdout + r.stderr)
    assert "gated" in outputs[0] and "manual" in outputs[0] and "token: set" in outputs[0]
    # The login file works as well as HF_TOKEN.
    home2 = tmp_path / "hf2"
    home2.mkdir()
    (home2 / "token").write_text(TOKEN)
    r = models_py(client_env(hub, home2), "check", "--checkpoints", spec)
    assert r.returncode == 0, r.stdout
    outputs.append(r.stdout + r.stderr)
    assert hub.requests("HEAD", "/resolve/")[-1]["auth"]
    # Never in any output, nor in any file written (outs, cache), except the login file itself.
    assert not any(TOKEN in o for o in outputs)
    for f in [*out.rglob("*"), *(tmp_path / "hf").rglob("*"), *home2.rglob("*")]:
        if f.is_file() and f != home2 / "token":
            assert TOKEN.encode() not in f.read_bytes(), f


def _blob(hf_home: Path, repo: str, sha: str, name: str) -> bytes:
    return (hf_home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / sha / name).read_bytes()


def test_interrupted_download_resumes_and_is_verified(hub, tiny_models, tmp_path):
    hf, out = tmp_path / "hf", tmp_path / "models"
    env = client_env(hub, hf)
    assert models_py(env, "pin", "--checkpoints", cps(final=(MODEL, "main")), "--output-dir", str(out)).returncode == 0
    # A file over huggingface_hub's 10 MiB read chunk, so a drop after the first chunk can resume.
    weights = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32)
    files = {p.name: p.read_bytes() for p in tiny_models["a"].iterdir()} | {"original/consolidated.bin": weights}
    hub.sha_a = hub.commit(MODEL, files)
    assert models_py(env, "pin", "--checkpoints", cps(final=(MODEL, "main")), "--output-dir", str(out),
                     "--update", "all").returncode == 0
    # 1. The connection drops mid-file: the client resumes with a Range request, in the same run.
    chunk = 10 * 1024 * 1024
    hub.drop_after["original/consolidated.bin"] = chunk + 1000
    # 2. Another file fails outright: the run fails, and the next run fetches only what is missing.
    hub.fail_next["tokenizer.json"] = 20
    r = models_py(env, "download", "--output-dir", str(out), "--no-progress")
    assert r.returncode != 0
    ranges = [x["range"] for x in hub.requests("GET", "consolidated.bin")]
    assert ranges == [None, f"bytes={chunk}-"], ranges
    assert _blob(hf, MODEL, hub.sha_a, "original/consolidated.bin") == weights
    hub.fail_next.clear()
    gets_before = {p: len(hub.requests("GET", f"/resolve/{hub.sha_a}/{p}")) for p in ("original/consolidated.bin", "tokenizer.json")}
    r = models_py(env, "download", "--output-dir", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "final: verified" in r.stdout
    assert len(hub.requests("GET", f"/resolve/{hub.sha_a}/original/consolidated.bin")) == gets_before["original/consolidated.bin"]
    assert len(hub.requests("GET", f"/resolve/{hub.sha_a}/tokenizer.json")) == gets_before["tokenizer.json"] + 1
    assert _blob(hf, MODEL, hub.sha_a, "tokenizer.json") == (tiny_models["a"] / "tokenizer.json").read_bytes()

    # A corrupted cached file is caught by the verification against the Hub's hashes.
    blob = (hf / "hub" / f"models--{MODEL.replace('/', '--')}" / "snapshots" / hub.sha_a / "config.json").resolve()
    blob.write_bytes(blob.read_bytes().replace(b"{", b"{ ", 1))
    r = models_py(env, "download", "--output-dir", str(out), "--no-progress")
    assert r.returncode == 2 and "config.json differs" in r.stderr


OFFLINE_LOAD = r"""
import json, sys, torch
from persona_axis.model_loading import ModelNotCachedError, load_causal_lm, load_tokenizer
model, sha = sys.argv[1], sys.argv[2]
try:
    tok = load_tokenizer(model, sha)
    m = load_causal_lm(model, sha, dtype=torch.float32)
except ModelNotCachedError as e:
    print("NOT_CACHED", e); sys.exit(3)
ids = torch.tensor([tok("You are a pirate captain.")["input_ids"]])
print(json.dumps({"logits": m(ids).logits[0, -1, :8].tolist(), "template": bool(tok.chat_template)}))
"""


def test_offline_loading_of_the_pinned_sha(hub, tiny_models, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf, out = tmp_path / "hf", tmp_path / "models"
    env = client_env(hub, hf)
    assert models_py(env, "pin", "--checkpoints", cps(final=(MODEL, "main")), "--output-dir", str(out)).returncode == 0
    assert models_py(env, "download", "--output-dir", str(out), "--no-progress").returncode == 0
    sha_b = hub.commit_dir(MODEL, tiny_models["b"])  # main moves after the pin
    hub.stop()  # no Hub at all from here on
    off = client_env(hub, hf, offline=True)
    r = subprocess.run([PY, "-c", OFFLINE_LOAD, MODEL, hub.sha_a], env=off, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    tok = AutoTokenizer.from_pretrained(tiny_models["a"])
    ref = AutoModelForCausalLM.from_pretrained(tiny_models["a"], dtype=torch.float32)
    want = ref(torch.tensor([tok("You are a pirate captain.")["input_ids"]])).logits[0, -1, :8].tolist()
    assert got["template"] and got["logits"] == pytest.approx(want, abs=1e-5)
    # The models stage reruns on an offline node: pins kept, the cached snapshot accepted.
    spec = cps(final=(MODEL, "main"))
    r = models_py(off, "pin", "--checkpoints", spec, "--output-dir", str(out))
    assert r.returncode == 0 and "kept at" in r.stdout, r.stderr
    assert models_py(off, "download", "--output-dir", str(out), "--no-progress").returncode == 0
    # Resolving needs the Hub: without it, one line saying so (exit 2), no traceback.
    r = models_py(env, "check", "--checkpoints", spec)
    assert r.returncode == 2 and "cannot reach the Hub at " + hub.url in r.stdout and "Traceback" not in r.stderr
    # A commit that was never downloaded fails at once, with what to run.
    r = subprocess.run([PY, "-c", OFFLINE_LOAD, MODEL, sha_b], env=off, capture_output=True, text=True, timeout=180)
    assert r.returncode == 3 and "is not in the Hugging Face cache" in r.stdout and "repro models" in r.stdout
