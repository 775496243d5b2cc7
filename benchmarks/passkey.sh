#!/usr/bin/env bash
# Pass key with acre after BM25 joined the span selection and re-encoding was fixed (commit 86e05db):
# the same task and depths as bicache.sh, eager engine, 1,024-slot pot. Appends to
# benchmarks/results/passkey.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -f build/smollm2-torch-1024/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-1024', [], 'builtin', chunk=128, pot=1024)"
$PY -m benchmarks --name passkey --tasks passkey --depths 0.1 0.5 0.9 --engine torch \
    --bundle build/smollm2-torch-1024 --policies acre --lengths 2000 8000 32000
