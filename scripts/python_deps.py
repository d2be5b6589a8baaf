#!/usr/bin/env python3
"""The project Python files a module runs (`python -m <module>`): its import closure within one
source root (ast-based).

    python scripts/python_deps.py --root python persona_axis.capture [more modules...]

prints, one a line, the project-relative paths of the given modules' files and of every module of the
root that they import, directly or not (imports inside functions included; third-party and standard-library
imports are ignored; a package's __init__.py counts as imported with it). Used by scripts/stage-deps.ts
to derive each pipeline stage's code deps (docs/stage-deps.md).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_file(root: Path, dotted: str) -> Path | None:
    """python/a/b.py or python/a/b/__init__.py for `a.b`, if it is a project module."""
    base = root.joinpath(*dotted.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def package_of(root: Path, f: Path) -> str:
    """The dotted package a file belongs to ('' for a top-level script)."""
    return ".".join(f.relative_to(root).with_suffix("").parts[:-1])


def imported_modules(root: Path, f: Path) -> set[str]:
    """Dotted names of the project modules (and their parent packages) that file `f` imports."""
    tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
    pkg = package_of(root, f)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = pkg.split(".") if pkg else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    found: set[str] = set()
    for name in names:
        parts = [p for p in name.split(".") if p]
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            if module_file(root, ".".join(parts[:i])):
                found.add(".".join(parts[:i]))
    return found


def closure(root: Path, scripts: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    todo = list(scripts)
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in imported_modules(root, f):
            m = module_file(root, name)
            if m is not None and m not in seen:
                todo.append(m)
    return sorted(seen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="python", help="the directory the package lives in (default: python)")
    ap.add_argument("modules", nargs="+", help="dotted module names (persona_axis.capture)")
    a = ap.parse_args(argv)
    root = Path(a.root)
    files = []
    for name in a.modules:
        f = module_file(root, name)
        if f is None:
            print(f"error: {name}: no such module under {root}/", file=sys.stderr)
            return 2
        files.append(f)
    # the parent packages' __init__.py run first when `python -m a.b` imports a.b
    parts = [n.split(".") for n in a.modules]
    files += [f for p in parts for i in range(1, len(p)) if (f := module_file(root, ".".join(p[:i]))) is not None]
    for f in closure(root, files):
        print(f.as_posix())
    return 0


if __name__ == "__main__":
    sys.exit(main())
