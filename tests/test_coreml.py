"""The Core ML target on the tiny random Llama: a multifunction package with the step signature,
validated structurally (prediction needs macOS), and a validation that refuses disagreement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from acre.bundle import MANIFEST, Bundle
from acre.errors import BundleError
from acre.exporter.coreml import dequantized_weights, validate_coreml
from acre.signature import OUTPUT_NAMES, input_names
from tests.conftest import TINY_CHUNK, TINY_POT, make_tiny_model, make_tokenizer

ct = pytest.importorskip("coremltools", reason="coremltools is not installed: pip install 'acre[ios]'")

PACKAGE = "model.mlpackage"
SPEC_FILE = Path("Data/com.apple.CoreML/model.mlmodel")
INT32, FP32 = 131104, 65568  # Core ML ArrayFeatureType data types


@pytest.fixture(scope="module")
def ios_bundle(tiny_checkpoint_dir, tmp_path_factory) -> Path:
    from acre.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("ios") / "tiny-ios"
    return export_bundle(out, ["ios"], str(tiny_checkpoint_dir), chunk=TINY_CHUNK, pot=TINY_POT)


@pytest.fixture
def ios_copy(ios_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(ios_bundle, tmp_path / "bundle"))


def edit_manifest(root: Path, edit) -> None:
    manifest = json.loads((root / MANIFEST).read_text())
    edit(manifest)
    (root / MANIFEST).write_text(json.dumps(manifest))


def edit_spec(root: Path, edit) -> None:
    """Rewrite the package's model description (a protobuf) after `edit(spec)`."""
    path = root / PACKAGE / SPEC_FILE
    spec = ct.utils.load_spec(str(root / PACKAGE))
    edit(spec)
    path.write_bytes(spec.SerializeToString())


def mil_ops(spec, function: str):
    fn = spec.mlProgram.functions[function]
    return fn.block_specializations[fn.opset].operations


def test_bundle_lists_the_package_and_validation_passes(ios_bundle):
    bundle = Bundle.open(ios_bundle)  # every file of the package present with its sha256
    program = bundle.programs["coreml"]
    assert program["file"] == PACKAGE
    assert program["methods"] == {"prefill": TINY_CHUNK, "decode": 1}
    assert program["default_function"] == "prefill"
    assert (program["deployment_target"], program["compute_precision"]) == ("iOS18", "float16")
    compression = program["compression"]
    assert compression["dtype"] == "int8" and compression["weights"] > 0
    assert compression["scheme"] == "int8-per-channel" and "source_grids" not in compression
    # the bundle-level summary says what the program's weights are
    summary = {"scheme": "int8-per-channel", "weights": compression["summary"], "activations": "float16"}
    assert bundle.manifest["quantization"] == {"coreml": summary}
    assert compression["summary"].startswith(f"{compression['weights']} int8 per output channel")

    on_disk = {p.relative_to(ios_bundle).as_posix() for p in (ios_bundle / PACKAGE).rglob("*") if p.is_file()}
    listed = {name for name in bundle.manifest["files"] if name.startswith(PACKAGE + "/")}
    assert on_disk == listed
    assert {f"{PACKAGE}/Manifest.json", f"{PACKAGE}/{SPEC_FILE.as_posix()}"} <= listed
    assert all(len(bundle.manifest["files"][n]["sha256"]) == 64 for n in listed)

    report = validate_coreml(bundle)
    size = sum(bundle.manifest["files"][n]["bytes"] for n in listed)
    assert report["bytes"] == size == program["package_bytes"]
    assert report["functions"] == {"prefill": TINY_CHUNK, "decode": 1}
    assert report["compressed_weights"] == {"prefill": program["compression"]["weights"]} | {
        "decode": program["compression"]["weights"]
    }
    assert validate_coreml(ios_bundle / PACKAGE, bundle.manifest)["bytes"] == size  # the bare package


