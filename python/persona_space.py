"""CLI: see persona_axis/persona_space.py (`python python/persona_space.py --help`)."""

from persona_axis.persona_space import main

if __name__ == "__main__":
    raise SystemExit(main())
