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

Ingest, reopen and resume run in the native core (native/src/session.cpp, acre_session_* in
native/include/acre.h): the chunked prefill, the sinks and the recent window, L1's distillation, the
L2 spans, checkpoints. The engine steps through it: the ExecuTorch engine directly, any other (the
eager torch module, ONNX Runtime, a test's wrapper) as the core's step callback. The questions
(selection, refill, decode, sampling) are still here.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acre import _native
from acre.bundle import TOKENIZER_DIR, Bundle
from acre.errors import InputError
from acre.runtime.dialogue import Dialogue
from acre.runtime.engines import Engine, ExecuTorchEngine, StepInputs, StepOutputs, open_engine
from acre.runtime.l2 import SpanStore
from acre.runtime.lexical import LexicalIndex
from acre.runtime.malloc import fix_mmap_threshold
from acre.runtime.policies import Layout, make_policy
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


class _SessionStore(SpanStore):
    """The session's L2 store; closing it lets the session's core go of it too (the writer's lock)."""

    def __init__(self, core: _native.Store, session: _native.Session) -> None:
        super().__init__(core, Path(core.dir))
        self._session, self._epoch = session, session.epoch

    def close(self) -> None:
        super().close()
        if self._session.epoch == self._epoch:  # still the session's store
            self._session.close_store()


def _step_callback(session: weakref.ref[Session]) -> Callable[[int, list, list], None]:
    """The core's callback engine calls this for a Python engine: StepInputs over the core's buffers
    (the pot's own arrays), the engine's outputs copied into the core's. `session.engine` is looked up
    at every step, so a wrapper set later steps too. A weak reference: the core holds the callback."""

    def step(rows: int, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
        s = session()
        assert s is not None
        named = dict(zip(s._input_names, inputs, strict=True))
        result = s.engine.step(
            StepInputs(
                tokens=named["tokens"],
                positions=named["positions"],
                pot_k=s.pot.k,
                pot_v=s.pot.v,
                pot_mask=s.pot.mask,
                last_index=named["last_index"],
            )
        )
        for name, out in zip(s._output_names, outputs, strict=True):
            out[...] = getattr(result, name)

    return step


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
        self.geometry = self.bundle.geometry
        self.chunk = self.bundle.chunk
        self.span_tokens, self.reps = span_tokens, reps
        self.checkpoint_tokens = checkpoint_tokens  # how often an ingest saves where it is, to resume
        self.tokenizer = BundleTokenizer(self.bundle.tokenizer_dir)
        self.prefix, self.suffix = split_chat_template(self.tokenizer)
        self.stop_ids = set(self.bundle.eos_token_ids)
        # tokens of the chat template: they match the document's template, not its text
        self.template_ids = set(self.tokenizer.encode(self.prefix + self.suffix, add_special_tokens=False))
        self.template_ids |= set(self.tokenizer.all_special_ids)
        self.pot = Pot(self.geometry, self.bundle.pot, self.bundle.rope_inv_freq, self.bundle.kv_dtype)
        step = self.bundle.manifest["step"]
        self._input_names = [n["name"] if isinstance(n, dict) else n for n in step["inputs"]]
        self._output_names = [n["name"] if isinstance(n, dict) else n for n in step["outputs"]]
        # Bundle.open verified the checksums already; the core checks structure and sizes again
        core_bundle = _native.Bundle(str(self.bundle.root), verify_checksums=False)
        self._core = _native.Session(
            core_bundle,
            self.pot.core,
            self.policy.core,
            span_tokens,
            reps,
            codec,
            checkpoint_tokens,
            bundle_fingerprint(self.bundle),
            getattr(self.tokenizer, "_native", None),
        )
        # L2 keeps K/V only when the refill reads them back; re-encoding needs the ids alone
        self.codec = self._core.codec
        self.layout = Layout(**self._core.layout)
        self.regions = {
            kind: np.arange(first, first + count)
            for kind in SlotKind
            if kind != SlotKind.FREE
            for first, count in [self._core.region(int(kind))]
        }
        self._callback = _native.Engine.callback(core_bundle, _step_callback(weakref.ref(self)))
        self.engine = open_engine(self.bundle, engine) if isinstance(engine, str) else engine
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
        self._epoch = self._core.epoch

    @property
    def engine(self) -> Engine:
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        """The ExecuTorch engine steps in the core; any other through the core's step callback."""
        self._engine = engine
        self._core.set_engine(engine.core if type(engine) is ExecuTorchEngine else self._callback)

    @property
    def resumed_from(self) -> int | None:
        """The token the last ingest resumed at (its length when it reopened a finished store), if it did."""
        return self._core.resumed_from

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

    # ---- ingest (the core's) ------------------------------------------------------------------
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
        self._check_ids(ids, "document")  # before the ids become int32
        text = offsets = None
        if source_map is not None:
            text = source_map.text.encode("utf-8")
            offsets = np.ascontiguousarray(source_map.offsets, dtype=np.int32)
        ids32 = np.ascontiguousarray(ids, dtype=np.int32)
        self._let_go_of_store()
        try:
            return self._core.ingest(
                ids32, None if store is None else str(store), resume, replace, text, offsets, progress
            )
        finally:
            self._sync()

    def open_document(self, store: str | Path) -> int:
        """Reopen a document ingested earlier (by any process) with this bundle; no re-ingest."""
        self._let_go_of_store()
        try:
            return self._core.open_document(str(store))
        finally:
            self._sync()

    def _let_go_of_store(self) -> None:
        """Drop this layer's handle on the core's store, so the core can close or replace it."""
        if self.store is not None:
            SpanStore.close(self.store)
            self.store = None

    def _sync(self) -> None:
        """Take the document and store from the core after it ingested or reopened (or failed to)."""
        core = self._core.store()
        self.store = _SessionStore(core, self._core) if core is not None else None
        if self._core.epoch == self._epoch:
            return
        self._epoch = self._core.epoch
        ids, text, offsets = self._core.document()
        self.document_ids = ids.tolist()
        self.source_map = None if text is None else SourceMap(text.decode("utf-8"), offsets)
        complete = bool(self.store and self.store.info.get("complete"))
        self.index = SpanIndex.from_store(self.store) if complete and self.store else None
        self.lexical = None
        self.dialogue = Dialogue(QUESTION_SEPARATOR, self.suffix)

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
        return self._core.compact()

    def _step(self, ids: list[int], start: int) -> StepOutputs:
        """One call of the step program through the core (decode entry point for a single token); the
        outputs are views of the core's buffers, valid until the next step."""
        out = self._core.step([int(t) for t in ids], start)
        return StepOutputs(**dict(zip(self._output_names, out, strict=True)))

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
            queries.append(out.q_probe[:, :, :n].copy())
            slots = self.free_in(SlotKind.QUESTION)[:n]
            positions = np.arange(start, start + n)
            self.pot.write(slots, out.k_new[:, :, :n], out.v_new[:, :, :n], positions, SlotKind.QUESTION)
            logits = out.logits.copy()
        return logits, (attention, np.concatenate(queries, axis=2))


def _check_text(text: object, what: str) -> None:
    if not isinstance(text, str):
        raise InputError(
            f"the {what} must be text (str), not {type(text).__name__}; decode bytes as UTF-8 first"
        )
    if not text.strip():
        raise InputError(f"the {what} is empty")
