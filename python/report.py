"""CLI: see persona_axis/report.py (`python python/report.py --help`)."""

from persona_axis.report import main

if __name__ == "__main__":
    raise SystemExit(main())
