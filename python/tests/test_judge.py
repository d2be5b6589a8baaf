"""The role-adherence judge: reply parsing, the HTTP backend against a real local scripted server
(500s, 429s with Retry-After, garbage, timeouts, a bad key), resume of missing scores, and the local
backend on a tiny model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from fake_openai_server import FakeOpenAIServer
from persona_axis import judge
from persona_axis.judge import fill_eval_prompt, parse_score, parse_score_paper

SCRIPT = "persona_axis.judge"
EVAL = "Does this show the role **{role}**?\nPrompt: {question}\nAnswer: {answer}\nRespond with a number 0-3."


def test_parse_score_accepts_a_leading_digit_and_rejects_garbage():
    for reply, want in [("3", 3), (" 0\n", 0), ("**2**", 2), ("Score: 1", 1), ("2. The model is", 2),
                        ('"3"', 3), ("`1`", 1), ("1 - answers as itself", 1)]:
        assert parse_score(reply) == want, reply
    for reply in ["", None, "5", "10", "2.5", "I'd say 5", "I'd say 3", "The score is 3", "-1", "four"]:
        assert parse_score(reply) is None, reply


def test_paper_parser_takes_the_first_whole_number_if_0_to_3():
    for reply, want in [("3", 3), ("I'd say 3", 3), ("The score is 2.", 2), ("Score: 1/3", 1), ("**0**", 0),
                        ("2.5", 2), ("Rating 3 out of 3", 3), ("\n 1 \n", 1)]:
        assert parse_score_paper(reply) == want, reply
    for reply in ["", None, "10", "I'd say 5", "four", "5 then 3", "x3y", "score3"]:
        assert parse_score_paper(reply) is None, reply
    # where the two parsers differ
    assert parse_score("I'd say 3") is None and parse_score_paper("I'd say 3") == 3
    assert parse_score("-1") is None and parse_score_paper("-1") == 1  # the paper's pattern has no sign


def test_http_judge_paper_parser_temperature_and_unscored_counts(tmp_path):
    replies = ["3", "I'd say 2", "The role is played: 3", "10", "four", "**1**"]
    rd, td, prompts = write_case(tmp_path, {"pirate": [((0, q, 0), f"reply {q} @@REPLY={r}@@") for q, r in enumerate(replies)]})
    out = tmp_path / "scores"
    with FakeOpenAIServer() as srv:
        args = ["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(out), "--base-url",
                srv.base_url, "--no-progress", "--parser", "paper", "--temperature", "1"]
        proc = subprocess.run([sys.executable, "-m", SCRIPT, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": ""})
        assert proc.returncode == 0, proc.stderr
        assert {b["temperature"] for b in srv.bodies} == {1} and len(srv.bodies) == 6
    assert [scores(out, "pirate")[(0, q, 0)]["score"] for q in range(6)] == [3, 2, 3, None, None, 1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unscored_by_parser"] == {"paper": 2, "strict": 4}
    assert summary["judge"]["parser"] == "paper" and summary["judge"]["temperature"] == 1
    assert "unscored by parser: paper 2, strict 4 (in use: paper)" in proc.stderr


def test_fill_eval_prompt_is_literal():
    t = "Q: {question} A: {answer} {other} {{x}}"
    assert fill_eval_prompt(t, "why {answer}?", "because {x}") == "Q: why {answer}? A: because {x} {other} {{x}}"


def write_case(tmp_path: Path, responses: dict[str, list[tuple[tuple[int, int, int], str]]]):
    rd, td = tmp_path / "roles", tmp_path / "transcripts"
    rd.mkdir()
    td.mkdir()
    (rd / "default.json").write_text(json.dumps({"instruction": [{"pos": ""}]}))
    prompts = {}
    for role, items in responses.items():
        eval_prompt = EVAL.replace("{role}", role)
        (rd / f"{role}.json").write_text(json.dumps({"instruction": [{"pos": f"You are a {role}."}] * 2,
                                                     "questions": ["q?"], "eval_prompt": eval_prompt}))
        with open(td / f"{role}.jsonl", "w") as f:
            for (sp, q, r), text in items:
                rec = {"role": role, "system_prompt_idx": sp, "question_idx": q, "rollout_idx": r,
                       "question": f"Question {q}?", "response": text, "system_prompt": f"You are a {role}."}
                f.write(json.dumps(rec) + "\n")
                prompts[(role, (sp, q, r))] = fill_eval_prompt(eval_prompt, rec["question"], text)
    (td / "default.jsonl").write_text(json.dumps({"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0,
                                                  "question": "q", "response": "r"}) + "\n")
    return rd, td, prompts


def scores(out: Path, role: str) -> dict[tuple, dict]:
    return {(r["system_prompt_idx"], r["question_idx"], r["rollout_idx"]): r
            for r in map(json.loads, (out / f"{role}.jsonl").read_text().splitlines())}


def test_http_judge_retries_records_missing_scores_and_resumes(tmp_path):
    rd, td, prompts = write_case(tmp_path, {
        "pirate": [
            ((0, 0, 0), "Arr, treasure! @@SCORE=3@@"),
            ((0, 1, 0), "Server trouble @@FAIL500x2@@ @@SCORE=2@@"),
            ((0, 2, 0), "Rate limited @@429x1@@ @@SCORE=1@@"),
            ((1, 0, 0), "Nonsense first @@GARBAGEx1@@ @@SCORE=0@@"),
            ((1, 1, 0), "Slow first @@SLOWx1@@ @@SCORE=3@@"),
            ((1, 2, 0), "Down for long @@FAIL500x5@@ @@SCORE=2@@"),
        ],
        "librarian": [((0, q, 0), f"Shh, book {q} @@REPLY=**{q}**@@") for q in range(4)],
    })
    out = tmp_path / "scores"
    with FakeOpenAIServer(slow_seconds=3.0) as srv:
        args = ["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(out),
                "--base-url", srv.base_url, "--concurrency", "4", "--max-retries", "2", "--timeout", "1",
                "--no-progress"]
        proc = subprocess.run([sys.executable, "-m", SCRIPT, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": ""})
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in out.iterdir()) == ["librarian.jsonl", "pirate.jsonl", "summary.json"]
        s = scores(out, "pirate")
        assert {k: v["score"] for k, v in s.items()} == {
            (0, 0, 0): 3, (0, 1, 0): 2, (0, 2, 0): 1, (1, 0, 0): None, (1, 1, 0): 3, (1, 2, 0): None}
        assert s[(1, 0, 0)]["raw"] == "I'd say 5" and "error" not in s[(1, 0, 0)]
        assert s[(1, 2, 0)]["raw"] is None and "HTTP 500" in s[(1, 2, 0)]["error"]
        assert [e["status"] for e in srv.entries(prompts[("pirate", (0, 1, 0))])] == [500, 500, 200]
        assert [e["status"] for e in srv.entries(prompts[("pirate", (1, 2, 0))])] == [500, 500, 500]
        rl = srv.entries(prompts[("pirate", (0, 2, 0))])
        assert [e["status"] for e in rl] == [429, 200] and rl[1]["t"] - rl[0]["t"] >= 0.9  # Retry-After: 1
        assert len(srv.entries(prompts[("pirate", (1, 1, 0))])) == 2  # timed out once, then answered
        assert {k[1]: v["score"] for k, v in scores(out, "librarian").items()} == {0: 0, 1: 1, 2: 2, 3: 3}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["roles"]["pirate"] == {"responses": 6, "counts": {"0": 0, "1": 1, "2": 1, "3": 2}, "missing": 2,
                                              "unscored_by_parser": {"paper": 2, "strict": 2}}
        assert summary["total"]["missing"] == 2 and "default" not in summary["roles"]

        # Resume: only the two missing scores are asked again.
        n_before = len(srv.log)
        assert judge.main(args) == 0
        asked = srv.log[n_before:]
        assert {e["key"] for e in asked} == {srv.prompt_key(prompts[("pirate", k)]) for k in [(1, 0, 0), (1, 2, 0)]}
        s = scores(out, "pirate")
        assert s[(1, 0, 0)]["score"] == 0 and s[(1, 2, 0)]["score"] == 2 and "error" not in s[(1, 2, 0)]
        assert len((out / "pirate.jsonl").read_text().splitlines()) == 6  # one line per key
        assert json.loads((out / "summary.json").read_text())["total"] == {"0": 2, "1": 2, "2": 3, "3": 3, "missing": 0}
        # A third run has nothing to do.
        n_before = len(srv.log)
        assert judge.main(args + ["--fail-on-missing"]) == 0
        assert len(srv.log) == n_before


def test_http_judge_torn_score_line_is_dropped_and_rescored(tmp_path):
    rd, td, _ = write_case(tmp_path, {"pirate": [((0, q, 0), f"ok @@SCORE={q}@@") for q in range(3)]})
    out = tmp_path / "scores"
    with FakeOpenAIServer() as srv:
        args = ["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(out),
                "--base-url", srv.base_url, "--no-progress"]
        assert judge.main(args) == 0
        lines = (out / "pirate.jsonl").read_text().splitlines(keepends=True)
        (out / "pirate.jsonl").write_text("".join(lines[:2]) + lines[2][:10])
        n_before = len(srv.log)
        assert judge.main(args) == 0
        assert len(srv.log) == n_before + 1
        assert (out / "pirate.jsonl").read_text() == "".join(lines)


def test_http_judge_stops_on_an_unfixable_error(tmp_path, monkeypatch, capsys):
    rd, td, _ = write_case(tmp_path, {"pirate": [((0, 0, 0), "x")]})
    with FakeOpenAIServer(api_key="sk-right") as srv:
        monkeypatch.setenv("JUDGE_KEY", "sk-wrong")
        rc = judge.main(["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(tmp_path / "o"),
                         "--base-url", srv.base_url, "--api-key-env", "JUDGE_KEY", "--no-progress"])
        assert rc == 2
        assert "HTTP 401" in capsys.readouterr().err
        assert len(srv.log) == 1  # not retried
        monkeypatch.setenv("JUDGE_KEY", "sk-right")
        assert judge.main(["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(tmp_path / "o"),
                           "--base-url", srv.base_url, "--api-key-env", "JUDGE_KEY", "--no-progress"]) == 0
        assert scores(tmp_path / "o", "pirate")[(0, 0, 0)]["score"] == 3


def test_role_without_transcripts_is_an_error(tmp_path, capsys):
    rd, td, _ = write_case(tmp_path, {"pirate": [((0, 0, 0), "x")]})
    rc = judge.main(["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(tmp_path / "o"),
                     "--roles", "pirate,ghost", "--base-url", "http://127.0.0.1:9/v1", "--no-progress"])
    assert rc == 2 and "ghost" in capsys.readouterr().err


def test_local_judge_on_a_tiny_model(tiny_olmo2, tmp_path):
    rd, td, _ = write_case(tmp_path, {"pirate": [((sp, q, 0), f"Arr number {q}") for sp in range(2) for q in range(3)]})
    out = tmp_path / "local"
    assert judge.main(["--transcript-dir", str(td), "--roles-dir", str(rd), "--output-dir", str(out),
                       "--backend", "local", "--local-model", str(tiny_olmo2), "--device", "cpu", "--batch-size", "4",
                       "--max-tokens", "3", "--no-progress"]) == 0
    s = scores(out, "pirate")
    assert sorted(s) == [(sp, q, 0) for sp in range(2) for q in range(3)]
    for rec in s.values():
        assert isinstance(rec["raw"], str)
        assert rec["score"] == parse_score(rec["raw"])
    summary = json.loads((out / "summary.json").read_text())["roles"]["pirate"]
    assert sum(summary["counts"].values()) + summary["missing"] == 6
    assert summary["missing"] == sum(1 for r in s.values() if r["score"] is None)
