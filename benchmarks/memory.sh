#!/usr/bin/env bash
# Peak RSS against document length (issue 4) with the shipped program (ExecuTorch, quantized), and the
# pass key at 128k tokens: acre, 1,024-slot pot, one process per length, depths 10/50/90%. The peak is
# reset after the program is loaded and the documents built, so it measures ingest and questions.
# Appends to benchmarks/results/memory.jsonl (~25 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
.venv/bin/python -m benchmarks --bundle build/smollm2-android --engine executorch --policies acre \
    --lengths 8000 32000 128000 --depths 0.1 0.5 0.9 --name memory
