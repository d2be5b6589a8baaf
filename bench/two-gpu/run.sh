#!/usr/bin/env bash
# The two-GPU node check (issue 7): two capture@ instances with resources.gpus: 1 on a 2-GPU machine.
# The GPU machine has no Node.js: the CLI is bundled with esbuild and Node's binary carried beside it.
#   here:   bash bench/two-gpu/run.sh prepare      (builds .gpu2/: run.mjs, hasha's thread.js, node.xz, the project)
#   there:  xz -dc .gpu2/node.xz > /tmp/node && chmod +x /tmp/node && cd .gpu2/proj && /tmp/node ../run.mjs repro -j 2 && /tmp/node ../run.mjs status
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ "${1:-}" == prepare ]] || { echo "usage: $0 prepare"; exit 2; }
mkdir -p .gpu2 && P=.gpu2/proj && rm -rf $P && mkdir -p $P/transcripts
node_modules/.bin/esbuild run.ts --bundle --platform=node --format=esm --target=node18 --outfile=.gpu2/run.mjs \
  --banner:js="import { createRequire } from 'module'; const require = createRequire(import.meta.url);" --log-level=warning
cp node_modules/hasha/thread.js .gpu2/thread.js
xz -T2 -6 -c "$(command -v node)" > .gpu2/node.xz
cp -r outputs/demo/models/final $P/model && cp outputs/demo/transcripts/*.jsonl $P/transcripts/   # run `npm run demo` first
cp bench/two-gpu/pipeline.yaml bench/two-gpu/params.yaml $P/
