"""Long test documents with one fact hidden at a chosen depth (pass key, Mohtashami & Jaggi 2023).

Used by `acre profile`, the demo and the benchmarks, so all three measure the same kind of document.
"""

from __future__ import annotations

import re
from typing import Any

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "


def fill_to(tokenizer: Any, source: str, tokens: int) -> str:
    """`source` repeated and cut to about `tokens` tokens of the model's tokenizer."""
    per_copy = max(1, len(tokenizer.encode(source, add_special_tokens=False)))
    text = source * (tokens // per_copy + 1)
    return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)[:tokens])


# A sentence end: ".", "!" or "?", any closing quotes or bracket, then a space or a paragraph break.
# Real prose ends most paragraphs with ".\n" and many sentences inside quotes, so ". " alone left
# needles far off their depth on the shipped haystacks.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*(?: |\n+)")
# Words whose full stop ends no sentence: a needle must not land between "Mr." and "Elliot".
_ABBREVIATIONS = ("mr", "mrs", "ms", "dr", "st", "esq", "e.g", "i.e", "etc", "vs", "cf")


def _ends_sentence(text: str, dot: int) -> bool:
    word = re.search(r"[\w.]*$", text[max(0, dot - 8) : dot])
    return not (word and word.group(0).lower() in _ABBREVIATIONS)


def insert_at(text: str, sentence: str, depth: float) -> str:
    """`sentence` placed at the sentence end or paragraph end nearest before `depth` (0 = start,
    1 = end): after a sentence's space, or at the start of the next paragraph."""
    limit = int(len(text) * depth)
    ends: list[re.Match[str]] = []
    for begin in dict.fromkeys((max(0, limit - 20_000), 0)):  # a stretch back first, then everything
        ends = [m for m in _SENTENCE_END.finditer(text, begin, limit) if _ends_sentence(text, m.start())]
        if ends:
            break
    cut = ends[-1].end() if ends else 0
    return text[:cut] + sentence + text[cut:]


def passkey_document(tokenizer: Any, tokens: int, depth: float, key: str) -> str:
    sentence = f"The pass key is {key}. Remember it. {key} is the pass key. "
    return insert_at(fill_to(tokenizer, FILLER, tokens), sentence, depth)
