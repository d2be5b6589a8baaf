#!/usr/bin/env bash
# Cache benchmark (not a test): checkout and push/pull of a synthetic tree with this tool and with
# DVC, same tree, same machine, same run, back to back.
#
#   bash bench/cache-bench.sh [--gb 3] [--files 3000] [--dir /tmp/cache-bench] [--dvc /tmp/dvcenv/bin/dvc]
#
# The tree: <files> files, 1% of them holding 80% of the bytes (checkpoint shards beside many small
# JSON files), random content. Each tool gets the same pipeline: one stage copying the tree into
# data/ (an out). Measured per tool: repro (copy + hash + store in the cache), checkout of the
# deleted tree (copy links, then hardlinks), a no-op checkout, push to an empty directory remote,
# a no-op push, pull into a fresh project with an empty cache, status after the pull. Files are
# in the page cache (freshly written): the numbers are CPU and copy costs, not cold-disk reads.
set -euo pipefail
GB=3; FILES=3000; DIR=/tmp/cache-bench; DVC=/tmp/dvcenv/bin/dvc
while [[ $# -gt 0 ]]; do
  case $1 in
    --gb) GB=$2; shift 2;; --files) FILES=$2; shift 2;; --dir) DIR=$2; shift 2;; --dvc) DVC=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
bash "$REPO/scripts/build-cli.sh"
RUN="node $REPO/dist/run.mjs"
LOG=$DIR/bench.log
rm -rf "$DIR"; mkdir -p "$DIR"
: > "$LOG"

python3 - "$DIR/src" "$GB" "$FILES" <<'PY'
import os, sys
root, gb, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
total = int(gb * 1e9); big = max(1, round(n * 0.01))
os.makedirs(root, exist_ok=True)
block = os.urandom(1 << 20)
for i in range(n):
    size = int(total * 0.8 / big) if i < big else int(total * 0.2 / (n - big))
    d = os.path.join(root, f"part{i % 30:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(i.to_bytes(8, "little"))          # every file distinct
        left = size - 8
        while left > 0:
            k = min(left, len(block)); f.write(block[:k]); left -= k
        # vary the content of big files beyond their first bytes too
        if i < big: f.seek(size // 2); f.write(os.urandom(64))
PY
BYTES=$(du -sb "$DIR/src" | cut -f1)
echo "tree: $FILES files, $BYTES bytes ($(du -sh "$DIR/src" | cut -f1)); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# time <label> <cmd...>: prints "label<TAB>seconds"; output of the command goes to the log
source "$REPO/bench/time-it.sh"

STAGE_CMD="mkdir -p data && cp -r $DIR/src/. data/"

# ---------------------------------------------------------------- this tool
O=$DIR/ours
mkdir -p "$O" && cd "$O"
printf 'stages:\n  gen:\n    cmd: %s\n    outs: [data]\n' "$STAGE_CMD" > pipeline.yaml
: > params.yaml
echo "## this tool ($RUN)"
time_it "repro (copy in, hash, store in cache; hardlink)" $RUN repro
rm -rf data
time_it "checkout of the deleted tree, copy" env PIPELINE_CACHE_LINK=copy $RUN checkout
rm -rf data
time_it "checkout of the deleted tree, hardlink" env PIPELINE_CACHE_LINK=hardlink $RUN checkout
time_it "checkout, nothing to do" $RUN checkout
time_it "push to an empty directory remote" $RUN push -r "$DIR/ours-remote"
time_it "push, nothing to do" $RUN push -r "$DIR/ours-remote"
C=$DIR/ours-clone; mkdir -p "$C"; cp pipeline.yaml params.yaml pipeline.lock "$C/"; cd "$C"
time_it "pull into a fresh project (empty cache), copy" env PIPELINE_CACHE_LINK=copy $RUN pull -r "$DIR/ours-remote"
time_it "status after the pull" $RUN status
rm -rf data .pipeline
time_it "pull into a fresh project (empty cache), hardlink" env PIPELINE_CACHE_LINK=hardlink $RUN pull -r "$DIR/ours-remote"
cd "$DIR"; rm -rf "$O" "$C" "$DIR/ours-remote"

# ---------------------------------------------------------------- DVC
if [[ -x "$DVC" ]]; then
  D=$DIR/dvc
  mkdir -p "$D" && cd "$D"
  "$DVC" init --no-scm -q
  "$DVC" config core.analytics false
  printf 'stages:\n  gen:\n    cmd: %s\n    outs: [data]\n' "$STAGE_CMD" > dvc.yaml
  echo "## DVC $("$DVC" --version)"
  time_it "repro (copy in, hash, store in cache; default reflink,copy)" "$DVC" repro -q
  rm -rf data
  time_it "checkout of the deleted tree, copy (DVC default here)" "$DVC" checkout -q
  "$DVC" config cache.type hardlink
  rm -rf data
  time_it "checkout of the deleted tree, hardlink" "$DVC" checkout -q
  time_it "checkout, nothing to do" "$DVC" checkout -q
  "$DVC" remote add -q -d r "$DIR/dvc-remote"
  time_it "push to an empty directory remote" "$DVC" push -q
  time_it "push, nothing to do" "$DVC" push -q
  C=$DIR/dvc-clone; mkdir -p "$C"; cd "$C"
  "$DVC" init --no-scm -q; "$DVC" config core.analytics false
  cp "$D/dvc.yaml" "$D/dvc.lock" .; "$DVC" remote add -q -d r "$DIR/dvc-remote"
  time_it "pull into a fresh project (empty cache), copy" "$DVC" pull -q
  time_it "status after the pull" "$DVC" status -q
  rm -rf data .dvc/cache; "$DVC" config cache.type hardlink
  time_it "pull into a fresh project (empty cache), hardlink" "$DVC" pull -q
  cd "$DIR"; rm -rf "$D" "$C" "$DIR/dvc-remote"
else
  echo "## DVC: not installed at $DVC (uv venv /tmp/dvcenv && uv pip install --python /tmp/dvcenv dvc==3.67.1)"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$DIR/src"
