#!/usr/bin/env bash
# Cache benchmark on the demo's real outputs (after `npm run demo`): push to an empty directory
# remote, checkout of the deleted outputs, pull into a fresh clone (empty cache) then status.
#   bash bench/cache-bench-demo.sh [--dir /tmp/cache-bench-demo]
set -euo pipefail
DIR=/tmp/cache-bench-demo
[[ ${1:-} == --dir ]] && DIR=$2
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
bash scripts/build-cli.sh
RUN="node $REPO/dist/run.mjs -P params/demo.yaml"
[[ -f pipeline.demo.lock ]] || { echo "run the demo first (npm run demo)" >&2; exit 2; }
rm -rf "$DIR"; mkdir -p "$DIR"
LOG=$DIR/bench.log
source "$REPO/bench/time-it.sh"
$RUN status >/dev/null || { echo "the demo is not current; run it first" >&2; exit 2; }
echo "demo outputs: $(du -sh --apparent-size outputs/demo | cut -f1), $(find outputs/demo -type f | wc -l) files; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
time_it "push to an empty directory remote" $RUN push -r "$DIR/remote"
time_it "push, nothing to do" $RUN push -r "$DIR/remote"
mv outputs/demo "$DIR/demo-outputs-aside"
time_it "checkout of the deleted outputs (hardlink)" $RUN checkout
time_it "status after checkout" $RUN status
git clone -q "$REPO" "$DIR/clone"
cp pipeline.demo.lock "$DIR/clone/"
ln -s "$REPO/node_modules" "$DIR/clone/node_modules"; ln -s "$REPO/.venv" "$DIR/clone/.venv"
cd "$DIR/clone"
time_it "pull into a fresh clone (empty cache, hardlink)" $RUN pull -r "$DIR/remote"
time_it "status in the clone (all current)" $RUN status
cd "$REPO"
rm -rf outputs/demo && mv "$DIR/demo-outputs-aside" outputs/demo
$RUN status >/dev/null && echo "demo outputs back in place, all current"
rm -rf "$DIR"
