"""CSV outputs (activation_io.write_csv / read_csv): plain cells stay unquoted, any cell round-trips."""
from __future__ import annotations

import math

from persona_axis.activation_io import read_csv, write_csv


def test_identifiers_are_written_plainly_and_numbers_formatted(tmp_path):
    f = tmp_path / "a.csv"
    write_csv(f, ["role", "score", "ok", "missing"], [{"role": "pirate", "score": 0.5, "ok": True, "missing": None},
                                                      {"role": "nan", "score": math.nan, "ok": False}])
    text = f.read_text()
    assert text.splitlines()[0] == "role,score,ok,missing"
    assert '"' not in text and text.endswith("\n") and "\r" not in text
    assert read_csv(f) == [{"role": "pirate", "score": text.splitlines()[1].split(",")[1], "ok": "true", "missing": ""},
                           {"role": "nan", "score": "", "ok": "false", "missing": ""}]


def test_commas_quotes_and_newlines_round_trip(tmp_path):
    f = tmp_path / "b.csv"
    names = ['a, b', 'say "hi"', "two\nlines", "plain"]
    write_csv(f, ["role"], [{"role": n} for n in names])
    assert [r["role"] for r in read_csv(f)] == names
