"""The L2 span store: round trips, partial reads, crash consistency, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from acre.runtime.l2 import RECORD_HEADER_BYTES, SpanStore, StoreError, StoreMeta
from acre.runtime.span_index import SpanIndex, representatives

S, L, HKV, D = 8, 2, 2, 4


def meta(codec: str = "float16", fingerprint: str = "model-a") -> StoreMeta:
    return StoreMeta(
        fingerprint=fingerprint,
        span_tokens=S,
        layers=L,
        kv_heads=HKV,
        head_dim=D,
        probe_layers=1,
        reps=2,
        codec=codec,
    )


def fill(store: SpanStore, tokens: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 1000, tokens)
    k = rng.standard_normal((L, HKV, tokens, D)).astype(np.float32)
    v = rng.standard_normal((L, HKV, tokens, D)).astype(np.float32)
    for start in range(0, tokens, S):  # spans of S tokens, the last shorter, as the session cuts them
        rows = slice(start, min(start + S, tokens))
        reps = representatives(k[[1]][:, :, rows], store.meta.reps)  # probe layer 1
        store.append_span(start, ids[rows], k[:, :, rows], v[:, :, rows], reps)
    return ids, k, v


@pytest.mark.parametrize("codec,tol", [("float16", 2e-3), ("int8", 3e-2)])
def test_span_store_round_trip(tmp_path, codec, tol):
    store = SpanStore.create(tmp_path, meta(codec))
    ids, k, v = fill(store, 3 * S + 3)
    assert store.span_count == 4 and store.lengths == [S, S, S, 3] and store.tokens == 3 * S + 3
    for i in range(store.span_count):
        span = store.read(i)
        rows = slice(i * S, i * S + store.lengths[i])
        assert span.start == i * S
        assert np.array_equal(span.tokens, ids[rows])
        assert np.abs(span.k - k[:, :, rows]).max() < tol * max(1, np.abs(k).max())
        assert np.abs(span.v - v[:, :, rows]).max() < tol * max(1, np.abs(v).max())
        assert np.array_equal(store.read_tokens(i)[1], ids[rows])


def test_reopened_store_serves_the_same_spans_and_index(tmp_path):
    store = SpanStore.create(tmp_path, meta())
    fill(store, 2 * S + 1)
    reps = store.reps.copy()
    store.close()
    again = SpanStore.open(tmp_path, fingerprint="model-a")
    assert again.span_count == 3 and np.array_equal(again.reps, reps)
    assert np.array_equal(again.read(2).tokens, store_tokens(tmp_path, 2))


def store_tokens(path, span):
    return SpanStore.open(path).read(span).tokens


def test_only_chosen_spans_are_read(tmp_path):
    store = SpanStore.create(tmp_path, meta())
    fill(store, 10 * S)
    store.bytes_read = 0
    store.read(7)
    assert store.bytes_read == store.meta.record_bytes
    store.read_tokens(3)
    assert store.bytes_read == store.meta.record_bytes + RECORD_HEADER_BYTES + 4 * S


def test_store_of_another_model_is_refused(tmp_path):
    store = SpanStore.create(tmp_path, meta(fingerprint="model-a"))
    fill(store, S)
    with pytest.raises(StoreError, match="another model or bundle"):
        SpanStore.open(tmp_path, fingerprint="model-b")


def test_store_of_another_version_is_refused(tmp_path):
    import json

    SpanStore.create(tmp_path, meta())
    info = json.loads((tmp_path / "store.json").read_text())
    info["version"] = 7
    (tmp_path / "store.json").write_text(json.dumps(info))
    with pytest.raises(StoreError, match="version 7"):
        SpanStore.open(tmp_path)


def test_truncating_the_last_record_at_every_byte_reopens_consistent(tmp_path):
    store = SpanStore.create(tmp_path / "ref", meta())
    ids, _, _ = fill(store, 3 * S)
    rb = store.meta.record_bytes
    data = (tmp_path / "ref" / "spans.bin").read_bytes()
    store.close()
    target = tmp_path / "cut"
    SpanStore.create(target, meta()).close()
    for cut in range(2 * rb, 3 * rb):  # every length that tears the last record
        (target / "spans.bin").write_bytes(data[:cut])
        reopened = SpanStore.open(target, writable=True)
        assert reopened.span_count == 2, cut
        assert np.array_equal(reopened.read(1).tokens, ids[S : 2 * S])
        assert (target / "spans.bin").stat().st_size == 2 * rb  # the torn tail is discarded
        reopened.close()


def test_a_corrupt_span_is_never_served(tmp_path):
    store = SpanStore.create(tmp_path, meta())
    fill(store, 3 * S)
    store.close()
    data = bytearray((tmp_path / "spans.bin").read_bytes())
    rb = SpanStore.open(tmp_path).meta.record_bytes
    data[rb + 100] ^= 0x40  # inside span 1's K/V
    (tmp_path / "spans.bin").write_bytes(bytes(data))
    store = SpanStore.open(tmp_path)
    with pytest.raises(StoreError, match="span 1 fails its checksum"):
        store.read(1)
    assert store.read(0).tokens.shape == (S,)


def test_a_corrupt_last_record_is_dropped_on_reopen(tmp_path):
    store = SpanStore.create(tmp_path, meta())
    fill(store, 3 * S)
    store.close()
    data = bytearray((tmp_path / "spans.bin").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "spans.bin").write_bytes(bytes(data))
    assert SpanStore.open(tmp_path).span_count == 2


def test_a_second_writer_is_refused_while_the_first_writes(tmp_path):
    import subprocess
    import sys

    first = SpanStore.create(tmp_path, meta())
    fill(first, S)
    script = (
        "from acre.runtime.l2 import SpanStore, StoreMeta\n"
        f"SpanStore.create({str(tmp_path)!r}, StoreMeta('model-a', {S}, {L}, {HKV}, {D}, 1, 2))\n"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert other.returncode != 0 and "another process is writing this document" in other.stderr
    assert SpanStore.open(tmp_path).span_count == 1  # the first writer's span is intact
    first.close()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)  # free once it is done


def test_the_span_index_reads_the_representatives_from_the_store_into_the_core(tmp_path):
    """The store keeps no copy of the representatives in RAM (it held a second one until ingest's
    end): the span index reads them from spans.bin into the core, as the store wrote them."""
    store = SpanStore.create(tmp_path / "doc", meta())
    _, k, _ = fill(store, 5 * S)
    assert not any(isinstance(value, np.ndarray) for value in vars(store).values())
    index = SpanIndex.from_store(store)
    want = np.stack([representatives(k[[1], :, i * S : (i + 1) * S], 2) for i in range(5)]).astype(np.float16)
    assert index.level_sizes == [5] and np.array_equal(index.level(0), want)
    assert np.array_equal(store.reps, want) and index.nbytes == want.nbytes
    fill(store, 3 * S, seed=1)  # more spans: a new index sees them
    assert SpanIndex.from_store(store).level_sizes == [8]
    store.close()
    assert np.array_equal(SpanIndex.from_store(SpanStore.open(tmp_path / "doc")).level(0)[:5], want)


def test_a_store_without_kv_keeps_ids_and_index_and_refuses_kv_reads(tmp_path):
    """Codec none (the default with re-encoding refill): records hold ids and representatives only,
    a tenth of a float16 record here, and asking it for K/V is a clear error, not zeros."""
    store = SpanStore.create(tmp_path / "none", meta("none"))
    ids, _, _ = fill(store, 3 * S + 3)
    with_kv = meta("float16")
    assert store.meta.record_bytes < with_kv.record_bytes / 4
    assert store.disk_bytes == 4 * store.meta.record_bytes
    assert np.array_equal(store.read_tokens(2)[1], ids[2 * S : 3 * S])
    with pytest.raises(StoreError, match="keeps no K/V"):
        store.read(0)
    reopened = SpanStore.open(tmp_path / "none")
    assert reopened.span_count == 4 and np.array_equal(reopened.reps, store.reps)


def test_float16_keeps_numpy_rounding_bit_for_bit(tmp_path):
    """The core converts K/V and representatives to float16 itself; it must round as numpy does
    (to nearest even), subnormals, overflow to inf and signed zeros included."""
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**32, (L, HKV, S, D), dtype=np.uint64).astype(np.uint32)
    k = bits.view(np.float32) / np.float32(2**60)  # exponents that land on every float16 range
    k[0, 0, 0] = [65519.0, 65520.0, 2.0**-25, -0.0]
    k = np.where(np.isfinite(k), k, 1.0).astype(np.float32)
    with np.errstate(over="ignore"):
        want, want_reps = k.astype(np.float16).astype(np.float32), k[:1, :, :2].astype(np.float16)
    assert (want == 0).any() and np.isinf(want).any() and ((want != 0) & (np.abs(want) < 2**-14)).any()
    store = SpanStore.create(tmp_path, meta())
    store.append_span(0, np.arange(S), k, -k, k[:1, :, :2])
    span = store.read(0)
    assert np.array_equal(span.k, want) and np.array_equal(np.signbit(span.k), np.signbit(want))
    assert np.array_equal(store.reps[0], want_reps)


def test_the_pot_snapshot_is_numpy_npz_both_ways(tmp_path):
    """pot.npz as the core writes it is what np.load reads, and a pot.npz np.savez wrote (a store of
    the Python store before the core) is what the core reads."""
    import json
    import zlib

    state = {
        "k": np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float16),
        "mask": np.array([True, False, True]),
        "kind": np.array([1, -2, 3], dtype=np.int8),
        "token": np.array([7, -1, 9], dtype=np.int64),
        "document_text": np.frombuffer("sources, naïvely".encode(), dtype=np.uint8),
        "empty": np.zeros((0, 2), dtype=np.int32),
    }
    store = SpanStore.create(tmp_path, meta())
    fill(store, S)
    store.finish(state, {"policy": "acre"})
    store.close()
    with np.load(tmp_path / "pot.npz") as saved:
        assert sorted(saved.files) == sorted(state)
        assert all(np.array_equal(saved[n], a) and saved[n].dtype == a.dtype for n, a in state.items())
    np.savez(tmp_path / "pot.npz", **state)  # numpy's own writer: zip64 extra fields, its timestamps
    info = json.loads((tmp_path / "store.json").read_text())
    info["pot_crc32"] = zlib.crc32((tmp_path / "pot.npz").read_bytes())
    (tmp_path / "store.json").write_text(json.dumps(info))
    pot = SpanStore.open(tmp_path).load_pot()
    assert all(np.array_equal(pot[n], a) and pot[n].dtype == a.dtype for n, a in state.items())
    assert pot["k"].shape == (2, 3, 5) and pot["empty"].shape == (0, 2)


def test_bad_input_is_refused_by_name(tmp_path):
    from acre.errors import InputError

    store = SpanStore.create(tmp_path, meta())
    ids = np.arange(S)
    k = np.zeros((L, HKV, S, D), dtype=np.float32)
    reps = np.zeros((1, HKV, 2, D), dtype=np.float32)
    with pytest.raises(InputError, match=r"k must be float32 \[2, 2, 8, 4\], not float32 \[2, 2, 4, 8\]"):
        store.append_span(0, ids, k.transpose(0, 1, 3, 2), k, reps)
    with pytest.raises(InputError, match=r"reps must be float32 \[1, 2, 2, 4\]"):
        store.append_span(0, ids, k, k, reps[:, :1])
    with pytest.raises(InputError, match="span of 9 tokens; spans hold 1..8"):
        store.append_span(0, np.arange(S + 1), np.zeros((L, HKV, S + 1, D)), k, reps)
    with pytest.raises(InputError, match="dtype the store does not keep"):
        store.checkpoint({"k": np.zeros(3, dtype=np.float64)}, {})
    with pytest.raises(InputError, match="spans are numbered from 0"):
        store.read(-1)
    assert store.span_count == 0 and store.disk_bytes == 0
    store.close()
    with pytest.raises(StoreError, match="the L2 store is closed"):
        store.read(0)
