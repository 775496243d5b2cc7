"""Which spans a question refills, and where they go in the pot: pure functions of numbers.

Kept free of the session and the engines so every port (the JVM core of android_demo/, the Swift
port of ios_demo/) can reproduce them exactly from the shared test vectors in tests/vectors/.
Scores are float64; sums are sequential, in the order stated, so a port gets the same bits.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np


def exact_exp(x: np.ndarray) -> np.ndarray:
    """exp, correctly rounded: the one definition every port can meet bit for bit.

    numpy's exp differs by an ulp between machines (its SIMD paths), so the vectors would depend on
    the CPU that wrote them. At 40 digits a second rounding error needs a value within 1e-24 of a
    halfway point between doubles: it was not met in the 500 cases the ports check (60 digits)."""
    out = np.empty(len(x))
    with localcontext() as ctx:
        ctx.prec = 40
        for i, v in enumerate(np.asarray(x, dtype=np.float64).tolist()):
            out[i] = 0.0 if v == float("-inf") else float(Decimal(v).exp())
    return out


def _normalised(x: np.ndarray | None) -> np.ndarray | None:
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    total = float(np.cumsum(x)[-1]) if len(x) else 0.0
    return x / total if total > 0 else x


def _softmax(z: np.ndarray) -> np.ndarray:
    if not len(z):
        return np.zeros(0)
    b = exact_exp(z - z.max())
    return b / float(np.cumsum(b)[-1])


def standardised(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std, population std, sums sequential; all zeros when x is constant."""
    x = np.asarray(x, dtype=np.float64)
    if not len(x):
        return x
    d = x - float(np.cumsum(x)[-1]) / len(x)
    std = float(np.sqrt(float(np.cumsum(d * d)[-1]) / len(x)))
    return d / std if std > 0 else np.zeros_like(d)


def combine_scores(
    attention: np.ndarray | None, index_z: np.ndarray | None, lexical: np.ndarray | None = None
) -> np.ndarray:
    """One score per span from (a) the question's attention mass on each span's L1 entries,
    normalised to sum 1, (b) the span index's standardised scores (-inf where the tree search
    did not reach), as a softmax, and (c) lexical BM25 scores, standardised, as a softmax; their mean.

    BM25 is a softmax of its standard scores, like the index, not a share of its sum: every span
    shares some words with a question ("what", "the"), so a share spreads over hundreds of spans and
    a 7-sigma match is outvoted (measured: the needle at 32k, docs/design-notes.md)."""
    parts = []
    if attention is not None:
        parts.append(_normalised(attention))
    if index_z is not None:
        parts.append(_softmax(np.asarray(index_z, dtype=np.float64)))
    if lexical is not None:
        parts.append(_softmax(standardised(lexical)))
    if not parts:
        raise ValueError("no span scores: need attention, index or lexical scores")
    total = parts[0]
    for part in parts[1:]:  # sequential, in the order (a), (b), (c)
        total = total + part
    return total if len(parts) == 1 else total / len(parts)


def core_spans(scores: np.ndarray, budget: int, mass: float, min_spans: int) -> list[int]:
    """The spans a question is about, best first: the fewest of the positive-scored spans (ranked,
    ties: lower index first) whose running sum reaches `mass` of their total, at least `min_spans`,
    at most `budget`."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > 0]
    if not len(order) or budget < 1:
        return []
    cumulative = np.cumsum(scores[order])  # sequential: reproducible in any language
    count = int(np.searchsorted(cumulative / cumulative[-1], mass, side="left")) + 1
    return order[: min(max(count, min_spans), budget, len(order))].tolist()


def choose_spans(
    scores: np.ndarray,
    budget: int,
    mass: float,
    min_spans: int,
    neighbors: int,
    carried: list[int] | tuple[int, ...] = (),
) -> list[int]:
    """The spans to refill, in document order (see `choose_and_say_why`)."""
    return choose_and_say_why(scores, budget, mass, min_spans, neighbors, carried)[0]


def choose_and_say_why(
    scores: np.ndarray,
    budget: int,
    mass: float,
    min_spans: int,
    neighbors: int,
    carried: list[int] | tuple[int, ...] = (),
) -> tuple[list[int], list[int]]:
    """(the spans to refill in document order, the spans the question is about). The core spans
    (dynamic cut-off by score density) each bring their neighbours (1 before, 1 after, 2 before,
    ...) while the budget lasts. Up to half the budget goes first to the `carried` spans, those the
    turn before in a dialogue was about, so that a follow-up naming nothing still sees its passage;
    what they leave goes to more neighbours. The question is about the cores and carried refilled."""
    carried = [c for c in dict.fromkeys(carried) if 0 <= c < len(scores)]
    reserve = min(len(carried), budget // 2)
    cores = core_spans(scores, budget - reserve, mass, min_spans)
    carried = [c for c in carried if c not in cores][:reserve]
    chosen: list[int] = []

    def add_neighbourhoods(limit: int) -> None:
        for span in cores:
            for near in [span] + [span + d for r in range(1, neighbors + 1) for d in (-r, r)]:
                if len(chosen) < limit and 0 <= near < len(scores) and near not in chosen:
                    chosen.append(near)

    add_neighbourhoods(budget - len(carried))
    chosen += [c for c in carried if c not in chosen]
    add_neighbourhoods(budget)
    return sorted(chosen), [c for c in cores + carried if c in chosen]


def refill_placement(
    spans: list[int],
    starts: list[int],
    lengths: list[int],
    resident: set[int],
    free_slots: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(slots, document tokens) for refilling `spans` in document order into `free_slots`, in slot
    order, skipping tokens already resident in the pot (sinks, recent window)."""
    tokens = [
        t
        for span in sorted(spans)
        for t in range(starts[span], starts[span] + lengths[span])
        if t not in resident
    ]
    if len(tokens) > len(free_slots):
        raise ValueError(f"{len(tokens)} refill tokens for {len(free_slots)} free slots")
    return np.asarray(free_slots[: len(tokens)], dtype=np.int64), np.asarray(tokens, dtype=np.int64)
