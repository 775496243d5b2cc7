#!/usr/bin/env bash
# Build the llama.cpp "outside anchor" into its own venv: benchmarks/.llamacpp-venv (idempotent).
# llama-cpp-python compiles llama.cpp from the sdist (a few minutes on 2 cores). It is NOT a dependency
# of acre and never goes into .venv. If the default (native-CPU) build fails it is retried once with
# -DGGML_NATIVE=OFF; set CMAKE_ARGS yourself to override both.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=0.3.36
VENV=.llamacpp-venv
PYTHON=${PYTHON:-python3}
LOG=$VENV/build.log

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
[ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"

if "$VENV/bin/python" -c "import llama_cpp, numpy, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" \
  2>/dev/null; then
  echo "llama-cpp-python $VERSION already installed in benchmarks/$VENV"
  exit 0
fi

"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet numpy

build() {  # $1: CMAKE_ARGS for this attempt
  echo "building llama-cpp-python==$VERSION (CMAKE_ARGS='$1'), log: benchmarks/$LOG"
  CMAKE_ARGS="$1" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$VENV/bin/pip" install --no-cache-dir --verbose "llama-cpp-python==$VERSION" >"$LOG" 2>&1
}

start=$SECONDS
if [ -n "${CMAKE_ARGS:-}" ]; then
  build "$CMAKE_ARGS" || { echo "ERROR: llama-cpp-python build failed, see benchmarks/$LOG" >&2; exit 1; }
elif ! build ""; then
  echo "default build failed (tail of log below), retrying with -DGGML_NATIVE=OFF" >&2
  tail -n 20 "$LOG" >&2
  build "-DGGML_NATIVE=OFF" || {
    echo "ERROR: llama-cpp-python build failed, even with -DGGML_NATIVE=OFF; see benchmarks/$LOG" >&2
    exit 1
  }
fi
"$VENV/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'OK')" || {
  echo "ERROR: llama-cpp-python installed but does not import" >&2
  exit 1
}
echo "built in $((SECONDS - start)) s"
