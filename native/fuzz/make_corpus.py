"""The fuzz targets' seed corpus (native/fuzz/corpus/<target>/), derived from tests/vectors and
tests/conftest: valid files and invalid ones, each small. Run from the repository root with the venv's Python:

    .venv/bin/python native/fuzz/make_corpus.py [--smollm2 build/smollm2-android/tokenizer/tokenizer.json]

The stores and snapshots are written by the native core (acre._native, as built by `make setup`), and
one snapshot by np.savez. --smollm2 adds a trimmed copy of the built-in model's real tokenizer.json
(its added tokens and first ids, the merges among them); without it that seed is left as it is.
Reproducers of findings are added by hand (named crash-*) and are not touched here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from acre import _native  # noqa: E402

VECTORS = ROOT / "tests" / "vectors"
CORPUS = Path(__file__).resolve().parent / "corpus"
S, L, H, D, LP, R = 4, 2, 2, 4, 2, 2  # tests/vectors' L2 geometry (the spans and store targets use it)
P = 16  # the pot target's pot: L, H, P, D


def put(target: str, name: str, data: bytes | str) -> None:
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


# ---- manifest.json


def manifests() -> None:
    text = (VECTORS / "bundle" / "manifest.json").read_text()
    good = json.loads(text)
    put("manifest", "valid.json", text)
    put("manifest", "truncated.json", text[: len(text) // 2])
    put("manifest", "not-an-object.json", "[1, 2, 3]\n")
    for case in json.loads((VECTORS / "bad_manifests.json").read_text()):
        put("manifest", f"bad-{case['name'].replace(' ', '-')}.json", dumps(case["manifest"]))

    # a signature the callback engine takes: version 2, one pot input per layer, and a second engine
    signed = json.loads(text)
    signed["step"]["inputs"] = ["tokens", "positions", "pot_mask", "last_index", "pot_k_0", "pot_k_1"]
    signed["step"]["inputs"] += ["pot_v_0", "pot_v_1", "pot_positions"]
    signed["step"]["outputs"] = ["logits", "k_new", "v_new", "pot_attention", "q_probe"]
    signed["programs"]["onnx"] = {"file": "program.bin", "methods": {"prefill": 16}}
    put("manifest", "valid-signature.json", dumps(signed))
    # version 1: two pot inputs, names as objects, float16, chunk 1 (one method)
    v1 = json.loads(text)
    v1["version"] = 1
    v1["step"].update(chunk=1, kv_dtype="float16")
    v1["step"]["inputs"] = [{"name": n} for n in ["tokens", "positions", "pot_k", "pot_v", "pot_mask"]]
    v1["step"]["outputs"] = [{"name": "logits"}, {"name": "k_new"}, {"name": "v_new"}]
    v1["programs"]["executorch"]["methods"] = {"decode": 1}
    put("manifest", "valid-version-1.json", dumps(v1))
    unknown = json.loads(dumps(signed))
    unknown["step"]["inputs"].append("pot_k_2")  # past the layers: not a tensor the core knows
    put("manifest", "bad-step-input.json", dumps(unknown))
    methods = json.loads(dumps(signed))
    methods["programs"]["executorch"]["methods"] = {"prefill": 0}
    put("manifest", "bad-methods.json", dumps(methods))
    heads = json.loads(text)
    heads["step"]["signal_heads"] = [[1, 4]]
    put("manifest", "bad-signal-heads.json", dumps(heads))
    assert good["format"] == "acre-bundle"


# ---- tokenizer.json


def small_tokenizer() -> dict[str, Any]:
    """native/tests/test_core.cpp's: byte-level BPE over every byte, five merges, one special token."""
    vocab: dict[str, int] = {"<|im_end|>": 0}
    shifted = 256
    for b in range(256):
        printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE
        vocab[chr(b if printable else shifted)] = len(vocab)
        shifted += 0 if printable else 1
    merges = [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["\u0120", "w"]]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    return {
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<|im_end|>", "special": True, "normalized": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges},
    }


