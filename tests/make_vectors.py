"""Shared test vectors: the runtime's formats and selection rules, which the native core's tests and the
Swift port of ios_demo/ reproduce exactly. Written by the runtime (the native core through acre._native):

    python -m tests.make_vectors          # rewrite tests/vectors/ after a deliberate format change

tests/test_vectors.py fails when the committed vectors differ from what the runtime writes now, so
a change to a format or a selection rule cannot land without the vectors (and so the tests that read them)
following it; float scores a case gives a `tolerance` for are held to it (the span index's and BM25's:
the core computes them in float64, numpy in float32 or with its own log). See tests/vectors/README.md
for what each file holds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from acre.budget import slots_for_budget
from acre.bundle import write_manifest
from acre.errors import InputError
from acre.geometry import Geometry
from acre.runtime.l2 import SpanStore, StoreError, StoreMeta
from acre.runtime.lexical import LexicalIndex
from acre.runtime.policies import Layout, make_policy
from acre.runtime.selection import choose_spans, combine_scores, refill_placement
from acre.runtime.span_index import SpanIndex, representatives

VECTORS = Path(__file__).parent / "vectors"
SEED = 20261125
GEOMETRY = Geometry(
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=4,
    hidden=16,
    intermediate=32,
    vocab=300,
    rope_theta=10000.0,
    rms_eps=1e-5,
    window=2048,
)
SMOLLM2 = Geometry(
    layers=30,
    heads=9,
    kv_heads=3,
    head_dim=64,
    hidden=576,
    intermediate=1536,
    vocab=49152,
    rope_theta=100000.0,
    rms_eps=1e-5,
    window=8192,
)


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _floats(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def write_bundle(out: Path) -> dict[str, Any]:
    """A small bundle: a stand-in program file (ports verify checksums, not programs) and tokenizer."""
    from acre.bundle import file_entries

    out.mkdir(parents=True)
    (out / "program.bin").write_bytes(bytes(range(256)) * 4)
    (out / "tokenizer").mkdir()
    (out / "tokenizer" / "tokenizer.json").write_text('{"model": "stand-in"}\n', encoding="utf-8")
    manifest = {
        "acre_version": "vectors",
        "model": {"source": "vectors", "architecture": "llama", "geometry": GEOMETRY.to_dict()},
        "step": {
            "chunk": 16,
            "pot": 256,
            "kv_dtype": "float32",
            "signal_heads": [[1, 2], [0, 0]],
            "probe_layers": [0, 1],
            "inputs": [],
            "outputs": [],
            "keys": "rotated",
            "rope_inv_freq": [1.0, 0.01],
        },
        "quantization": {"weights": "float32", "activations": "float32"},
        "programs": {"executorch": {"file": "program.bin", "methods": {"prefill": 16, "decode": 1}}},
        "tokenizer": {"dir": "tokenizer", "eos_token_ids": [2], "bos_token_id": 1},
        "files": file_entries(out, ["program.bin", "tokenizer"]),
    }
    write_manifest(out, manifest)
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def bad_manifests(good: dict[str, Any]) -> list[dict[str, Any]]:
    """Manifests every reader must refuse, each with the kind of error (shared by all ports)."""

    def edit(path: list[str], value: Any, delete: bool = False) -> dict[str, Any]:
        m = json.loads(json.dumps(good))
        node = m
        for key in path[:-1]:
            node = node[key]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return m

    sha = good["files"]["program.bin"]["sha256"]
    return [
        {"name": "other version", "error": "version", "manifest": edit(["version"], good["version"] + 1)},
        {"name": "not a bundle", "error": "format", "manifest": edit(["format"], "something")},
        {"name": "no geometry", "error": "field", "manifest": edit(["model", "geometry"], None, True)},
        {"name": "no pot", "error": "field", "manifest": edit(["step", "pot"], None, True)},
        {"name": "pot zero", "error": "field", "manifest": edit(["step", "pot"], 0)},
        {
            "name": "absolute path",
            "error": "path",
            "manifest": edit(["programs", "executorch", "file"], "/etc/passwd"),
        },
        {
            "name": "parent path",
            "error": "path",
            "manifest": edit(["files"], {"../outside": {"sha256": sha, "bytes": 1024}}),
        },
        {
            "name": "wrong checksum",
            "error": "checksum",
            "manifest": edit(["files", "program.bin", "sha256"], "0" * 64),
        },
        {"name": "wrong size", "error": "size", "manifest": edit(["files", "program.bin", "bytes"], 1023)},
        {
            "name": "missing file",
            "error": "missing",
            "manifest": edit(["files", "extra.bin"], {"sha256": sha, "bytes": 1024}),
        },
    ]


def write_store(out: Path, codec: str, rng: np.random.Generator) -> dict[str, Any]:
    """An L2 store of 3 spans (the last one partial) and what reading it must give."""
    meta = StoreMeta(
        fingerprint="vectors",
        span_tokens=4,
        layers=2,
        kv_heads=2,
        head_dim=4,
        probe_layers=2,
        reps=2,
        codec=codec,
    )
    store = SpanStore.create(out, meta)
    start = 0
    for n in (4, 4, 3):
        tokens = rng.integers(0, 300, n).astype(np.int32)
        k = rng.normal(size=(2, 2, n, 4)).astype(np.float32)
        v = rng.normal(size=(2, 2, n, 4)).astype(np.float32)
        store.append_span(start, tokens, k, v, representatives(k, meta.reps))
        start += n
    store.close()
    (out / "lock").unlink()
    store = SpanStore.open(out)
    spans, reps = [], store.reps
    for i in range(store.span_count):
        span = store.read(i)
        spans.append(
            {
                "start": span.start,
                "tokens": span.tokens.tolist(),
                "k": _floats(span.k),
                "v": _floats(span.v),
                "k_sha256": hashlib.sha256(np.ascontiguousarray(span.k, "<f4").tobytes()).hexdigest(),
                "v_sha256": hashlib.sha256(np.ascontiguousarray(span.v, "<f4").tobytes()).hexdigest(),
                "reps": _floats(reps[i]),
            }
        )
    rb = meta.record_bytes
    store.close()
    return {
        "dir": out.name,
        "record_bytes": rb,
        "span_count": len(spans),
        "spans": spans,
        # damage a copy of spans.bin like this; a reader opening it must then see what is stated
        "truncations": [_damaged(out, rb, truncate=size) for size in (rb * 3 - 1, rb * 2 + 7, rb, 5)],
        "bit_flips": [_damaged(out, rb, flip=offset) for offset in (rb + 30, rb + 60, 2 * rb + 60, 3)],
    }


def _damaged(store: Path, record_bytes: int, truncate: int = -1, flip: int = -1) -> dict[str, Any]:
    """Open a damaged copy of `store` with the Python reader and record what it serves."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "store"
        shutil.copytree(store, copy)
        data = bytearray((copy / "spans.bin").read_bytes())
        if truncate >= 0:
            del data[truncate:]
        if flip >= 0:
            data[flip] ^= 0x10
        (copy / "spans.bin").write_bytes(bytes(data))
        opened = SpanStore.open(copy)
        refused = []
        for i in range(opened.span_count):
            try:
                opened.read(i)
            except StoreError:
                refused.append(i)
        tokens_refused = []
        for i in range(opened.span_count):
            try:
                opened.read_tokens(i)
            except StoreError:
                tokens_refused.append(i)
        count = opened.span_count
        opened.close()
    case: dict[str, Any] = {"truncate_to": truncate} if truncate >= 0 else {"flip_byte": flip, "xor": 16}
    return {**case, "span_count": count, "read_refused": refused, "read_tokens_refused": tokens_refused}


