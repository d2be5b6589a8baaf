#!/usr/bin/env python3
"""Build a tiny random-init model locally (or a perturbed copy): see persona_axis/tiny_models.py."""
import sys

from persona_axis.tiny_models import main

if __name__ == "__main__":
    sys.exit(main())
