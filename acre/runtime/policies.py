"""Policies: what the pot keeps while a document streams in, and what it refills for a question.

    full       every token in the pot (the reference; the document must fit)
    streaming  attention sinks + the most recent tokens
    infinipot  sinks + L1 distilled by CCD (catalyst attention and novelty) + recent; no refill
    acre       infinipot's L1, plus query-guided refill of whole spans from L2 (the default)

The ablation switches turn off one part of acre's span scoring at a time: (a) attention on the
spans' L1 entries, (b) the span index, the ActQKV probe queries (then the question's last token
probes alone), the tree (then every span is scored flat), and (c) lexical BM25 over token ids;
`refill_mode` and `neighbors` change how chosen spans come back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from acre.errors import InputError

# A fixed prompt whose attention over the pot rates what is worth keeping (InfiniPot's catalyst).
CATALYST = "\nList the names, numbers, facts and key sentences of the text above."


@dataclass(frozen=True)
class Policy:
    name: str
    bounded: bool = True  # False: the pot must hold the whole document
    l1: bool = False  # keep a CCD-distilled L1
    refill: bool = False  # refill spans from L2 per question
    use_attention: bool = True  # (a) ACRE: question attention on the spans' L1 entries
    use_index: bool = True  # (b) probe queries against the span index
    use_probes: bool = True  # ActQKV probe-query selection by activation bias
    use_tree: bool = True  # top-down tree search (else score every span)
    use_lexical: bool = True  # (c) BM25 of the question's token ids against each span's
    novelty_weight: float = 0.2  # CCD: importance = (1 - w) * catalyst attention + w * novelty
    mass: float = 0.9  # dynamic cut: refill the fewest spans holding this share of the span scores
    min_spans: int = 2
    neighbors: int = 1  # also refill this many spans on each side of a chosen span
    # "reencode": read the spans' token ids from L2 and recompute their K/V in the context they are
    # shown in; "reuse": copy their stored K/V (ACRE's activation refilling proper). Measured on
    # SmolLM2-135M, 2k-token pass key: reuse 20%, reencode 100% (docs/design-notes.md).
    refill_mode: str = "reencode"
    # the document's last tokens (the recent window) stay in view while the answer is made; off, the
    # answer sees the sinks and the refilled spans alone, as a RAG prompt does, and a span in the
    # recent window is refilled like any other
    answer_recent: bool = True


POLICIES = {
    "full": Policy("full", bounded=False),
    "streaming": Policy("streaming"),
    "infinipot": Policy("infinipot", l1=True),
    "acre": Policy("acre", l1=True, refill=True),
}
SWITCHES = (
    "use_attention",
    "use_index",
    "use_probes",
    "use_tree",
    "use_lexical",
    "refill_mode",
    "neighbors",
    "min_spans",
    "answer_recent",
)


def make_policy(name: str, **switches: bool | str | int) -> Policy:
    if name not in POLICIES:
        raise InputError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    unknown = set(switches) - set(SWITCHES)
    if unknown:
        raise InputError(f"unknown policy switch {sorted(unknown)[0]!r}; switches: {', '.join(SWITCHES)}")
    policy = replace(POLICIES[name], **switches)
    if policy.refill_mode not in ("reencode", "reuse"):
        raise InputError(f"refill_mode must be reencode or reuse, not {policy.refill_mode!r}")
    if policy.refill and not (policy.use_attention or policy.use_index or policy.use_lexical):
        raise InputError(
            "acre needs at least one of use_attention, use_index and use_lexical to choose spans"
        )
    return policy


@dataclass(frozen=True)
class Layout:
    """How many pot slots each region gets. The regions partition the pot."""

    sink: int
    l1: int
    recent: int
    refill: int
    question: int

    @property
    def total(self) -> int:
        return self.sink + self.l1 + self.recent + self.refill + self.question

    @classmethod
    def plan(cls, policy: Policy, capacity: int, chunk: int, span: int) -> Layout:
        if not policy.bounded:
            return cls(sink=0, l1=0, recent=capacity, refill=0, question=0)  # regions shared, see Session
        question = max(96, capacity * 3 // 16)
        sink = min(32, capacity // 16)
        recent = chunk
        rest = capacity - question - sink - recent
        if rest < (span if policy.refill else 0) + (16 if policy.l1 else 0) or rest < 0:
            raise InputError(
                f"a pot of {capacity} slots is too small for the '{policy.name}' policy with chunk {chunk}: "
                f"it needs room for the question ({question}), sinks ({sink}), the recent window ({recent})"
                + (f" and at least one span ({span})" if policy.refill else "")
            )
        refill = (rest * 4 // 7) // span * span if policy.refill else 0
        refill = max(refill, span) if policy.refill else 0
        l1 = rest - refill if policy.l1 else 0
        recent += 0 if policy.l1 else rest  # streaming spends the rest on a longer recent window
        return cls(sink=sink, l1=l1, recent=recent, refill=refill, question=question)
