"""The one reader of finished JSONL files: every non-blank line parsed as JSON, numbered from 1, strictly.

Each caller says what a bad file means for it (``unreadable``, ``invalid``: the errors to raise, naming
the file, the line and the fix). Files that a resumed run appends to, whose last line a kill may have
torn, are read by :func:`persona_axis.transcripts.read_records` instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator


def read_json_lines(path: str | os.PathLike, *, unreadable: Callable[[OSError], Exception],
                    invalid: Callable[[int, ValueError], Exception]) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of every non-blank line; ``invalid(lineno, error)`` is raised for a
    line that is not JSON (or not UTF-8), ``unreadable(error)`` when the file cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise unreadable(e) from None
    for lineno, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            raise invalid(lineno, e) from None
        yield lineno, value
