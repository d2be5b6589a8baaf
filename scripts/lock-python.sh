#!/usr/bin/env bash
# Regenerate python/requirements.lock (exact versions and hashes) from python/requirements.in, and
# python/requirements-s3server.lock (the S3 test server, its own venv) from its .in.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile --python-version 3.11 --generate-hashes --python-platform x86_64-manylinux_2_28 --quiet \
  python/requirements.in -o python/requirements.lock
uv pip compile --python-version 3.11 --generate-hashes --python-platform x86_64-manylinux_2_28 --quiet \
  python/requirements-s3server.in -o python/requirements-s3server.lock
