#!/usr/bin/env python3
"""Capture response-token activations per role: see README.md (``python python/capture.py --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from persona_axis.capture import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