def layout_cases() -> list[dict[str, Any]]:
    cases = []
    for name in ("streaming", "infinipot", "acre"):
        for capacity, chunk, span in ((1024, 128, 64), (256, 16, 64), (2048, 128, 64), (256, 128, 64)):
            case: dict[str, Any] = {"policy": name, "capacity": capacity, "chunk": chunk, "span": span}
            try:
                layout = Layout.plan(make_policy(name), capacity, chunk, span)
                case["layout"] = {
                    k: getattr(layout, k) for k in ("sink", "l1", "recent", "refill", "question")
                }
            except InputError:
                case["error"] = "too small"
            cases.append(case)
    return cases


def budget_cases() -> list[dict[str, Any]]:
    cases = []
    for budget in (8 << 20, 12 << 20, 45 << 20, 100 << 20, 1 << 30):
        case: dict[str, Any] = {"geometry": "smollm2", "budget_bytes": budget, "kv_dtype": "float32"}
        try:
            case["slots"] = slots_for_budget(SMOLLM2, budget)
        except InputError:
            case["error"] = "too small"
        cases.append(case)
    return cases


def selection_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases = []
    for n, budget, mass, min_spans, neighbors in (
        (20, 6, 0.9, 2, 1),
        (50, 6, 0.5, 2, 1),
        (50, 12, 0.9, 2, 2),
        (8, 3, 0.9, 1, 0),
        (1, 6, 0.9, 2, 1),
    ):
        attention = rng.random(n) ** 4
        attention[rng.random(n) < 0.3] = 0.0
        z = rng.normal(size=n)
        z[rng.random(n) < 0.25] = -np.inf  # spans the tree search did not reach
        z[0] = z[-1] if n > 1 else z[0]  # a tie
        for parts in ("both", "attention", "index"):
            scores = combine_scores(
                attention if parts != "index" else None, z if parts != "attention" else None
            )
            chosen = choose_spans(scores, budget, mass, min_spans, neighbors)
            cases.append(
                {
                    "attention": _floats(attention) if parts != "index" else None,
                    "index_z": [None if np.isneginf(x) else float(x) for x in z]
                    if parts != "attention"
                    else None,
                    "scores": _floats(scores),
                    "budget": budget,
                    "mass": mass,
                    "min_spans": min_spans,
                    "neighbors": neighbors,
                    "chosen": chosen,
                }
            )
    for n, budget in ((20, 6), (50, 12)):  # with (c), the lexical scores
        attention, z, lexical = rng.random(n) ** 4, rng.normal(size=n), rng.random(n) ** 3
        lexical[rng.random(n) < 0.5] = 0.0
        scores = combine_scores(attention, z, lexical)
        cases.append(
            {
                "attention": _floats(attention),
                "index_z": _floats(z),
                "lexical": _floats(lexical),
                "scores": _floats(scores),
                "budget": budget,
                "mass": 0.9,
                "min_spans": 2,
                "neighbors": 1,
                "chosen": choose_spans(scores, budget, 0.9, 2, 1),
            }
        )
    cases.append(
        {
            "attention": [0.0] * 5,
            "index_z": None,
            "scores": [0.0] * 5,
            "budget": 4,
            "mass": 0.9,
            "min_spans": 2,
            "neighbors": 1,
            "chosen": [],
        }
    )
    return cases


