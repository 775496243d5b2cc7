#!/usr/bin/env bash
# Accuracy against pot size (issue 5): the bounded policies on pots of 256, 512, 1,024 and 2,048 slots,
# same prompts, eager engine, 8k-token documents. A 256-slot pot has no room for a 128-token chunk next
# to the question, so it is exported with chunk 32 (the others with 128). Every bundle uses the
# retrieval heads calibrated for the 1,024-slot bundle (calibration does not depend on the pot), so
# only the pot size changes. Appends to
# benchmarks/results/potsizes.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
# the essays and full SQuAD are not shipped (benchmarks/data/README.md); the project machines have them here
export ACRE_DATA=${ACRE_DATA:-$PWD/../shared/data}
PY=.venv/bin/python
[ -f build/smollm2-torch-1024/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-1024', [], 'builtin', chunk=128, pot=1024)"
for pot in 256 512 1024 2048; do
  chunk=$([ $pot -le 256 ] && echo 32 || echo 128)
  [ -f build/smollm2-torch-$pot/manifest.json ] || $PY -c "
import json
from acre.exporter.export import export_bundle
heads = [tuple(h) for h in json.load(open('build/smollm2-torch-1024/manifest.json'))['step']['signal_heads']]
export_bundle('build/smollm2-torch-$pot', [], 'builtin', chunk=$chunk, pot=$pot, signal_heads=heads)"
done
# Arguments: the policy sets to run, each one word-split (default: acre, then "streaming infinipot").
[ $# -gt 0 ] || set -- acre "streaming infinipot"
for policies in "$@"; do
  for pot in 256 512 1024 2048; do
    $PY -m benchmarks --name potsizes --bundle build/smollm2-torch-$pot --engine torch --depths 0.1 0.5 0.9 \
        --tasks passkey needle --policies $policies --lengths 8000
  done
done
# Run on 2026-11-30 (session 4): acre on all four pots; streaming and infinipot on 256, 512 and 2,048
# (their 1,024-slot cases, same bundle and prompts, are in accuracy.jsonl: 0/3 and 0/3 at 8k).
