"""A session: one document ingested into the pot, then questions answered from it.

    session = Session("bundle/")
    session.ingest(text)
    for piece in session.ask("What is the pass key?"):
        print(piece, end="")

The prompt is the tokenizer's chat template with the document and the question in one user turn:
the document part (template prefix + document) is ingested once; each question (+ template suffix)
is prefilled after it and the answer decoded. Every question starts again from the ingested
document: questions do not see earlier questions or answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from acre.bundle import Bundle
from acre.errors import InputError
from acre.runtime.engines import Engine, StepInputs, open_engine
from acre.runtime.pot import Pot, SlotKind
from acre.runtime.sampling import sample

_MARKER = "\u0000ACRE-DOCUMENT\u0000"
QUESTION_SEPARATOR = "\n\n"

Progress = Callable[[int, int], None]  # (tokens done, tokens total)


def split_chat_template(tokenizer: Any) -> tuple[str, str]:
    """The text before and after the user's message in the chat template's first user turn."""
    if not getattr(tokenizer, "chat_template", None):
        return "", "\n"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": _MARKER}], tokenize=False, add_generation_prompt=True
    )
    prefix, _, suffix = rendered.partition(_MARKER)
    return prefix, suffix


class Session:
    def __init__(
        self, bundle: str | Path | Bundle, engine: str | Engine = "auto", policy: str = "full"
    ) -> None:
        from transformers import AutoTokenizer

        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        self.engine = open_engine(self.bundle, engine) if isinstance(engine, str) else engine
        if policy != "full":
            raise InputError(f"unknown policy {policy!r}; available: full")
        self.policy = policy
        self.geometry = self.bundle.geometry
        self.chunk = self.bundle.chunk
        self.tokenizer = AutoTokenizer.from_pretrained(self.bundle.tokenizer_dir)
        self.prefix, self.suffix = split_chat_template(self.tokenizer)
        self.stop_ids = set(self.bundle.eos_token_ids)
        self.pot = Pot(self.geometry, self.bundle.pot, self.bundle.kv_dtype)
        self.document_ids: list[int] = []
        self.prompt_ids: list[int] = []  # the full prompt of the last question, for inspection

    # ---- tokens -------------------------------------------------------------------------------
    def encode(self, text: str, what: str) -> list[int]:
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"the {what} is empty")
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _check_ids(self, ids: list[int], what: str) -> None:
        if not ids:
            raise InputError(f"the {what} has no tokens")
        bad = [t for t in ids if not 0 <= int(t) < self.geometry.vocab]
        if bad:
            raise InputError(
                f"the {what} has token id {bad[0]} outside the model's vocabulary [0, {self.geometry.vocab})"
            )

    # ---- ingest -------------------------------------------------------------------------------
    def ingest(self, text: str, progress: Progress | None = None) -> int:
        """Ingest a document (replacing any earlier one); returns its length in tokens."""
        ids = self.encode(text, "document")
        if not self.prefix and getattr(self.tokenizer, "bos_token_id", None) is not None:
            ids = [self.tokenizer.bos_token_id, *ids]
        prefix_ids = self.tokenizer.encode(self.prefix, add_special_tokens=False) if self.prefix else []
        return self.ingest_ids(prefix_ids + ids, progress)

    def ingest_ids(self, ids: list[int], progress: Progress | None = None) -> int:
        self._check_ids(ids, "document")
        room = self.pot.capacity - 1
        if len(ids) > room:
            raise InputError(
                f"the document has {len(ids)} tokens; the '{self.policy}' policy keeps all of them in the "
                f"pot, which holds {self.pot.capacity} slots. Export with a larger --pot."
            )
        self.pot.clear(np.arange(self.pot.capacity))
        self.document_ids = []
        self._prefill(ids, SlotKind.RECENT, progress)
        self.document_ids = list(ids)
        return len(ids)

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
        self.encode(question, "question")  # refuses an empty question
        ids = self.tokenizer.encode(QUESTION_SEPARATOR + question + self.suffix, add_special_tokens=False)
        produced: list[int] = []
        shown = ""
        for token in self.generate(ids, max_new_tokens, temperature, top_p, seed):
            produced.append(token)
            text = self.tokenizer.decode(produced, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                yield text[len(shown) :]
                shown = text

    def generate(
        self,
        question_ids: list[int],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[int]:
        """Stream answer token ids (stop tokens excluded) for already-tokenized question ids."""
        if not self.document_ids:
            raise InputError("no document ingested; call ingest() first")
        self._check_ids(question_ids, "question")
        self.pot.clear(np.flatnonzero(self.pot.kind == SlotKind.QUESTION))
        free = len(self.pot.free_slots())
        if len(question_ids) >= free:
            raise InputError(
                f"the question has {len(question_ids)} tokens; "
                f"only {free} pot slots are left after the document"
            )
        self.prompt_ids = self.document_ids + list(question_ids)
        rng = np.random.default_rng(seed)
        logits = self._prefill(question_ids, SlotKind.QUESTION)
        for _ in range(max_new_tokens):
            token = sample(logits, temperature, top_p, rng)
            if token in self.stop_ids:
                return
            yield token
            if not len(self.pot.free_slots()):
                return  # pot full: the answer is cut here
            logits = self._prefill([token], SlotKind.QUESTION)

    # ---- the step loop ------------------------------------------------------------------------
    def _next_position(self) -> int:
        return int(self.pot.positions[self.pot.mask].max()) + 1 if self.pot.used else 0

    def _prefill(self, ids: list[int], kind: SlotKind, progress: Progress | None = None) -> np.ndarray:
        """Run `ids` through the step program in chunks, writing their K/V into free slots.
        Returns the logits after the last token."""
        start = self._next_position()
        if start + len(ids) > self.geometry.window:
            raise InputError(
                f"{start + len(ids)} positions exceed the model's window of {self.geometry.window}"
            )
        logits = np.empty(0, dtype=np.float32)
        done = 0
        while done < len(ids):
            piece = ids[done : done + self.chunk]
            width = 1 if len(piece) == 1 else self.chunk  # decode entry point for single tokens
            tokens = np.zeros(width, dtype=np.int64)
            tokens[: len(piece)] = piece
            positions = np.arange(start + done, start + done + width, dtype=np.int64)
            out = self.engine.step(
                StepInputs(
                    tokens=tokens,
                    positions=positions,
                    pot_k=self.pot.k,
                    pot_v=self.pot.v,
                    pot_positions=self.pot.positions,
                    pot_mask=self.pot.mask,
                    last_index=np.array([len(piece) - 1], dtype=np.int64),
                )
            )
            slots = self.pot.free_slots()[: len(piece)]
            n = len(piece)
            token_index = positions[:n] if kind != SlotKind.QUESTION else None
            self.pot.write(slots, out.k_new[:, :, :n], out.v_new[:, :, :n], positions[:n], kind, token_index)
            logits = out.logits
            done += n
            if progress:
                progress(done, len(ids))
        return logits