@pytest.mark.parametrize(("function", "rows"), [("prefill", TINY_CHUNK), ("decode", 1)])
def test_each_function_has_the_step_signature(ios_bundle, function, rows):
    manifest = Bundle.open(ios_bundle).manifest
    g = manifest["model"]["geometry"]
    L, hkv, h, d, P = g["layers"], g["kv_heads"], g["heads"], g["head_dim"], TINY_POT
    probes = len(manifest["step"]["probe_layers"])
    assert probes >= 1
    spec = ct.utils.load_spec(str(ios_bundle / PACKAGE))
    assert spec.description.defaultFunctionName == "prefill"
    fn = {f.name: f for f in spec.description.functions}[function]
    want = {
        "tokens": ((rows,), INT32),
        "positions": ((rows,), INT32),
        **{f"pot_{kv}_{i}": ((hkv, P, d), FP32) for kv in "kv" for i in range(L)},
        "pot_mask": ((P,), INT32),
        "last_index": ((1,), INT32),
        "logits": ((g["vocab"],), FP32),
        "k_new": ((L, hkv, rows, d), FP32),
        "v_new": ((L, hkv, rows, d), FP32),
        "pot_attention": ((rows, P), FP32),
        "q_probe": ((probes, h, rows, d), FP32),
    }
    assert [f.name for f in fn.input] == list(input_names(L))
    assert [f.name for f in fn.output] == list(OUTPUT_NAMES)
    for feature in [*fn.input, *fn.output]:
        array = feature.type.multiArrayType
        assert (tuple(array.shape), array.dataType) == want[feature.name], feature.name


def compressed_ops(spec, function: str) -> dict:
    """Output name -> constexpr_blockwise_shift_scale op of a function (MIL protobuf)."""
    return {
        o.outputs[0].name: o for o in mil_ops(spec, function) if o.type == "constexpr_blockwise_shift_scale"
    }


def argument(op, name: str):
    """The constant value bound to one input of a MIL protobuf op."""
    return op.inputs[name].arguments[0].value


def shared_weights(spec) -> None:
    """Both functions read every compressed weight's codes from the same place of the one weight file:
    the merge kept one copy."""
    blobs = {}
    for function in ("prefill", "decode"):
        ops = compressed_ops(spec, function).values()
        blobs[function] = sorted(
            (argument(o, "data").blobFileValue.fileName, argument(o, "data").blobFileValue.offset)
            for o in ops
        )
    assert blobs["prefill"] == blobs["decode"] and len(set(blobs["prefill"])) == len(blobs["prefill"])
    assert len({name for name, _ in blobs["prefill"]}) == 1


def test_weights_are_int8_shared_and_close_to_the_checkpoint(ios_bundle, tiny_checkpoint):
    from coremltools.proto import MIL_pb2

    manifest = Bundle.open(ios_bundle).manifest
    compression = manifest["programs"]["coreml"]["compression"]
    spec = ct.utils.load_spec(str(ios_bundle / PACKAGE))
    for function in ("prefill", "decode"):
        ops = mil_ops(spec, function)
        weights = compressed_ops(spec, function)
        linear = [o for o in ops if o.type == "linear"]
        compressed = [o for o in linear if o.inputs["weight"].arguments[0].name in weights]
        assert len(compressed) >= len(linear) // 2  # tiny k/v projections fall under the size threshold
        for op in weights.values():
            data, scale = argument(op, "data").type.tensorType, argument(op, "scale").type.tensorType
            assert data.dataType == MIL_pb2.DataType.Value("INT8") and "offset" not in op.inputs
            # per output channel: one scale a row, not per block
            assert [d.constant.size for d in scale.dimensions] == [data.dimensions[0].constant.size, 1]
    assert set(compression["dtypes"]) == {"int8"} and set(compression["by_format"]) == {"int8"}
    assert all("int8 per output channel" in text for text in compression["tensors"].values())
    # one weight file for both functions, the codes stored once
    shared_weights(spec)
    blobs = list((ios_bundle / PACKAGE).rglob("*.bin"))
    assert len(blobs) == 1 and blobs[0].stat().st_size < 2 * compression["elements"]
    # dequantized int8 weights stay within 1% of the checkpoint's
    state = {k.replace(".", "_"): v.float().numpy() for k, v in tiny_checkpoint.model.state_dict().items()}
    deq = dequantized_weights(ios_bundle / PACKAGE)
    assert len(deq) == compression["weights"]
    for name, w in deq.items():
        ref = state[name]
        assert np.linalg.norm(ref - w) / np.linalg.norm(ref) < 0.01, name
    assert compression["relative_error_max"] < 0.01


