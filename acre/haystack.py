"""Long test documents with one fact hidden at a chosen depth (pass key, Mohtashami & Jaggi 2023).

Used by `acre profile`, the demo and the benchmarks, so all three measure the same kind of document.
"""

from __future__ import annotations

from typing import Any

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "


def fill_to(tokenizer: Any, source: str, tokens: int) -> str:
    """`source` repeated and cut to about `tokens` tokens of the model's tokenizer."""
    per_copy = max(1, len(tokenizer.encode(source, add_special_tokens=False)))
    text = source * (tokens // per_copy + 1)
    return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)[:tokens])


def insert_at(text: str, sentence: str, depth: float) -> str:
    """`sentence` placed at the sentence boundary nearest before `depth` (0 = start, 1 = end)."""
    cut = text.rfind(". ", 0, int(len(text) * depth))
    cut = 0 if cut < 0 else cut + 2
    return text[:cut] + sentence + text[cut:]


def passkey_document(tokenizer: Any, tokens: int, depth: float, key: str) -> str:
    sentence = f"The pass key is {key}. Remember it. {key} is the pass key. "
    return insert_at(fill_to(tokenizer, FILLER, tokens), sentence, depth)
