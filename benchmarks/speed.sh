#!/usr/bin/env bash
# Speed against llama.cpp, one process after the other on a quiet machine (issue 17): llama.cpp where
# the document fits its 8k window, acre from 2k to 128k tokens, then the ratios. Appends to
# benchmarks/results/speed.jsonl. While it runs, /tmp/acre-quiet tells other jobs to wait.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BUNDLE=${BUNDLE:-build/smollm2-android}
bash benchmarks/setup_llamacpp.sh
[ -f "$BUNDLE/manifest.json" ] || .venv/bin/acre-export --target android --pot 1024 --out "$BUNDLE"
touch /tmp/acre-quiet
trap 'rm -f /tmp/acre-quiet' EXIT
RUN=$(date -u +%Y-%m-%dT%H:%M:%S)
for n in 2000 7500; do
  $PY -m benchmarks.speed llamacpp --bundle "$BUNDLE" --length "$n" --run "$RUN"
done
for n in 2000 7500 32000 128000; do
  $PY -m benchmarks.speed run --bundle "$BUNDLE" --length "$n" --run "$RUN"
done
$PY -m benchmarks.speed report
