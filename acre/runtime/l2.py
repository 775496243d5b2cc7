"""L2: the document's full key/value activations, in flash-backed storage.

The store is the native core's (native/src/l2.cpp, the acre_store_* functions of native/include/acre.h);
this module is its Python face and converts only: numpy arrays in and out, StoreError for every
refusal. A store is a directory:
    store.json   format, version, the fingerprint of the model/bundle it belongs to, span geometry,
                 whether ingest finished, and what the session adds (document digest, policy)
    spans.bin    append-only, fixed-size records, one per span of S tokens:
                   header (magic, span number, token count, first token, crc32 of the record,
                   crc32 of its token ids alone, so they can be read and checked without the K/V) +
                   token ids + K and V of every layer (fp16, or int8 with per-row scales; none
                   with codec `none`, the default: refill re-encodes spans from their ids) +
                   representative keys of the probe layers (the span index entries)
    pot.npz      the pot as it stood after ingest, so a reopened document is asked without re-ingest,
                 and the document's token ids; when ingested from text also the text (UTF-8 bytes,
                 `document_text`) and each token's character range (`document_offsets`), for
                 sources. Stores written before those two arrays existed still open (format 1 is
                 unchanged): they give no sources. numpy's .npz (stored zip of .npy), written and
                 read by the core; stores written by the Python store before it open unchanged
    resume.npz   while ingest runs: the last checkpoint (pot, partial span, next token), so an
                 interrupted ingest continues from there instead of from the start
    lock         flock'ed by the one writer; a second writer is refused at once

Only chosen spans are read (pread), each verified against its crc32. A crash at any moment leaves a
store that reopens consistent: store.json and the snapshots are replaced durably (temporary file,
fsync, rename), a trailing partial record is discarded, and so is a last record whose checksum
fails. The span index entries (`reps`) are not kept here: the span index reads them from spans.bin
into the core (acre/runtime/span_index.py), so they are in RAM once.
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acre import _native
from acre.errors import StoreError

__all__ = ["CODECS", "RECORD_HEADER_BYTES", "Span", "SpanStore", "StoreError", "StoreMeta"]

VERSION = _native.STORE_VERSION
CODECS: tuple[str, ...] = _native.STORE_CODECS  # none: ids and index only (what re-encoding refill reads)
RECORD_HEADER_BYTES: int = _native.RECORD_HEADER_BYTES


@dataclass(frozen=True)
class StoreMeta:
    fingerprint: str  # model geometry + bundle programs; a store only serves the bundle that wrote it
    span_tokens: int  # S
    layers: int
    kv_heads: int
    head_dim: int
    probe_layers: int  # Lp: how many layers the representative keys cover
    reps: int  # R representative keys per span, layer and KV head
    codec: str = "float16"

    @property
    def keeps_kv(self) -> bool:
        return self.codec != "none"

    @property
    def kv_shape(self) -> tuple[int, int, int, int]:
        return (self.layers, self.kv_heads, self.span_tokens, self.head_dim)

    @property
    def reps_shape(self) -> tuple[int, int, int, int]:
        return (self.probe_layers, self.kv_heads, self.reps, self.head_dim)

    @property
    def record_bytes(self) -> int:
        return _native.store_record_bytes(*astuple(self))


@dataclass
class Span:
    index: int
    start: int  # document token index of the first token
    tokens: np.ndarray  # [n] int32
    k: np.ndarray  # [L, Hkv, n, D] float32
    v: np.ndarray


def _arrays(named: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(name, np.ascontiguousarray(array)) for name, array in named.items()]


class SpanStore:
    """One document's L2. Create with `create`, reopen with `open`; `append_span` writes, `read` reads."""

    def __init__(self, core: _native.Store, path: Path) -> None:
        self._core = core
        self.path = path
        self.meta = StoreMeta(**core.meta())
        starts, lengths = core.spans(0)
        self.starts: list[int] = list(starts)
        self.lengths: list[int] = list(lengths)
        self._read_base = 0

    # ---- create / open ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, meta: StoreMeta, document_sha256: str | None = None) -> SpanStore:
        """A new, empty store at `path` (what was there is replaced). `document_sha256` names the
        document from the start, so an interrupted ingest is not mistaken for a free directory."""
        path = Path(path)
        return cls(_native.Store.create(str(path), *astuple(meta), document_sha256), path)

    @classmethod
    def open(cls, path: str | Path, fingerprint: str | None = None, writable: bool = False) -> SpanStore:
        path = Path(path)
        return cls(_native.Store.open(str(path), fingerprint, writable), path)

    @staticmethod
    def peek(path: str | Path) -> dict[str, Any] | None:
        """What `path` holds, before anything is written there: None for a new or empty directory
        (or one holding only a store's leftovers), else its store.json header as it is (any
        version; {} if unreadable). Refuses a file, and a directory of other files: acre never
        writes its store among someone else's files."""
        text = _native.store_peek(str(Path(path)))
        return json.loads(text) if text else None

    @property
    def info(self) -> dict[str, Any]:
        """store.json as it stands."""
        return json.loads(self._core.info_json())

    @property
    def core(self) -> _native.Store:
        """The core's store (the span index reads its entries through it)."""
        return self._core

    @property
    def reps(self) -> np.ndarray:
        """Representative keys of every span as stored: [spans, Lp, Hkv, R, D] float16, read from
        spans.bin into a new array (the session's span index holds them in the core)."""
        reps = np.empty((self.span_count, *self.meta.reps_shape), dtype=np.float16)
        self._core.read_reps(0, self.span_count, reps)
        return reps

    # ---- write --------------------------------------------------------------------------------
    @property
    def span_count(self) -> int:
        return len(self.starts)

    @property
    def tokens(self) -> int:
        return self.starts[-1] + self.lengths[-1] if self.starts else 0

    def append_span(
        self, start: int, tokens: np.ndarray, k: np.ndarray, v: np.ndarray, reps: np.ndarray
    ) -> None:
        """Append one span: n <= S tokens, k/v [L, Hkv, n, D], reps [Lp, Hkv, R, D]."""
        kv = (np.ascontiguousarray(k, np.float32), np.ascontiguousarray(v, np.float32))
        self._core.append(
            int(start),
            np.ascontiguousarray(tokens, np.int32),
            *(kv if self.meta.keeps_kv else (None, None)),
            np.ascontiguousarray(reps, np.float32),
        )
        self.starts.append(int(start))
        self.lengths.append(len(tokens))

    def finish(self, pot_state: dict[str, np.ndarray], extra: dict[str, Any]) -> None:
        """Mark the document complete and save the pot as it stands after ingest."""
        self._core.finish(_arrays(pot_state), json.dumps(extra))

    # ---- resume -------------------------------------------------------------------------------
    def checkpoint(self, state: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Save what an interrupted ingest needs to continue: the spans written so far are made
        durable first, then `state` (pot, partial span) and `info` replace the last checkpoint."""
        self._core.checkpoint(_arrays(state), json.dumps(info))

    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The last checkpoint of an unfinished ingest, or None if there is none (or it is unusable:
        then ingest starts again from the beginning, which loses nothing but time)."""
        saved = self._core.load_checkpoint()
        return None if saved is None else (dict(saved[0]), json.loads(saved[1]))

    def truncate(self, spans: int) -> None:
        """Keep the first `spans` spans (resume: what follows the checkpoint is written again)."""
        self._core.truncate(spans)
        del self.starts[spans:], self.lengths[spans:]

    def load_pot(self) -> dict[str, np.ndarray]:
        return dict(self._core.load_pot())

    # ---- read ---------------------------------------------------------------------------------
    def _length(self, span: int) -> int:
        return self.lengths[span] if 0 <= span < self.span_count else 0  # else the core refuses it

    def read(self, span: int) -> Span:
        n, (layers, heads, _, dim) = self._length(span), self.meta.kv_shape
        tokens = np.empty(n, dtype=np.int32)
        k = np.empty((layers, heads, n, dim), dtype=np.float32) if self.meta.keeps_kv else tokens[:0]
        v = np.empty_like(k)
        self._core.read(span, tokens, k, v)
        return Span(index=span, start=self.starts[span], tokens=tokens, k=k, v=v)

    def read_tokens(self, span: int) -> tuple[int, np.ndarray]:
        """(first token index, token ids) of a span, reading only the record's header and ids."""
        tokens = np.empty(self._length(span), dtype=np.int32)
        self._core.read_tokens(span, tokens)
        return self.starts[span], tokens

    @property
    def bytes_read(self) -> int:
        """Bytes read from spans.bin for spans served (settable, to count from a moment on)."""
        return self._core.bytes_read() - self._read_base

    @bytes_read.setter
    def bytes_read(self, value: int) -> None:
        self._read_base = self._core.bytes_read() - value

    @property
    def disk_bytes(self) -> int:
        return self._core.disk_bytes()

    def close(self) -> None:
        self._core.close()  # releases the writer's lock

    def __del__(self) -> None:
        if "_core" in self.__dict__:
            self._core.close()
