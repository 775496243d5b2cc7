"""The span index: representative keys per span, grouped into a tree searched top-down by probe queries.

Each span is summarised, for every probe layer and KV head, by its R keys of largest norm. (Measured on
SmolLM2-135M: the best query-key match inside a span predicts the needle's span as well as keeping
every key does, while group-mean keys lose it.) Coarser tree nodes keep the R largest-norm keys of
their children, in the spirit of SharedLLM's multi-grained tree.

Only the model's retrieval heads score (acre.exporter.calibrate): for each head, a node's score is
the best dot product of any probe query with any of its keys, standardised over the candidate nodes;
the heads' standardised scores are summed.
"""

from __future__ import annotations

import numpy as np

NEG = -np.inf


def representatives(k: np.ndarray, reps: int) -> np.ndarray:
    """[Lp, Hkv, n, D] keys of one span -> [Lp, Hkv, R, D], the R keys of largest norm per head
    (repeated when the span is shorter than R)."""
    norms = np.linalg.norm(k, axis=-1)  # [Lp, Hkv, n]
    order = np.argsort(-norms, axis=-1, kind="stable")
    picks = order[..., np.arange(reps) % k.shape[2]]
    return np.take_along_axis(k, picks[..., None], axis=2)


def head_scores(queries: np.ndarray, reps: np.ndarray, heads: list[tuple[int, int]]) -> np.ndarray:
    """queries [Lp, H, T, D], reps [N, Lp, Hkv, R, D], heads (probe-layer index, query head)
    -> summed standardised best-match score per node [N]."""
    groups = queries.shape[1] // reps.shape[2]
    total = np.zeros(len(reps))
    for lp, h in heads:
        keys = reps[:, lp, h // groups].astype(np.float32)  # [N, R, D]
        best = np.einsum("td,nrd->ntr", queries[lp, h].astype(np.float32), keys).max(axis=(1, 2))
        total += (best - best.mean()) / (best.std() + 1e-6)
    return total


class SpanIndex:
    def __init__(self, reps: np.ndarray, fanout: int = 8) -> None:
        self.fanout = fanout
        self.levels = [reps]  # levels[0] = spans [N, Lp, Hkv, R, D], levels[-1] = the coarsest
        while len(self.levels[-1]) > fanout:
            child = self.levels[-1]
            parents = []
            for i in range(0, len(child), fanout):
                group = child[i : i + fanout]  # [g, Lp, Hkv, R, D] -> pool the g*R keys per head
                pooled = group.transpose(1, 2, 0, 3, 4).reshape(*group.shape[1:3], -1, group.shape[-1])
                parents.append(representatives(pooled.astype(np.float32), reps.shape[3]).astype(reps.dtype))
            self.levels.append(np.stack(parents))

    @property
    def nbytes(self) -> int:
        return sum(level.nbytes for level in self.levels)

    def scores(
        self, queries: np.ndarray, heads: list[tuple[int, int]], beam: int = 8, tree: bool = True
    ) -> np.ndarray:
        """Score of every span [N]; -inf for spans the tree search did not reach."""
        spans = len(self.levels[0])
        out = np.full(spans, NEG)
        if spans == 0:
            return out
        candidates = np.arange(spans)
        if tree and len(self.levels) > 1:
            candidates = np.arange(len(self.levels[-1]))
            for depth in range(len(self.levels) - 1, 0, -1):
                score = head_scores(queries, self.levels[depth][candidates], heads)
                keep = candidates[np.argsort(-score, kind="stable")[:beam]]
                below = len(self.levels[depth - 1])
                children = [np.arange(n * self.fanout, min((n + 1) * self.fanout, below)) for n in keep]
                candidates = np.sort(np.concatenate(children))
        out[candidates] = head_scores(queries, self.levels[0][candidates], heads)
        return out
