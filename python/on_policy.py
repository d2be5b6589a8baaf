"""CLI: see persona_axis/on_policy.py (`python python/on_policy.py --help`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from persona_axis.on_policy import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
