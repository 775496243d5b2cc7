"""Benchmark tasks: long documents with one fact hidden at a chosen depth, scored automatically.

passkey  the classic pass-key haystack (Mohtashami & Jaggi, 2023): repeated filler sentences
         with "The pass key is NNNNN." at the depth; the answer must contain the number.
needle   a sentence hidden in Paul Graham's essays (../shared/data); the answer must name its fact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acre.haystack import fill_to, insert_at, passkey_document

ESSAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "PaulGrahamEssays"
NEEDLE = (
    "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day. ",
    "What is the best thing to do in San Francisco?",
    "dolores park",
)


@dataclass
class Case:
    task: str
    length: int  # target length in tokens
    depth: float
    document: str
    question: str
    answer: str  # lower-case substring a correct answer contains

    def correct(self, reply: str) -> bool:
        return self.answer in reply.lower()


def passkey(tokenizer: Any, length: int, depth: float, seed: int) -> Case:
    key = str(random.Random(seed).randint(10000, 99999))
    doc = passkey_document(tokenizer, length, depth, key)
    return Case("passkey", length, depth, doc, "What is the pass key?", key)


def needle(tokenizer: Any, length: int, depth: float, seed: int) -> Case:
    if not ESSAYS.is_dir():
        raise FileNotFoundError(f"{ESSAYS}: the essays of shared/data are needed for the needle task")
    essays = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(ESSAYS.glob("*.txt")))
    sentence, question, answer = NEEDLE
    doc = insert_at(fill_to(tokenizer, essays, length), sentence, depth)
    return Case("needle", length, depth, doc, question, answer)


TASKS = {"passkey": passkey, "needle": needle}