def test_norm_and_rope_compute_in_fp32(ios_bundle):
    from coremltools.proto import MIL_pb2

    fp32, fp16 = MIL_pb2.DataType.Value("FLOAT32"), MIL_pb2.DataType.Value("FLOAT16")
    spec = ct.utils.load_spec(str(ios_bundle / PACKAGE))
    ops = mil_ops(spec, "prefill")
    kinds = {}
    for op in ops:
        kinds.setdefault(op.type, []).append(op.outputs[0].type.tensorType.dataType)
    layers = Bundle.open(ios_bundle).geometry.layers
    assert len(kinds["pow"]) == len(kinds["rsqrt"]) == 2 * layers + 1
    assert len(kinds["sin"]) == len(kinds["cos"]) == 1  # the chunk's RoPE; pot keys come rotated
    for op_type in ("pow", "reduce_mean", "rsqrt", "sin", "cos"):
        assert set(kinds[op_type]) == {fp32}, op_type
    assert set(kinds["linear"]) == {fp16} and set(kinds["softmax"]) == {fp16}  # the rest is fp16


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["step"].update(pot=TINY_POT // 2), "pot_k"),
        (lambda m: m["programs"]["coreml"]["methods"].update(prefill=TINY_CHUNK * 2), "tokens"),
        (lambda m: m["programs"]["coreml"]["methods"].update(verify=4), "functions"),
        (lambda m: m["model"]["geometry"].update(vocab=m["model"]["geometry"]["vocab"] + 1), "logits"),
        (lambda m: m["model"]["geometry"].update(layers=m["model"]["geometry"]["layers"] + 1), "pot_k"),
        (lambda m: m["step"].update(kv_dtype="float16"), "float16"),
        (lambda m: m["step"].update(probe_layers=m["step"]["probe_layers"][:-1]), "q_probe"),
        (lambda m: m["step"].update(inputs=list(reversed(m["step"]["inputs"]))), "inputs"),
        (lambda m: m["programs"]["coreml"].update(default_function="decode"), "default function"),
        (lambda m: m["programs"]["coreml"]["compression"].update(weights=1), "compressed weights"),
        (lambda m: m["programs"]["coreml"]["compression"]["dtypes"].update(int8=1), "by code dtype"),
        (lambda m: m["programs"]["coreml"]["compression"].update(dtypes={"uint4": 1}), "is int8, not uint4"),
    ],
)
def test_validation_fails_when_the_manifest_disagrees(ios_copy, edit, message):
    validate_coreml(ios_copy)  # the copy itself is fine
    edit_manifest(ios_copy, edit)
    with pytest.raises(BundleError, match=message):
        validate_coreml(ios_copy)


def _rename_first(op_type: str, new_type: str):
    def edit(spec):
        for function in ("prefill", "decode"):
            next(op for op in mil_ops(spec, function) if op.type == op_type).type = new_type

    return edit


def _pow_in_fp16(spec):
    from coremltools.proto import MIL_pb2

    op = next(op for op in mil_ops(spec, "decode") if op.type == "pow")
    op.outputs[0].type.tensorType.dataType = MIL_pb2.DataType.Value("FLOAT16")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_rename_first("softmax", "my_softmax"), "not Core ML iOS 18 ops"),
        (_rename_first("linear", "matmul"), "linear ops"),
        (_pow_in_fp16, "does not compute in fp32"),
    ],
)
def test_validation_fails_on_a_changed_program(ios_copy, edit, message):
    edit_spec(ios_copy, edit)
    with pytest.raises(BundleError, match=message):
        validate_coreml(ios_copy)


def test_validation_fails_on_a_damaged_package(ios_copy):
    blob = next((ios_copy / PACKAGE).rglob("weight.bin"))
    blob.write_bytes(blob.read_bytes()[:64])
    with pytest.raises(BundleError, match="past the end"):
        validate_coreml(ios_copy)
    blob.unlink()
    with pytest.raises(BundleError, match="weight file .* missing"):
        validate_coreml(ios_copy)
    (ios_copy / PACKAGE / SPEC_FILE).write_bytes(b"not a protobuf")
    with pytest.raises(BundleError, match="not a readable Core ML package"):
        validate_coreml(ios_copy)
    shutil.rmtree(ios_copy / PACKAGE)
    with pytest.raises(BundleError, match="missing"):
        validate_coreml(ios_copy)


