"""Reliability of L2 ingest: crashes (SIGKILL), interrupted and resumed ingest, a full disk."""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from acre.runtime.l2 import SpanStore, StoreError
from acre.runtime.session import Session
from acre.runtime.sources import SourceMap
from benchmarks import crash


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return crash.tiny_bundle(tmp_path_factory.mktemp("crash"))


def test_sigkill_at_random_moments_never_serves_a_bad_span_and_resumes(bundle, tmp_path):
    header, results = crash.run_trials(bundle, trials=3, seed=7, tokens=1500, work=tmp_path)
    assert sum(r["killed_mid_ingest"] for r in results) >= 1  # the trials did interrupt something
    for r in results:
        assert r["wrong_spans_served"] == 0
        assert r["spans_identical_after_resume"] and r["answer_matches"]
        assert r["resumed_near_last_span"]


class Interrupt(Exception):
    pass


class StopAfter:
    """An engine that raises after `steps` steps: an ingest interrupted at a known point."""

    def __init__(self, engine, steps: int) -> None:
        self.engine, self.left, self.calls, self.name = engine, steps, 0, engine.name

    def step(self, inputs):
        self.calls += 1
        self.left -= 1
        if self.left < 0:
            raise Interrupt
        return self.engine.step(inputs)


def ingest(bundle, ids, store, steps=None, **kwargs):
    session = Session(bundle, engine="torch", checkpoint_tokens=64, **kwargs)
    if steps is not None:
        session.engine = StopAfter(session.engine, steps)
    session.ingest_ids(ids, store=store)
    return session


def test_an_interrupted_ingest_resumes_and_ends_identical(bundle, tmp_path):
    ids = crash.document(1200, seed=3)
    reference = ingest(bundle, ids, tmp_path / "ref")
    with pytest.raises(Interrupt):
        ingest(bundle, ids, tmp_path / "doc", steps=60)
    partial = SpanStore.open(tmp_path / "doc")
    assert 0 < partial.span_count < reference.store.span_count and not partial.info["complete"]
    partial.close()
    resumed = Session(bundle, engine="torch", checkpoint_tokens=64)
    counter = StopAfter(resumed.engine, 10**6)
    resumed.engine = counter
    resumed.ingest_ids(ids, store=tmp_path / "doc")
    assert resumed.resumed_from and resumed.resumed_from >= 60 * 12 - 64  # not from the start
    assert counter.calls < len(ids) // 12  # fewer steps than a whole ingest
    assert (tmp_path / "doc" / "spans.bin").read_bytes() == (tmp_path / "ref" / "spans.bin").read_bytes()
    for name in ("k", "v", "positions", "mask", "kind", "token"):
        assert np.array_equal(getattr(resumed.pot, name), getattr(reference.pot, name)), name
    question = [40, 41, 42, 43]
    assert list(resumed.generate(question, 6)) == list(reference.generate(question, 6))
    assert not (tmp_path / "doc" / "resume.npz").exists()  # a finished store keeps no checkpoint


def test_a_finished_document_is_reopened_not_ingested_again(bundle, tmp_path):
    ids = crash.document(600, seed=4)
    ingest(bundle, ids, tmp_path / "doc")
    again = Session(bundle, engine="torch")
    counter = StopAfter(again.engine, 10**6)
    again.engine = counter
    assert again.ingest_ids(ids, store=tmp_path / "doc") == len(ids)
    assert counter.calls == 0 and again.resumed_from == len(ids)
    other = crash.document(600, seed=5)  # another document in the same place: only when told to
    with pytest.raises(StoreError, match="already holds another document"):
        again.ingest_ids(other, store=tmp_path / "doc")
    assert again.ingest_ids(other, store=tmp_path / "doc", replace=True) == len(other) and counter.calls > 0
    assert again.resumed_from is None


def test_resume_refuses_a_checkpoint_of_another_document(bundle, tmp_path):
    with pytest.raises(Interrupt):
        ingest(bundle, crash.document(1200, seed=3), tmp_path / "doc", steps=40)
    other = crash.document(1200, seed=9)
    with pytest.raises(StoreError, match="another document .its ingest unfinished"):
        ingest(bundle, other, tmp_path / "doc")
    session = Session(bundle, engine="torch", checkpoint_tokens=64)
    session.ingest_ids(other, store=tmp_path / "doc", replace=True)
    assert session.resumed_from is None
    assert session.document_ids == other


@contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """Writes that would take any file past `nbytes` fail, as on a full disk (EFBIG where a full disk
    says ENOSPC). The kernel refuses them, so this reaches the native store's own error paths."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel ends the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_full_disk_while_writing_spans_is_a_clear_error_and_the_store_stays_usable(bundle, tmp_path):
    ids = crash.document(1200, seed=3)
    reference = ingest(bundle, ids, tmp_path / "ref", codec="float16")  # K/V kept: large records
    rb = reference.store.meta.record_bytes
    refused = r"spans.bin: cannot write span 11 .*intact, ingest again to resume"
    # the limit leaves room for 11 records and for a checkpoint (about 10 records' size)
    with pytest.raises(StoreError, match=refused), file_size_limit(11 * rb + rb // 2):
        ingest(bundle, ids, tmp_path / "doc", codec="float16")
    store = SpanStore.open(tmp_path / "doc")
    assert store.span_count == 11 and store.disk_bytes == 11 * store.meta.record_bytes  # no torn record
    for i in range(11):
        store.read_tokens(i)  # each span's ids verify against their checksum
    store.close()
    resumed = ingest(bundle, ids, tmp_path / "doc", codec="float16")
    assert resumed.resumed_from and resumed.store.span_count == -(-len(ids) // 64)
    assert (tmp_path / "doc" / "spans.bin").read_bytes() == (tmp_path / "ref" / "spans.bin").read_bytes()


def test_a_full_disk_while_saving_the_pot_leaves_an_unfinished_store_that_resumes(bundle, tmp_path):
    ids = crash.document(700, seed=3)
    # a long text makes pot.npz (pot + text) much larger than a checkpoint (pot + one span)
    text = SourceMap("x" * 600_000, np.zeros((len(ids), 2), dtype=np.int32))
    session = Session(bundle, engine="torch", checkpoint_tokens=64)
    refused = r"pot.npz: cannot write \(.*\); the store is unchanged"
    with pytest.raises(StoreError, match=refused), file_size_limit(500_000):
        session.ingest_ids(ids, store=tmp_path / "doc", source_map=text)
    session.store.close()
    assert not list((tmp_path / "doc").glob("*.tmp*"))
    with pytest.raises(StoreError, match="did not finish"):
        Session(bundle, engine="torch").open_document(tmp_path / "doc")
    resumed = Session(bundle, engine="torch", checkpoint_tokens=64)
    resumed.ingest_ids(ids, store=tmp_path / "doc", source_map=text)
    assert resumed.resumed_from  # from the last checkpoint, not from the start
    resumed.store.close()
    assert Session(bundle, engine="torch").open_document(tmp_path / "doc") == len(ids)
