#!/usr/bin/env bash
# Speed and accuracy against llama.cpp in the same run (issue 5): llama.cpp with full attention on the
# very GGUF acre exports, fed the `full` policy's token ids, then acre (eager and the shipped ExecuTorch
# program) and `full` on the same prompts, back to back. Appends to benchmarks/results/anchor.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
# the essays and full SQuAD are not shipped (benchmarks/data/README.md); the project machines have them here
export ACRE_DATA=${ACRE_DATA:-$PWD/../shared/data}
PY=.venv/bin/python
bash benchmarks/setup_llamacpp.sh
[ -f build/smollm2-android/manifest.json ] || .venv/bin/acre-export --target android --pot 1024 --out build/smollm2-android
run() { $PY -m benchmarks --name anchor --depths 0.1 0.5 0.9 --tasks passkey needle "$@"; }
run --bundle build/smollm2-torch-8064 --engine torch --policies llamacpp --lengths 2000 4000 7000
run --bundle build/smollm2-android --engine executorch --policies acre --lengths 2000 4000 7000
