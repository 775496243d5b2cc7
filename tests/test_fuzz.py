"""Fuzzing the readers of untrusted files: the bundle manifest and the L2 store.

The corpus is the committed shared vectors (tests/vectors: a valid bundle, the bad manifests, two
L2 stores); hypothesis mutates them (JSON edits, byte flips, truncation, junk) with a fixed seed.
Whatever the input, the only exception that may escape is the project's own error type, with a
message; never an IndexError, a numpy error or a crash.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acre.bundle import Bundle
from acre.errors import AcreError
from acre.runtime.l2 import SpanStore
from tests.make_vectors import VECTORS

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
GOOD_MANIFEST = json.loads((VECTORS / "bundle" / "manifest.json").read_text())
BAD_MANIFESTS = [case["manifest"] for case in json.loads((VECTORS / "bad_manifests.json").read_text())]
STORES = ["l2_float16", "l2_int8"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


@st.composite
def edited_json(draw: st.DrawFn, documents: list[Any]) -> Any:
    doc = json.loads(json.dumps(draw(st.sampled_from(documents))))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        if not where:
            doc = draw(json_values)
            continue
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(json_values)
        if not isinstance(doc, dict | list):
            break
    return doc


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "append", "splice"]))
        if action == "flip" and out:
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del out[draw(st.integers(0, len(out))) :]
        elif action == "append":
            out += draw(st.binary(max_size=64))
        elif out:
            i = draw(st.integers(0, len(out)))
            out[i:i] = draw(st.binary(max_size=16))
    return bytes(out)


def open_bundle(manifest_text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(VECTORS / "bundle", copy)
        raw = manifest_text.encode() if isinstance(manifest_text, str) else manifest_text
        (copy / "manifest.json").write_bytes(raw)
        try:
            bundle = Bundle.open(copy)
            bundle.geometry, bundle.chunk, bundle.pot, bundle.eos_token_ids  # noqa: B018
        except AcreError as exc:
            assert str(exc)


@FUZZ
@given(edited_json([GOOD_MANIFEST, *BAD_MANIFESTS]))
def test_fuzzed_manifest_fields_raise_only_bundle_errors(manifest):
    open_bundle(json.dumps(manifest))


@FUZZ
@given(damaged_bytes((VECTORS / "bundle" / "manifest.json").read_bytes()))
def test_fuzzed_manifest_bytes_raise_only_bundle_errors(raw):
    open_bundle(raw)


def read_store(name: str, spans: bytes | None = None, header: str | bytes | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "store"
        shutil.copytree(VECTORS / name, copy)
        if spans is not None:
            (copy / "spans.bin").write_bytes(spans)
        if header is not None:
            (copy / "store.json").write_bytes(header.encode() if isinstance(header, str) else header)
        try:
            store = SpanStore.open(copy)
            store.reps  # noqa: B018
            for i in range(store.span_count + 1):  # one past the end must be refused too
                for read in (store.read, store.read_tokens):
                    try:
                        read(i)
                    except AcreError as exc:
                        assert str(exc)
            store.load_pot() if store.info.get("complete") else None
            store.close()
        except AcreError as exc:
            assert str(exc)


@FUZZ
@given(
    st.sampled_from(STORES).flatmap(
        lambda n: st.tuples(st.just(n), damaged_bytes((VECTORS / n / "spans.bin").read_bytes()))
    )
)
def test_fuzzed_span_files_raise_only_store_errors(case):
    read_store(case[0], spans=case[1])


@FUZZ
@given(
    st.sampled_from(STORES).flatmap(
        lambda n: st.tuples(st.just(n), edited_json([json.loads((VECTORS / n / "store.json").read_text())]))
    )
)
def test_fuzzed_store_headers_raise_only_store_errors(case):
    read_store(case[0], header=json.dumps(case[1]))


@FUZZ
@given(
    st.sampled_from(STORES).flatmap(
        lambda n: st.tuples(st.just(n), damaged_bytes((VECTORS / n / "store.json").read_bytes()))
    )
)
def test_fuzzed_store_header_bytes_raise_only_store_errors(case):
    read_store(case[0], header=case[1])
