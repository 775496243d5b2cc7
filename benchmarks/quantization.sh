#!/usr/bin/env bash
# What quantizing the ExecuTorch program costs (issue 16): the default android bundle (`gguf`: the
# GGUF's own Q4_1/Q8_0 blocks) against the earlier default (8da4w-mlp-emb, requantized), plus schemes as
# quantized eager modules. Appends to benchmarks/results/quantization.jsonl (~40 minutes on 2 cores,
# most of it the two XNNPACK lowerings). Run it alone: the speed rows need a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
[ -f build/smollm2-android-8da4w/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 \
    --quantize 8da4w-mlp-emb --out build/smollm2-android-8da4w
.venv/bin/python -m benchmarks.quantization --bundle 8da4w-mlp-emb=build/smollm2-android-8da4w \
    --bundle gguf=build/smollm2-android --eager-schemes gguf 8da8w 8da4w-mlp-emb --passkey 8da4w-mlp-emb gguf
