#!/usr/bin/env bash
# All tests: the guardrails (tsc with noUnused*; Biome's recommended lint rules, biome.json; knip,
# knip.json: unused files, exports and dependencies; ruff F+E9: unused code and syntax errors; none
# of them formats), then vitest (engine, runner, SLURM, stage glue) and pytest (python/). All always
# run; the exit code is non-zero if any failed. Artifacts (report screenshot) go to test-artifacts/.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test || exit $?
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
npx tsc --noEmit; tsc=$?
npx biome lint --error-on-warnings; biome=$?
npx knip; knip=$?
.venv/bin/ruff check --quiet python scripts bench; lint=$?
npx vitest run "$@"; ts=$?
.venv/bin/python -m pytest python/tests -q; py=$?
echo "tsc exit $tsc, biome exit $biome, knip exit $knip, ruff exit $lint, vitest exit $ts, pytest exit $py"
(( tsc == 0 && biome == 0 && knip == 0 && lint == 0 && ts == 0 && py == 0 ))
