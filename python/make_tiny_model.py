#!/usr/bin/env python3
"""Build a tiny random-init model locally (or a perturbed copy): see persona_axis/tiny_models.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from persona_axis.tiny_models import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
