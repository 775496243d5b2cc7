"""Sources: the passages of the original document text that an answer was made from.

acre refills whole L2 spans (token ranges) for a question. A SourceMap, made at ingest from the
tokenizer's offset mapping, turns those token ranges back into character ranges of the text the
user gave, so `session.last.sources` can quote them exactly: `text[start:end] == source.text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from acre.runtime.tokenizer import BundleTokenizer

NO_TEXT = -1  # offsets of a token that is not in the text (the chat template's, BOS)


@dataclass(frozen=True)
class Source:
    start: int  # character offsets into the document text, end exclusive
    end: int
    text: str  # the document text from start to end


@dataclass
class SourceMap:
    text: str
    offsets: np.ndarray  # [document tokens, 2] int32: each token's character range, NO_TEXT if none

    @classmethod
    def build(cls, tokenizer: BundleTokenizer, text: str, lead: int) -> tuple[list[int], SourceMap]:
        """Tokenize `text` and map every document token to its characters; `lead` tokens of
        template come before the text's."""
        ids, spans = tokenizer.encode_offsets(text)
        offsets = np.full((lead + len(ids), 2), NO_TEXT, dtype=np.int32)
        offsets[lead:] = spans
        return ids, cls(text, offsets)

    def arrays(self) -> dict[str, np.ndarray]:
        """What the L2 store keeps (pot.npz) so that a reopened document still gives sources."""
        return {
            "document_text": np.frombuffer(self.text.encode("utf-8"), dtype=np.uint8),
            "document_offsets": self.offsets,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SourceMap | None:
        if "document_text" not in arrays or "document_offsets" not in arrays:
            return None  # a store written before sources existed, or from token ids alone
        return cls(arrays["document_text"].tobytes().decode("utf-8"), arrays["document_offsets"])

    def passages(self, token_ranges: list[tuple[int, int]]) -> list[Source]:
        """The character passages of token ranges [start, end), in document order; ranges that
        touch or overlap become one passage; tokens without text (template) and the whitespace at
        a passage's ends are left out."""
        merged: list[list[int]] = []
        for start, end in sorted(token_ranges):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        sources: list[Source] = []
        for start, end in merged:
            rows = self.offsets[start:end]
            rows = rows[rows[:, 0] != NO_TEXT]
            if not len(rows):
                continue
            first, last = int(rows[:, 0].min()), int(rows[:, 1].max())
            if sources and first <= sources[-1].end:  # a character shared by two tokens' ranges
                first = sources.pop().start
            passage = self.text[first:last]
            first += len(passage) - len(passage.lstrip())  # a token's leading space is not quoted
            last -= len(passage) - len(passage.rstrip())
            if first < last:
                sources.append(Source(first, last, self.text[first:last]))
        return sources
