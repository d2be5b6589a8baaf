#!/usr/bin/env python3
"""CLI entry: see persona_axis/generate.py (`python python/generate.py --help`)."""
import sys

from persona_axis.generate import main

if __name__ == "__main__":
    sys.exit(main())
