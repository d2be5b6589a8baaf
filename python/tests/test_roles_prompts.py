"""Role data, questions and chat prompts: validation errors and the prompt rules."""
import json

import pytest
from transformers import AutoTokenizer

from persona_axis import prompts, transcripts
from persona_axis.roles import RoleDataError, build_requests, load_questions, load_roles


def write_role(d, name, **over):
    data = {
        "instruction": [{"pos": f"You are a {name} number {i}."} for i in range(5)],
        "questions": ["Q one?", "Q two?"],
        "eval_prompt": "Rate {question} / {answer}",
    }
    data.update(over)
    (d / f"{name}.json").write_text(json.dumps(data))


def test_bad_role_files_name_the_file_and_key(tmp_path):
    write_role(tmp_path, "pirate", eval_prompt="no placeholders")
    with pytest.raises(RoleDataError, match=r"pirate\.json: key 'eval_prompt'"):
        load_roles(tmp_path)
    (tmp_path / "pirate.json").write_text('{"instruction": [')
    with pytest.raises(RoleDataError, match=r"pirate\.json:1:\d+: invalid JSON"):
        load_roles(tmp_path)
    with pytest.raises(RoleDataError, match="unknown role"):
        load_roles(tmp_path, ["ghost"])


def test_requests_enumerate_roles_prompts_questions_rollouts(tmp_path):
    write_role(tmp_path, "pirate")
    (tmp_path / "default.json").write_text(json.dumps({"instruction": [{"pos": ""}, {"pos": "You are {model_name}."}]}))
    qf = tmp_path / "q.jsonl"
    qf.write_text("".join(json.dumps({"question": f"q{i}", "id": i}) + "\n" for i in range(4)))
    reqs = build_requests(load_roles(tmp_path), load_questions(qf), question_count=3, num_rollouts=2,
                          model_display_name="OLMo")
    assert len(reqs) == (2 + 5) * 3 * 2
    d = [r for r in reqs if r.role == "default"]
    assert d[0].system_prompt == "" and d[-1].system_prompt == "You are OLMo."
    with pytest.raises(RoleDataError, match="no 'questions' of its own"):
        build_requests(load_roles(tmp_path), None)


def test_questions_file_errors_name_the_line(tmp_path):
    qf = tmp_path / "q.jsonl"
    qf.write_text('{"question": "a", "id": 0}\n{"question": "b"}\n')
    with pytest.raises(RoleDataError, match=r"q\.jsonl:2"):
        load_questions(qf)


def test_prompt_rules_on_both_template_kinds(tiny_olmo2, tiny_neox):
    olmo = AutoTokenizer.from_pretrained(tiny_olmo2)
    neox = AutoTokenizer.from_pretrained(tiny_neox)
    assert prompts.supports_system_role(olmo) and not prompts.supports_system_role(neox)
    assert "<|system|>\nBe a pirate.\n<|user|>\nHi?" in prompts.render_prompt(olmo, "Be a pirate.", "Hi?")
    assert "<|system|>" not in prompts.render_prompt(olmo, "", "Hi?")
    assert "User: Be a pirate.\n\nHi?\n" in prompts.render_prompt(neox, "Be a pirate.", "Hi?")
    conv = prompts.render_conversation(olmo, "Be a pirate.", "Hi?", "Arr")
    assert conv.startswith(prompts.render_prompt(olmo, "Be a pirate.", "Hi?")) and conv.endswith("Arr<|endoftext|>")


def test_torn_last_line_is_dropped_and_repaired(tmp_path):
    f = tmp_path / "pirate.jsonl"
    good = {"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "response": "x"}
    f.write_text(json.dumps(good) + "\n" + '{"system_prompt_idx": 0, "quest')
    assert len(transcripts.read_records(f)) == 1
    assert f.read_text().endswith("quest")
    transcripts.read_records(f, repair=True)
    assert f.read_text() == json.dumps(good) + "\n"
