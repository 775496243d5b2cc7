"""The bi-layer cache on tiny models: bounded pot, compact positions, CCD, refill, reopen."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from acre.exporter.export import export_bundle
from acre.runtime.l2 import StoreError
from acre.runtime.pot import SlotKind
from acre.runtime.session import Session
from tests.conftest import make_tiny_model, make_tokenizer

NEEDLE = list(range(300, 308))  # eight ids that never occur in the filler


def filler(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(20, 280, n).tolist()


def document(n: int, depth: float, seed: int = 0) -> list[int]:
    ids = filler(n, seed)
    at = int(n * depth)
    return ids[:at] + NEEDLE + ids[at:]


@pytest.fixture(scope="module")
def lexical_bundle(tmp_path_factory):
    """A tiny Llama whose layer-0 head 0 matches identical tokens (its query and key projections are
    equal), so a question that repeats the needle's tokens can find the needle's span."""
    tokenizer = make_tokenizer()
    model = make_tiny_model(
        len(tokenizer),
        hidden_size=128,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=128,
        num_hidden_layers=3,
    )
    with torch.no_grad():
        attn = model.model.layers[0].self_attn
        attn.q_proj.weight[:64] = attn.k_proj.weight * 4
    out = tmp_path_factory.mktemp("lexical")
    model.save_pretrained(out / "ckpt")
    tokenizer.save_pretrained(out / "ckpt")
    return export_bundle(out / "bundle", [], str(out / "ckpt"), chunk=16, pot=512, signal_heads=[(0, 0)])


@pytest.fixture
def session(lexical_bundle):
    return Session(lexical_bundle, engine="torch")


class Recorder:
    """Wraps an engine and remembers the largest position and pot buffer addresses it was given."""

    def __init__(self, engine, pot):
        self.engine, self.name, self.pot = engine, engine.name, pot
        self.max_position, self.buffers = 0, set()

    def step(self, inputs):
        visible = self.pot.positions[inputs.pot_mask]
        self.max_position = max(self.max_position, int(inputs.positions.max()), int(visible.max(initial=0)))
        self.buffers.add((inputs.pot_k.ctypes.data, inputs.pot_v.ctypes.data))
        return self.engine.step(inputs)


@pytest.mark.parametrize("depth", [0.1, 0.5, 0.9])
def test_the_span_holding_an_injected_sequence_is_refilled(session, depth):
    ids = document(1500, depth)
    session.ingest_ids(ids)
    list(session.generate(NEEDLE + [5, 6], max_new_tokens=2))
    needle_span = (ids.index(NEEDLE[0]) + len(NEEDLE) // 2) // session.span_tokens
    assert needle_span in session.last.spans
    refilled = session.pot.token[session.slots_of(SlotKind.REFILL)]
    assert np.isin(np.arange(ids.index(NEEDLE[0]), ids.index(NEEDLE[0]) + 8), refilled).all()


def test_document_longer_than_the_window_never_shows_an_unseen_position(session):
    recorder = Recorder(session.engine, session.pot)
    session.engine = recorder
    n = session.ingest_ids(filler(3000))  # the tiny model's window is 1024
    list(session.generate([7, 8, 9], max_new_tokens=5))
    assert n > session.geometry.window
    assert recorder.max_position < session.pot.capacity + session.chunk <= session.geometry.window


def test_pot_buffers_are_never_reallocated(session):
    recorder = Recorder(session.engine, session.pot)
    session.engine = recorder
    before = (session.pot.k.ctypes.data, session.pot.v.ctypes.data)
    session.ingest_ids(document(2000, 0.3))
    list(session.generate(NEEDLE, max_new_tokens=4))
    list(session.generate([9, 10, 11], max_new_tokens=4))
    assert recorder.buffers == {before}
    assert (session.pot.k.ctypes.data, session.pot.v.ctypes.data) == before


def test_refilled_spans_are_in_document_order(session):
    session.ingest_ids(document(2000, 0.6))
    list(session.generate(NEEDLE, max_new_tokens=1))
    assert session.last.spans == sorted(session.last.spans) and len(session.last.spans) >= 2
    slots = session.slots_of(SlotKind.REFILL)
    slots = slots[np.argsort(session.pot.positions[slots])]
    tokens = session.pot.token[slots]
    assert np.all(np.diff(tokens) > 0)  # ascending positions follow ascending document order
    assert session.last.bytes_read > 0 and session.last.read_s > 0  # what the profile reports


def test_pot_regions_stay_within_their_sizes(session):
    session.ingest_ids(filler(2500))
    layout = session.layout
    assert len(session.slots_of(SlotKind.L1)) == layout.l1
    assert len(session.slots_of(SlotKind.SINK)) == layout.sink
    assert len(session.slots_of(SlotKind.RECENT)) <= layout.recent
    assert layout.total == session.pot.capacity


@pytest.mark.parametrize("policy", ["streaming", "infinipot"])
def test_bounded_policies_keep_what_they_promise(lexical_bundle, policy):
    s = Session(lexical_bundle, engine="torch", policy=policy)
    ids = filler(1200)
    s.ingest_ids(ids)
    list(s.generate([5, 6, 7], max_new_tokens=3))
    kept = np.sort(s.pot.token[s.slots_of(SlotKind.SINK, SlotKind.L1, SlotKind.RECENT)])
    assert s.store is None  # no L2, no refill
    if policy == "streaming":
        sinks, recent = kept[: s.layout.sink], kept[s.layout.sink :]
        assert sinks.tolist() == list(range(s.layout.sink))
        assert recent.tolist() == list(range(len(ids) - len(recent), len(ids)))
    else:
        assert len(s.slots_of(SlotKind.L1)) == s.layout.l1


def test_an_ingested_document_reopens_in_another_process(lexical_bundle, tmp_path):
    store = tmp_path / "doc"
    ids = document(1500, 0.4)
    script = textwrap.dedent(f"""
        from acre.runtime.session import Session
        Session({str(lexical_bundle)!r}, engine="torch").ingest_ids({ids!r}, store={str(store)!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    reopened = Session(lexical_bundle, engine="torch")
    assert reopened.open_document(store) == len(ids)
    here = Session(lexical_bundle, engine="torch")
    here.ingest_ids(ids)
    assert list(reopened.generate(NEEDLE, max_new_tokens=6)) == list(here.generate(NEEDLE, max_new_tokens=6))
    assert reopened.last.spans == here.last.spans


def test_a_store_from_another_bundle_is_refused(lexical_bundle, tiny_bundle, tmp_path):
    Session(lexical_bundle, engine="torch").ingest_ids(filler(400), store=tmp_path / "doc")
    with pytest.raises(StoreError, match="another model or bundle"):
        Session(tiny_bundle, engine="torch").open_document(tmp_path / "doc")


@pytest.mark.parametrize(
    "switch",
    [
        {"use_attention": False},
        {"use_index": False},
        {"use_probes": False},
        {"use_tree": False},
        {"refill_mode": "reuse"},
    ],
)
def test_each_ablation_changes_only_its_part_and_still_answers(lexical_bundle, switch):
    s = Session(lexical_bundle, engine="torch", **switch)
    s.ingest_ids(document(1500, 0.5))
    answer = list(s.generate(NEEDLE, max_new_tokens=3))
    assert answer and s.last.spans
    assert getattr(s.policy, next(iter(switch))) == next(iter(switch.values()))


class ReencodeRecorder:
    """Remembers, for every step, the positions of the visible pot slots and of the chunk rows."""

    def __init__(self, engine, pot):
        self.engine, self.name, self.calls, self.pot = engine, engine.name, [], pot

    def step(self, inputs):
        self.calls.append((self.pot.positions[inputs.pot_mask].copy(), inputs.positions.copy()))
        return self.engine.step(inputs)


def test_re_encoding_shows_each_refilled_token_once_at_its_own_place_and_never_the_question(session):
    session.ingest_ids(document(2000, 0.5))
    recorder = ReencodeRecorder(session.engine, session.pot)
    session.engine = recorder
    question = NEEDLE + [5, 6]
    list(session.generate(question, max_new_tokens=1))
    refilled = len(session.slots_of(SlotKind.REFILL))
    assert refilled > 2 * session.chunk  # the refill takes several re-encoding steps
    first_prefill = -(-len(question) // session.chunk)
    reencode = recorder.calls[first_prefill : first_prefill + -(-refilled // session.chunk)]
    for visible, rows in reencode:
        # every entry it sees sits before the rows, each at a position of its own: no stale
        # position 0 for earlier parts of the refill, no question tokens
        assert len(np.unique(visible)) == len(visible)
        assert visible.max() < rows.min()


class PotRecorder:
    """Remembers the pot keys, mask and positions every step was given."""

    def __init__(self, engine, pot):
        self.engine, self.name, self.pot, self.pots = engine, engine.name, pot, []

    def step(self, inputs):
        self.pots.append(
            (np.array(inputs.pot_k, copy=True), inputs.pot_mask.copy(), self.pot.positions.copy())
        )
        return self.engine.step(inputs)


def test_a_question_leaves_the_pot_bit_for_bit_as_ingest_left_it(lexical_bundle):
    """An answer moves the recent window after the refilled spans; the next question must see its keys
    as ingest left them, not rotated there and back (float32 rounds), or answers depend on what was
    asked before."""
    ids = document(2000, 0.5)
    asked, fresh = Session(lexical_bundle, engine="torch"), Session(lexical_bundle, engine="torch")
    asked.ingest_ids(ids), fresh.ingest_ids(ids)
    list(asked.generate(NEEDLE + [5, 6], max_new_tokens=2))
    assert asked.last.spans  # a refill happened, and with it the move
    for s in (asked, fresh):
        s.engine = PotRecorder(s.engine, s.pot)
    question = [9, 10, 11, *NEEDLE[:3]]
    answers = [list(s.generate(question, max_new_tokens=3)) for s in (asked, fresh)]
    assert answers[0] == answers[1]
    (k, mask, at), (k_fresh, mask_fresh, at_fresh) = asked.engine.pots[0], fresh.engine.pots[0]
    assert np.array_equal(mask, mask_fresh) and np.array_equal(at[mask], at_fresh[mask_fresh])
    assert np.array_equal(k[..., mask, :], k_fresh[..., mask_fresh, :])  # bit for bit


def test_lexical_scores_are_bm25_over_span_token_ids():
    from acre.runtime.lexical import K1, B, LexicalIndex

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, 300).tolist()
    index = LexicalIndex(ids, 64)
    query = [3, 7, 7, 49, 1000]  # repeats count once; a token the document lacks adds nothing
    spans = [ids[i : i + 64] for i in range(0, 300, 64)]
    mean = np.mean([len(s) for s in spans])
    want = np.zeros(len(spans))
    for t in (3, 7, 49):
        df = sum(t in s for s in spans)
        idf = np.log((len(spans) - df + 0.5) / (df + 0.5) + 1)
        for j, s in enumerate(spans):
            tf = s.count(t)
            want[j] += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(s) / mean))
    assert np.allclose(index.scores(query), want)
    ids[130:133] = [777, 778, 779]  # a rare sequence in span 2
    assert int(np.argmax(LexicalIndex(ids, 64).scores([777, 779, 3]))) == 2


def test_a_lexical_outlier_is_not_outvoted_by_bm25_spread_over_every_span():
    """The 32k needle, in numbers: attention and index point elsewhere, every span shares a few
    words with the question, and one span matches it by many standard deviations."""
    from acre.runtime.selection import choose_spans, combine_scores, standardised

    rng = np.random.default_rng(1)
    spans, needle = 500, 251
    attention = np.zeros(spans)
    attention[[479, 4, 463]] = [1.1, 0.6, 0.5]
    index_z = rng.normal(0, 0.4, spans)
    index_z[[305, 311]] = [1.5, 1.4]
    lexical = np.abs(rng.normal(2.3, 1.9, spans))
    lexical[needle] = 22.8
    z = standardised(lexical)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    chosen = choose_spans(combine_scores(attention, index_z, lexical), 6, 0.9, 2, 1)
    assert needle in chosen and chosen == sorted(chosen)
    assert np.all(standardised(np.full(7, 3.0)) == 0)  # constant scores carry no signal, no NaN


def test_l2_keeps_kv_only_when_the_refill_reads_them(lexical_bundle, tmp_path):
    reencode = Session(lexical_bundle, engine="torch")
    reuse = Session(lexical_bundle, engine="torch", refill_mode="reuse")
    ids = document(1500, 0.5)
    reencode.ingest_ids(ids, store=tmp_path / "ids-only")
    reuse.ingest_ids(ids, store=tmp_path / "with-kv")
    assert reencode.store.meta.codec == "none" and reuse.store.meta.codec == "float16"
    per_token = reencode.store.disk_bytes / len(ids)
    assert per_token < reuse.store.disk_bytes / len(ids) / 10
    for s in (reencode, reuse):  # both answer from their refills
        assert list(s.generate(NEEDLE + [5, 6], max_new_tokens=2)) and s.last.spans
