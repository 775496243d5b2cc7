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
L2 spans, checkpoints; and each question: prefill, span selection, refill, decode and sampling. The
engine steps through it: the ExecuTorch engine directly, any other (the eager torch module, ONNX
Runtime, a test's wrapper) as the core's step callback, and the bundle fingerprint a store is held to
is the core's. Here: the chat template (jinja2), the dialogue's turns, text pieces of the answer, and
sources.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acre import _native
from acre.bundle import Bundle
from acre.errors import InputError
from acre.runtime.dialogue import Dialogue
from acre.runtime.engines import Engine, ExecuTorchEngine, StepInputs, StepOutputs, open_engine
from acre.runtime.l2 import SpanStore
from acre.runtime.malloc import fix_mmap_threshold
from acre.runtime.policies import Layout, make_policy
from acre.runtime.pot import Pot, SlotKind
from acre.runtime.sources import Source, SourceMap
from acre.runtime.tokenizer import BundleTokenizer

_MARKER = "\u0000ACRE-DOCUMENT\u0000"
QUESTION_SEPARATOR = "\n\n"
DOCUMENT_KINDS = (SlotKind.SINK, SlotKind.L1, SlotKind.RECENT, SlotKind.REFILL)  # the document's slots

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


@dataclass(frozen=True)
class IndexInfo:
    """What the profile reads of the core's span index."""

    nbytes: int


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
        # tokens of the chat template: they match the document's template, not its text
        self.template_ids = set(self.tokenizer.encode(self.prefix + self.suffix, add_special_tokens=False))
        self.template_ids |= set(self.tokenizer.all_special_ids)
        self.pot = Pot(self.geometry, self.bundle.pot, self.bundle.rope_inv_freq, self.bundle.kv_dtype)
        step = self.bundle.manifest["step"]
        self._input_names = [n["name"] if isinstance(n, dict) else n for n in step["inputs"]]
        self._output_names = [n["name"] if isinstance(n, dict) else n for n in step["outputs"]]
        # Bundle.open verified the checksums already; the core checks structure and sizes again
        core_bundle = _native.Bundle(str(self.bundle.root), verify_checksums=False)
        self.fingerprint = core_bundle.fingerprint  # the model and programs; a store serves only its own
        self._core = _native.Session(
            core_bundle,
            self.pot.core,
            self.policy.core,
            span_tokens,
            reps,
            codec,
            checkpoint_tokens,
            self.fingerprint,
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
        self._core.set_template_ids(sorted(self.template_ids))
        self.stop_ids = set(self.bundle.eos_token_ids)
        self.store: SpanStore | None = None
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
    def stop_ids(self) -> set[int]:
        """The tokens that end an answer (the bundle's eos ids unless set)."""
        return self._stop_ids

    @stop_ids.setter
    def stop_ids(self, ids: set[int]) -> None:
        self._stop_ids = set(ids)
        self._core.set_stop_ids(sorted(int(t) for t in self._stop_ids))

    @property
    def index(self) -> IndexInfo | None:
        """The span index the core made for the document's questions (None before the first)."""
        nbytes = self._core.index_bytes
        return IndexInfo(nbytes) if nbytes else None

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
        `stop_at_eos` it decodes max_new_tokens whatever comes (speed benchmarks). The core prefills,
        selects, refills and decodes; `seed` draws what numpy's default_rng(seed) drew."""
        if not self.document_ids:
            raise InputError("no document ingested; call ingest() or open_document() first")
        self._check_ids(question_ids, "question")  # before the ids become int32
        self._core.ask(
            [int(t) for t in question_ids],
            [int(t) for t in selection_ids or []],
            [int(s) for s in carried or []],
            max_new_tokens,
            temperature,
            top_p,
            seed,
            stop_at_eos,
        )
        last = self._core.last()
        self.last = QuestionStats(
            spans=last["spans"],
            cores=last["cores"],
            span_scores=last["span_scores"],
            bytes_read=last["bytes_read"],
            read_s=last["read_s"],
            sources=self.sources_of(last["spans"]) if last["spans"] else [],
        )
        self.prompt_ids = last["prompt_ids"]
        while (token := self._core.next()) is not None:
            yield token

    def sources_of(self, spans: list[int]) -> list[Source]:
        """The passages of the document text that these L2 spans hold, in document order."""
        if self.source_map is None or self.store is None:
            return []
        starts, lengths = self.store.starts, self.store.lengths
        return self.source_map.passages([(starts[i], starts[i] + lengths[i]) for i in spans])

    # ---- the step loop ------------------------------------------------------------------------
    def _step(self, ids: list[int], start: int) -> StepOutputs:
        """One call of the step program through the core (decode entry point for a single token); the
        outputs are views of the core's buffers, valid until the next step."""
        out = self._core.step([int(t) for t in ids], start)
        return StepOutputs(**dict(zip(self._output_names, out, strict=True)))


def _check_text(text: object, what: str) -> None:
    if not isinstance(text, str):
        raise InputError(
            f"the {what} must be text (str), not {type(text).__name__}; decode bytes as UTF-8 first"
        )
    if not text.strip():
        raise InputError(f"the {what} is empty")
