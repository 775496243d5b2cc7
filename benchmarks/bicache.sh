#!/usr/bin/env bash
# The bi-layer cache's accuracy and memory targets (issue 4), regenerable with one command:
#   benchmarks/bicache.sh        (needs `make demo` or the bundles below; ~1 hour on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
[ -f build/smollm2-torch-full/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-full', [], 'builtin', chunk=128, pot=8064)"
# acre (1,024-slot pot) far past the native window; one process per length, so peak RSS is per length
$PY -m benchmarks --bundle build/smollm2-android --engine executorch --policies acre \
    --lengths 2000 8000 32000 128000 --depths 0.1 0.5 0.9 --name bicache
# the bounded baselines, same pot, same prompts
$PY -m benchmarks --bundle build/smollm2-android --engine executorch --policies streaming infinipot \
    --lengths 2000 8000 32000 --depths 0.1 0.5 0.9 --name bicache
# full attention where it fits the model's 8k window (eager engine, 8,064-slot pot)
$PY -m benchmarks --bundle build/smollm2-torch-full --engine torch --policies full \
    --lengths 2000 4000 7000 --depths 0.1 0.5 0.9 --name bicache
# the needle in real essays, acre against full where full fits
$PY -m benchmarks --bundle build/smollm2-android --engine executorch --policies acre --tasks needle \
    --lengths 2000 4000 7000 --depths 0.1 0.5 0.9 --name bicache
$PY -m benchmarks --bundle build/smollm2-torch-full --engine torch --policies full --tasks needle \
    --lengths 2000 4000 7000 --depths 0.1 0.5 0.9 --name bicache
