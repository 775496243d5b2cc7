"""L2: the document's full key/value activations, in flash-backed storage.

A store is a directory:
    store.json   format, version, the fingerprint of the model/bundle it belongs to, span geometry
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
                 unchanged): they give no sources
    resume.npz   while ingest runs: the last checkpoint (pot, partial span, next token), so an
                 interrupted ingest continues from there instead of from the start

Only chosen spans are read (pread), each verified against its crc32. A crash at any moment leaves a
store that reopens consistent: a trailing partial record is discarded, and so is a last record whose
checksum fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acre.errors import AcreError

FORMAT = "acre-l2"
VERSION = 1
MAGIC = b"ACRS"
RESUME = "resume.npz"
HEADER = struct.Struct("<4sIIQII")  # magic, span, n_tokens, start token, crc32 of all, crc32 of the token ids
CODECS = ("none", "float16", "int8")  # none: ids and index only (what re-encoding refill reads)


class StoreError(AcreError):
    """An L2 store is missing, corrupt, of another version, or belongs to another model/bundle."""


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

    def _layout(self) -> list[tuple[str, tuple[int, ...], str]]:
        kv_dtype = "int8" if self.codec == "int8" else "float16"
        parts = [("tokens", (self.span_tokens,), "int32")]
        if self.keeps_kv:
            parts += [("k", self.kv_shape, kv_dtype), ("v", self.kv_shape, kv_dtype)]
        if self.codec == "int8":
            scale_shape = self.kv_shape[:3]
            parts += [("k_scale", scale_shape, "float16"), ("v_scale", scale_shape, "float16")]
        parts.append(("reps", self.reps_shape, "float16"))
        return parts

    @property
    def payload_bytes(self) -> int:
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in self._layout())

    @property
    def record_bytes(self) -> int:
        return HEADER.size + self.payload_bytes

    def reps_offset(self) -> int:
        """Byte offset of the representative keys inside a record (they come last)."""
        return self.record_bytes - int(np.prod(self.reps_shape)) * 2


@dataclass
class Span:
    index: int
    start: int  # document token index of the first token
    tokens: np.ndarray  # [n] int32
    k: np.ndarray  # [L, Hkv, n, D] float32
    v: np.ndarray


def _encode(meta: StoreMeta, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if meta.codec == "float16":
        return x.astype(np.float16), None
    scale = np.abs(x).max(axis=-1) / 127.0
    scale = np.where(scale == 0, 1.0, scale).astype(np.float16)
    q = np.clip(np.rint(x / scale[..., None].astype(np.float32)), -127, 127).astype(np.int8)
    return q, scale


def _decode(values: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    out = values.astype(np.float32)
    return out if scale is None else out * scale[..., None].astype(np.float32)


class SpanStore:
    """One document's L2. Create with `create`, reopen with `open`; `append_span` writes, `read` reads."""

    def __init__(
        self, path: Path, meta: StoreMeta, info: dict[str, Any], writable: bool, lock: int = -1
    ) -> None:
        self.path = path
        self.meta = meta
        self.info = info
        self.starts: list[int] = []
        self.lengths: list[int] = []
        # [capacity, Lp, Hkv, R, D]: row i is span i's representatives. One array, grown rarely and
        # sized up front by `reserve`, so the index can take a view instead of a stacked copy
        # (a copy is a transient 2x of the index at the end of ingest: +18 MB at 128k tokens).
        self._reps = np.zeros((0, *meta.reps_shape), dtype=np.float16)
        self.bytes_read = 0
        self.writable = writable
        self._lock = lock if lock >= 0 or not writable else _lock_for_writing(path)
        self._fd = os.open(path / "spans.bin", (os.O_RDWR | os.O_APPEND) if writable else os.O_RDONLY)

    # ---- create / open ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, meta: StoreMeta, document_sha256: str | None = None) -> SpanStore:
        """A new, empty store at `path` (what was there is replaced). `document_sha256` names the
        document from the start, so an interrupted ingest is not mistaken for a free directory."""
        if meta.codec not in CODECS:
            raise StoreError(f"unknown L2 codec {meta.codec!r}; choose {CODECS}")
        path = Path(path)
        _refuse_non_directory(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the store directory ({exc.strerror or exc})") from exc
        lock = _lock_for_writing(path)  # before touching anything another writer may own
        try:
            for name in ("spans.bin", "pot.npz"):
                (path / name).unlink(missing_ok=True)
            (path / "spans.bin").touch()
            info = {"format": FORMAT, "version": VERSION, "meta": asdict(meta), "complete": False}
            if document_sha256 is not None:
                info["document_sha256"] = document_sha256
            _write_json(path / "store.json", info)
        except BaseException:
            os.close(lock)
            raise
        return cls(path, meta, info, writable=True, lock=lock)

    @classmethod
    def open(cls, path: str | Path, fingerprint: str | None = None, writable: bool = False) -> SpanStore:
        path = Path(path)
        _refuse_non_directory(path)
        if not path.exists():
            raise StoreError(f"{path}: no such store; ingest a document into it first")
        header_path = path / "store.json"
        if not header_path.is_file() or not (path / "spans.bin").is_file():
            raise StoreError(f"{path}: not an L2 store (store.json or spans.bin missing)")
        try:
            info = json.loads(header_path.read_text(encoding="utf-8"))
            if not isinstance(info, dict) or info.get("format") != FORMAT:
                raise StoreError(f"{header_path}: not an acre L2 store")
            if info.get("version") != VERSION:
                raise StoreError(
                    f"{header_path}: L2 format version {info.get('version')!r}, expected {VERSION}"
                )
            meta = _meta_from(info)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{header_path}: unreadable store header ({exc})") from exc
        if fingerprint is not None and meta.fingerprint != fingerprint:
            raise StoreError(
                f"{path}: this document was ingested with another model or bundle; ingest it again"
            )
        store = cls(path, meta, info, writable)
        store._scan()
        return store

    @staticmethod
    def peek(path: str | Path) -> dict[str, Any] | None:
        """What `path` holds, before anything is written there: None for a new or empty directory
        (or one holding only a store's leftovers), else its store.json header as it is (any
        version; {} if unreadable). Refuses a file, and a directory of other files: acre never
        writes its store among someone else's files."""
        path = Path(path)
        _refuse_non_directory(path)
        if not path.is_dir():
            return None
        foreign = sorted(p.name for p in path.iterdir() if not _is_store_file(p.name))
        if foreign:
            raise StoreError(
                f"{path}: not an acre L2 store (it holds {', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); give --store a new or empty directory"
            )
        if not (path / "store.json").is_file():
            return None
        try:
            info = json.loads((path / "store.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def _scan(self) -> None:
        """Index the complete records; drop a trailing partial or corrupt record."""
        size = os.fstat(self._fd).st_size
        rb = self.meta.record_bytes
        count = size // rb
        if count and not self._verify(count - 1):
            count -= 1  # a torn last write: its checksum fails
        rep_off = self.meta.reps_offset()
        rep_len = rb - rep_off
        self.reserve(count)
        for i in range(count):
            magic, span, n, start, _, _ = HEADER.unpack(os.pread(self._fd, HEADER.size, i * rb))
            if magic != MAGIC or span != i or not 0 < n <= self.meta.span_tokens:
                count = i  # records after a damaged header cannot be trusted to be in order
                break
            self.starts.append(start)
            self.lengths.append(n)
            raw = os.pread(self._fd, rep_len, i * rb + rep_off)
            self._reps[i] = np.frombuffer(raw, dtype=np.float16).reshape(self.meta.reps_shape)
        if size != count * rb and self.writable:
            os.ftruncate(self._fd, count * rb)  # discard what is past the last good record

    @property
    def reps(self) -> np.ndarray:
        """Representative keys of every span: [spans, Lp, Hkv, R, D] float16 (the index, in RAM)."""
        return self._reps[: self.span_count]  # a view: valid until more spans are appended

    def reserve(self, spans: int) -> None:
        """Make room for `spans` spans' representatives (a document's length is known up front)."""
        if spans > len(self._reps):
            grown = np.zeros((spans, *self.meta.reps_shape), dtype=np.float16)
            grown[: self.span_count] = self._reps[: self.span_count]
            self._reps = grown

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
        meta, n = self.meta, len(tokens)
        if not 0 < n <= meta.span_tokens:
            raise StoreError(f"span of {n} tokens; spans hold 1..{meta.span_tokens}")
        if self.starts and self.lengths[-1] != meta.span_tokens:
            raise StoreError("only the last span of a document may be partial")
        parts: dict[str, np.ndarray] = {"tokens": np.zeros(meta.span_tokens, dtype=np.int32)}
        parts["tokens"][:n] = tokens
        for name, x in (("k", k), ("v", v)) if meta.keeps_kv else ():
            padded = np.zeros(meta.kv_shape, dtype=np.float32)
            padded[:, :, :n] = x
            parts[name], scale = _encode(meta, padded)
            if scale is not None:
                parts[name + "_scale"] = scale
        parts["reps"] = reps.astype(np.float16)
        payload = b"".join(
            np.ascontiguousarray(parts[name], dtype=dtype).tobytes() for name, _, dtype in meta._layout()
        )
        span = self.span_count
        token_crc = zlib.crc32(parts["tokens"].tobytes())
        head = HEADER.pack(MAGIC, span, n, start, 0, token_crc)
        crc = zlib.crc32(payload, zlib.crc32(head))
        record = HEADER.pack(MAGIC, span, n, start, crc, token_crc) + payload
        try:
            written = os.write(self._fd, record)
        except OSError as exc:
            written, cause = -1, exc
        if written != len(record):
            os.ftruncate(self._fd, span * meta.record_bytes)  # no partial record stays behind
            reason = f"{cause.strerror}" if written < 0 else f"short write, {written} of {len(record)} bytes"
            raise StoreError(
                f"{self.path / 'spans.bin'}: cannot write span {span} ({reason}); "
                f"the {span} spans before it are intact, ingest again to resume"
            )
        if span == len(self._reps):
            self.reserve(max(2 * span, 16))
        self._reps[span] = parts["reps"]
        self.starts.append(start)
        self.lengths.append(n)

    def finish(self, pot_state: dict[str, np.ndarray], extra: dict[str, Any]) -> None:
        """Mark the document complete and save the pot as it stands after ingest."""
        with _disk_errors(self.path / "pot.npz"):
            os.fsync(self._fd)
            _save_npz(self.path / "pot.npz", pot_state)
            self.info.update(complete=True, document_tokens=self.tokens, spans=self.span_count, **extra)
            self.info["pot_crc32"] = zlib.crc32((self.path / "pot.npz").read_bytes())
            _write_json(self.path / "store.json", self.info)
        (self.path / RESUME).unlink(missing_ok=True)

    # ---- resume -------------------------------------------------------------------------------
    def checkpoint(self, state: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Save what an interrupted ingest needs to continue: the spans written so far are made
        durable first, then `state` (pot, partial span) and `info` replace the last checkpoint."""
        with _disk_errors(self.path / RESUME):
            os.fsync(self._fd)
            blob = json.dumps({**info, "spans": self.span_count}).encode()
            _save_npz(self.path / RESUME, {"info": np.frombuffer(blob, dtype=np.uint8), **state})

    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The last checkpoint of an unfinished ingest, or None if there is none (or it is unusable:
        then ingest starts again from the beginning, which loses nothing but time)."""
        path = self.path / RESUME
        if self.info.get("complete") or not path.is_file():
            return None
        try:
            with np.load(path) as saved:
                arrays = {name: saved[name] for name in saved.files}
            info = json.loads(arrays.pop("info").tobytes())
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
            return None
        if not 0 <= info.get("spans", -1) <= self.span_count:
            return None  # refers to spans that did not survive
        return arrays, info

    def truncate(self, spans: int) -> None:
        """Keep the first `spans` spans (resume: what follows the checkpoint is written again)."""
        if not self.writable:
            raise StoreError(f"{self.path}: opened read-only")
        os.ftruncate(self._fd, spans * self.meta.record_bytes)
        del self.starts[spans:], self.lengths[spans:]

    def load_pot(self) -> dict[str, np.ndarray]:
        if not self.info.get("complete"):
            raise StoreError(f"{self.path}: ingest did not finish; ingest the document again")
        data = (self.path / "pot.npz").read_bytes() if (self.path / "pot.npz").is_file() else b""
        if zlib.crc32(data) != self.info.get("pot_crc32"):
            raise StoreError(f"{self.path / 'pot.npz'}: missing or corrupt (checksum mismatch)")
        with np.load(self.path / "pot.npz") as saved:
            return {name: saved[name] for name in saved.files}

    # ---- read ---------------------------------------------------------------------------------
    def _record(self, span: int) -> bytes:
        rb = self.meta.record_bytes
        raw = os.pread(self._fd, rb, span * rb)
        self.bytes_read += len(raw)
        return raw

    def _verify(self, span: int) -> bool:
        raw = self._record(span)
        if len(raw) != self.meta.record_bytes:
            return False
        magic, idx, n, start, crc, token_crc = HEADER.unpack_from(raw)
        head = HEADER.pack(magic, idx, n, start, 0, token_crc)
        return magic == MAGIC and zlib.crc32(raw[HEADER.size :], zlib.crc32(head)) == crc

    def read(self, span: int) -> Span:
        if not self.meta.keeps_kv:
            raise StoreError(
                f"{self.path}: this store keeps no K/V (codec none); refill_mode reuse needs a store "
                "ingested with codec float16 or int8"
            )
        if not 0 <= span < self.span_count:
            raise StoreError(f"{self.path}: span {span} does not exist ({self.span_count} spans)")
        raw = self._record(span)
        magic, idx, n, start, crc, token_crc = HEADER.unpack_from(raw)
        head = HEADER.pack(magic, idx, n, start, 0, token_crc)
        if magic != MAGIC or idx != span or zlib.crc32(raw[HEADER.size :], zlib.crc32(head)) != crc:
            raise StoreError(f"{self.path / 'spans.bin'}: span {span} fails its checksum; not served")
        arrays: dict[str, np.ndarray] = {}
        offset = HEADER.size
        for name, shape, dtype in self.meta._layout():
            count = int(np.prod(shape))
            arrays[name] = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)
            offset += count * np.dtype(dtype).itemsize
        k = _decode(arrays["k"], arrays.get("k_scale"))[:, :, :n]
        v = _decode(arrays["v"], arrays.get("v_scale"))[:, :, :n]
        return Span(index=span, start=start, tokens=arrays["tokens"][:n].copy(), k=k, v=v)

    def read_tokens(self, span: int) -> tuple[int, np.ndarray]:
        """(first token index, token ids) of a span, reading only the record's header and ids."""
        if not 0 <= span < self.span_count:
            raise StoreError(f"{self.path}: span {span} does not exist ({self.span_count} spans)")
        size = HEADER.size + 4 * self.meta.span_tokens
        raw = os.pread(self._fd, size, span * self.meta.record_bytes)
        self.bytes_read += len(raw)
        magic, idx, n, start, _, token_crc = HEADER.unpack_from(raw)
        ids = raw[HEADER.size :]
        if magic != MAGIC or idx != span or n > self.meta.span_tokens or zlib.crc32(ids) != token_crc:
            raise StoreError(f"{self.path / 'spans.bin'}: span {span} fails its checksum; not served")
        return start, np.frombuffer(ids, dtype=np.int32, count=n).copy()

    @property
    def disk_bytes(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock >= 0:
            os.close(self._lock)  # releases the writer's lock
            self._lock = -1

    def __del__(self) -> None:
        self.close()


MAX_RECORD_BYTES = 1 << 30  # a span record larger than this is a damaged header, not a real store


def _meta_from(info: dict[str, Any]) -> StoreMeta:
    """The store's geometry from its header, every field checked (it comes from a file)."""
    meta = info["meta"]
    if not isinstance(meta, dict) or set(meta) != {f for f in StoreMeta.__dataclass_fields__}:
        raise ValueError("meta must have exactly the fields of StoreMeta")
    for name in ("span_tokens", "layers", "kv_heads", "head_dim", "probe_layers", "reps"):
        if type(meta[name]) is not int or not 0 < meta[name] < 1 << 20:
            raise ValueError(f"meta.{name} must be a positive integer")
    if not isinstance(meta["fingerprint"], str) or meta["codec"] not in CODECS:
        raise ValueError("meta.fingerprint must be text and meta.codec one of " + ", ".join(CODECS))
    if type(info.get("complete", False)) is not bool:
        raise ValueError("complete must be true or false")
    result = StoreMeta(**meta)
    if result.record_bytes > MAX_RECORD_BYTES:
        raise ValueError(f"span records of {result.record_bytes} bytes")
    return result


STORE_FILES = ("store.json", "spans.bin", "pot.npz", RESUME, "lock")


def _is_store_file(name: str) -> bool:
    """A file a store writes, its temporary files included (a kill can leave one behind)."""
    return name in STORE_FILES or name.endswith((".tmp", ".tmp.npz"))


def _refuse_non_directory(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise StoreError(
            f"{path}: is a file, not a store directory; give --store a directory (new, empty, or "
            "holding a document ingested before)"
        )


def _lock_for_writing(path: Path) -> int:
    """An exclusive lock on the store for its one writer; a second writer fails at once, clearly."""
    fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"{path}: another process is writing this document; try again when it is done"
        ) from None
    return fd


@contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only medium) into a StoreError; the temporary file goes,
    the file it was to replace stays as it was."""
    try:
        yield
    except OSError as exc:
        for tmp in path.parent.glob("*.tmp*"):
            tmp.unlink(missing_ok=True)
        raise StoreError(f"{path}: cannot write ({exc.strerror or exc}); the store is unchanged") from exc


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz beside `path` and move it into place, durable, in one step."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


class SpanBuffer:
    """Collects a stream of token K/V into spans of S tokens and appends each full span to the store."""

    def __init__(self, store: SpanStore, probe_layers: list[int], sink_tokens: int = 0) -> None:
        from acre.runtime.span_index import representatives

        self._representatives = representatives
        self.store = store
        self.probe_layers = probe_layers
        self.sink_tokens = sink_tokens
        meta = store.meta
        self.tokens = np.zeros(meta.span_tokens, dtype=np.int32)
        self.k = np.zeros(meta.kv_shape, dtype=np.float32)
        self.v = np.zeros(meta.kv_shape, dtype=np.float32)
        self.fill = 0
        self.start = store.tokens

    def add(self, tokens: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
        done = 0
        while done < len(tokens):
            take = min(len(tokens) - done, len(self.tokens) - self.fill)
            self.tokens[self.fill : self.fill + take] = tokens[done : done + take]
            self.k[:, :, self.fill : self.fill + take] = k[:, :, done : done + take]
            self.v[:, :, self.fill : self.fill + take] = v[:, :, done : done + take]
            self.fill += take
            done += take
            if self.fill == len(self.tokens):
                self.flush()

    def flush(self) -> None:
        if not self.fill:
            return
        n = self.fill
        k = self.k[:, :, :n]
        # The sinks stay in the pot for good, and their keys (large norms, matched by every query)
        # would make their span win every search: they are left out of its representatives.
        skip = min(max(self.sink_tokens - self.start, 0), n - 1)
        reps = self._representatives(k[self.probe_layers][:, :, skip:], self.store.meta.reps)
        self.store.append_span(self.start, self.tokens[:n], k, self.v[:, :, :n], reps)
        self.start += n
        self.fill = 0
