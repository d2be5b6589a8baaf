#!/usr/bin/env python3
"""CLI entry: see persona_axis/paper_data.py (`python python/paper_data.py --help`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from persona_axis.paper_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
