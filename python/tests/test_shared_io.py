"""The package's shared pieces: one error base, one strict JSONL reader, one atomic writer, and the
readers built on them (questions, finished transcripts, judge scores)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from persona_axis import errors
from persona_axis.activation_io import load_scores
from persona_axis.atomic import atomic_write
from persona_axis.generate import RunConfigError
from persona_axis.jsonl import read_json_lines
from persona_axis.judge import JudgeInputError
from persona_axis.model_blocks import ModelStructureError
from persona_axis.paper_data import PaperDataError
from persona_axis.prompts import ChatTemplateError
from persona_axis.roles import RoleDataError, load_questions
from persona_axis.spans import SpanError
from persona_axis.transcripts import read_finished_records, write_records_sorted

ROOT = Path(__file__).resolve().parents[2]


class Bad(Exception):
    pass


def test_every_input_error_shares_the_one_base():
    for cls in (errors.CaptureError, RoleDataError, SpanError, ChatTemplateError, ModelStructureError, RunConfigError,
                PaperDataError, JudgeInputError):
        assert issubclass(cls, errors.InputError) and issubclass(cls, ValueError), cls


def test_json_lines_are_numbered_from_one_and_blank_lines_skipped(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"a": 1}\n\n  \n[2]\n"x"')  # no final newline on the last line
    out = list(read_json_lines(f, unreadable=lambda e: Bad(str(e)), invalid=lambda n, e: Bad(n)))
    assert out == [(1, {"a": 1}), (4, [2]), (5, "x")]


@pytest.mark.parametrize("bad_line", [b'{"a": ', b"\xff\xfe not utf-8"])
def test_a_bad_line_raises_the_callers_error_with_its_line_number(tmp_path, bad_line):
    f = tmp_path / "b.jsonl"
    f.write_bytes(b'{"a": 1}\n' + bad_line + b'\n{"a": 3}\n')
    with pytest.raises(Bad) as info:
        list(read_json_lines(f, unreadable=lambda e: Bad("unreadable"), invalid=lambda n, e: Bad(f"line {n}: {e}")))
    assert str(info.value).startswith("line 2: ")


def test_an_unreadable_file_raises_the_callers_error(tmp_path):
    with pytest.raises(Bad, match="cannot read: No such file"):
        list(read_json_lines(tmp_path / "none.jsonl", unreadable=lambda e: Bad(f"cannot read: {e.strerror}"),
                             invalid=lambda n, e: Bad(n)))


def test_the_readers_name_file_and_line(tmp_path):
    q = tmp_path / "questions.jsonl"
    q.write_bytes(b'{"question": "Q?", "id": 0}\n\xff\n')
    with pytest.raises(RoleDataError, match=r"questions\.jsonl:2: invalid JSON"):
        load_questions(q)  # a non-UTF-8 line is bad input (exit 2), not a traceback
    t = tmp_path / "pirate.jsonl"
    t.write_text('{"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "response": "r"}\n{"x": 1}\n')
    with pytest.raises(errors.CaptureError, match=r"pirate\.jsonl:2: transcript line lacks system_prompt_idx"):
        read_finished_records(t, error=errors.CaptureError)
    s = tmp_path / "scores" / "pirate.jsonl"
    s.parent.mkdir()
    s.write_text('{"system_prompt_idx": 0, "question_idx": 0, "rollout_idx": 0, "score": 2}\n\n'
                 '{"system_prompt_idx": 0, "question_idx": 1, "rollout_idx": 0, "score": 3}\nnot json\n')
    with pytest.raises(errors.InputError, match=r"pirate\.jsonl:4: invalid JSON"):
        load_scores(s.parent, "pirate")


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("old")
    atomic_write(f, "nëw\n")
    assert f.read_bytes() == "nëw\n".encode("utf-8")
    atomic_write(f, b"\x00\x01")
    assert f.read_bytes() == b"\x00\x01"
    atomic_write(f, lambda fh: fh.write(b"from a function"), tmp=tmp_path / ".x.json.tmp-mine")
    assert f.read_bytes() == b"from a function"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("old")

    def fail(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(f, fail)
    assert f.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_sorted_rewrite_is_atomic_and_in_key_order(tmp_path):
    f = tmp_path / "r.jsonl"
    write_records_sorted(f, {(1,): {"k": 1, "t": "ü"}, (0,): {"k": 0}})
    assert f.read_text(encoding="utf-8") == '{"k": 0}\n{"k": 1, "t": "ü"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


SCRIPTS = tomllib.loads((ROOT / "python" / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_each_command_of_the_package_is_installed_and_runs_from_any_directory(tmp_path, command):
    """`npm run setup` installs python/ (pyproject.toml): each command's --help works without PYTHONPATH,
    and so does `python -m` on its module, the way the stage glue runs it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    exe = Path(sys.executable).parent / command
    assert exe.is_file(), f"{command} is not installed in this environment: run `npm run setup`"
    module = SCRIPTS[command].split(":")[0]
    for argv in ([str(exe), "--help"], [sys.executable, "-m", module, "--help"]):
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"usage: {command} ")


def test_the_glue_runs_only_modules_that_are_commands_of_the_package():
    """Each runPython("persona_axis.x") of stages/ names a module with a command in pyproject.toml."""
    run = {m for f in (ROOT / "stages").rglob("*.ts")
           for m in re.findall(r'runPython\(\s*"([\w.]+)"', f.read_text(encoding="utf-8"))}
    modules = {v.split(":")[0] for v in SCRIPTS.values()}
    assert run and run <= modules, f"not commands of python/pyproject.toml: {sorted(run - modules)}"
