#!/usr/bin/env bash
# One-shot, idempotent set-up of everything the project needs on a fresh machine.
#   bash scripts/setup.sh          Node deps (npm ci) + Python venv (.venv, locked by python/requirements.lock)
#   bash scripts/setup.sh --test   also what the tests need: Debian chromium (report rendering test), a
#                                  single-node SLURM cluster (slurm tests), started if not running, and
#                                  .venv-s3server (moto_server, the S3 server of the S3 remote tests).
#   bash scripts/setup.sh --gpu    also .venv-gpu on a GPU node: vLLM and the torch it pins, from
#                                  python/requirements-gpu.lock (~3.5 GB download; docs/gpu-setup.md). The
#                                  generate stage (backend auto|vllm) and a local judge then run in it.
# Fast when repeated: each step is skipped while its lock file's hash is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
want_test=0
want_gpu=0
for arg in "$@"; do
  case $arg in
    --test) want_test=1 ;;
    --gpu) want_gpu=1 ;;
    *) echo "setup.sh: unknown option $arg (expected --test and/or --gpu)" >&2; exit 2 ;;
  esac
done
say() { printf '[setup] %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# The project's own package (python/pyproject.toml), editable and without deps (the lock has them, and
# setuptools to build it offline): its commands and `python -m persona_axis.<step>` run this checkout.
install_package() { uv pip install --quiet --python "$1" --no-deps --no-build-isolation -e python; }
py_sum() { echo "$(sha python/requirements.lock) $(sha python/pyproject.toml)"; }
gpu_sum() { echo "$(sha python/requirements-gpu.lock) $(sha python/pyproject.toml)"; }

# --- Node -------------------------------------------------------------------------------------
node_stamp=node_modules/.setup-stamp
if [[ ! -f $node_stamp || "$(cat $node_stamp)" != "$(sha package-lock.json)" ]]; then
  say "installing Node dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  sha package-lock.json > $node_stamp
fi

# --- The bundled CLI (dist/run.mjs: fast start) ---------------------------------------------
bash scripts/build-cli.sh

# --- Python -----------------------------------------------------------------------------------
py_stamp=.venv/.setup-stamp
if [[ ! -f $py_stamp || "$(cat $py_stamp)" != "$(py_sum)" ]]; then
  if ! command -v uv >/dev/null 2>&1; then
    say "installing uv (Python package installer)"
    python3 -m pip install --quiet --disable-pip-version-check uv==0.13.9
  fi
  say "creating .venv from python/requirements.lock (exact versions and hashes)"
  [[ -x .venv/bin/python ]] || uv venv --quiet .venv --python "$(command -v python3.11 || command -v python3)"
  uv pip sync --quiet --python .venv/bin/python --require-hashes python/requirements.lock
  install_package .venv/bin/python
  py_sum > $py_stamp
fi

# --- GPU nodes: vLLM in its own environment (it pins its own torch) -------------------------------
if (( want_gpu )); then
  gpu_stamp=.venv-gpu/.setup-stamp
  if [[ ! -f $gpu_stamp || "$(cat $gpu_stamp)" != "$(gpu_sum)" ]]; then
    command -v nvidia-smi >/dev/null 2>&1 || say "warning: nvidia-smi not found; installing .venv-gpu anyway"
    command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv==0.13.9
    say "creating .venv-gpu from python/requirements-gpu.lock (vLLM + its torch: ~3.5 GB download)"
    [[ -x .venv-gpu/bin/python ]] || uv venv --quiet .venv-gpu --python 3.12
    uv pip sync --quiet --python .venv-gpu/bin/python --require-hashes python/requirements-gpu.lock
    install_package .venv-gpu/bin/python
    gpu_sum > $gpu_stamp
  fi
fi

# --- Test-only system packages ----------------------------------------------------------------
if (( want_test )); then
  # an S3-compatible server (moto_server) for the S3 remote tests, apart from the project's .venv
  s3_stamp=.venv-s3server/.setup-stamp
  if [[ ! -f $s3_stamp || "$(cat $s3_stamp)" != "$(sha python/requirements-s3server.lock)" ]]; then
    command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv==0.13.9
    say "creating .venv-s3server from python/requirements-s3server.lock (moto_server, S3 remote tests)"
    [[ -x .venv-s3server/bin/python ]] || uv venv --quiet .venv-s3server --python "$(command -v python3.11 || command -v python3)"
    uv pip sync --quiet --python .venv-s3server/bin/python --require-hashes python/requirements-s3server.lock
    sha python/requirements-s3server.lock > $s3_stamp
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian chromium (headless report test)"
    (apt-get update -qq || true) >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [[ -x scripts/slurm/start.sh ]] || [[ -f scripts/slurm/start.sh ]]; then
    bash scripts/slurm/start.sh
  fi
fi
say "ready"
