#!/usr/bin/env bash
# Every benchmark behind docs/benchmarks.md, one after another (never two at once: on 2 cores parallel
# torch jobs slow each other 3-10x), then the report. Several hours on 2 cores; each script appends
# to its own benchmarks/results/*.jsonl, each run headed by its machine, versions and configuration.
set -euo pipefail
cd "$(dirname "$0")"
bash accuracy.sh
bash memory.sh
bash anchor.sh
bash potsizes.sh
bash ablation.sh
bash quantization.sh
../.venv/bin/python -m benchmarks.crash --trials 200
cd .. && .venv/bin/python -m benchmarks.report