def test_a_package_that_fails_validation_fails_the_export(tmp_path, monkeypatch):
    """The writer validates what it saved: a disagreement ends the export with no bundle."""
    import acre.exporter.coreml as coreml
    from acre.exporter.checkpoint import Checkpoint
    from acre.exporter.export import export_bundle

    tokenizer = make_tokenizer()
    model = make_tiny_model(len(tokenizer), num_hidden_layers=1)
    real = coreml.signature_shapes
    monkeypatch.setattr(
        coreml, "signature_shapes", lambda g, pot, probes, rows: real(g, pot + 1, probes, rows)
    )
    out = tmp_path / "bad"
    checkpoint = Checkpoint(model=model, tokenizer=tokenizer, source="tiny")
    with pytest.raises(BundleError, match="pot_k"):
        export_bundle(out, ["ios"], checkpoint, chunk=4, pot=8, signal_heads=[(0, 0)])
    assert not out.exists()


# --- a GGUF source: its Q4_1 / Q8_0 tensors keep their own blocks -----------------------------------


# Q4_1 (w = d q + m) is held as scale d, offset -m/d in fp16: the offset's rounding is at most half an
# fp16 ulp of |m/d|, i.e. 2^-11 |m| a weight (2^-25 d where m/d is subnormal), plus fp32's own rounding
# of scale * (q - offset) against d q + m (a few 2^-24 of |w| <= 15 d + |m|).
def q4_1_bound(grid) -> np.ndarray:
    d, m = grid.scale.astype(np.float64), np.abs(grid.minimum.astype(np.float64))
    per_block = 2.0**-11 * m + 2.0**-25 * d + 2.0**-22 * (15 * d + m)
    return np.repeat(per_block, 32, axis=1)


@pytest.fixture(scope="module")
def gguf_source(tmp_path_factory):
    """A tiny tied Llama (as SmolLM2) written as a GGUF: linear layers Q4_1, embedding = lm_head Q8_0;
    the model's weights become the file's dequantized ones."""
    from acre.exporter.checkpoint import Checkpoint
    from tests.test_gguf_grid import write_tiny_gguf

    tokenizer = make_tokenizer()
    model = make_tiny_model(len(tokenizer), seed=5, tie_word_embeddings=True)
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(model, path)
    return Checkpoint(model=model, tokenizer=tokenizer, source="tiny.gguf", gguf=path)


@pytest.fixture(scope="module")
def gguf_ios_bundle(gguf_source, tmp_path_factory) -> Path:
    from acre.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("ios-gguf") / "tiny-ios-gguf"
    return export_bundle(out, ["ios"], gguf_source, chunk=TINY_CHUNK, pot=TINY_POT, signal_heads=[(0, 0)])


@pytest.fixture(scope="module")
def gguf_grids(gguf_source):
    from acre.exporter.gguf_grid import read_grids

    c = gguf_source.model.config
    grids = read_grids(gguf_source.gguf, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads)
    assert len(grids) == 7 * c.num_hidden_layers + 2
    return grids


@pytest.mark.parametrize("function", ["prefill", "decode"])
def test_a_gguf_source_keeps_its_own_blocks(gguf_ios_bundle, gguf_grids, function):
    """The package's weights are the GGUF's: Q8_0 exactly, Q4_1 within the fp16 rounding of the
    offset; a re-rounding onto any other grid (int8 per channel, as the HF path does) fails."""
    deq = dequantized_weights(gguf_ios_bundle / PACKAGE, function)
    off_grid, offsets_rounded = [], False
    for name, grid in gguf_grids.items():
        stem = name.replace(".", "_")
        if name == "lm_head.weight" or stem not in deq:  # tied; a missing tensor fails below
            continue
        got, exact = deq[stem], grid.dequantize()
        if grid.kind == "q8_0":
            off_grid += [] if np.array_equal(got, exact) else [name]
            continue
        error = np.abs(got.astype(np.float64) - exact)
        bound = q4_1_bound(grid)
        off_grid += [] if (error <= bound).all() else [name]
        offsets_rounded |= bool(error.max() > 0)
        # int8 per output channel of the same weights is far outside that bound
        s = np.abs(exact).max(axis=1, keepdims=True) / 127
        assert (np.abs(np.round(exact / s) * s - exact) > bound).any(), name
    assert not off_grid, f"re-rounded onto another grid: {off_grid}"
    # every tensor is there; tied: lm_head is the embedding's constant, one table for the gather and
    # the last linear
    assert np.array_equal(gguf_grids["lm_head.weight"].codes, gguf_grids["model.embed_tokens.weight"].codes)
    assert set(deq) == {n.replace(".", "_") for n in gguf_grids} - {"lm_head_weight"}
    assert offsets_rounded  # the bound is not met by an exact copy only: the fp16 offsets do round


