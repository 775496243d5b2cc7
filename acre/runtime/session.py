"""A session: one document ingested, then questions answered from it in bounded RAM.

    session = Session("bundle/")                 # policy "acre" by default
    session.ingest(text, store="docs/report")    # L2 on flash, L1 + sinks + recent in the pot
    for piece in session.ask("What is the pass key?"):
        print(piece, end="")
    session.last.sources                         # the passages refilled for it: start, end, text
    # later, in another process: Session("bundle/").open_document("docs/report")

The prompt is the tokenizer's chat template with the document and the question in one user turn:
the document part (template prefix + document) is ingested once; each question (+ template suffix)
is prefilled after it and the answer decoded. Every ask() starts again from the ingested
document: it does not see earlier questions or answers. chat() does: its earlier turns stay in the
question region while they fit (acre/runtime/dialogue.py).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acre.bundle import TOKENIZER_DIR, Bundle
from acre.errors import InputError
from acre.runtime.dialogue import Dialogue
from acre.runtime.engines import Engine, StepInputs, StepOutputs, open_engine
from acre.runtime.l2 import SpanBuffer, SpanStore, StoreError, StoreMeta
from acre.runtime.lexical import LexicalIndex
from acre.runtime.malloc import fix_mmap_threshold
from acre.runtime.policies import CATALYST, Layout, make_policy
from acre.runtime.pot import ARRAYS as POT_ARRAYS
from acre.runtime.pot import Pot, SlotKind
from acre.runtime.sampling import sample
from acre.runtime.selection import choose_and_say_why, combine_scores, refill_placement
from acre.runtime.sources import Source, SourceMap
from acre.runtime.span_index import SpanIndex, select_probe_queries
from acre.runtime.tokenizer import BundleTokenizer

_MARKER = "\u0000ACRE-DOCUMENT\u0000"
QUESTION_SEPARATOR = "\n\n"
DOCUMENT_KINDS = (SlotKind.SINK, SlotKind.L1, SlotKind.RECENT, SlotKind.REFILL)
STORED_KINDS = (SlotKind.SINK, SlotKind.L1, SlotKind.RECENT)

Progress = Callable[[int, int], None]  # (tokens done, tokens total)


def split_chat_template(tokenizer: BundleTokenizer) -> tuple[str, str]:
    """The text before and after the user's message in the chat template's first user turn."""
    if not getattr(tokenizer, "chat_template", None):
        return "", "\n"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": _MARKER}], tokenize=False, add_generation_prompt=True
    )
    prefix, _, suffix = rendered.partition(_MARKER)
    return prefix, suffix


def document_digest(ids: list[int]) -> str:
    return hashlib.sha256(np.asarray(ids, dtype=np.int32).tobytes()).hexdigest()


def bundle_fingerprint(bundle: Bundle) -> str:
    """Identifies the model and programs that produced an L2 store's activations."""
    m = bundle.manifest
    programs = {
        name: info["sha256"]
        for name, info in sorted(m["files"].items())
        if not name.startswith(TOKENIZER_DIR + "/")
    }
    blob = json.dumps(
        {"geometry": m["model"]["geometry"], "step": m["step"], "programs": programs}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class QuestionStats:
    """What the last question cost and chose (for the profiler, the benchmarks and the tests)."""

    spans: list[int] = field(default_factory=list)
    # the spans the question is about: its core spans (no neighbours) and those carried from the turn before
    cores: list[int] = field(default_factory=list)
    span_scores: np.ndarray | None = None
    bytes_read: int = 0
    read_s: float = 0.0  # wall time spent reading (and checking) the chosen spans from L2
    # the refilled spans as passages of the document text, in document order (empty when nothing
    # was refilled, or the document came as token ids or from a store that keeps no text)
    sources: list[Source] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what the user is told (chat: dropped turns)


class Session:
    def __init__(
        self,
        bundle: str | Path | Bundle,
        engine: str | Engine = "auto",
        policy: str = "acre",
        span_tokens: int = 64,
        reps: int = 8,
        codec: str | None = None,
        checkpoint_tokens: int = 4096,
        **switches: bool,
    ) -> None:
        fix_mmap_threshold()  # before any step: keeps RSS flat over long ingests (acre/runtime/malloc.py)
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        self.policy = make_policy(policy, **switches)
        self.engine = open_engine(self.bundle, engine) if isinstance(engine, str) else engine
        self.geometry = self.bundle.geometry
        self.chunk = self.bundle.chunk
        # L2 keeps K/V only when the refill reads them back; re-encoding needs the ids alone
        codec = codec or ("float16" if self.policy.refill_mode == "reuse" else "none")
        self.span_tokens, self.reps, self.codec = span_tokens, reps, codec
        self.checkpoint_tokens = checkpoint_tokens  # how often an ingest saves where it is, to resume
        self.resumed_from: int | None = None  # the token the last ingest resumed at, if it did
        self.tokenizer = BundleTokenizer(self.bundle.tokenizer_dir)
        self.prefix, self.suffix = split_chat_template(self.tokenizer)
        self.stop_ids = set(self.bundle.eos_token_ids)
        # tokens of the chat template: they match the document's template, not its text
        self.template_ids = set(self.tokenizer.encode(self.prefix + self.suffix, add_special_tokens=False))
        self.template_ids |= set(self.tokenizer.all_special_ids)
        self.pot = Pot(self.geometry, self.bundle.pot, self.bundle.rope_inv_freq, self.bundle.kv_dtype)
        self.layout = Layout.plan(self.policy, self.pot.capacity, self.chunk, span_tokens)
        self.regions = self._regions()
        catalyst = self.tokenizer.encode(CATALYST, add_special_tokens=False) if self.policy.l1 else []
        self.catalyst_ids = catalyst[-(self.chunk // 4) :] if catalyst else []
        step = self.bundle.manifest["step"]
        self.probe_layers = list(step["probe_layers"])
        # retrieval heads as (index into probe_layers, query head), the way q_probe is laid out
        self.retrieval_heads = [
            (self.probe_layers.index(layer), head) for layer, head in step["signal_heads"]
        ]
        self.store: SpanStore | None = None
        self.index: SpanIndex | None = None
        self.lexical: LexicalIndex | None = None  # built from the document's ids on first use
        self.document_ids: list[int] = []
        self.prompt_ids: list[int] = []  # the prompt of the last question, as the model saw it in order
        self.last = QuestionStats()
        self.source_map: SourceMap | None = None  # the document's text and token->character offsets
        self.dialogue = Dialogue(QUESTION_SEPARATOR, self.suffix)  # chat() turns; a new document resets it
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    def _regions(self) -> dict[SlotKind, np.ndarray]:
        if not self.policy.bounded:  # full: one shared pool, the question takes what the document left
            every = np.arange(self.pot.capacity)
            return {SlotKind.RECENT: every, SlotKind.QUESTION: every}
        regions, start = {}, 0
        for kind, size in (
            (SlotKind.SINK, self.layout.sink),
            (SlotKind.L1, self.layout.l1),
            (SlotKind.RECENT, self.layout.recent),
            (SlotKind.REFILL, self.layout.refill),
            (SlotKind.QUESTION, self.layout.question),
        ):
            regions[kind] = np.arange(start, start + size)
            start += size
        return regions

    def free_in(self, kind: SlotKind) -> np.ndarray:
        region = self.regions.get(kind)  # a range of slots
        if region is None or not len(region):
            return np.empty(0, dtype=np.int64)
        return self.pot.free_slots(int(region[0]), len(region))

    def slots_of(self, *kinds: SlotKind) -> np.ndarray:
        return self.pot.slots_of(*kinds)

    # ---- tokens -------------------------------------------------------------------------------
    def encode(self, text: str, what: str) -> list[int]:
        _check_text(text, what)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _check_ids(self, ids: list[int], what: str) -> None:
        if not len(ids):
            raise InputError(f"the {what} has no tokens")
        bad = [t for t in ids if not 0 <= int(t) < self.geometry.vocab]
        if bad:
            raise InputError(
                f"the {what} has token id {bad[0]} outside the model's vocabulary [0, {self.geometry.vocab})"
            )

    def document_prompt_ids(self, text: str) -> list[int]:
        return self.document_prompt(text)[0]

    def document_prompt(self, text: str) -> tuple[list[int], SourceMap]:
        """The document's prompt ids (template prefix, or BOS, then the text) and its source map."""
        _check_text(text, "document")
        lead = self.tokenizer.encode(self.prefix, add_special_tokens=False) if self.prefix else []
        if not self.prefix and getattr(self.tokenizer, "bos_token_id", None) is not None:
            lead = [self.tokenizer.bos_token_id]
        ids, source_map = SourceMap.build(self.tokenizer, text, len(lead))
        return lead + ids, source_map

    def question_prompt_ids(self, question: str) -> list[int]:
        self.encode(question, "question")  # refuses an empty question
        return self.tokenizer.encode(QUESTION_SEPARATOR + question + self.suffix, add_special_tokens=False)

    # ---- ingest -------------------------------------------------------------------------------
    def ingest(
        self,
        text: str,
        store: str | Path | None = None,
        progress: Progress | None = None,
        resume: bool = True,
        replace: bool = False,
    ) -> int:
        """Ingest a document (replacing any earlier one in this session); returns its length in
        tokens. With a refilling policy its L2 goes to `store` (a temporary directory if None); a
        store that holds another document is refused unless `replace`."""
        ids, source_map = self.document_prompt(text)
        return self.ingest_ids(ids, store, progress, resume, replace, source_map)

    def ingest_ids(
        self,
        ids: list[int],
        store: str | Path | None = None,
        progress: Progress | None = None,
        resume: bool = True,
        replace: bool = False,
        source_map: SourceMap | None = None,
    ) -> int:
        """Ingest document token ids (`source_map`: their text and offsets, for sources). With
        `resume` and a `store` that already holds this document: a finished ingest is reopened as it
        is, an interrupted one continues from its last checkpoint.
        A store holding another document (or another bundle's) is refused unless `replace`, which
        ingests anew whatever the store holds."""
        self._check_ids(ids, "document")
        if source_map is not None and len(source_map.offsets) != len(ids):
            raise InputError(f"the source map covers {len(source_map.offsets)} tokens, not {len(ids)}")
        if not self.policy.bounded and len(ids) > self.pot.capacity - 1:
            raise InputError(
                f"the document has {len(ids)} tokens; the 'full' policy keeps all of them in the pot, "
                f"which holds {self.pot.capacity} slots. Use a bounded policy (acre) or a larger --pot."
            )
        digest = document_digest(ids)
        self.resumed_from = None
        if store is not None and self.policy.refill:
            self._guard_store(store, digest, replace)
        resume = resume and not replace
        if resume and store is not None and self.policy.refill and self._reopen_finished(store, digest):
            self.resumed_from = len(ids)
            self.source_map = self.source_map or source_map  # a store that keeps no text: this one's
            return len(ids)
        self.source_map = source_map
        self.pot.clear(np.arange(self.pot.capacity))
        self.document_ids, self.index, self.lexical = [], None, None
        self.dialogue = Dialogue(QUESTION_SEPARATOR, self.suffix)
        buffer, begin = self._open_store(store, digest, resume) if self.policy.refill else (None, 0)
        self.resumed_from = begin or None
        per_step = self.chunk - len(self.catalyst_ids)
        for start in range(begin, len(ids), per_step):
            piece = ids[start : start + per_step]
            position = self._compact()
            out = self._step(piece + self.catalyst_ids, position)
            n = len(piece)
            if buffer:  # L2 keeps keys un-rotated (as at position 0): refills place them anywhere
                keys = self.pot.unrotate(out.k_new[:, :, :n], np.arange(position, position + n))
                buffer.add(np.asarray(piece), keys, out.v_new[:, :, :n])
            self._place(start, n, position, out, catalyst_rows=slice(n, n + len(self.catalyst_ids)))
            if (
                buffer
                and start + n < len(ids)
                and (start + n) // self.checkpoint_tokens > start // self.checkpoint_tokens
            ):
                self._checkpoint(buffer, start + n, digest)
            if progress:
                progress(start + n, len(ids))
        self.document_ids = list(ids)
        if buffer and self.store:
            buffer.flush()
            state = {name: getattr(self.pot, name) for name in POT_ARRAYS}
            self.store.finish(
                {
                    **state,
                    "document_ids": np.asarray(ids, dtype=np.int32),
                    **(source_map.arrays() if source_map else {}),
                },
                {"policy": self.policy.name, "document_sha256": digest},
            )
            self.index = SpanIndex.from_store(self.store)
        return len(ids)

    def _guard_store(self, store: str | Path, digest: str, replace: bool) -> None:
        """Refuse to write over a store that holds another document or another bundle's L2: an
        ingest there would silently destroy it. A store of this very document is fine (reopened or
        resumed), and so is a damaged header (nothing in it can be served)."""
        info = SpanStore.peek(store)  # refuses a file, or a directory of other files
        if not info or replace:
            return
        meta = info.get("meta")
        fingerprint = meta.get("fingerprint") if isinstance(meta, dict) else None
        held = info.get("document_sha256")
        if fingerprint != bundle_fingerprint(self.bundle):
            what = "a document ingested with another model or bundle"
        elif held is not None and held != digest:
            what = "another document" + ("" if info.get("complete") else " (its ingest unfinished)")
        else:
            return
        raise StoreError(
            f"{store}: already holds {what}; to replace it pass replace=True (acre run --replace), "
            "or choose another store directory"
        )

    def _reopen_finished(self, store: str | Path, digest: str) -> bool:
        """If `store` already holds this very document, finished, with this bundle: reopen it."""
        try:
            info = SpanStore.open(store, fingerprint=bundle_fingerprint(self.bundle)).info
        except StoreError:
            return False
        if not (info.get("complete") and info.get("document_sha256") == digest):
            return False
        return info.get("policy") == self.policy.name and self.open_document(store) > 0

    def _open_store(self, store: str | Path | None, digest: str, resume: bool) -> tuple[SpanBuffer, int]:
        """The L2 store to ingest into and the token to start at: an interrupted ingest of the same
        document resumes from its checkpoint; anything else starts a new store."""
        if self.store:
            self.store.close()
        if resume and store is not None and (Path(store) / "store.json").is_file():
            try:
                opened = SpanStore.open(store, fingerprint=bundle_fingerprint(self.bundle), writable=True)
            except StoreError:
                opened = None  # another model's or a damaged store: start again
            saved = opened.load_checkpoint() if opened else None
            if opened and saved and self._restore(opened, *saved, digest=digest):
                self.store = opened
                buffer = SpanBuffer(opened, self.probe_layers, self.layout.sink)
                arrays, info = saved
                buffer.tokens[...], buffer.k[...], buffer.v[...] = (arrays[f"span_{n}"] for n in "tkv")
                buffer.fill, buffer.start = info["fill"], info["span_start"]
                return buffer, int(info["next_token"])
            if opened:
                opened.close()
        self.store = self._new_store(store, digest)
        return SpanBuffer(self.store, self.probe_layers, self.layout.sink), 0

    def _restore(
        self, opened: SpanStore, arrays: dict[str, np.ndarray], info: dict[str, Any], digest: str
    ) -> bool:
        """Put a checkpoint's pot back (in place) if it belongs to this document, policy and pot."""
        if info.get("document_sha256") != digest or info.get("policy") != self.policy.name:
            return False
        if arrays["k"].shape != self.pot.k.shape or arrays["span_k"].shape != opened.meta.kv_shape:
            return False
        self.pot.restore(arrays)  # in place: the pot is never reallocated
        opened.truncate(int(info["spans"]))
        return True

    def _checkpoint(self, buffer: SpanBuffer, next_token: int, digest: str) -> None:
        assert self.store is not None
        state = {name: getattr(self.pot, name) for name in POT_ARRAYS}
        state.update(span_t=buffer.tokens, span_k=buffer.k, span_v=buffer.v)
        info = {
            "next_token": next_token,
            "fill": buffer.fill,
            "span_start": buffer.start,
            "document_sha256": digest,
            "policy": self.policy.name,
        }
        self.store.checkpoint(state, info)

    def _store_meta(self) -> StoreMeta:
        g = self.geometry
        return StoreMeta(
            fingerprint=bundle_fingerprint(self.bundle),
            span_tokens=self.span_tokens,
            layers=g.layers,
            kv_heads=g.kv_heads,
            head_dim=g.head_dim,
            probe_layers=len(self.probe_layers),
            reps=self.reps,
            codec=self.codec,
        )

    def _new_store(self, store: str | Path | None, digest: str) -> SpanStore:
        if store is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="acre-l2-")
            store = self._tempdir.name
        return SpanStore.create(store, self._store_meta(), document_sha256=digest)

    def open_document(self, store: str | Path) -> int:
        """Reopen a document ingested earlier (by any process) with this bundle; no re-ingest."""
        if not self.policy.refill:
            raise InputError(
                f"policy '{self.policy.name}' keeps no L2 store; open documents with policy acre"
            )
        opened = SpanStore.open(store, fingerprint=bundle_fingerprint(self.bundle))
        state = opened.load_pot()
        if state["k"].shape != self.pot.k.shape or opened.info.get("policy") != self.policy.name:
            raise InputError(f"{store}: ingested with another pot layout or policy; ingest it again")
        self.pot.restore(state)  # in place: the pot is never reallocated
        if self.store:
            self.store.close()
        self.store, self.index, self.lexical = opened, SpanIndex.from_store(opened), None
        self.document_ids = state["document_ids"].tolist()
        self.source_map = SourceMap.from_arrays(state)
        self.dialogue = Dialogue(QUESTION_SEPARATOR, self.suffix)
        return len(self.document_ids)

    def _place(self, start: int, n: int, position: int, out: StepOutputs, catalyst_rows: slice) -> None:
        """Put the chunk's K/V (its rows at `position` on) into the pot: sinks first, then the recent
        window; what leaves the recent window is distilled into L1 (or dropped, for streaming)."""
        token = np.arange(start, start + n)
        at = np.arange(position, position + n)  # where the chunk's keys are rotated at
        k, v = out.k_new[:, :, :n], out.v_new[:, :, :n]
        to_sink = token < self.layout.sink
        if to_sink.any():
            slots = self.free_in(SlotKind.SINK)[: int(to_sink.sum())]
            self.pot.write(
                slots, k[:, :, to_sink], v[:, :, to_sink], at[to_sink], SlotKind.SINK, token[to_sink]
            )
        rest = ~to_sink
        need = int(rest.sum())
        free = self.free_in(SlotKind.RECENT)
        if need > len(free):
            recent = self.slots_of(SlotKind.RECENT)
            leaving = recent[np.argsort(self.pot.token[recent], kind="stable")[: need - len(free)]]
            if self.policy.l1:
                importance = out.pot_attention[catalyst_rows].sum(axis=0)
                self._distil(leaving, importance)
            self.pot.clear(leaving)
            free = self.free_in(SlotKind.RECENT)
        self.pot.write(free[:need], k[:, :, rest], v[:, :, rest], at[rest], SlotKind.RECENT, token[rest])

    def _distil(self, candidates: np.ndarray, attention: np.ndarray) -> None:
        """CCD: of the current L1 and the candidates, keep the most important in L1.
        Importance mixes the catalyst's attention with novelty (1 - max cosine to the others' keys)."""
        pool = np.concatenate([self.slots_of(SlotKind.L1), candidates])
        if not len(pool):
            return
        att = attention[pool] / max(float(attention[pool].max()), 1e-12)
        keys = self.pot.unrotated(self.probe_layers, pool)  # [Lp, Hkv, N, D], free of positions
        vecs = keys.transpose(2, 0, 1, 3).reshape(len(pool), -1)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-12
        sim = vecs @ vecs.T
        np.fill_diagonal(sim, -1.0)
        novelty = np.clip(1.0 - sim.max(axis=1), 0.0, 1.0) if len(pool) > 1 else np.ones(1)
        w = self.policy.novelty_weight
        importance = (1 - w) * att + w * novelty
        keep = pool[np.argsort(-importance, kind="stable")[: self.layout.l1]]
        l1_now = self.slots_of(SlotKind.L1)
        self.pot.clear(l1_now[~np.isin(l1_now, keep)])
        moving = candidates[np.isin(candidates, keep)]
        slots = self.free_in(SlotKind.L1)[: len(moving)]
        p = self.pot
        p.write(
            slots, p.k[:, :, moving], p.v[:, :, moving], p.positions[moving], SlotKind.L1, p.token[moving]
        )

    # ---- ask ----------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Stream the answer to `question` as text pieces."""
        ids = self.question_prompt_ids(question)
        yield from self._pieces(self.generate(ids, max_new_tokens, temperature, top_p, seed), [])

    def chat(
        self,
        question: str,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Stream the answer to the next question of a dialogue (acre/runtime/dialogue.py): the
        earlier turns stay in the question region while they fit, the oldest dropped first (said in
        `self.last.notices`); spans are selected anew with this question and the turn before it."""
        self.encode(question, "question")  # refuses an empty question
        room = len(self.regions[SlotKind.QUESTION])
        if not self.policy.bounded:  # full: the question region is what the document left
            room -= len(self.document_ids)
        reserve = min(max_new_tokens, room // 4)  # the answer's share of the region
        ids, selection, drop, notices = self.dialogue.fit(self.tokenizer, question, room, reserve)
        answer: list[str] = []
        before = self.last
        try:
            carried = self.dialogue.cores if drop < len(self.dialogue.turns) else []
            tokens = self.generate(
                ids, max_new_tokens, temperature, top_p, seed, selection_ids=selection, carried=carried
            )
            for piece in self._pieces(tokens, answer):
                self.last.notices = notices
                yield piece
        finally:
            if self.last is not before:  # generate began (its checks passed): the turn was asked
                self.last.notices = notices
                self.dialogue.add(question, "".join(answer), drop, self.last.cores)

    def _pieces(self, tokens: Iterator[int], text_out: list[str]) -> Iterator[str]:
        """Answer token ids as text pieces (appended to `text_out` as well)."""
        produced: list[int] = []
        shown = ""
        for token in tokens:
            produced.append(token)
            text = self.tokenizer.decode(produced, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                text_out.append(text[len(shown) :])
                yield text[len(shown) :]
                shown = text

    def generate(
        self,
        question_ids: list[int],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        selection_ids: list[int] | None = None,
        stop_at_eos: bool = True,
        carried: list[int] | None = None,
    ) -> Iterator[int]:
        """Stream answer token ids (stop tokens excluded) for already-tokenized question ids.
        `selection_ids` (default: the question ids) are what spans are selected with, `carried`
        spans are refilled too while there is room (chat: what the turn before was about); without
        `stop_at_eos` it decodes max_new_tokens whatever comes (speed benchmarks)."""
        if not self.document_ids:
            raise InputError("no document ingested; call ingest() or open_document() first")
        self._check_ids(question_ids, "question")
        self._reset_question()
        room = len(self.free_in(SlotKind.QUESTION))
        if len(question_ids) >= room:
            raise InputError(
                f"the question has {len(question_ids)} tokens; only {room} pot slots are left for it"
            )
        self.last = QuestionStats()
        refills = bool(self.policy.refill and self.store and self.store.span_count)
        probe = selection_ids if selection_ids and refills else question_ids
        logits, (attention, queries) = self._prefill(probe)
        if refills and self.store:
            read_before = self.store.bytes_read
            spans = self._select_spans(attention, queries, probe, carried or [])
            self.last.sources = self.sources_of(spans)
            self.pot.clear(self.slots_of(SlotKind.QUESTION))  # refilled spans must not see the question
            self._refill(spans)
            self.last.bytes_read = self.store.bytes_read - read_before
            self._compact()
            logits, _ = self._prefill(question_ids)
        doc = self.slots_of(*DOCUMENT_KINDS)
        doc = doc[self.pot.mask[doc]]
        self.prompt_ids = [self.document_ids[t] for t in np.sort(self.pot.token[doc])] + list(question_ids)
        rng = np.random.default_rng(seed)
        for _ in range(max_new_tokens):
            token = sample(logits, temperature, top_p, rng)
            if stop_at_eos and token in self.stop_ids:
                return
            yield token
            if not len(self.free_in(SlotKind.QUESTION)):
                return  # the question region is full: the answer is cut here
            logits, _ = self._prefill([token])

    def sources_of(self, spans: list[int]) -> list[Source]:
        """The passages of the document text that these L2 spans hold, in document order."""
        if self.source_map is None or self.store is None:
            return []
        starts, lengths = self.store.starts, self.store.lengths
        return self.source_map.passages([(starts[i], starts[i] + lengths[i]) for i in spans])

    def _reset_question(self) -> None:
        """Back to the pot as ingest left it: no question, no refill, every stored entry visible."""
        self.pot.clear(self.slots_of(SlotKind.QUESTION, SlotKind.REFILL))
        self.pot.show(self.slots_of(*STORED_KINDS))
        self._compact()

    def _select_spans(
        self, attention: np.ndarray, queries: np.ndarray, question_ids: list[int], carried: list[int]
    ) -> list[int]:
        """Score spans by (a) question attention on their L1 entries, (b) probe queries against the
        span index and (c) BM25 of the question's token ids; keep the best ones by a dynamic
        cut-off, with the `carried` ones, in document order."""
        assert self.store is not None
        policy, n_spans, s = self.policy, self.store.span_count, self.span_tokens
        attention_mass = index_z = None
        if policy.use_attention:
            l1 = self.slots_of(SlotKind.L1)
            attention_mass = np.zeros(n_spans)
            np.add.at(attention_mass, self.pot.token[l1] // s, attention[l1])
        if policy.use_index:
            if self.index is None:
                self.index = SpanIndex.from_store(self.store)
            probes = select_probe_queries(queries) if policy.use_probes else queries[:, :, -1:]
            # mean, not sum, of the heads' standardised scores: a softmax over sums is one-hot
            index_z = self.index.scores(probes, self.retrieval_heads, tree=policy.use_tree)
            index_z = index_z / len(self.retrieval_heads)
        lexical = None
        if policy.use_lexical:
            if self.lexical is None:
                self.lexical = LexicalIndex(self.document_ids, s)
            lexical = self.lexical.scores([t for t in question_ids if t not in self.template_ids])
        scores = combine_scores(attention_mass, index_z, lexical)
        resident = self.pot.token[self.slots_of(*self._shown_while_answering())]
        for span in np.unique(resident // s):  # spans wholly in the pot need no refill
            length = self.store.lengths[span]
            if np.isin(np.arange(span * s, span * s + length), resident).all():
                scores[span] = 0.0
        self.last.span_scores = scores
        budget = self.layout.refill // s
        self.last.spans, self.last.cores = choose_and_say_why(
            scores, budget, policy.mass, policy.min_spans, policy.neighbors, carried
        )
        return self.last.spans

    def _refill(self, spans: list[int]) -> None:
        """Bring the chosen spans from L2 into the refill slots, in document order. Entries already in
        the pot as sinks or recent tokens are not duplicated; L1 is hidden while the answer is made."""
        assert self.store is not None
        store = self.store
        resident = set(self.pot.token[self.slots_of(*self._shown_while_answering())].tolist())
        reuse = self.policy.refill_mode == "reuse"
        started = time.perf_counter()
        for span in [] if reuse else spans:
            store.read_tokens(span)  # verifies the span's ids against their checksum before use
        self.last.read_s = time.perf_counter() - started
        slots, token = refill_placement(
            spans, store.starts, store.lengths, resident, self.free_in(SlotKind.REFILL)
        )
        shape = (*self.pot.k.shape[:2], len(slots), self.pot.k.shape[3])
        k, v = np.zeros(shape, dtype=self.pot.k.dtype), np.zeros(shape, dtype=self.pot.v.dtype)
        if reuse:  # copy the stored activations of the tokens being refilled (keys as at position 0)
            for span in spans:
                started = time.perf_counter()
                read = store.read(span)
                self.last.read_s += time.perf_counter() - started
                rows = np.flatnonzero((token >= read.start) & (token < read.start + len(read.tokens)))
                k[:, :, rows] = read.k[:, :, token[rows] - read.start]
                v[:, :, rows] = read.v[:, :, token[rows] - read.start]
        self.pot.write(slots, k, v, 0, SlotKind.REFILL, token)
        self.pot.show(self.slots_of(SlotKind.L1), False)
        if not self.policy.answer_recent:
            self.pot.show(self.slots_of(SlotKind.RECENT), False)
        if not reuse:
            self._reencode()
        elif not self.policy.answer_recent:
            self._compact()

    def _reencode(self) -> None:
        """Compute the K/V of the refilled tokens in the context they are now shown in: the sinks and
        the refilled tokens before them, in document order (the recent window and L1 hidden)."""
        slots = self.slots_of(SlotKind.REFILL)
        slots = slots[np.argsort(self.pot.token[slots], kind="stable")]
        later = self.slots_of(SlotKind.RECENT, SlotKind.REFILL)
        later = later[self.pot.mask[later]]  # what the answer sees: a hidden recent window stays hidden
        self.pot.show(later, False)
        position = self._compact()  # the sinks
        for done in range(0, len(slots), self.chunk):
            part = slots[done : done + self.chunk]
            tokens = self.pot.token[part]
            out = self._step([self.document_ids[t] for t in tokens], position)
            n = len(part)  # their K/V, at the positions later parts see them at
            at = np.arange(position, position + n)
            self.pot.write(part, out.k_new[:, :, :n], out.v_new[:, :, :n], at, SlotKind.REFILL, tokens)
            position += n
        self.pot.show(later)
        self._compact()

    def _shown_while_answering(self) -> tuple[SlotKind, ...]:
        """The stored entries the answer sees besides the refill (a refill does not repeat them)."""
        return (SlotKind.SINK, SlotKind.RECENT) if self.policy.answer_recent else (SlotKind.SINK,)

    # ---- the step loop ------------------------------------------------------------------------
    def _compact(self) -> int:
        """Give the visible document entries consecutive positions in document order (so the model
        never sees a position outside its window) and return the next free position."""
        return self.pot.compact(*DOCUMENT_KINDS)

    def _step(self, ids: list[int], start: int) -> StepOutputs:
        """One call of the step program (decode entry point for a single token)."""
        width = 1 if len(ids) == 1 else self.chunk
        tokens = np.zeros(width, dtype=np.int64)
        tokens[: len(ids)] = ids
        positions = np.arange(start, start + width, dtype=np.int64)
        if start + len(ids) > self.geometry.window:
            raise InputError(
                f"{start + len(ids)} positions exceed the model's window of {self.geometry.window}"
            )
        out = self.engine.step(
            StepInputs(
                tokens=tokens,
                positions=positions,
                pot_k=self.pot.k,
                pot_v=self.pot.v,
                pot_mask=self.pot.mask,
                last_index=np.array([len(ids) - 1], dtype=np.int64),
            )
        )
        return out

    def _prefill(self, ids: list[int]) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Run question (or answer) tokens through the step program in chunks, writing their K/V into
        the question region. Returns the logits after the last token, the attention the tokens put
        on each pot slot, and their probe-layer queries [Lp, H, n, D]."""
        attention = np.zeros(self.pot.capacity, dtype=np.float64)
        queries = []
        logits = np.empty(0, dtype=np.float32)
        for done in range(0, len(ids), self.chunk):
            piece = ids[done : done + self.chunk]
            start = int(self.pot.positions[self.pot.mask].max()) + 1 if self.pot.used else 0
            out = self._step(piece, start)
            n = len(piece)
            attention += out.pot_attention[:n].sum(axis=0)
            queries.append(out.q_probe[:, :, :n])
            slots = self.free_in(SlotKind.QUESTION)[:n]
            positions = np.arange(start, start + n)
            self.pot.write(slots, out.k_new[:, :, :n], out.v_new[:, :, :n], positions, SlotKind.QUESTION)
            logits = out.logits
        return logits, (attention, np.concatenate(queries, axis=2))


def _check_text(text: object, what: str) -> None:
    if not isinstance(text, str):
        raise InputError(
            f"the {what} must be text (str), not {type(text).__name__}; decode bytes as UTF-8 first"
        )
    if not text.strip():
        raise InputError(f"the {what} is empty")
