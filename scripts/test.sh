#!/usr/bin/env bash
# All tests: vitest (engine, runner, SLURM, pipeline) then pytest (python/). Both always run;
# the exit code is non-zero if either failed. Artifacts (report screenshot) go to test-artifacts/.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit $?
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
npx vitest run "$@"; ts=$?
.venv/bin/python -m pytest python/tests -q; py=$?
echo "vitest exit $ts, pytest exit $py"
(( ts == 0 && py == 0 ))
