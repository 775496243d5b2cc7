"""Lexical span scores: BM25 of the question's token ids against each span's token ids.

A third signal beside the question's attention on L1 (a) and the span index (b). Measured on
SmolLM2-135M with a needle sentence hidden in the essays of shared/data: the 4 retrieval heads
rank the needle's span 6th of 32 and the attention on L1 25th, while BM25 over token ids ranks it
first (docs/design-notes.md). Token ids need no model and no extra flash reads: they are the
document's ids, which the session keeps.

Memory: one (token, span, count) triple per distinct token of each span, int32: at most
12 bytes per document token, and much less for real text.
"""

from __future__ import annotations

import numpy as np

K1, B = 1.2, 0.75  # the usual BM25 constants


class LexicalIndex:
    def __init__(self, document_ids: list[int] | np.ndarray, span_tokens: int) -> None:
        ids = np.asarray(document_ids, dtype=np.int64)
        self.spans = -(-len(ids) // span_tokens)
        span_of = np.arange(len(ids)) // span_tokens
        pairs = np.unique(ids * self.spans + span_of, return_counts=True)  # sorted by token, then span
        self.token = (pairs[0] // self.spans).astype(np.int32)
        self.span = (pairs[0] % self.spans).astype(np.int32)
        self.count = pairs[1].astype(np.int32)
        lengths = np.full(self.spans, span_tokens, dtype=np.float64)
        lengths[-1] = len(ids) - span_tokens * (self.spans - 1)
        self.norm = K1 * (1 - B + B * lengths / lengths.mean())

    @property
    def nbytes(self) -> int:
        return self.token.nbytes + self.span.nbytes + self.count.nbytes + self.norm.nbytes

    def scores(self, query_ids: list[int]) -> np.ndarray:
        """BM25 score of every span [N] for the distinct query tokens (tokens the document lacks add 0)."""
        out = np.zeros(self.spans)
        for t in sorted(set(int(t) for t in query_ids)):
            lo, hi = np.searchsorted(self.token, [t, t + 1])
            if lo == hi:
                continue
            df = hi - lo
            idf = np.log((self.spans - df + 0.5) / (df + 0.5) + 1.0)
            spans, tf = self.span[lo:hi], self.count[lo:hi]
            out[spans] += idf * tf * (K1 + 1) / (tf + self.norm[spans])
        return out
