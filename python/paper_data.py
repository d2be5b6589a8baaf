#!/usr/bin/env python3
"""CLI entry: see persona_axis/paper_data.py (`python python/paper_data.py --help`)."""
import sys

from persona_axis.paper_data import main

if __name__ == "__main__":
    sys.exit(main())
