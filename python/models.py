#!/usr/bin/env python3
"""Pin, download and check Hub checkpoints: see persona_axis/pin_models.py."""
import sys

from persona_axis.pin_models import main

if __name__ == "__main__":
    sys.exit(main())
