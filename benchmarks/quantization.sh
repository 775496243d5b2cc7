#!/usr/bin/env bash
# What quantizing the ExecuTorch program costs (issue 7): the default android bundle (8da4w-mlp) against
# an fp32 one, plus the other schemes as quantized eager modules. Appends to
# benchmarks/results/quantization.jsonl (~30 minutes on 2 cores, most of it the two XNNPACK lowerings).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
[ -f build/smollm2-android-fp32/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 \
    --quantize fp32 --out build/smollm2-android-fp32
.venv/bin/python -m benchmarks.quantization --bundle fp32=build/smollm2-android-fp32 \
    --bundle 8da4w-mlp=build/smollm2-android --eager-schemes 8da8w 8da4w 8da4w-mlp --passkey fp32 8da4w-mlp
