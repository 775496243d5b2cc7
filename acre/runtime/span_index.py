"""The span index: representative keys per span, grouped into a tree searched top-down by probe queries.

Each span of S tokens is summarised by R representative keys per probe layer and KV head (the mean
un-rotated key of each of R contiguous groups of its tokens; Ltri-LLM's observation that attention is
locally correlated makes contiguous groups a fair summary). Coarser tree nodes average their children,
in the spirit of SharedLLM's multi-grained tree. A query scores a set of nodes like attention does:
for every probe layer, head and probe query, a softmax over the nodes of max_r(q . rep_r); the mass
a node gets, summed, is its score.
"""

from __future__ import annotations

import math

import numpy as np


def representatives(k: np.ndarray, reps: int) -> np.ndarray:
    """[Lp, Hkv, n, D] keys of one span -> [Lp, Hkv, R, D] group means."""
    n = k.shape[2]
    bounds = np.linspace(0, n, reps + 1).round().astype(int)
    out = np.empty((*k.shape[:2], reps, k.shape[3]), dtype=np.float32)
    for r in range(reps):
        lo, hi = bounds[r], max(bounds[r + 1], bounds[r] + 1)
        out[:, :, r] = k[:, :, min(lo, n - 1) : min(hi, n)].mean(axis=2)
    return out


def node_mass(queries: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """queries [Lp, H, T, D], reps [N, Lp, Hkv, R, D] -> attention-like mass per node [N] (sums to 1)."""
    lp, heads, _, d = queries.shape
    kv_heads = reps.shape[2]
    q = queries.reshape(lp, kv_heads, heads // kv_heads, -1, d).astype(np.float32)  # GQA grouping
    # logits[n, l, kvh, g, t] = max_r q . rep
    logits = np.einsum("lhgtd,nlhrd->nlhgtr", q, reps.astype(np.float32)).max(axis=-1) / math.sqrt(d)
    logits -= logits.max(axis=0, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=0, keepdims=True)
    mass = probs.reshape(len(reps), -1).sum(axis=1)
    return mass / mass.sum()


class SpanIndex:
    def __init__(self, reps: np.ndarray, fanout: int = 8) -> None:
        self.fanout = fanout
        self.levels = [reps.astype(np.float32)]  # levels[0] = spans, levels[-1] = the coarsest
        while len(self.levels[-1]) > fanout:
            child = self.levels[-1]
            groups = [child[i : i + fanout].mean(axis=0) for i in range(0, len(child), fanout)]
            self.levels.append(np.stack(groups))

    @property
    def nbytes(self) -> int:
        return sum(level.nbytes for level in self.levels)

    def scores(self, queries: np.ndarray, beam: int = 4, tree: bool = True) -> np.ndarray:
        """Score of every span [N] (0 for spans the tree search did not reach), summing to 1."""
        spans = len(self.levels[0])
        out = np.zeros(spans, dtype=np.float64)
        if spans == 0:
            return out
        if not tree:
            out[:] = node_mass(queries, self.levels[0])
            return out
        candidates = np.arange(len(self.levels[-1]))
        for depth in range(len(self.levels) - 1, 0, -1):
            mass = node_mass(queries, self.levels[depth][candidates])
            keep = candidates[np.argsort(-mass, kind="stable")[:beam]]
            children = [
                np.arange(n * self.fanout, min((n + 1) * self.fanout, len(self.levels[depth - 1])))
                for n in keep
            ]
            candidates = np.sort(np.concatenate(children))
        out[candidates] = node_mass(queries, self.levels[0][candidates])
        return out
