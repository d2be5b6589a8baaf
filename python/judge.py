#!/usr/bin/env python3
"""CLI entry: see persona_axis/judge.py (`python python/judge.py --help`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from persona_axis.judge import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
