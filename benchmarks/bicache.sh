#!/usr/bin/env bash
# The earlier accuracy run (commit fe440db, before BM25 joined span selection; superseded by accuracy.sh)
# (~1.5 hours on 2 cores). Memory against length is benchmarks/memory.sh. Results append to
# benchmarks/results/bicache.jsonl; render with `python -m benchmarks.report`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
[ -f build/smollm2-torch-full/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-full', [], 'builtin', chunk=128, pot=8064)"
run() { $PY -m benchmarks --name bicache --depths 0.1 0.5 0.9 "$@"; }
# acre (1,024-slot pot, ExecuTorch) far past the 8k window
run --bundle build/smollm2-android --engine executorch --policies acre --lengths 2000 8000 32000 128000
# the bounded baselines on the same pot and prompts (32k and beyond not run yet, for time)
run --bundle build/smollm2-android --engine executorch --policies streaming infinipot --lengths 2000 8000
# full attention where it fits the model's 8k window (eager engine, 8,064-slot pot; 4k and 7k not run yet)
run --bundle build/smollm2-torch-full --engine torch --policies full --lengths 2000
# not run yet: --tasks needle (acre and full at 2k/4k/7k), ablation switches, pot sizes 256-2048
