#!/usr/bin/env bash
# The evaluation suite (issue 15), one command: every family of benchmarks/suite.py at 2k / 8k / 32k /
# 128k tokens, 30 cases a cell (SPLIT=dev by default), for acre and its peers on the same model, prompts
# and questions, eager engine: acre and the RAG peers (answered by `full` on what they retrieved) on a
# 1,024-slot pot at every length; streaming and infinipot on the same pot at 2k and 8k (they fail there
# already); `full` on an 8,064-slot pot where the document fits the 8k window (2k, and at 8k the cases
# whose document with its needles stays under 8,064 tokens; the report counts the others apart).
# Appends to benchmarks/results/suite.jsonl; render with `python -m benchmarks.report`.
#
# Out of CI, and long: days on 2 shared cores for the whole grid (a 128k-token case costs acre, eager,
# several minutes of ingest, and the embedding peer about two of embedding). Select a part with
# LENGTHS, FAMILIES and POLICIES, e.g. LENGTHS="2000 8000" FAMILIES=single POLICIES="acre bm25".
# SPLIT=heldout runs the held-out cases: not for tuning, only to report a change once it is made.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SPLIT=${SPLIT:-dev}
LENGTHS=${LENGTHS:-2000 8000 32000 128000}
FAMILIES=${FAMILIES:-single distractors multivalue twohop multidoc paraphrase questions}
POLICIES=${POLICIES:-acre bm25 embedding}
for pot in 1024 8064; do
  [ -f build/smollm2-torch-$pot/manifest.json ] || $PY -c "
from acre.exporter.export import export_bundle
export_bundle('build/smollm2-torch-$pot', [], 'builtin', chunk=128, pot=$pot)"
done
run() { $PY -m benchmarks --name suite --engine torch --cases 30 --split "$SPLIT" --seed 0 "$@"; }
# shellcheck disable=SC2086  # word-split the lists on purpose
run --bundle build/smollm2-torch-1024 --tasks $FAMILIES --policies $POLICIES --lengths $LENGTHS
short=$(for n in $LENGTHS; do [ "$n" -le 8000 ] && echo "$n"; done)
if [ -n "$short" ]; then
  # shellcheck disable=SC2086
  run --bundle build/smollm2-torch-1024 --tasks $FAMILIES --policies streaming infinipot --lengths $short
  # shellcheck disable=SC2086
  run --bundle build/smollm2-torch-8064 --tasks $FAMILIES --policies full --lengths $short
fi
# the closed-book baseline of the multi-document family (the question alone: the length does not matter)
run --bundle build/smollm2-torch-1024 --tasks multidoc --policies nocontext --lengths 2000
$PY -m benchmarks.report
