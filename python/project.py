"""CLI: see persona_axis/movement.py (`python python/project.py --help`)."""

from persona_axis.movement import main

if __name__ == "__main__":
    raise SystemExit(main())