def tokenizers(smollm2: Path | None) -> None:
    from tests.conftest import make_tokenizer  # the tests' tiny Llama's tokenizer (trained, 400 ids)

    tiny = json.loads(make_tokenizer().backend_tokenizer.to_str())
    put("tokenizer", "tiny.json", json.dumps(tiny, ensure_ascii=False))
    small = small_tokenizer()
    put("tokenizer", "small.json", json.dumps(small, ensure_ascii=False))
    old = json.loads(json.dumps(small))
    old["model"]["merges"] = [" ".join(m) for m in old["model"]["merges"]]  # the older "a b" form
    old["model"].update(unk_token="<|im_end|>", fuse_unk=True, ignore_merges=True, dropout=0.0)
    put("tokenizer", "merges-as-strings.json", json.dumps(old, ensure_ascii=False))
    gaps = json.loads(json.dumps(small))
    gaps["added_tokens"].append({"id": 400, "content": "<|endoftext|>", "special": True})
    gaps["model"]["vocab"] = {t: i for t, i in gaps["model"]["vocab"].items() if i % 50}  # ids missing
    gaps["model"]["merges"] = [
        m for m in gaps["model"]["merges"] if all(x in gaps["model"]["vocab"] for x in m)
    ]
    put("tokenizer", "id-gaps.json", json.dumps(gaps, ensure_ascii=False))

    def refused(name: str, edit: Any) -> None:
        t = json.loads(json.dumps(small))
        edit(t)
        put("tokenizer", f"bad-{name}.json", json.dumps(t, ensure_ascii=False))

    refused("normalizer", lambda t: t.update(normalizer={"type": "NFC"}))
    refused("unigram", lambda t: t["model"].update(type="Unigram"))
    refused("wordpiece", lambda t: t["model"].update(type="WordPiece", continuing_subword_prefix="##"))
    refused("metaspace", lambda t: t.update(pre_tokenizer={"type": "Metaspace", "replacement": "\u2581"}))
    refused("prefix-space", lambda t: t["pre_tokenizer"].update(add_prefix_space=True))
    refused("byte-fallback", lambda t: t["model"].update(byte_fallback=True))
    refused("dropout", lambda t: t["model"].update(dropout=0.1))
    refused("lstrip", lambda t: t["added_tokens"][0].update(lstrip=True))
    refused("merge-outside", lambda t: t["model"]["merges"].append(["q", "zz"]))
    refused("unk-outside", lambda t: t["model"].update(unk_token="<unk>"))
    refused("big-id", lambda t: t["model"]["vocab"].update({"x y": 1 << 30}))
    put("tokenizer", "bad-not-json.json", json.dumps(small)[:300])
    put("tokenizer", "bad-stand-in.json", (VECTORS / "bundle" / "tokenizer" / "tokenizer.json").read_bytes())

    if smollm2 is not None:
        real = json.loads(smollm2.read_text())
        keep = {t: i for t, i in real["model"]["vocab"].items() if i < 700}
        for added in real["added_tokens"]:
            keep[added["content"]] = added["id"]
        merges = []
        for m in real["model"]["merges"]:
            a, b = m.split(" ") if isinstance(m, str) else m
            if a in keep and b in keep and a + b in keep:
                merges.append(m)
        real["model"]["vocab"], real["model"]["merges"] = keep, merges
        put("tokenizer", "smollm2-trimmed.json", json.dumps(real, ensure_ascii=False))


# ---- spans.bin and store.json


