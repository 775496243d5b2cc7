#!/usr/bin/env bash
# Needle in the essays of shared/data (issue 4's third target): acre on a 1,024-slot pot against full
# attention where it fits the 8k window, on the same prompts. Appends to benchmarks/results/needle.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
[ -f build/smollm2-torch-full/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-full', [], 'builtin', chunk=128, pot=8064)"
run() { $PY -m benchmarks --name needle --tasks needle --depths 0.1 0.5 0.9 --lengths 2000 4000 7000 "$@"; }
run --bundle build/smollm2-android --engine executorch --policies acre
run --bundle build/smollm2-torch-full --engine torch --policies full
