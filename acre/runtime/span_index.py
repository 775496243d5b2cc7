"""The span index: representative keys per span, grouped into a tree searched top-down by probe queries.

Run by the native core (native/src/span_index.cpp, the acre_span_index_* functions of
native/include/acre.h); this module converts only. Each span is summarised, for every probe layer and
KV head, by its R keys of largest norm; coarser tree nodes keep the R largest-norm keys of their
children (SharedLLM's multi-grained tree). Only the model's retrieval heads score
(acre.exporter.calibrate): for each head, a node's score is the best dot product of any probe query
with any of its keys, standardised over the candidate nodes; the heads' standardised scores are summed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from acre import _native

if TYPE_CHECKING:
    from acre.runtime.l2 import SpanStore

FANOUT: int = _native.SPAN_INDEX_FANOUT


def representatives(k: np.ndarray, reps: int) -> np.ndarray:
    """[Lp, Hkv, n, D] keys of one span -> [Lp, Hkv, R, D] float32, the R keys of largest norm per head
    (repeated when the span is shorter than R)."""
    return _native.representatives(np.ascontiguousarray(k, dtype=np.float32), reps)


def select_probe_queries(queries: np.ndarray, share: float = 0.25) -> np.ndarray:
    """ActQKV: the question tokens whose queries deviate most from the question's mean query
    (activation bias) probe the index, plus the last token. queries [Lp, H, T, D] -> [Lp, H, k, D]."""
    return queries[:, :, _native.probe_queries(np.ascontiguousarray(queries, dtype=np.float32), share)]


class SpanIndex:
    """The index of a document's spans; its entries (float16) live in the core."""

    def __init__(self, core: _native.SpanIndex) -> None:
        self._core = core

    @classmethod
    def from_reps(cls, reps: np.ndarray, fanout: int = FANOUT) -> SpanIndex:
        """An index over reps [N, Lp, Hkv, R, D] (float16; copied into the core)."""
        bits = np.ascontiguousarray(reps, dtype=np.float16).view(np.uint16)
        return cls(_native.SpanIndex(bits, fanout))

    @classmethod
    def from_store(cls, store: SpanStore, fanout: int = FANOUT) -> SpanIndex:
        """The index of a store's spans, read from spans.bin straight into the core."""
        return cls(_native.SpanIndex.from_store(store.core, fanout))

    @property
    def nbytes(self) -> int:
        return self._core.nbytes

    @property
    def level_sizes(self) -> list[int]:
        """Nodes per level: [spans, their parents, ...]."""
        return self._core.level_sizes

    def level(self, depth: int) -> np.ndarray:
        """A copy of one level's entries, float16 [nodes, Lp, Hkv, R, D] (0: the spans)."""
        return self._core.level_reps(depth)

    def scores(
        self, queries: np.ndarray, heads: list[tuple[int, int]], beam: int = 8, tree: bool = True
    ) -> np.ndarray:
        """Score of every span [N] float64 for queries [Lp, H, T, D] and heads (probe-layer index, query
        head); -inf for spans the tree search did not reach."""
        return self._core.scores(np.ascontiguousarray(queries, dtype=np.float32), heads, beam, tree)