def spans_and_stores(scratch: Path) -> None:
    layout = json.loads((VECTORS / "l2.json").read_text())
    for store in layout["stores"]:
        data = (VECTORS / store["dir"] / "spans.bin").read_bytes()
        codec = store["dir"].removeprefix("l2_")
        put("spans", f"{codec}.bin", data)
        for cut in store["truncations"]:
            put("spans", f"{codec}-cut-{cut['truncate_to']}.bin", data[: cut["truncate_to"]])
        for flip in store["bit_flips"]:
            damaged = bytearray(data)
            damaged[flip["flip_byte"]] ^= flip["xor"]
            put("spans", f"{codec}-flip-{flip['flip_byte']}.bin", bytes(damaged))
        put("store", f"{codec}.json", (VECTORS / store["dir"] / "store.json").read_bytes())

    # codec none, written by the core with the same geometry
    rng = np.random.default_rng(18)
    none = _native.Store.create(str(scratch / "none"), "vectors", S, L, H, D, LP, R, "none", None)
    for start, n in [(0, S), (S, S), (2 * S, 2)]:
        tokens = np.arange(start, start + n, dtype=np.int32)
        none.append(start, tokens, None, None, rng.standard_normal((LP, H, R, D)).astype(np.float32))
    none.close()
    put("spans", "none.bin", (scratch / "none" / "spans.bin").read_bytes())

    # the store fuzz_store.cpp makes (float16: spans of 4, 4 and 2 tokens, finished): its store.json
    made = _native.Store.create(str(scratch / "made"), "vectors", S, L, H, D, LP, R, "float16", None)
    ids = np.array([5, 6, 7, 8], dtype=np.int32)
    k = np.full((L, H, S, D), 0.5, dtype=np.float32)
    reps = np.full((LP, H, R, D), 0.25, dtype=np.float32)
    for n in [4, 4, 2]:
        made.append(made.span_count() * S, ids[:n].copy(), k[:, :, :n].copy(), k[:, :, :n].copy(), reps)
    made.finish([("document_ids", ids)], json.dumps({"policy": "acre"}))
    made.close()
    text = (scratch / "made" / "store.json").read_text()
    put("store", "finished.json", text)
    info = json.loads(text)

    def refused(name: str, edit: Any) -> None:
        bad = json.loads(json.dumps(info))
        edit(bad)
        put("store", f"bad-{name}.json", dumps(bad))

    refused("version", lambda i: i.update(version=2))
    refused("format", lambda i: i.update(format="acre-l3"))
    refused("no-meta", lambda i: i.pop("meta"))
    refused("extra-meta", lambda i: i["meta"].update(extra=1))
    refused("codec", lambda i: i["meta"].update(codec="bfloat16"))
    refused("dims", lambda i: i["meta"].update(span_tokens=0, head_dim=-4))
    refused("record-size", lambda i: i["meta"].update(span_tokens=1 << 19, layers=1 << 10))
    refused("probe-layers", lambda i: i["meta"].update(probe_layers=3))
    refused("complete", lambda i: i.update(complete="yes"))
    refused("pot-crc", lambda i: i.update(pot_crc32=-1))
    put("store", "bad-not-json.json", text[:40])


# ---- pot.npz and resume.npz


def pot_arrays(dtype: Any) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    used = 10
    kind = np.zeros(P, dtype=np.int8)
    kind[:used] = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    token = np.full(P, -1, dtype=np.int64)
    token[:used] = np.arange(used)
    mask = np.zeros(P, dtype=np.bool_)
    mask[:used] = True
    return [
        ("k", rng.standard_normal((L, H, P, D)).astype(dtype)),
        ("v", rng.standard_normal((L, H, P, D)).astype(dtype)),
        ("positions", np.where(np.arange(P) < used, np.arange(P), 0).astype(np.int64)),
        ("mask", mask),
        ("kind", kind),
        ("token", token),
    ]


def document(n: int) -> list[tuple[str, np.ndarray]]:
    text = b"The pass key is 12345. Remember it." * 2
    offsets = np.stack([np.arange(n), np.arange(n) + 1], axis=1).astype(np.int32)
    return [
        ("document_ids", np.arange(n, dtype=np.int32)),
        ("document_text", np.frombuffer(text, dtype=np.uint8).copy()),
        ("document_offsets", offsets),
    ]


