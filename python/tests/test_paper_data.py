"""The paper's real role data (../shared/assistant-axis): every file validates and the request
plan has the paper's size, 275 roles x 5 system prompts x 240 questions plus default's 5 x 240,
in seconds and without loading a model."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter

import pytest

from conftest import SHARED_ASSISTANT_AXIS
from persona_axis import generate
from persona_axis.judge import fill_eval_prompt
from persona_axis.roles import load_roles

ROLES_DIR = SHARED_ASSISTANT_AXIS / "roles" / "instructions"
QUESTIONS = SHARED_ASSISTANT_AXIS / "extraction_questions.jsonl"

pytestmark = pytest.mark.skipif(
    not ROLES_DIR.is_dir(),
    reason=f"the paper's role data is not at {SHARED_ASSISTANT_AXIS} (a copy of safety-research/assistant-axis data)",
)


def test_paper_roles_validate_and_plan_has_the_papers_size(tmp_path):
    t0 = time.monotonic()
    a = generate.parse_args(["--roles-dir", str(ROLES_DIR), "--questions", str(QUESTIONS), "--output-dir",
                             str(tmp_path / "t"), "--model-display-name", "OLMo"])
    by_role, names = generate.plan(a)
    elapsed = time.monotonic() - t0
    assert len(names) == 276 and "default" in names
    counts = Counter({n: len(v) for n, v in by_role.items()})
    assert set(counts.values()) == {5 * 240}
    assert sum(counts.values()) == 275 * 5 * 240 + 5 * 240
    default = by_role["default"]
    assert {r.system_prompt for r in default} == {"", "You are an AI assistant.", "You are a large language model.",
                                                  "You are OLMo.", "Respond as yourself."}
    pirate = by_role["pirate"]
    assert [r.key for r in pirate[:3]] == [(0, 0, 0), (0, 1, 0), (0, 2, 0)]
    assert pirate[0].question_id == 0 and pirate[-1].key == (4, 239, 0)
    assert elapsed < 30, f"planning took {elapsed:.1f}s"


def test_every_paper_eval_prompt_fills_and_role_questions_exist():
    roles = load_roles(ROLES_DIR)
    judged = [r for n, r in roles.items() if n != "default"]
    assert len(judged) == 275
    for r in judged:
        assert len(r.instructions) == 5, r.path
        assert len(r.questions) == 40, r.path
        filled = fill_eval_prompt(r.eval_prompt, "QQQ", "AAA")
        assert "QQQ" in filled and "AAA" in filled and "{answer}" not in filled, r.path


def test_planning_does_not_load_torch(tmp_path):
    import subprocess

    code = (
        "import sys;"
        "from persona_axis import generate;"
        f"a = generate.parse_args(['--roles-dir', {str(ROLES_DIR)!r}, '--questions', {str(QUESTIONS)!r},"
        f" '--output-dir', {str(tmp_path / 't')!r}]);"
        "by_role, names = generate.plan(a);"
        "print(sum(map(len, by_role.values())), 'torch' in sys.modules)"
    )
    from conftest import ROOT

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(275 * 5 * 240 + 5 * 240), "False"]


def test_role_list_matches_the_role_files():
    listed = json.loads((SHARED_ASSISTANT_AXIS / "roles" / "role_list.json").read_text())
    files = {p.stem for p in ROLES_DIR.glob("*.json")} - {"default"}
    assert len(files) == 275 and files == set(listed)
