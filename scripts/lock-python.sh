#!/usr/bin/env bash
# Regenerate the Python locks (exact versions and hashes):
#   python/requirements.lock           from python/pyproject.toml + python/requirements.in      (.venv: CPU, tests, the demo)
#   python/requirements-s3server.lock  from python/requirements-s3server.in  (.venv-s3server: the S3 test server)
#   python/requirements-gpu.lock       from python/pyproject.toml + python/requirements-gpu.in  (.venv-gpu: vLLM + its torch, GPU nodes)
# The package's deps are in python/pyproject.toml; the .in files hold each environment's pins.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile --python-version 3.11 --generate-hashes --python-platform x86_64-manylinux_2_28 --quiet \
  python/pyproject.toml --extra test python/requirements.in -o python/requirements.lock
uv pip compile --python-version 3.12 --generate-hashes --python-platform x86_64-manylinux_2_28 --quiet \
  python/pyproject.toml --extra test python/requirements-gpu.in -o python/requirements-gpu.lock
uv pip compile --python-version 3.11 --generate-hashes --python-platform x86_64-manylinux_2_28 --quiet \
  python/requirements-s3server.in -o python/requirements-s3server.lock
