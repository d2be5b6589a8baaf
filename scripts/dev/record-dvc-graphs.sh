#!/usr/bin/env bash
# Record DVC's verdict and stage graph for every corpus entry into the committed fixture
# test/engine/fixtures/dvc-corpus-graphs.json (dev only; CI reads the fixture, never runs DVC).
# Usage: bash scripts/dev/record-dvc-graphs.sh [corpus-dir]   (default ../shared/dvc-corpus)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
corpus="${1:-$here/../shared/dvc-corpus}"
venv=/tmp/dvcenv
if [ ! -x "$venv/bin/dvc" ] || [ "$("$venv/bin/dvc" --version)" != "3.67.1" ]; then
  uv venv -q --clear "$venv"
  uv pip install -q --python "$venv/bin/python" dvc==3.67.1
fi
mkdir -p "$here/test/engine/fixtures"
"$venv/bin/python" "$here/scripts/dev/record-dvc-graphs.py" "$corpus" "$here/test/engine/fixtures/dvc-corpus-graphs.json"
