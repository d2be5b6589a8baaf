"""The steer, cap and causal steps end to end on a tiny OLMo-2 (CPU) with planted captures of the
project's role set: directions and controls as documented, one batched run per checkpoint, resume
byte-identical, taus from the default projections, the lineage rule in the transfer matrix, and the
statistics files."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PROJECT_QUESTIONS, PROJECT_ROLES_DIR
from persona_axis import cap, causal, persona_space, steer
from persona_axis.capture_format import write_capture

ROLES = ["pirate", "poet", "therapist", "noir_detective"]
LAYERS = [1, 2]
KEYS = [(s, q, 0) for s in range(2) for q in range(6)]


@pytest.fixture(scope="module")
def study(tiny_olmo2, tmp_path_factory):
    root = tmp_path_factory.mktemp("causal")
    rng = np.random.default_rng(0)
    d = 64
    centres = {r: rng.normal(size=d) for r in ROLES + ["default"]}
    for ckpt, shift in (("final", 0.0), ("sft", 0.3), ("rnd", 2.0)):
        for r, c in centres.items():
            acts = {x: (c + shift * rng.normal(size=d)) * (1 + x) + 0.2 * rng.normal(size=(len(KEYS), d)) for x in LAYERS}
            write_capture(root / "acts" / ckpt, r, acts, KEYS, checkpoint=ckpt)
    assert persona_space.main(["--activations-dir", str(root / "acts" / "final"), "--output-dir", str(root / "ps"),
                               "--min-count", "1"]) == 0
    return root, tiny_olmo2


def common(root: Path, model: Path, name: str, out: Path) -> list[str]:
    acts = [f"--activations={c}={root / 'acts' / c}" for c in ("final", "sft", "rnd")]
    return [
        "--model-name", str(model), "--checkpoint", name, *acts, "--lineage", "rnd=other",
        "--reference-dir", str(root / "ps"), "--roles-dir", str(PROJECT_ROLES_DIR), "--questions", str(PROJECT_QUESTIONS),
        "--model-display-name", "Tiny", "--roles-count", "2", "--questions-count", "3", "--subset-seed", "4",
        "--temperature", "0.8", "--top-p", "0.9", "--max-tokens", "4", "--seed", "1", "--device", "cpu",
        "--batch-size", "16", "--prefill-batch", "8", "--judge=--backend", "--judge=local",
        f"--judge=--local-model={model}", "--judge=--parser", "--judge=paper", "--judge=--no-progress",
        "--output-dir", str(out),
    ]


def steer_run(root, model, name):
    out = root / "steer" / name
    assert steer.main([*common(root, model, name, out), "--alphas", "-2", "2", "--layers", "1", "2",
                       "--direction-seed", "3"]) == 0
    return out


def test_steer_directions_conditions_and_resume(study):
    root, model = study
    out = steer_run(root, model, "sft")
    plan = json.loads((out / "plan.json").read_text())
    assert plan["primary"] == "axis@final" and set(plan["directions"]) == {
        "axis@final", "axis@sft", "random", "shuffled", "orthogonal"}
    vecs = torch.load(out / "directions.pt", weights_only=True)
    ps_axis = torch.load(root / "ps" / "axis.pt", weights_only=True)
    for x in LAYERS:
        p = vecs["axis@final"][x]
        assert torch.allclose(p / p.norm(), (ps_axis[x] / ps_axis[x].norm()).float(), atol=1e-5)  # the reference axis
        assert abs(plan["directions"]["axis@final"]["norm"][str(x)] - plan["directions"]["axis@final"]["role_projection_sd"][str(x)]) < 1e-6
        for c in ("random", "shuffled", "orthogonal"):
            assert abs(float(vecs[c][x].norm()) - float(p.norm())) < 1e-4  # the primary's norm
        assert abs(float(vecs["orthogonal"][x] @ p)) < 1e-3 * float(p.norm()) ** 2
    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    n_prompts = len(plan["prompts"])
    assert n_prompts == 2 * 3 + 3  # 2 roles x 3 questions + the default's 3
    assert len(gens) == n_prompts * (1 + 5 * 2)  # alpha 0 once, shared by every direction
    seeds = {}
    for g in gens:  # common random numbers: a prompt has one seed under every condition
        seeds.setdefault((g["kind"], g["role"], g["question_idx"]), set()).add(g["seed"])
    assert all(len(s) == 1 for s in seeds.values())
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == sum(g["kind"] == "role" for g in gens)
    # resume: a run killed midway (half the lines, a torn last line) ends with the same bytes
    full = (out / "generations.jsonl").read_bytes()
    lines = full.splitlines(keepends=True)
    (out / "generations.jsonl").write_bytes(b"".join(lines[::2]) + lines[1][:20])
    steer_run(root, model, "sft")
    assert (out / "generations.jsonl").read_bytes() == full


def test_other_lineage_is_steered_along_its_own_axis_and_causal_refuses_transfer(study):
    root, model = study
    steer_run(root, model, "final")
    out = steer_run(root, model, "rnd")
    plan = json.loads((out / "plan.json").read_text())
    assert plan["primary"] == "axis@rnd" and "axis@final" not in plan["directions"]
    res = root / "causal"
    args = [f"--steer={n}={root / 'steer' / n}" for n in ("final", "sft", "rnd")]
    assert causal.main([*args, "--lineage", "rnd=other", "--bootstrap", "50", "--seed", "2", "--output-dir", str(res)]) == 0
    transfer = list(csv.DictReader(open(res / "transfer.csv")))
    cells = {(r["source"], r["target"]): r for r in transfer}
    assert not cells["final", "sft"]["refused"]  # (its slope is NaN, left empty, where the tiny judge scored nothing)
    assert "different pretraining runs" in cells["final", "rnd"]["refused"] and not cells["final", "rnd"]["slope_mean_score"]
    curves = list(csv.DictReader(open(res / "steer_curves.csv")))
    zero = {(r["checkpoint"], r["direction"]): r["mean_score"] for r in curves if float(r["alpha"]) == 0}
    assert len({v for (c, _), v in zero.items() if c == "sft"}) == 1  # alpha 0: one shared run
    slopes = list(csv.DictReader(open(res / "steer_slopes.csv")))
    assert {r["direction"] for r in slopes if r["checkpoint"] == "sft"} >= {"random", "shuffled", "orthogonal"}


def test_cap_taus_perplexity_and_tradeoff(study):
    root, model = study
    out = root / "cap" / "sft"
    assert cap.main([*common(root, model, "sft", out), "--layers", "1", "2", "--percentiles", "25", "100"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    dflt = torch.load(root / "acts" / "sft" / "default_activations.pt", weights_only=True)
    axis = torch.load(out.parent.parent / "steer" / "sft" / "directions.pt", weights_only=True)["axis@final"] \
        if (root / "steer" / "sft").exists() else None
    for x in LAYERS:
        u = axis[x] / axis[x].norm() if axis is not None else None
        if u is not None:
            proj = (dflt[x].double() @ u.double()).numpy()
            assert abs(plan["tau"]["p25"][str(x)] - float(np.percentile(proj, 25))) < 1e-4
            assert abs(plan["tau"]["p100"][str(x)] - float(proj.max())) < 1e-4
    kinds = {json.loads(line)["kind"] for line in (out / "generations.jsonl").read_text().splitlines()}
    assert kinds == {"role", "jailbreak", "default"}
    ppl = json.loads((out / "perplexity.json").read_text())
    assert set(ppl) == {"none", "cap|p25", "cap|p100"} and len(ppl["none"]) == 3
    res = root / "causal_cap"
    assert causal.main([f"--steer=sft={root / 'steer' / 'sft'}", f"--cap=sft={out}", "--bootstrap", "20",
                        "--output-dir", str(res)]) == 0
    rows = list(csv.DictReader(open(res / "cap_tradeoff.csv")))
    assert {(r["condition"], r["prompts"]) for r in rows} == {(c, k) for c in ("none", "cap|p25", "cap|p100")
                                                              for k in ("role", "jailbreak")}
    assert all(float(r["perplexity_ratio"]) == 1.0 for r in rows if r["condition"] == "none")
    shutil.rmtree(res)
