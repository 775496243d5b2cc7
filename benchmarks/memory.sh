#!/usr/bin/env bash
# Peak RSS against document length (issue 4): acre, 1,024-slot pot, one process per length; the peak is
# reset after the model is loaded and the document built, so it measures ingest and one question.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
.venv/bin/python -m benchmarks --bundle build/smollm2-android --engine executorch --policies acre \
    --lengths 8000 32000 128000 --depths 0.5 --seed 7 --name memory