def placement_cases() -> list[dict[str, Any]]:
    starts, lengths = [0, 64, 128, 192, 256], [64, 64, 64, 64, 10]
    cases = []
    for spans, resident, free in (
        ([1, 3], set(range(32)) | set(range(200, 266)), list(range(400, 600))),
        ([0, 4], set(range(32)) | set(range(250, 266)), list(range(100, 180))),
        ([2], set(), [5, 9, *range(20, 90)]),
    ):
        slots, tokens = refill_placement(spans, starts, lengths, resident, np.asarray(free))
        cases.append(
            {
                "spans": spans,
                "starts": starts,
                "lengths": lengths,
                "resident": sorted(resident),
                "free_slots": free,
                "slots": slots.tolist(),
                "tokens": tokens.tolist(),
            }
        )
    return cases


def lexical_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    """BM25 span scores (acre/runtime/lexical.py): float64, compared within 1e-12."""
    cases = []
    for n, span, vocab in ((300, 64, 40), (1000, 64, 400), (130, 16, 20)):
        ids = rng.integers(0, vocab, n)
        query = [*rng.integers(0, vocab, 6).tolist(), vocab + 5]  # one token the document lacks
        cases.append(
            {
                "document_ids": ids.tolist(),
                "span_tokens": span,
                "query_ids": query,
                "scores": _floats(LexicalIndex(ids, span).scores(query)),
                "tolerance": 1e-12,
            }
        )
    return cases


def index_case(rng: np.random.Generator) -> dict[str, Any]:
    """The span index's tree search: which spans it reaches and their scores (float32 dot products,
    compared with a tolerance; the reached set must match exactly)."""
    spans, lp, hkv, r, d = 70, 2, 2, 2, 4
    reps = rng.normal(size=(spans, lp, hkv, r, d)).astype(np.float16)
    queries = rng.normal(size=(lp, 4, 3, d)).astype(np.float32)
    heads = [(1, 2), (0, 0)]
    index = SpanIndex.from_reps(reps, fanout=8)
    z = index.scores(queries, heads, beam=2, tree=True)
    flat = index.scores(queries, heads, tree=False)
    return {
        "fanout": 8,
        "beam": 2,
        "heads": [list(h) for h in heads],
        "reps_shape": list(reps.shape),
        "reps": _floats(reps),
        "queries_shape": list(queries.shape),
        "queries": _floats(queries),
        "levels": index.level_sizes,
        "level_reps": [_floats(index.level(depth)) for depth in range(1, len(index.level_sizes))],
        "tree_scores": [None if np.isneginf(x) else float(x) for x in z],
        "flat_scores": _floats(flat),
        "tolerance": 1e-4,
    }


def write_vectors(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # everything but the hand-written README is regenerated
        if old.is_dir():
            shutil.rmtree(old)
        elif old.name != "README.md":
            old.unlink()
    good = write_bundle(out / "bundle")
    _dump(out / "bad_manifests.json", bad_manifests(good))
    stores = [write_store(out / f"l2_{codec}", codec, rng) for codec in ("float16", "int8")]
    _dump(out / "l2.json", {"header_format": "<4sIIQII", "stores": stores})
    _dump(
        out / "selection.json",
        {
            "layouts": layout_cases(),
            "budgets": budget_cases(),
            "choose_spans": selection_cases(rng),
            "refill_placement": placement_cases(),
            "span_index": index_case(rng),
            "lexical": lexical_cases(rng),
        },
    )


if __name__ == "__main__":
    write_vectors(Path(sys.argv[1]) if len(sys.argv) > 1 else VECTORS)
    print(f"wrote {VECTORS if len(sys.argv) < 2 else sys.argv[1]}")
