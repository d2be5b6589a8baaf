"""Transcript generation with the transformers backend on tiny local models (CPU): record format,
reproducibility, kill + resume, torn-line repair, validation before loading; the vLLM path with an
injected stand-in for ``vllm.LLM`` (vLLM cannot be installed here)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT
from persona_axis import generate
from persona_axis.generation_backends import VLLMBackend
from persona_axis.prompts import prompt_token_ids, render_prompt
from persona_axis.seeds import request_seed
from persona_axis.transcripts import read_records, record_key

SCRIPT = "persona_axis.generate"


@pytest.fixture(scope="module")
def role_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("roles")
    rd = d / "roles"
    rd.mkdir()
    for name, who in [("pirate", "a pirate captain"), ("librarian", "a quiet librarian")]:
        (rd / f"{name}.json").write_text(json.dumps({
            "instruction": [{"pos": f"You are {who}."}, {"pos": f"Act as {who} at all times."}],
            "questions": ["Who are you?", "What do you do all day?"],
            "eval_prompt": f"Is this {who}? {{question}} -> {{answer}} Answer 0-3.",
        }))
    (rd / "default.json").write_text(json.dumps({"instruction": [{"pos": ""}, {"pos": "You are {model_name}."}]}))
    qf = d / "questions.jsonl"
    qf.write_text("".join(json.dumps({"question": q, "id": 100 + i}) + "\n" for i, q in enumerate(
        ["What is the relationship between law and morality?", "How should I handle a difficult boss?",
         "What principles should guide human action?"])))
    return SimpleNamespace(roles_dir=rd, questions=qf)


def gen_args(model, role_data, out, *extra):
    return ["--model-name", str(model), "--roles-dir", str(role_data.roles_dir), "--questions", str(role_data.questions),
            "--output-dir", str(out), "--backend", "hf", "--device", "cpu", "--max-tokens", "12",
            "--batch-size", "3", "--no-progress", *extra]


def read_dir(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def reference(tiny_olmo2, role_data, tmp_path_factory):
    """One uninterrupted run (2 roles + default, 2 prompts x 3 questions x 2 rollouts each)."""
    out = tmp_path_factory.mktemp("ref") / "t"
    assert generate.main(gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                  "--model-display-name", "TinyOLMo")) == 0
    return out


def test_records_hold_everything_to_rebuild_the_conversation(reference, role_data):
    assert sorted(p.name for p in reference.iterdir()) == ["default.jsonl", "librarian.jsonl", "pirate.jsonl", "run.json"]
    recs = read_records(reference / "pirate.jsonl")
    assert len(recs) == 2 * 3 * 2
    assert [record_key(r) for r in recs] == sorted(record_key(r) for r in recs)  # key order
    r = recs[0]
    assert set(r) >= {"role", "system_prompt_idx", "question_idx", "rollout_idx", "question_id", "system_prompt",
                      "question", "response", "finish_reason", "num_tokens", "seed", "model", "checkpoint"}
    assert r["system_prompt"] == "You are a pirate captain." and r["question_id"] == 100
    assert r["finish_reason"] in ("stop", "length") and 1 <= r["num_tokens"] <= 12
    assert r["seed"] == request_seed(7, "pirate", 0, 0, 0)
    assert len({x["seed"] for x in recs}) == len(recs)
    default = read_records(reference / "default.jsonl")
    assert {x["system_prompt"] for x in default} == {"", "You are TinyOLMo."}
    run = json.loads((reference / "run.json").read_text())
    assert run["counts"] == {"default": 12, "librarian": 12, "pirate": 12} and run["backend"] == "hf"
    assert run["sampling"] == {"temperature": 0.8, "top_p": 1.0, "max_tokens": 12} and run["seed"] == 7
    assert "time" not in json.dumps(run).lower()


def test_same_seed_gives_identical_files_and_another_seed_differs(reference, tiny_olmo2, role_data, tmp_path):
    again = tmp_path / "again"
    assert generate.main(gen_args(tiny_olmo2, role_data, again, "--num-rollouts", "2", "--seed", "7",
                                  "--model-display-name", "TinyOLMo")) == 0
    assert read_dir(again) == read_dir(reference)
    other = tmp_path / "other"
    assert generate.main(gen_args(tiny_olmo2, role_data, other, "--num-rollouts", "2", "--seed", "8",
                                  "--model-display-name", "TinyOLMo", "--roles", "pirate")) == 0
    a = [r["response"] for r in read_records(other / "pirate.jsonl")]
    b = [r["response"] for r in read_records(reference / "pirate.jsonl")]
    assert a != b


def test_killed_run_resumes_to_the_same_lines(reference, tiny_olmo2, role_data, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", SCRIPT, *gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                                  "--model-display-name", "TinyOLMo")]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "default.jsonl"  # roles run in name order: default first
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if first.exists() and first.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"generation ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    partial = sum(len(read_records(p)) for p in out.glob("*.jsonl"))
    assert 2 <= partial < 36, partial
    assert generate.main(gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                  "--model-display-name", "TinyOLMo")) == 0
    for name in ("default.jsonl", "librarian.jsonl", "pirate.jsonl"):
        got = (out / name).read_text().splitlines()
        want = (reference / name).read_text().splitlines()
        assert len(got) == len(set(got)) == len(want)
        assert set(got) == set(want)
        assert got == want  # also byte-identical: complete role files are rewritten in key order


def test_torn_last_line_is_repaired_and_missing_lines_regenerated(reference, tiny_olmo2, role_data, tmp_path):
    out = tmp_path / "torn"
    shutil.copytree(reference, out)
    lines = (out / "librarian.jsonl").read_text().splitlines(keepends=True)
    # Drop the last 4 responses and leave half of a line, as a crash mid-write would.
    (out / "librarian.jsonl").write_text("".join(lines[:-4]) + lines[-4][: len(lines[-4]) // 2])
    assert len(read_records(out / "librarian.jsonl")) == len(lines) - 4
    assert generate.main(gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                  "--model-display-name", "TinyOLMo")) == 0
    assert read_dir(out) == read_dir(reference)


def test_settings_change_in_the_same_directory_is_refused(reference, tiny_olmo2, role_data, tmp_path, capsys):
    out = tmp_path / "mix"
    shutil.copytree(reference, out)
    assert generate.main(gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                  "--model-display-name", "TinyOLMo", "--temperature", "0.5")) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "temperature" in err and "--overwrite" in err
    assert generate.main(gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "1", "--seed", "7", "--roles", "pirate",
                                  "--model-display-name", "TinyOLMo", "--temperature", "0.0", "--overwrite")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pirate.jsonl", "run.json"]
    assert len(read_records(out / "pirate.jsonl")) == 6


def test_gpt_neox_template_without_system_role_and_role_questions(tiny_neox, role_data, tmp_path):
    out = tmp_path / "neox"
    args = gen_args(tiny_neox, role_data, out, "--roles", "pirate", "--temperature", "0")
    args[args.index("--questions") + 1] = "role"  # each role file's own questions
    assert generate.main(args) == 0
    recs = read_records(out / "pirate.jsonl")
    assert [(r["system_prompt_idx"], r["question_idx"], r["question_id"], r["question"]) for r in recs] == [
        (0, 0, 0, "Who are you?"), (0, 1, 1, "What do you do all day?"),
        (1, 0, 0, "Who are you?"), (1, 1, 1, "What do you do all day?")]
    # Greedy decoding: the same prompt gives the same response whatever the seed.
    args2 = gen_args(tiny_neox, role_data, tmp_path / "neox2", "--roles", "pirate", "--temperature", "0", "--seed", "99")
    args2[args2.index("--questions") + 1] = "role"
    assert generate.main(args2) == 0
    assert [r["response"] for r in read_records(tmp_path / "neox2" / "pirate.jsonl")] == [r["response"] for r in recs]


def test_bad_role_file_fails_before_any_model_is_loaded(role_data, tmp_path):
    rd = tmp_path / "roles"
    shutil.copytree(role_data.roles_dir, rd)
    (rd / "zealot.json").write_text(json.dumps({"instruction": [{"pos": "x"}], "eval_prompt": "no placeholders"}))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", SCRIPT, "--model-name", str(tmp_path / "no-such-model"),
                           "--roles-dir", str(rd), "--questions", str(role_data.questions), "--run-name", "x",
                           "--backend", "hf", "--roles", "pirate"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "zealot.json: key 'eval_prompt'" in proc.stderr
    assert not (tmp_path / "outputs").exists()
    assert time.monotonic() - t0 < 60


def test_default_output_dir_and_resume_by_timestamp(tiny_olmo2, role_data, tmp_path):
    base = ["--model-name", str(tiny_olmo2), "--roles-dir", str(role_data.roles_dir), "--questions",
            str(role_data.questions), "--roles", "pirate", "--question-count", "1", "--max-tokens", "4",
            "--backend", "hf", "--no-progress", "--run-name", "demo", "--revision", "stage1-step1000",
            "--outputs-root", str(tmp_path / "outputs" / "transcripts")]
    assert generate.main(base + ["--timestamp", "20260101_000000"]) == 0
    model_part = str(tiny_olmo2).strip("/").replace("/", "_")
    d = tmp_path / "outputs" / "transcripts" / "demo_20260101_000000" / model_part / "stage1-step1000"
    assert len(read_records(d / "pirate.jsonl")) == 2
    before = (d / "pirate.jsonl").read_bytes()
    assert generate.main(base + ["--resume", "--timestamp", "20260101_000000"]) == 0
    assert (d / "pirate.jsonl").read_bytes() == before
    assert generate.main(base + ["--resume", "--timestamp", "20990101_000000"]) == 2


# ---------------------------------------------------------------------------------------------- vLLM


class FakeSamplingParams:
    """Stands in for vllm.SamplingParams: records its arguments."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeLLM:
    """Stands in for vllm.LLM (not installable here): a real tokenizer, deterministic fake outputs."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls: list[tuple[list, list]] = []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        self.calls.append((prompts, sampling_params))
        outs = []
        for p, sp in zip(prompts, sampling_params):
            n = 1 + sp.seed % sp.max_tokens
            reason = "stop" if sp.seed % 2 else "length"
            c = SimpleNamespace(text=f"reply-{sp.seed}-{len(p['prompt_token_ids'])}", token_ids=list(range(n)),
                                finish_reason=reason)
            outs.append(SimpleNamespace(outputs=[c]))
        return outs


def test_vllm_backend_batches_all_roles_in_chunks(tiny_olmo2, role_data, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_olmo2)
    llm = FakeLLM(tok)
    backend = VLLMBackend(str(tiny_olmo2), "main", llm=llm, sampling_params_cls=FakeSamplingParams)
    out = tmp_path / "v"
    a = generate.parse_args(["--model-name", "allenai/OLMo-2-1124-7B-Instruct", "--revision", "main",
                             "--roles-dir", str(role_data.roles_dir), "--questions", str(role_data.questions),
                             "--output-dir", str(out), "--chunk-size", "10", "--top-p", "0.9", "--no-progress"])
    generate.run_generation(a, backend_obj=backend)
    assert [len(p) for p, _ in llm.calls] == [10, 8]  # 3 roles x 2 prompts x 3 questions = 18, all roles together
    first_prompt, first_sp = llm.calls[0][0][0], llm.calls[0][1][0]
    assert first_prompt["prompt_token_ids"] == prompt_token_ids(tok, render_prompt(tok, "", "What is the relationship between law and morality?"))
    assert (first_sp.temperature, first_sp.top_p, first_sp.max_tokens) == (0.8, 0.9, 512)
    assert first_sp.seed == request_seed(0, "default", 0, 0, 0)
    recs = read_records(out / "librarian.jsonl")
    assert len(recs) == 6 and recs[0]["response"].startswith(f"reply-{request_seed(0, 'librarian', 0, 0, 0)}-")
    assert {r["finish_reason"] for r in recs} <= {"stop", "length"}
    assert json.loads((out / "run.json").read_text())["backend"] == "vllm"
    # A second run finds everything done and calls vLLM no more.
    generate.run_generation(generate.parse_args(["--model-name", "allenai/OLMo-2-1124-7B-Instruct",
                                                 "--roles-dir", str(role_data.roles_dir), "--questions",
                                                 str(role_data.questions), "--output-dir", str(out), "--chunk-size",
                                                 "10", "--top-p", "0.9", "--no-progress"]), backend_obj=backend)
    assert len(llm.calls) == 2


def test_sampler_inverse_cdf_with_top_p():
    import torch

    from persona_axis.generation_backends import sample_next_tokens
    from persona_axis.sampling import sample_full

    logits = torch.log(torch.tensor([[0.1, 0.5, 0.3, 0.1]] * 4))
    u = torch.tensor([0.0, 0.55, 0.79, 0.999], dtype=torch.float64)
    # temperature 1, no top-p: nothing is cut, so the CDF runs in vocabulary order [0.1, 0.6, 0.9, 1.0]
    # (no sort); the full-sort reference walks the tokens by probability [1, 2, 0|3, 3|0].
    assert sample_next_tokens(logits, u, 1.0, 1.0).tolist() == [0, 1, 2, 3]
    got = sample_full(logits, u, 1.0, 1.0).tolist()
    assert got[:3] == [1, 2, 2] and got[3] in (0, 3)
    # top-p 0.75 keeps tokens 1 and 2 (0.5 + 0.3 reaches it): u scales over their mass only.
    assert sample_next_tokens(logits, u, 1.0, 0.75).tolist() == [1, 1, 2, 2]
    # top-p below the largest probability keeps one token; temperature 0 is argmax.
    assert sample_next_tokens(logits, u, 1.0, 0.2).tolist() == [1, 1, 1, 1]
    assert sample_next_tokens(logits, u, 0.0, 1.0).tolist() == [1, 1, 1, 1]
    # Empirically the frequencies follow the probabilities.
    g = torch.Generator().manual_seed(0)
    us = torch.rand(20000, generator=g, dtype=torch.float64)
    toks = sample_next_tokens(logits[:1].expand(20000, 4), us, 1.0, 1.0)
    freq = torch.bincount(toks, minlength=4).double() / 20000
    assert torch.allclose(freq, torch.tensor([0.1, 0.5, 0.3, 0.1], dtype=torch.float64), atol=0.02)


def test_two_workers_write_the_same_files_as_one(reference, tiny_olmo2, role_data, tmp_path):
    out = tmp_path / "w2"
    cmd = [sys.executable, "-m", SCRIPT, *gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                                  "--model-display-name", "TinyOLMo", "--gpus", "2")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (out / ".parts").exists()
    got, want = read_dir(out), read_dir(reference)
    assert {k: v for k, v in got.items() if k != "run.json"} == {k: v for k, v in want.items() if k != "run.json"}


def test_base_model_without_template_borrows_one(reference, tiny_olmo2, role_data, tmp_path, capsys):
    """A base model has no chat template: refused with one line, or generated with the reference's
    (--chat-template-from, as the on-policy variant does), then the same text as with its own."""
    base = tmp_path / "base"
    shutil.copytree(tiny_olmo2, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(cfg))
    args = ("--num-rollouts", "2", "--seed", "7", "--model-display-name", "TinyOLMo")
    assert generate.main(gen_args(base, role_data, tmp_path / "no_template", *args)) == 2
    assert "has no chat template" in capsys.readouterr().err
    out = tmp_path / "borrowed"
    assert generate.main(gen_args(base, role_data, out, *args, "--chat-template-from", str(tiny_olmo2))) == 0
    assert json.loads((out / "run.json").read_text())["chat_template_from"] == str(tiny_olmo2)
    for f in sorted(reference.glob("*.jsonl")):
        mine = [(record_key(r), r["response"]) for r in read_records(out / f.name)]
        assert mine == [(record_key(r), r["response"]) for r in read_records(f)]


def test_run_json_records_the_decode_step_and_a_change_is_warned_about(reference, tiny_olmo2, role_data, tmp_path,
                                                                       capsys):
    # compiled vs eager decode steps (and matmul vs sdpa attention) round differently: run.json says which was asked
    settings = json.loads((reference / "run.json").read_text())
    assert settings["backend"] == "hf"
    assert settings["decode_step"] == {"attention": "matmul", "compile": "auto"}
    out = tmp_path / "again"
    shutil.copytree(reference, out)
    assert generate.main(gen_args(tiny_olmo2, role_data, out, "--num-rollouts", "2", "--seed", "7",
                                  "--model-display-name", "TinyOLMo", "--compile-decode", "off")) == 0
    err = capsys.readouterr().err
    assert "made with decode_step" in err and "float rounding" in err
    assert json.loads((out / "run.json").read_text())["decode_step"] == {"attention": "matmul", "compile": "off"}
    assert {k: v for k, v in read_dir(out).items() if k != "run.json"} == \
        {k: v for k, v in read_dir(reference).items() if k != "run.json"}  # nothing was missing: nothing regenerated