def test_the_gguf_package_stores_codes_scales_and_offsets_as_the_file(gguf_ios_bundle, gguf_grids):
    """In the saved program: Q4_1 tensors are uint4 codes with an fp16 scale and offset per 32, Q8_0
    int8 codes with an fp16 scale per 32 and no offset; the embedding constant feeds both the lookup
    and lm_head; the two functions share every weight; the manifest says so per tensor."""
    from coremltools.proto import MIL_pb2

    dtype = MIL_pb2.DataType.Value
    spec = ct.utils.load_spec(str(gguf_ios_bundle / PACKAGE))
    for function in ("prefill", "decode"):
        ops = compressed_ops(spec, function)
        assert len(ops) == len(gguf_grids) - 1  # lm_head tied
        for op in ops.values():
            stem = op.outputs[0].name.removeprefix("p_step_").split("_to_fp16")[0]
            grid = next(g for n, g in gguf_grids.items() if n.replace(".", "_") == stem)
            data, scale = argument(op, "data").type.tensorType, argument(op, "scale").type.tensorType
            rows, cols = grid.codes.shape
            assert [d.constant.size for d in scale.dimensions] == [rows, cols // 32], stem
            assert scale.dataType == dtype("FLOAT16")
            if grid.kind == "q4_1":
                assert data.dataType == dtype("UINT4"), stem
                assert argument(op, "offset").type.tensorType.dataType == dtype("FLOAT16"), stem
            else:
                assert data.dataType == dtype("INT8") and "offset" not in op.inputs, stem
        table = next(name for name in ops if "embed_tokens" in name)
        readers = {
            o.type
            for o in mil_ops(spec, function)
            if any(b.name == table for a in o.inputs.values() for b in a.arguments)
        }
        assert {"gather", "linear"} <= readers
    shared_weights(spec)

    bundle = Bundle.open(gguf_ios_bundle)
    compression = bundle.programs["coreml"]["compression"]
    report = validate_coreml(bundle)
    assert report["code_dtypes"] == {"prefill": compression["dtypes"], "decode": compression["dtypes"]}
    assert compression["scheme"] == "gguf" and compression["dtypes"] == {
        "uint4": len(gguf_grids) - 2,
        "int8": 1,
    }
    assert set(compression["tensors"]) == set(gguf_grids)
    for name, grid in gguf_grids.items():
        assert f"{grid.kind} grid, the source's codes and scales" in compression["tensors"][name], name
    assert compression["by_format"]["q8_0"]["relative_error_max"] == 0.0
    assert 0 < compression["by_format"]["q4_1"]["relative_error_max"] < 0.01
    assert compression["others"]["weights"] == 0
    summary = bundle.manifest["quantization"]["coreml"]
    assert summary["scheme"] == "gguf" and "GGUF Q4_1 blocks" in summary["weights"]
    assert "int8 per output channel" not in summary["weights"]


def test_grid_blocks_hold_flat_blocks_exactly_and_refuse_offsets_beyond_fp16():
    from acre.exporter.coreml import grid_blocks
    from acre.exporter.gguf_grid import Grid

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, (2, 64)).astype(np.uint8)
    scale = np.array([[0.0, 0.01], [0.02, 0.03]], dtype=np.float32)  # block (0, 0) is flat: every weight m
    minimum = np.array([[0.5, -0.1], [-0.2, 0.0]], dtype=np.float32)
    grid = Grid("q4_1", codes, scale, minimum)
    data, s, offset = grid_blocks(grid)
    got = np.repeat(s.astype(np.float32), 32, 1) * (data - np.repeat(offset.astype(np.float32), 32, 1))
    assert np.array_equal(got[0, :32], np.full(32, 0.5, np.float32))
    assert np.abs(got - grid.dequantize()).max() <= 2.0**-11 * 0.2 + 1e-7
    assert np.array_equal(data[:, 32:], codes[:, 32:])  # other blocks keep the file's codes
    # an offset -m/d beyond fp16's 65,504 cannot be held: the tensor is left to int8 per channel
    tiny_scale = np.array([[1e-6, 0.01], [0.02, 0.03]], dtype=np.float32)
    assert grid_blocks(Grid("q4_1", codes, tiny_scale, minimum)) is None
    q8 = Grid("q8_0", rng.integers(-127, 128, (2, 64)).astype(np.int8), scale, None)
    data, s, offset = grid_blocks(q8)
    assert offset is None and data.dtype == np.int8 and np.array_equal(data, q8.codes)
