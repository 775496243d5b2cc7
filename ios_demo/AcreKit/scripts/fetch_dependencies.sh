#!/bin/sh
# Puts the core's two third-party sources where Package.swift compiles them (neither is committed):
#   PCRE2 10.42 -> Sources/CPCRE2/pcre2/ (+ include/pcre2.h): the version the Linux build links
#                  (Debian 12's libpcre2-8), so both tokenize with the same Unicode 14 tables
#   nlohmann/json 3.11.3 (single header) -> Sources/CAcre/vendor/nlohmann/json.hpp
# From GitHub with git and curl, or from local copies:
#   ACRE_PCRE2_SRC=<a pcre2 checkout or release tree at 10.42>  ACRE_JSON_HPP=<single-header json.hpp>
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pcre2=${ACRE_PCRE2_SRC:-}
if [ -z "$pcre2" ]; then
  git clone --quiet --depth 1 --branch pcre2-10.42 https://github.com/PCRE2Project/pcre2.git "$work/pcre2"
  pcre2="$work/pcre2"
fi
src="$pcre2/src"
[ -f "$src/pcre2.h.generic" ] || { echo "$src: no pcre2.h.generic (not a PCRE2 source tree)" >&2; exit 1; }
out="$here/Sources/CPCRE2/pcre2"
rm -rf "$out"
mkdir -p "$out"
cp "$src"/pcre2_*.c "$src"/pcre2_*.h "$out"/
rm -f "$out"/pcre2_fuzzsupport.c "$out"/pcre2_printint.c "$out"/pcre2test.c "$out"/pcre2grep.c "$out"/pcre2posix*
cp "$src/config.h.generic" "$out/config.h"
cp "$src/pcre2_chartables.c.dist" "$out/pcre2_chartables.c"
# pcre2.h wants PCRE2_CODE_UNIT_WIDTH before it; preset to 8 so that it also builds as a module
{
  printf '#ifndef PCRE2_CODE_UNIT_WIDTH\n#define PCRE2_CODE_UNIT_WIDTH 8\n#endif\n'
  cat "$src/pcre2.h.generic"
} >"$here/Sources/CPCRE2/include/pcre2.h"
cp "$here/Sources/CPCRE2/include/pcre2.h" "$out/pcre2.h"

json=${ACRE_JSON_HPP:-}
if [ -z "$json" ]; then
  curl -fsSL -o "$work/json.hpp" https://github.com/nlohmann/json/releases/download/v3.11.3/json.hpp
  json="$work/json.hpp"
fi
mkdir -p "$here/Sources/CAcre/vendor/nlohmann"
cp "$json" "$here/Sources/CAcre/vendor/nlohmann/json.hpp"
echo "PCRE2 into $out, json.hpp into $here/Sources/CAcre/vendor/nlohmann"
