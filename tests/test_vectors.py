"""The shared test vectors (tests/vectors/) are what the runtime (the native core) writes and reads today.

The core's C++ tests and the Swift port (ios_demo/) test against the committed vectors; these tests
make sure those vectors never drift from the core. (The JVM runs the core itself, through JNI:
native/jni.)"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import pytest

from acre.bundle import Bundle
from acre.errors import BundleError
from acre.runtime.l2 import SpanStore
from acre.runtime.lexical import LexicalIndex
from acre.runtime.policies import Layout, make_policy
from acre.runtime.selection import choose_spans, combine_scores, refill_placement
from acre.runtime.span_index import SpanIndex, representatives, select_probe_queries
from tests.make_vectors import VECTORS, write_vectors

# the words a BundleError names for each kind of bad manifest in bad_manifests.json
ERROR_WORDS = {
    "version": "version",
    "format": "format",
    "field": "field",
    "path": "outside",
    "checksum": "checksum",
    "size": "bytes",
    "missing": "missing",
}


def _same(committed: Any, fresh: Any, tolerance: float = 0.0) -> bool:
    """Equal JSON, floats within the `tolerance` of the case that holds them (exact elsewhere)."""
    if isinstance(committed, dict) and isinstance(fresh, dict):
        tolerance = committed.get("tolerance", tolerance)
        return committed.keys() == fresh.keys() and all(
            _same(committed[k], fresh[k], tolerance) for k in committed
        )
    if isinstance(committed, list) and isinstance(fresh, list):
        return len(committed) == len(fresh) and all(
            _same(a, b, tolerance) for a, b in zip(committed, fresh, strict=True)
        )
    if isinstance(committed, float) and isinstance(fresh, float) and tolerance:
        return abs(committed - fresh) <= tolerance
    return type(committed) is type(fresh) and committed == fresh


def test_committed_vectors_are_what_the_runtime_writes_now(tmp_path):
    write_vectors(tmp_path / "vectors")
    fresh = sorted(p.relative_to(tmp_path / "vectors") for p in (tmp_path / "vectors").rglob("*"))
    committed = sorted(p.relative_to(VECTORS) for p in VECTORS.rglob("*") if p.name != "README.md")
    assert fresh == committed
    for rel in fresh:
        if not (VECTORS / rel).is_file():
            continue
        old, new = (VECTORS / rel).read_bytes(), (tmp_path / "vectors" / rel).read_bytes()
        same = old == new or (rel.suffix == ".json" and _same(json.loads(old), json.loads(new)))
        assert same, (
            f"tests/vectors/{rel} changed: run `python -m tests.make_vectors`, then make the "
            "ios_demo port follow"
        )


def test_vector_bundle_opens_and_every_bad_manifest_is_refused_for_its_reason(tmp_path):
    assert Bundle.open(VECTORS / "bundle").pot == 256
    for case in json.loads((VECTORS / "bad_manifests.json").read_text()):
        copy = tmp_path / case["name"].replace(" ", "_")
        shutil.copytree(VECTORS / "bundle", copy)
        (copy / "manifest.json").write_text(json.dumps(case["manifest"]))
        with pytest.raises(BundleError, match=ERROR_WORDS[case["error"]]):
            Bundle.open(copy)


@pytest.mark.parametrize(
    "store", json.loads((VECTORS / "l2.json").read_text())["stores"], ids=lambda s: s["dir"]
)
def test_vector_stores_read_back_as_stated(store, tmp_path):
    shutil.copytree(VECTORS / store["dir"], tmp_path / "s")  # a reader may take the lock file
    opened = SpanStore.open(tmp_path / "s")
    assert opened.meta.record_bytes == store["record_bytes"]
    assert opened.span_count == store["span_count"]
    for i, want in enumerate(store["spans"]):
        span = opened.read(i)
        assert span.start == want["start"] and span.tokens.tolist() == want["tokens"]
        assert span.k.ravel().tolist() == want["k"] and span.v.ravel().tolist() == want["v"]
        assert opened.reps[i].astype(np.float64).ravel().tolist() == want["reps"]


def test_selection_vectors_hold():
    data = json.loads((VECTORS / "selection.json").read_text())
    for case in data["layouts"]:
        if "layout" in case:
            layout = Layout.plan(make_policy(case["policy"]), case["capacity"], case["chunk"], case["span"])
            assert {k: getattr(layout, k) for k in case["layout"]} == case["layout"]
    for case in data["choose_spans"]:
        z = None if case["index_z"] is None else [-np.inf if x is None else x for x in case["index_z"]]
        scores = combine_scores(
            None if case["attention"] is None else np.array(case["attention"]),
            None if z is None else np.array(z),
            None if case.get("lexical") is None else np.array(case["lexical"]),
        )
        assert scores.tolist() == case["scores"]
        assert (
            choose_spans(scores, case["budget"], case["mass"], case["min_spans"], case["neighbors"])
            == case["chosen"]
        )
    for case in data["lexical"]:
        got = LexicalIndex(case["document_ids"], case["span_tokens"]).scores(case["query_ids"])
        assert np.allclose(got, case["scores"], rtol=0, atol=case["tolerance"])
    case = data["span_index"]
    reps = np.array(case["reps"]).reshape(case["reps_shape"]).astype(np.float16)
    queries = np.array(case["queries"], dtype=np.float32).reshape(case["queries_shape"])
    index = SpanIndex.from_reps(reps, case["fanout"])
    assert index.level_sizes == case["levels"]
    for depth, want in enumerate(case["level_reps"], start=1):
        assert index.level(depth).astype(np.float64).ravel().tolist() == want  # the same keys picked
    heads = [tuple(h) for h in case["heads"]]
    tree = index.scores(queries, heads, beam=case["beam"], tree=True)
    assert np.isneginf(tree).tolist() == [z is None for z in case["tree_scores"]]  # the same spans reached
    want = np.array([-np.inf if z is None else z for z in case["tree_scores"]])
    assert np.allclose(tree, want, rtol=0, atol=case["tolerance"])
    flat = index.scores(queries, heads, tree=False)
    assert np.allclose(flat, case["flat_scores"], rtol=0, atol=case["tolerance"])
    for case in data["refill_placement"]:
        slots, tokens = refill_placement(
            case["spans"],
            case["starts"],
            case["lengths"],
            set(case["resident"]),
            np.array(case["free_slots"]),
        )
        assert slots.tolist() == case["slots"] and tokens.tolist() == case["tokens"]
        assert tokens.tolist() == sorted(tokens.tolist())  # document order


def test_choose_spans_respects_budget_order_and_mass():
    scores = np.array([0.0, 0.5, 0.05, 0.3, 0.1, 0.05])
    assert choose_spans(scores, budget=6, mass=0.5, min_spans=1, neighbors=0) == [1]
    assert choose_spans(scores, budget=6, mass=0.8, min_spans=1, neighbors=0) == [1, 3]
    assert choose_spans(scores, budget=2, mass=1.0, min_spans=1, neighbors=1) == [0, 1]
    assert choose_spans(np.zeros(4), budget=4, mass=0.9, min_spans=2, neighbors=1) == []


def _exact_exp(x: float) -> float:
    with localcontext() as ctx:  # 40 digits, rounded once: what the ports compute
        ctx.prec = 40
        return 0.0 if x == -np.inf else float(Decimal(x).exp())


def test_the_index_softmax_is_correctly_rounded_bit_for_bit():
    """The core's exp is correctly rounded, not the platform's (whose last bit varies by CPU):
    softmax(z) = exp(z - max) / their sequential sum, checked against 40-digit decimals."""
    rng = np.random.default_rng(7)
    z = np.concatenate([rng.normal(0, 3, 2000), rng.uniform(-745, 0, 200), [-np.inf, 0.0, -1e-300]])
    b = [_exact_exp(float(v)) for v in z - z.max()]
    total = 0.0
    for v in b:
        total += v
    assert combine_scores(None, z).tolist() == [v / total for v in b]


def test_representatives_and_probe_queries_are_those_numpy_picks():
    rng = np.random.default_rng(3)
    k = rng.normal(size=(2, 3, 13, 8)).astype(np.float32)
    order = np.argsort(-np.linalg.norm(k, axis=-1), axis=-1, kind="stable")
    for reps in (4, 20):  # fewer keys than reps: they repeat, largest first
        picks = order[..., np.arange(reps) % 13]
        assert np.array_equal(representatives(k, reps), np.take_along_axis(k, picks[..., None], axis=2))
    q = rng.normal(size=(2, 9, 21, 8)).astype(np.float32)
    bias = np.linalg.norm(q - q.mean(axis=2, keepdims=True), axis=-1).sum(axis=(0, 1))
    want = sorted(set(np.argsort(-bias, kind="stable")[:6].tolist()) | {20})  # ceil(21 / 4) and the last
    assert np.array_equal(select_probe_queries(q), q[:, :, want])
