"""Activation capture against an independent reference (one full forward per conversation, unbatched,
``output_hidden_states``), on tiny random-init OLMo-2 and GPT-NeoX models; resume after a kill; CLI errors."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from persona_axis import capture_format, prompts
from persona_axis.batching import plan_batches
from persona_axis.capture import (
    CaptureSettings,
    RunInfo,
    load_model,
    load_tokenizer,
    main,
    run_capture,
)
from persona_axis.model_blocks import ModelStructureError, TruncatedForward, compile_blocks, find_decoder_blocks
from persona_axis.tiny_models import build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
#: Makes the tiny BPE merge across the header/response boundary ("\n\n" for OLMo-2, "::)" for NeoX).
MERGE_TEXTS = ["Assistant::) yes\n\nNo.\n\n Sure:: ok\n\n"] * 200
WORDS = ("the pirate sails a ship arr matey treasure map stoic virtue judge calm sea storm "
         "I am an AI language model and can help you with that question").split()
#: On a GPU machine: PERSONA_AXIS_TEST_DEVICE=cuda runs the same checks through the CUDA path.
DEVICE = os.environ.get("PERSONA_AXIS_TEST_DEVICE", "cpu")
#: PERSONA_AXIS_TEST_COMPILE=1: the reference comparisons also go through torch.compile'd blocks.
COMPILE = os.environ.get("PERSONA_AXIS_TEST_COMPILE") == "1"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: one thread is faster than several (and kinder to a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("capture-models")
    return {arch: build_tiny_model(base / arch, arch, seed=3, extra_texts=MERGE_TEXTS) for arch in ("olmo2", "gpt_neox")}


def make_records(role, n, seed, system_prompts=("You are a pirate.", "Be calm: always."), max_words=25):
    rng = random.Random(seed)
    starts = ["", "", "\n", "\n\n", ":) ", ":: ", " "]
    recs = []
    for k in range(n):
        spi, qi, ri = k % len(system_prompts), (k // len(system_prompts)) % 3, k // (3 * len(system_prompts))
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))
        recs.append({
            "role": role, "system_prompt_idx": spi, "question_idx": qi, "rollout_idx": ri, "question_id": qi,
            "system_prompt": system_prompts[spi], "question": ["Hi?", "What be the map?", "Who are you?"][qi],
            "response": rng.choice(starts) + body, "finish_reason": "stop", "num_tokens": 0, "seed": k,
            "model": "tiny", "checkpoint": "main"})
    return recs


def write_transcripts(d: Path, roles: dict[str, list[dict]]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for role, recs in roles.items():
        # file order is not key order: capture sorts rows by key
        (d / f"{role}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(recs)))
    return d


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory):
    pirate = make_records("pirate", 14, seed=1)
    pirate[5]["response"] = ""  # skipped, counted in the metadata
    default = make_records("default", 9, seed=2, system_prompts=("", "You are tiny."))
    return write_transcripts(tmp_path_factory.mktemp("transcripts"), {"pirate": pirate, "default": default})


def key_of(r):
    return (r["system_prompt_idx"], r["question_idx"], r["rollout_idx"])


def reference_span(tok, sp, q, response):
    """Independent of spans.py: span start = where the token ids of the prompt alone and of the whole
    conversation first differ (a merged header/response token differs from the prompt's last token); span
    end = first token whose cumulative decoded text reaches the response's end."""
    text = prompts.render_conversation(tok, sp, q, response)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    p_ids = tok(prompts.render_prompt(tok, sp, q), add_special_tokens=False)["input_ids"]
    start = 0
    while start < len(p_ids) and ids[start] == p_ids[start]:
        start += 1
    end_char = len(prompts.render_prompt(tok, sp, q)) + len(response)
    end = start + 1
    while len(tok.decode(ids[:end], clean_up_tokenization_spaces=False)) < end_char:
        end += 1
    return ids, start, end


def reference_capture(model_dir, records, layers):
    """{key: {layer: (mean, last, all span tokens)}} from one unbatched full forward per conversation."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    owner, attr = (model.model, "norm") if hasattr(model, "model") else (model.gpt_neox, "final_layer_norm")
    norm = getattr(owner, attr)
    num_layers = model.config.num_hidden_layers
    out, merged = {}, 0
    for rec in sorted(records, key=key_of):
        if not rec["response"]:
            continue
        ids, s, e = reference_span(tok, rec["system_prompt"], rec["question"], rec["response"])
        merged += s < len(tok(prompts.render_prompt(tok, rec["system_prompt"], rec["question"]),
                              add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            normed = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            # transformers 5.17 replaces hidden_states[num_layers] by the final-norm output: with the norm
            # swapped for Identity it is the raw output of the last block (what capture stores)
            setattr(owner, attr, torch.nn.Identity())
            try:
                raw = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            finally:
                setattr(owner, attr, norm)
        for i in range(num_layers - 1):
            torch.testing.assert_close(normed[i + 1], raw[i + 1], rtol=0, atol=0)
        assert not torch.allclose(normed[num_layers], raw[num_layers], atol=1e-3)
        out[key_of(rec)] = {layer: (raw[layer + 1][0, s:e].mean(0), raw[layer + 1][0, e - 1], raw[layer + 1][0, s:e])
                            for layer in layers}
    return out, merged


def capture(model_dir, transcript_dir, out_dir, layers, aggregation, max_batch_tokens=96, storage="float32"):
    tok = load_tokenizer(str(model_dir), None)
    model = load_model(str(model_dir), None, "float32", DEVICE)
    if COMPILE:
        compile_blocks(model)
    settings = CaptureSettings(layers=tuple(layers), aggregation=aggregation, storage_dtype=storage,
                               max_batch_tokens=max_batch_tokens, max_length=4096)
    run = RunInfo(model="tiny", checkpoint="main", compute_dtype="float32", chat_template_sha256="x")
    return run_capture(model, tok, transcript_dir, out_dir, settings, run, progress=False, log=lambda m: None)


def load_out(out_dir, role):
    meta = json.loads((Path(out_dir) / f"{role}_metadata.json").read_text())
    acts = torch.load(Path(out_dir) / f"{role}_activations.pt", weights_only=True)
    return meta, acts


@pytest.mark.parametrize("arch", ["olmo2", "gpt_neox"])
def test_mean_last_none_equal_the_unbatched_reference(models, transcripts, tmp_path, arch):
    layers = [0, 2, 3]  # includes the last block (raw residual, not the final norm)
    records = {r: [json.loads(x) for x in (transcripts / f"{r}.jsonl").read_text().splitlines()]
               for r in ("pirate", "default")}
    ref = {}
    merged = 0
    for role, recs in records.items():
        ref[role], m = reference_capture(models[arch], recs, layers)
        merged += m
    assert merged >= 2  # boundary-merging tokens are really exercised
    for aggregation in ("mean", "last", "none"):
        out = tmp_path / aggregation
        summary = capture(models[arch], transcripts, out, layers, aggregation)
        assert summary["padded_tokens"] > summary["input_tokens"]  # several multi-row padded batches
        for role in ("pirate", "default"):
            meta, acts = load_out(out, role)
            keys = [(s["system_prompt_idx"], s["question_idx"], s["rollout_idx"]) for s in meta["samples"]]
            assert keys == sorted(ref[role])
            assert meta["layers"] == layers and meta["aggregation"] == aggregation and meta["dtype"] == "float32"
            assert sorted(acts) == layers
            assert meta["num_tokens"] == [ref[role][k][layers[0]][2].shape[0] for k in keys]
            if role == "pirate":
                assert meta["num_skipped"] == 1 and meta["skipped"][0]["reason"] == "empty_response"
            for layer in layers:
                if aggregation == "none":
                    expected = torch.cat([ref[role][k][layer][2] for k in keys])
                    offs = meta["token_offsets"]
                    assert offs[-1] == acts[layer].shape[0] and len(offs) == len(keys) + 1
                else:
                    j = 0 if aggregation == "mean" else 1
                    expected = torch.stack([ref[role][k][layer][j] for k in keys])
                assert acts[layer].dtype == torch.float32
                torch.testing.assert_close(acts[layer], expected, rtol=1e-5, atol=1e-5)


def test_output_loads_through_the_analysis_reader_and_storage_dtype(models, transcripts, tmp_path):
    capture(models["olmo2"], transcripts, tmp_path / "f32", [1], "mean")
    capture(models["olmo2"], transcripts, tmp_path / "bf16", [1], "mean", storage="bfloat16", max_batch_tokens=4096)
    rc = capture_format.load_role_capture(tmp_path / "f32", "pirate")
    assert rc.activations[1].shape == (13, 64) and rc.metadata.layers == [1]
    assert capture_format.list_roles(tmp_path / "f32") == ["pirate"]  # default is kept apart
    meta, acts = load_out(tmp_path / "bf16", "pirate")
    assert meta["dtype"] == "bfloat16" and acts[1].dtype == torch.bfloat16
    # another token budget (one batch) gives the same means to float32 rounding
    torch.testing.assert_close(acts[1].float(), rc.activations[1].to(torch.bfloat16).float(), rtol=1e-2, atol=1e-2)


def test_truncated_forward_runs_only_the_needed_blocks(models):
    model = AutoModelForCausalLM.from_pretrained(models["gpt_neox"], dtype=torch.float32).eval()
    path, blocks = find_decoder_blocks(model)
    assert path == "gpt_neox.layers" and len(blocks) == 4
    calls = []
    for i, b in enumerate(blocks):
        b.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    model.gpt_neox.final_layer_norm.register_forward_hook(lambda *a: calls.append("norm"))
    model.get_output_embeddings().register_forward_hook(lambda *a: calls.append("lm_head"))
    got = {}
    TruncatedForward(model, [1, 0])(torch.tensor([[1, 2, 3]]), lambda i, h: got.__setitem__(i, h.shape))
    assert calls == [0, 1] and got == {0: (1, 3, 64), 1: (1, 3, 64)}
    olmo = AutoModelForCausalLM.from_pretrained(models["olmo2"], dtype=torch.float32)
    assert find_decoder_blocks(olmo)[0] == "model.layers"
    with pytest.raises(ModelStructureError, match="layer 4 out of range: the model has 4 decoder blocks"):
        TruncatedForward(olmo, [4])

    class NoBlocks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"num_hidden_layers": 3})()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])

    with pytest.raises(ModelStructureError, match=r"no nn.ModuleList of 3 identical blocks.*blocks \(len 2\)"):
        find_decoder_blocks(NoBlocks())


def test_plan_batches_respects_the_budget_and_covers_everything():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(500)] + [1000]
    batches = plan_batches(lengths, 1024)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(lengths)))
    assert all(b.padded_tokens <= 1024 for b in batches if len(b.indices) > 1)
    assert batches[0].indices == (500,)  # longest first; too long for a partner
    padded = sum(b.padded_tokens for b in batches)
    assert 1.0 - sum(int(x) for x in lengths) / padded < 0.05  # padding fraction
    assert plan_batches(lengths, 1024) == batches
    with pytest.raises(ValueError):
        plan_batches([3, 0], 10)


def run_cli(*args):
    return main([str(a) for a in args])


def test_resume_after_kill_gives_identical_files(models, tmp_path):
    tdir = write_transcripts(tmp_path / "tr", {
        "a_small": make_records("a_small", 6, seed=4),
        "b_big": make_records("b_big", 400, seed=5, max_words=40),
        "c_small": make_records("c_small", 6, seed=6)})
    (tmp_path / "no_roles").mkdir()
    common = ["--model-name", models["olmo2"], "--transcript-dir", tdir, "--dtype", "float32", "--device", DEVICE,
              "--layers", "1", "3", "--max-batch-tokens", "512", "--no-progress", "--roles-dir", tmp_path / "no_roles"]
    clean = tmp_path / "clean"
    assert run_cli(*common, "--output-dir", clean) == 0
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "persona_axis.capture", *map(str, common),
                             "--output-dir", str(killed)], env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (killed / "a_small_metadata.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "b_big_metadata.json").exists(), "the kill came too late to test anything"
    before = (killed / "a_small_activations.pt").stat().st_mtime_ns
    assert run_cli(*common, "--output-dir", killed) == 0
    assert (killed / "a_small_activations.pt").stat().st_mtime_ns == before  # complete role skipped
    names = sorted(p.name for p in clean.iterdir())
    assert names == sorted(p.name for p in killed.iterdir())  # no temp files left behind
    assert len(names) == 6
    for name in names:
        assert (clean / name).read_bytes() == (killed / name).read_bytes(), name


def test_cli_errors_name_the_problem(models, transcripts, tmp_path, capsys):
    (tmp_path / "no_roles").mkdir()
    base = ["--model-name", models["olmo2"], "--transcript-dir", transcripts, "--output-dir", tmp_path / "o",
            "--dtype", "float32", "--device", DEVICE, "--no-progress"]
    assert run_cli(*base, "--layers", "1", "--roles-dir", tmp_path / "missing") == 2
    assert "missing: --roles-dir not found" in capsys.readouterr().err
    base += ["--roles-dir", tmp_path / "no_roles"]
    assert run_cli(*base, "--layers", "9") == 2
    assert "layer 9 out of range: the model has 4 decoder blocks" in capsys.readouterr().err
    assert run_cli(*base, "--roles", "ghost") == 2
    assert "no transcripts for role(s) ghost (expected ghost.jsonl)" in capsys.readouterr().err
    # a role file whose system prompts differ from the transcripts' -> error naming both files
    roles = tmp_path / "roles"
    roles.mkdir()
    (roles / "pirate.json").write_text(json.dumps({"instruction": [{"pos": "You are a pirate."}, {"pos": "Other."}],
                                                   "questions": [], "eval_prompt": "{question} {answer}"}))
    assert run_cli(*base[:-2], "--roles-dir", roles) == 2
    err = capsys.readouterr().err
    assert "pirate.jsonl: record (1, 0, 0): system_prompt differs from" in err and "instruction[1]" in err
    assert run_cli(*base[:-2], "--roles-dir", roles, "--no-verify-prompts") == 0


def test_base_checkpoint_borrows_the_chat_template(tiny_olmo2, transcripts, tmp_path, capsys):
    base_ckpt = tmp_path / "base"
    shutil.copytree(tiny_olmo2, base_ckpt)
    (base_ckpt / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((base_ckpt / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (base_ckpt / "tokenizer_config.json").write_text(json.dumps(cfg))
    (tmp_path / "no_roles").mkdir()
    common = ["--transcript-dir", transcripts, "--dtype", "float32", "--device", DEVICE, "--no-progress",
              "--roles", "pirate", "--roles-dir", tmp_path / "no_roles"]
    assert run_cli("--model-name", base_ckpt, "--output-dir", tmp_path / "x", *common) == 2
    err = capsys.readouterr().err
    assert "has no chat template" in err and "--chat-template-from" in err
    assert run_cli("--model-name", base_ckpt, "--chat-template-from", tiny_olmo2, "--output-dir", tmp_path / "b",
                   *common) == 0
    assert run_cli("--model-name", tiny_olmo2, "--output-dir", tmp_path / "i", *common) == 0
    assert (tmp_path / "b" / "pirate_activations.pt").read_bytes() == (tmp_path / "i" / "pirate_activations.pt").read_bytes()
    meta = json.loads((tmp_path / "b" / "pirate_metadata.json").read_text())
    assert meta["chat_template_from"] == str(tiny_olmo2) and meta["layers"] == [2]  # default: num_layers // 2


def test_rerun_skips_complete_roles_and_redoes_changed_ones(models, transcripts, tmp_path):
    out = tmp_path / "o"
    first = capture(models["olmo2"], transcripts, out, [1], "mean")
    assert [r["role"] for r in first["roles"]] == ["default", "pirate"]
    again = capture(models["olmo2"], transcripts, out, [1], "mean")
    assert again["roles"] == [] and again["skipped_roles"] == ["default", "pirate"]
    other = capture(models["olmo2"], transcripts, out, [2], "mean")  # other settings: redone, not mixed
    assert [r["role"] for r in other["roles"]] == ["default", "pirate"]
    meta, acts = load_out(out, "pirate")
    assert meta["layers"] == [2] and sorted(acts) == [2]


def test_bad_transcripts_name_the_file_and_record(models, tmp_path):
    from persona_axis.errors import CaptureError

    recs = make_records("pirate", 3, seed=9)
    tdir = write_transcripts(tmp_path / "dup", {"pirate": recs + [recs[1]]})
    with pytest.raises(CaptureError, match=r"dup/pirate\.jsonl: duplicate record \(1, 0, 0\)"):
        capture(models["olmo2"], tdir, tmp_path / "o1", [1], "mean")
    del recs[2]["system_prompt"]
    tdir = write_transcripts(tmp_path / "old", {"pirate": recs})
    with pytest.raises(CaptureError, match=r"old/pirate\.jsonl: record \(0, 1, 0\) lacks a string 'system_prompt'"):
        capture(models["olmo2"], tdir, tmp_path / "o2", [1], "mean")


def test_transcripts_are_read_strictly(models, tmp_path):
    """A finished transcript is read as it is: a complete last line without its final newline is a
    record; a corrupt last line is an error naming file:line (not silently dropped)."""
    from persona_axis.errors import CaptureError

    recs = make_records("pirate", 4, seed=3)
    tdir = tmp_path / "no_newline"
    tdir.mkdir()
    (tdir / "pirate.jsonl").write_text("\n".join(json.dumps(r) for r in recs))  # no final newline
    capture(models["olmo2"], tdir, tmp_path / "o1", [1], "mean")
    meta, _ = load_out(tmp_path / "o1", "pirate")
    assert meta["num_samples"] == 4
    tdir = tmp_path / "torn"
    tdir.mkdir()
    (tdir / "pirate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:3]) + json.dumps(recs[3])[:40])
    with pytest.raises(CaptureError, match=r"torn/pirate\.jsonl:4: corrupt transcript line"):
        capture(models["olmo2"], tdir, tmp_path / "o2", [1], "mean")


def test_prompt_check_does_not_depend_on_the_current_directory(models, tmp_path):
    """Run from the project root (which has data/roles/instructions) and from elsewhere: the same
    outcome. Without --roles-dir nothing is checked, and capture says so; with it (a relative path
    resolved against the cwd as usual), the check runs from anywhere."""
    tdir = write_transcripts(tmp_path / "tr", {"pirate": make_records("pirate", 4, seed=8)})
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS="1")
    common = [sys.executable, "-m", "persona_axis.capture", "--model-name", str(models["olmo2"]),
              "--transcript-dir", str(tdir), "--dtype", "float32", "--device", DEVICE, "--layers", "1", "--no-progress"]
    runs = {}
    for name, cwd in [("root", ROOT), ("elsewhere", tmp_path)]:
        r = subprocess.run([*common, "--output-dir", str(tmp_path / name)], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "prompts NOT checked against role data (no --roles-dir)" in r.stderr
        runs[name] = json.loads((tmp_path / name / "pirate_metadata.json").read_text())
        assert runs[name]["prompts_checked_against"] is None
    roles = tmp_path / "roles"
    roles.mkdir()
    (roles / "pirate.json").write_text(json.dumps({"instruction": [{"pos": "You are a pirate."}, {"pos": "Other."}],
                                                   "questions": [], "eval_prompt": "{question} {answer}"}))
    for cwd, arg in [(ROOT, str(roles)), (tmp_path, "roles")]:
        r = subprocess.run([*common, "--output-dir", str(tmp_path / "chk"), "--roles-dir", arg], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "system_prompt differs from" in r.stderr and str(roles) in r.stderr, r.stderr
