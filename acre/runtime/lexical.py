"""Lexical span scores: BM25 of the question's token ids against each span's token ids.

Run by the native core (native/src/lexical.cpp, acre_lexical_* in native/include/acre.h); this module
converts only. A third signal beside the question's attention on L1 (a) and the span index (b).
Measured on SmolLM2-135M with a needle sentence hidden in the essays of shared/data: the 4 retrieval
heads rank the needle's span 6th of 32 and the attention on L1 25th, while BM25 over token ids ranks
it first (docs/design-notes.md). Token ids need no model and no extra flash reads: they are the
document's ids, which the session keeps.

Memory: one (token, span, count) posting per distinct token of each span, int32: at most 12 bytes
per document token, and much less for real text.
"""

from __future__ import annotations

import numpy as np

from acre import _native

K1: float = _native.BM25_K1
B: float = _native.BM25_B


class LexicalIndex:
    def __init__(self, document_ids: list[int] | np.ndarray, span_tokens: int) -> None:
        self._core = _native.LexicalIndex(np.asarray(document_ids, dtype=np.int32), span_tokens)
        self.spans: int = self._core.span_count

    @property
    def nbytes(self) -> int:
        return self._core.nbytes

    def scores(self, query_ids: list[int] | np.ndarray) -> np.ndarray:
        """BM25 score of every span [N] for the distinct query tokens (tokens the document lacks add 0)."""
        return self._core.scores(np.asarray(query_ids, dtype=np.int32))
