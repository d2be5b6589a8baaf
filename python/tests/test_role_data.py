"""The project's shipped role data is valid, in the paper's format, and its own (not the paper's text)."""
import json
import re

import pytest

from persona_axis.roles import build_requests, load_questions, load_roles

from conftest import PROJECT_QUESTIONS, PROJECT_ROLES_DIR, SHARED_ASSISTANT_AXIS


def test_shipped_roles_follow_the_format():
    roles = load_roles(PROJECT_ROLES_DIR)
    assert len(roles) - 1 >= 12 and "default" in roles
    for f in sorted(PROJECT_ROLES_DIR.glob("*.json")):
        data = json.loads(f.read_text())
        ins = [i["pos"] for i in data["instruction"]]
        assert len(ins) == 5 and len(set(ins)) == 5, f
        if f.stem == "default":
            assert ins.count("") == 1 and sum("{model_name}" in i for i in ins) == 1
            continue
        assert set(data) == {"instruction", "questions", "eval_prompt"}, f
        assert len(data["questions"]) >= 10
        ep = data["eval_prompt"]
        assert set(re.findall(r"\{[^}]*\}", ep)) == {"{question}", "{answer}"}, f
        assert "between 0 and 3" in ep


def test_shipped_questions_and_request_count():
    qs = load_questions(PROJECT_QUESTIONS)
    assert [q.id for q in qs] == list(range(len(qs)))
    roles = load_roles(PROJECT_ROLES_DIR)
    reqs = build_requests(roles, qs)
    assert len(reqs) == sum(len(r.instructions) for r in roles.values()) * len(qs)


@pytest.mark.skipif(not SHARED_ASSISTANT_AXIS.exists(), reason="the paper's data (../shared/assistant-axis) is not beside this checkout")
def test_shipped_text_is_not_copied_from_the_paper():
    paper_q, paper_i = set(), set()
    for f in (SHARED_ASSISTANT_AXIS / "roles" / "instructions").glob("*.json"):
        j = json.loads(f.read_text())
        paper_q |= {q.lower() for q in j.get("questions", [])}
        paper_i |= {i["pos"].lower() for i in j["instruction"] if i["pos"] and "{model_name}" not in i["pos"]}
    for line in (SHARED_ASSISTANT_AXIS / "extraction_questions.jsonl").read_text().splitlines():
        paper_q.add(json.loads(line)["question"].lower())
    ours = set()
    for f in PROJECT_ROLES_DIR.glob("*.json"):
        if f.stem == "default":
            continue
        j = json.loads(f.read_text())
        ours |= {q.lower() for q in j["questions"]} | {i["pos"].lower() for i in j["instruction"]}
    ours |= {q.text.lower() for q in load_questions(PROJECT_QUESTIONS)}
    assert not ours & (paper_q | paper_i)
