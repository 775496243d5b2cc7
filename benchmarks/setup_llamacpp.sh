#!/usr/bin/env bash
# Build the llama.cpp "outside anchor" into its own venv: benchmarks/.llamacpp-venv (idempotent).
# llama-cpp-python compiles llama.cpp from the sdist (a few minutes on 2 cores). It is NOT a dependency
# of acre and never goes into .venv. The build names the CPU's vector extensions instead of
# -march=native: a native build on a VM that advertises AMX compiled ggml's AMX kernels, and they
# crashed (SIGSEGV in ggml_backend_amx_mul_mat) on the first decode. Set CMAKE_ARGS to override.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=0.3.36
VENV=.llamacpp-venv
PYTHON=${PYTHON:-python3}
LOG=$VENV/build.log

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
[ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"

if "$VENV/bin/python" -c "import llama_cpp, numpy, sys
sys.exit(llama_cpp.__version__ != '$VERSION' or b'AMX_INT8 = 1' in llama_cpp.llama_print_system_info())" \
  2>/dev/null; then
  echo "llama-cpp-python $VERSION already installed in benchmarks/$VENV"
  exit 0
fi

"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet numpy

"$VENV/bin/pip" uninstall --quiet --yes llama-cpp-python 2>/dev/null || true  # pip would keep a bad build

build() {  # $1: CMAKE_ARGS for this attempt
  echo "building llama-cpp-python==$VERSION (CMAKE_ARGS='$1'), log: benchmarks/$LOG"
  CMAKE_ARGS="$1" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$VENV/bin/pip" install --no-cache-dir --verbose "llama-cpp-python==$VERSION" >"$LOG" 2>&1
}

start=$SECONDS
if [ -z "${CMAKE_ARGS:-}" ]; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  if grep -q avx512f /proc/cpuinfo; then
    CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX512=ON"
    grep -q avx512_vnni /proc/cpuinfo && CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX512_VNNI=ON"
    grep -q avx512vbmi /proc/cpuinfo && CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX512_VBMI=ON"
  fi
fi
build "$CMAKE_ARGS" || { echo "ERROR: llama-cpp-python build failed, see benchmarks/$LOG" >&2; exit 1; }
"$VENV/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'OK')" || {
  echo "ERROR: llama-cpp-python installed but does not import" >&2
  exit 1
}
echo "built in $((SECONDS - start)) s"
