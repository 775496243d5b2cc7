#!/usr/bin/env bash
# Build the fuzz targets with clang (libFuzzer, ASan, UBSan) in their own build tree and run each for a
# number of executions, one process at a time, at the lowest priority:
#
#   native/fuzz/run.sh [RUNS] [TARGET...]     # RUNS default 1000000; targets default all
#
# Each target starts from its committed corpus (native/fuzz/corpus/<target>, read only); what it finds
# new goes to a work corpus under the build tree (emptied first unless ACRE_FUZZ_KEEP is set), and a
# crash, leak, timeout or out-of-memory input to its artifacts directory there. Prints per target:
# executions, seconds, final coverage (cov: edges) and features (ft:), crashes; exits 1 if any crashed.
# An input takes milliseconds; the timeout for a hang is 300 s all the same, so that a process paused
# for a while (SIGSTOP) is not taken for one.
# Environment: ACRE_FUZZ_BUILD (build tree, default build/native-fuzz), ACRE_FUZZ_FLAGS (more libFuzzer
# flags), ACRE_FUZZ_TMPDIR (where the targets write the files they parse, default /dev/shm when there:
# the store targets fsync, which costs little on tmpfs), CC/CXX (default clang/clang++), ACRE_PYTHON (a
# Python with pip's cmake and ninja on its PATH, default .venv/bin/python).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-1000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest tokenizer spans pot store)
build=${ACRE_FUZZ_BUILD:-$root/build/native-fuzz}
python=${ACRE_PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] && export PATH="$(dirname "$python"):$PATH"  # pip's cmake (>= 3.28) and ninja
tmp=${ACRE_FUZZ_TMPDIR:-}
[ -n "$tmp" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm; } || tmp=${TMPDIR:-/tmp}

dict_of() {
  case "$1" in
    manifest | tokenizer | store) echo "$here/json.dict" ;;
    spans) echo "$here/spans.dict" ;;
    pot) echo "$here/npz.dict" ;;
  esac
}

nice -n 19 cmake -S "$root/native" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DACRE_BUILD_FUZZERS=ON \
  -DACRE_BUILD_TESTS=OFF -DACRE_BUILD_CLI=OFF -DACRE_BUILD_PYTHON=OFF -DACRE_WITH_EXECUTORCH=OFF >/dev/null
nice -n 19 cmake --build "$build" -j1 --target "${targets[@]/#/fuzz_}"

results=()
failed=0
for target in "${targets[@]}"; do
  work="$build/work/$target"
  [ -n "${ACRE_FUZZ_KEEP:-}" ] || rm -rf "$work/corpus"
  mkdir -p "$work/corpus" "$work/artifacts"
  log="$work/fuzz.log"
  touch "$log.start"
  start=$(date +%s.%N)
  status=0
  # shellcheck disable=SC2086
  TMPDIR="$tmp" nice -n 19 "$build/fuzz_$target" -runs="$runs" -dict="$(dict_of "$target")" -timeout=300 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" ${ACRE_FUZZ_FLAGS:-} \
    "$work/corpus" "$here/corpus/$target" >"$log" 2>&1 || status=$?
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # coverage (edges) and features at the end: libFuzzer's last status line (DONE, or the last before a crash)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) -newer "$log.start" | wc -l)
  [ "$status" -eq 0 ] || { [ "$crashes" -gt 0 ] || crashes=1; }
  [ "$crashes" -eq 0 ] || failed=1
  results+=("$(printf '%-10s %12s %10.1f %6s %6s %8s' "$target" "${executions:-?}" "$seconds" "${cov:-?}" "${ft:-?}" \
    "$crashes")")
  [ "$crashes" -eq 0 ] || { echo "fuzz_$target: see $log and $work/artifacts" >&2; tail -40 "$log" >&2; }
done

printf '%-10s %12s %10s %6s %6s %8s\n' target executions seconds cov ft crashes
printf '%s\n' "${results[@]}"
exit $failed