def snapshots(scratch: Path) -> None:
    rng = np.random.default_rng(3)
    for name, dtype in [("float32", np.float32), ("float16", np.float16)]:
        store = _native.Store.create(str(scratch / name), "vectors", S, L, H, D, 1, 1, "none", None)
        store.finish(pot_arrays(dtype) + document(10), json.dumps({"policy": "acre"}))
        store.close()
        put("pot", f"pot-{name}.npz", (scratch / name / "pot.npz").read_bytes())

    # a checkpoint as the session writes it: its info, the pot, the span being filled
    store = _native.Store.create(str(scratch / "resume"), "vectors", S, L, H, D, 1, 1, "none", None)
    for start in [0, S]:
        store.append(
            start, np.arange(start, start + S, dtype=np.int32), None, None, np.ones((1, H, 1, D), np.float32)
        )
    span = [
        ("span_t", np.array([8, 9, 0, 0], dtype=np.int32)),
        ("span_k", rng.standard_normal((L, H, S, D)).astype(np.float32)),
        ("span_v", rng.standard_normal((L, H, S, D)).astype(np.float32)),
    ]
    info = {"next_token": 10, "fill": 2, "span_start": 8, "document_sha256": "0" * 64, "policy": "acre"}
    store.checkpoint(pot_arrays(np.float32) + span, json.dumps(info))
    store.close()
    resume = (scratch / "resume" / "resume.npz").read_bytes()
    put("pot", "resume.npz", resume)
    put("pot", "resume-cut.npz", resume[: len(resume) - 30])

    # what numpy writes (zip64 extra fields in the local headers), compressed (refused), and odd headers
    np.savez(scratch / "numpy.npz", **dict(pot_arrays(np.float32)))
    put("pot", "numpy-savez.npz", (scratch / "numpy.npz").read_bytes())
    np.savez_compressed(scratch / "deflated.npz", **dict(pot_arrays(np.float32)[2:]))
    put("pot", "bad-deflated.npz", (scratch / "deflated.npz").read_bytes())

    def zipped(name: str, entries: list[tuple[str, bytes]]) -> None:
        with zipfile.ZipFile(scratch / name, "w", zipfile.ZIP_STORED) as z:
            for entry, data in entries:
                # a fixed time: the same bytes on every run
                z.writestr(zipfile.ZipInfo(entry, date_time=(1980, 1, 1, 0, 0, 0)), data)
        put("pot", name, (scratch / name).read_bytes())

    def npy(array: np.ndarray, version: tuple[int, int] = (1, 0), fortran: bool = False) -> bytes:
        path = scratch / "array.npy"
        with open(path, "wb") as f:
            np.lib.format.write_array(f, np.asfortranarray(array) if fortran else array, version=version)
        return path.read_bytes()

    grid = np.arange(6, dtype=np.int32).reshape(2, 3)
    zipped("npy-version-2.npz", [("k.npy", npy(grid, (2, 0))), ("v.npy", npy(grid, (3, 0)))])
    zipped("bad-fortran.npz", [("k.npy", npy(grid, fortran=True))])
    zipped("bad-float64.npz", [("k.npy", npy(grid.astype(np.float64)))])
    zipped("bad-not-npy.npz", [("info.txt", b"not an array")])
    zipped("bad-two-named-k.npz", [("k.npy", npy(grid)), ("k.npy", npy(grid))])
    zipped(
        "scalar-and-empty.npz", [("s.npy", npy(np.int64(3))), ("e.npy", npy(np.zeros((0, 4), np.float16)))]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smollm2", type=Path, help="the built-in model's tokenizer.json, to trim")
    args = parser.parse_args()
    kept = {"smollm2-trimmed.json"} if args.smollm2 is None else set()
    for path in CORPUS.glob("*/*"):
        if not path.name.startswith("crash-") and path.name not in kept:
            path.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        manifests()
        tokenizers(args.smollm2)
        spans_and_stores(scratch)
        snapshots(scratch)
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"{sum(1 for p in CORPUS.rglob('*') if p.is_file())} files, {total} bytes under {CORPUS}")


if __name__ == "__main__":
    main()
