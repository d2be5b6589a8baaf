"""Shared pytest fixtures: tiny random-init models built locally (no Hub), loaded via from_pretrained."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: The paper's real role data, beside the project (present on developer machines and CI).
SHARED_ASSISTANT_AXIS = ROOT.parent / "shared" / "assistant-axis"
PROJECT_ROLES_DIR = ROOT / "data" / "roles" / "instructions"
PROJECT_QUESTIONS = ROOT / "data" / "questions.jsonl"


def write_scores(scores_dir, role: str, scores: dict) -> None:
    """A judge output file (<role>.jsonl) with these scores: {(system_prompt_idx, question_idx, rollout_idx): score}."""
    scores_dir = Path(scores_dir)
    scores_dir.mkdir(parents=True, exist_ok=True)
    with open(scores_dir / f"{role}.jsonl", "w", encoding="utf-8") as f:
        for (s, q, r), score in scores.items():
            f.write(json.dumps({"system_prompt_idx": s, "question_idx": q, "rollout_idx": r, "score": score}) + "\n")


@pytest.fixture(scope="session")
def tiny_olmo2(tmp_path_factory) -> Path:
    from persona_axis.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-olmo2"), "olmo2", seed=0)


@pytest.fixture(scope="session")
def tiny_neox(tmp_path_factory) -> Path:
    from persona_axis.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-neox"), "gpt_neox", seed=0)
