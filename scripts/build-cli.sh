#!/usr/bin/env bash
# Bundle the CLI (run.ts + engine/) into dist/run.mjs with esbuild: the same commands as `tsx run.ts`,
# without tsx's TypeScript loading at every start (no-op status ~0.3 s instead of ~0.9 s here).
# Rebuilt only when run.ts, engine/ or package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(cat run.ts package-lock.json $(find engine -name '*.ts' | sort) | sha256sum | cut -d' ' -f1)
[[ -f dist/run.mjs && "$(cat dist/.stamp 2>/dev/null)" == "$stamp" ]] && exit 0
mkdir -p dist
# the AWS SDK stays outside (loaded from node_modules only when an s3:// remote is used)
node_modules/.bin/esbuild run.ts --bundle --platform=node --format=esm --target=node20 --outfile=dist/run.mjs --external:@aws-sdk/* \
  --banner:js="import { createRequire } from 'module'; const require = createRequire(import.meta.url);" --log-level=warning
cp node_modules/hasha/thread.js dist/thread.js   # hasha's hashing worker, loaded beside the bundle
echo "$stamp" > dist/.stamp
