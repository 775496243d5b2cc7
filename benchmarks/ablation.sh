#!/usr/bin/env bash
# The bi-layer cache's ablations (issues 4 and 5): acre with one part of its span scoring or refill
# turned off at a time, on the same prompts and 1,024-slot pot as benchmarks/accuracy.sh (the unablated
# acre rows are there). Appends to benchmarks/results/ablation.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
# the essays and full SQuAD are not shipped (benchmarks/data/README.md); the project machines have them here
export ACRE_DATA=${ACRE_DATA:-$PWD/../shared/data}
PY=.venv/bin/python
for switch in use_attention=false use_index=false use_probes=false use_tree=false use_lexical=false \
    refill_mode=reuse; do
  $PY -m benchmarks --name ablation --bundle build/smollm2-torch-1024 --engine torch --depths 0.1 0.5 0.9 \
      --tasks passkey needle --policies acre --lengths 8000 --switch $switch
done
# Not run yet (2026-11-30).
