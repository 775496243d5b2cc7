#!/usr/bin/env bash
# Needle in the essays of shared/data (issue 4's third target): acre on a 1,024-slot pot against full
# attention where it fits the 8k window, on the same prompts, both on the eager engine (fp32).
# Appends to benchmarks/results/needle.jsonl (~1 hour on 2 cores).
# needle_before_lexical.jsonl is the same task before BM25 joined span selection (acre 0/6).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
for pot in 1024 8064; do
  [ -f build/smollm2-torch-$pot/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-$pot', [], 'builtin', chunk=128, pot=$pot)"
done
run() { $PY -m benchmarks --name needle --tasks needle --depths 0.1 0.5 0.9 --engine torch "$@"; }
run --bundle build/smollm2-torch-1024 --policies acre --lengths 2000 4000 7000
run --bundle build/smollm2-torch-8064 --policies full --lengths 2000 4000 7000
