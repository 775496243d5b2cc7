"""Policies: what the pot keeps while a document streams in, and what it refills for a question.

    full       every token in the pot (the reference; the document must fit)
    streaming  attention sinks + the most recent tokens
    infinipot  sinks + L1 distilled by CCD (catalyst attention and novelty) + recent; no refill
    acre       infinipot's L1, plus query-guided refill of whole spans from L2 (the default)

The ablation switches turn off one part of acre's span scoring at a time: (a) attention on the
spans' L1 entries (`use_attention`), (b) the span index (`use_index`), the ActQKV probe queries
(`use_probes`; off, the question's last token probes alone), the tree (`use_tree`; off, every span is
scored flat), and (c) lexical BM25 over token ids (`use_lexical`); `refill_mode` ("reencode": the
spans' ids re-encoded in the context they are shown in; "reuse": their stored K/V copied),
`neighbors`, `min_spans` and `answer_recent` change how chosen spans come back.

Run by the native core (native/src/policies.cpp, acre_policy_* in native/include/acre.h); this module
converts only: a Policy's fields are the core's, resolved and checked there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from acre import _native

# A fixed prompt whose attention over the pot rates what is worth keeping (InfiniPot's catalyst).
CATALYST: str = _native.CATALYST
POLICIES: tuple[str, ...] = tuple(_native.POLICIES)


class Policy:
    """A policy as the core resolved it: name, bounded, l1, refill, the switches (read-only)."""

    def __init__(self, core: _native.Policy) -> None:
        object.__setattr__(self, "core", core)
        for name, value in json.loads(core.json).items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a policy is read-only; make another with make_policy")

    def __repr__(self) -> str:
        return f"Policy({self.core.json})"


def make_policy(name: str, **switches: bool | str | int) -> Policy:
    return Policy(_native.Policy(name, json.dumps(switches)))


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
        return cls(**policy.core.layout(capacity, chunk, span))
