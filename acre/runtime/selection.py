"""Which spans a question refills, and where they go in the pot: functions of numbers only.

Run by the native core (native/src/selection.cpp, native/include/acre.h's span selection); this module
converts only. Scores are float64, every sum runs sequentially in the order stated, and the softmax's
exp is correctly rounded, so the results are the same bits on every machine (tests/vectors/).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from acre import _native


def _values(x: np.ndarray | Iterable[float] | None) -> np.ndarray | None:
    return None if x is None else np.ascontiguousarray(x, dtype=np.float64)


def _ints(x: Iterable[int] | np.ndarray, dtype: type = np.int64) -> np.ndarray:
    return np.ascontiguousarray(x if isinstance(x, np.ndarray) else list(x), dtype=dtype)


def standardised(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std, population std, sums sequential; all zeros when x is constant."""
    return _native.standardised(_values(x))


def combine_scores(
    attention: np.ndarray | None, index_z: np.ndarray | None, lexical: np.ndarray | None = None
) -> np.ndarray:
    """One score per span from (a) the question's attention mass on each span's L1 entries,
    normalised to sum 1, (b) the span index's standardised scores (-inf where the tree search
    did not reach), as a softmax, and (c) lexical BM25 scores, standardised, as a softmax; their mean.

    BM25 is a softmax of its standard scores, like the index, not a share of its sum: every span
    shares some words with a question ("what", "the"), so a share spreads over hundreds of spans and
    a 7-sigma match is outvoted (measured: the needle at 32k, docs/design-notes.md)."""
    return _native.combine_scores(_values(attention), _values(index_z), _values(lexical))


def core_spans(scores: np.ndarray, budget: int, mass: float, min_spans: int) -> list[int]:
    """The spans a question is about, best first: the fewest of the positive-scored spans (ranked,
    ties: lower index first) whose running sum reaches `mass` of their total, at least `min_spans`,
    at most `budget`."""
    return _native.core_spans(_values(scores), budget, mass, min_spans)


def choose_spans(
    scores: np.ndarray,
    budget: int,
    mass: float,
    min_spans: int,
    neighbors: int,
    carried: Iterable[int] = (),
) -> list[int]:
    """The spans to refill, in document order (see `choose_and_say_why`)."""
    return choose_and_say_why(scores, budget, mass, min_spans, neighbors, carried)[0]


def choose_and_say_why(
    scores: np.ndarray,
    budget: int,
    mass: float,
    min_spans: int,
    neighbors: int,
    carried: Iterable[int] = (),
) -> tuple[list[int], list[int]]:
    """(the spans to refill in document order, the spans the question is about). The core spans
    (dynamic cut-off by score density) each bring their neighbours (1 before, 1 after, 2 before,
    ...) while the budget lasts. Up to half the budget goes first to the `carried` spans, those the
    turn before in a dialogue was about, so that a follow-up naming nothing still sees its passage;
    what they leave goes to more neighbours. The question is about the cores and carried refilled."""
    return _native.choose_spans(_values(scores), budget, mass, min_spans, neighbors, _ints(carried))


def refill_placement(
    spans: Iterable[int],
    starts: Iterable[int],
    lengths: Iterable[int],
    resident: Iterable[int] | np.ndarray,
    free_slots: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(slots, document tokens) for refilling `spans` in document order into `free_slots`, in slot
    order, skipping tokens already resident in the pot (sinks, recent window)."""
    return _native.refill_placement(
        _ints(spans),
        _ints(starts),
        _ints(lengths, np.int32),
        _ints(resident),
        _ints(free_slots),
    )
