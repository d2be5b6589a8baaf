#!/usr/bin/env python3
"""Capture response-token activations per role: see README.md (``python python/capture.py --help``)."""
import sys

from persona_axis.capture import main

if __name__ == "__main__":
    sys.exit(main())
