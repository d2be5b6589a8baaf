#!/usr/bin/env bash
# After `npm run demo` (CI): the demo's report exists; a second run does nothing; changing one demo
# param (persona_space.layer) reruns exactly the stages that depend on it; status on the real profile
# lists every stage with its reason without any GPU or network. Restores params/demo.yaml after.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-demo: FAILED: $*" >&2; exit 1; }
tsx() { node_modules/.bin/tsx "$@"; }

[[ -s outputs/demo/report/index.html ]] || fail "outputs/demo/report/index.html missing"

out=$(tsx run.ts -P params/demo.yaml repro 2>&1) || fail "second demo run failed: $out"
echo "$out" | tail -2
echo "$out" | grep -q "^running " && fail "second demo run ran stages"
tsx run.ts -P params/demo.yaml status >/dev/null || fail "status after the demo is not all current"

# A private backup: several checkouts on one machine must not restore each other's params.
bak=$(mktemp "${TMPDIR:-/tmp}/demo.yaml.XXXXXX")
cp params/demo.yaml "$bak"
trap 'cp "$bak" params/demo.yaml; rm -f "$bak"' EXIT
sed -i 's/^  layer: 2$/  layer: 1/' params/demo.yaml
grep -q "^  layer: 1$" params/demo.yaml || fail "could not change persona_space.layer"
stale=$(tsx run.ts -P params/demo.yaml status --json | node -e '
  let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);
  console.log(j.stages.filter(x=>!x.current).map(x=>x.stage).join(" "))})' ) || true
[[ "$stale" == "persona_space movement on_policy_compare report" ]] || fail "after persona_space.layer 2 -> 1 expected stale 'persona_space movement on_policy_compare report', got '$stale'"
# --no-run-cache: layer 1 may have run before in this checkout (the run-cache would restore it)
out=$(tsx run.ts -P params/demo.yaml repro --no-run-cache 2>&1) || fail "repro after the param change failed: $out"
ran=$(echo "$out" | sed -n 's/^running \([^:]*\):.*/\1/p' | tr '\n' ' ' | sed 's/ $//')
[[ "$ran" == "persona_space movement on_policy_compare report" ]] || fail "expected to rerun 'persona_space movement on_policy_compare report', ran '$ran'"
echo "check-demo: changing persona_space.layer reran exactly: $ran"

cp "$bak" params/demo.yaml
out=$(tsx run.ts -P params/demo.yaml repro 2>&1) || fail "restoring the demo failed: $out"
restored=$(echo "$out" | sed -n 's/^\([^:]*\): restored from run-cache (an earlier run.*/\1/p' | tr '\n' ' ' | sed 's/ $//')
[[ "$restored" == "persona_space movement on_policy_compare report" ]] || fail "layer 1 -> 2: expected 'persona_space movement on_policy_compare report' restored from the run-cache, got '$restored': $out"
echo "check-demo: layer back to 2 restored from the run-cache: $restored"

rm -rf outputs/demo/report
tsx run.ts -P params/demo.yaml checkout report >/dev/null || fail "checkout of the demo report failed"
tsx run.ts -P params/demo.yaml status >/dev/null || fail "status after checkout of the report is not all current"
[[ -s outputs/demo/report/index.html ]] || fail "checkout did not bring back outputs/demo/report/index.html"
echo "check-demo: checkout brought back the deleted report from the cache"

set +e; real=$(tsx run.ts status 2>&1); code=$?; set -e
[[ $code == 1 ]] || fail "status on the real profile: expected exit 1 (stale), got $code: $real"
n=$(echo "$real" | grep -c ": stale$")
[[ $n == 30 ]] || fail "status on the real profile: expected 30 stale stages (paper_data, models, generate, judge, 11 capture@, 11 on_policy@, persona_space, movement, on_policy_compare, report), got $n"
echo "check-demo: status on the real profile lists $n stages with reasons (no GPU, no network)"
echo "check-demo: 1 passed, 0 failed"
