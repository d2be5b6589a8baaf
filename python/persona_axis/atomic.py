"""The one atomic file writer: a temp file beside the target, written, fsynced and renamed over it (so a
reader sees the old file or the new one, never a torn one), then the directory fsynced."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], None], *,
                 tmp: str | os.PathLike | None = None) -> None:
    """Replace ``path`` with ``content`` (bytes, text written as UTF-8, or a function writing to the binary
    file). ``tmp``: the temp file's path (default ``<path>.tmp``); it is removed if the write fails."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
