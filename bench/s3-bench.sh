#!/usr/bin/env bash
# S3 remote benchmark (not a test): push / no-op push / pull of a synthetic tree to moto_server
# (the S3-compatible server of the tests, a Python development server on this machine) and, in
# the same run, to a directory remote, with the bundled CLI.
#
#   bash bench/s3-bench.sh [--mb 300] [--files 1000] [--dir /tmp/s3-bench]
#
# The tree: <files> files, 1% of them holding 80% of the bytes (so big ones go up as multipart
# uploads), random content. moto keeps objects in its own process: the numbers are the tool's
# S3 path plus moto's, not AWS's (network, server) costs.
set -euo pipefail
MB=300; FILES=1000; DIR=/tmp/s3-bench
while [[ $# -gt 0 ]]; do
  case $1 in
    --mb) MB=$2; shift 2;; --files) FILES=$2; shift 2;; --dir) DIR=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
bash "$REPO/scripts/build-cli.sh"
RUN="node $REPO/dist/run.mjs"
MOTO=${PIPELINE_TEST_MOTO_SERVER:-$REPO/.venv-s3server/bin/moto_server}
[[ -x $MOTO ]] || { echo "$MOTO missing: bash scripts/setup.sh --test" >&2; exit 2; }
LOG=$DIR/bench.log
rm -rf "$DIR"; mkdir -p "$DIR"; : > "$LOG"

python3 - "$DIR/src" "$MB" "$FILES" <<'PY'
import os, sys
root, mb, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
total = int(mb * 1e6); big = max(1, round(n * 0.01))
block = os.urandom(1 << 20)
for i in range(n):
    size = int(total * 0.8 / big) if i < big else int(total * 0.2 / (n - big))
    d = os.path.join(root, f"part{i % 30:02d}"); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(i.to_bytes(8, "little")); left = size - 8
        while left > 0:
            k = min(left, len(block)); f.write(block[:k]); left -= k
PY
echo "tree: $FILES files, $(du -sb "$DIR/src" | cut -f1) bytes; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

"$MOTO" -H 127.0.0.1 -p 0 >"$DIR/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "Running on" "$DIR/moto.log" && break; sleep 0.1; done
ENDPOINT=$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/moto.log" | head -1)
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

source "$REPO/bench/time-it.sh"

mkdir -p "$DIR/p"
cd "$DIR/p"
printf 'stages:\n  copy:\n    cmd: mkdir -p data && cp -r %s/. data/\n    outs: [data]\n' "$DIR/src" > pipeline.yaml
$RUN repro >>"$LOG" 2>&1
for remote in "s3://bench-bucket/r" "$DIR/dir-remote"; do
  kind=$([[ $remote == s3://* ]] && echo s3 || echo directory)
  printf 'remote: %s\ns3:\n  endpoint_url: %s\n' "$remote" "$ENDPOINT" > pipeline.config.yaml
  time_it "$kind push" /usr/bin/time -f "push cpu: %U user %S sys" $RUN push
  time_it "$kind no-op push" $RUN push
  rm -rf "$DIR/q"; mkdir -p "$DIR/q"; cp pipeline.yaml pipeline.lock pipeline.config.yaml "$DIR/q/"
  (cd "$DIR/q" && time_it "$kind pull (fresh project)" $RUN pull && time_it "$kind status after pull" $RUN status)
done
