#!/usr/bin/env python3
"""CLI entry: see persona_axis/judge.py (`python python/judge.py --help`)."""
import sys

from persona_axis.judge import main

if __name__ == "__main__":
    sys.exit(main())
