#!/usr/bin/env python3
"""Pin, download and check Hub checkpoints: see persona_axis/pin_models.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from persona_axis.pin_models import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
