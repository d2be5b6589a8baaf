"""The one base class of the package's input errors."""
from __future__ import annotations


class InputError(ValueError):
    """Bad or inconsistent input (a file, a record, a flag): the message names the file (and line, key
    or flag) and the fix. The command-line entry points print it on one line and exit with code 2."""


class CaptureError(InputError):
    """Bad input for capture; the message names the file (and record or flag) and the fix."""
