#!/usr/bin/env bash
# The bi-layer cache's accuracy targets (issue 4) with the current span selection (attention on L1,
# span index, BM25), regenerable with one command. Every policy runs the eager engine (the very module
# that is exported) on the same prompts: bounded policies on a 1,024-slot pot, `full` on an 8,064-slot
# pot where the document fits the 8k window. Appends to benchmarks/results/accuracy.jsonl (~2 hours on
# 2 cores); render with `python -m benchmarks.report`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
for pot in 1024 8064; do
  [ -f build/smollm2-torch-$pot/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-$pot', [], 'builtin', chunk=128, pot=$pot)"
done
run() { $PY -m benchmarks --name accuracy --depths 0.1 0.5 0.9 --engine torch "$@"; }
bounded=(--bundle build/smollm2-torch-1024)
full=(--bundle build/smollm2-torch-8064 --policies full)
run "${bounded[@]}" --tasks passkey needle --policies acre --lengths 2000 8000 32000
run "${full[@]}" --tasks passkey needle --lengths 2000 4000 7000
run "${bounded[@]}" --tasks needle --policies acre --lengths 4000 7000
run "${bounded[@]}" --tasks passkey --policies acre --lengths 4000 7000
run "${bounded[@]}" --tasks passkey --policies streaming infinipot --lengths 2000 8000
run "${bounded[@]}" --tasks passkey --policies acre --lengths 128000
# Run on 2026-11-30 (commit 5f029a2 onwards): the first line, and the second line's passkey cells and needle at 2k; the
# rest had not run when the session ended (see benchmarks/results/accuracy.jsonl for what is there).
