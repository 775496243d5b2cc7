#!/usr/bin/env bash
# Accuracy against pot size (issue 5): the bounded policies on pots of 256, 512, 1,024 and 2,048 slots,
# same prompts, eager engine. A 256-slot pot has no room for a 128-token chunk next to the question, so
# it is exported with chunk 32 (the others with 128). Appends to benchmarks/results/potsizes.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
for pot in 256 512 1024 2048; do
  chunk=$([ $pot -le 256 ] && echo 32 || echo 128)
  [ -f build/smollm2-torch-$pot/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-$pot', [], 'builtin', chunk=$chunk, pot=$pot)"
  $PY -m benchmarks --name potsizes --bundle build/smollm2-torch-$pot --engine torch --depths 0.1 0.5 0.9 \
      --tasks passkey needle --policies acre --lengths 8000
done
# Not run yet: stopped on 2026-11-30 while the 256-slot bundle was still being calibrated.
