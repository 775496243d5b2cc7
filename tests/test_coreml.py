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
    assert program["compression"]["dtype"] == "int8" and program["compression"]["weights"] > 0
    # the bundle-level summary says what the program's weights are
    assert bundle.manifest["quantization"] == {"coreml": {"weights": "int8", "activations": "float16"}}

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


def test_weights_are_int8_shared_and_close_to_the_checkpoint(ios_bundle, tiny_checkpoint):
    from coremltools.proto import MIL_pb2

    manifest = Bundle.open(ios_bundle).manifest
    compression = manifest["programs"]["coreml"]["compression"]
    spec = ct.utils.load_spec(str(ios_bundle / PACKAGE))
    for function in ("prefill", "decode"):
        ops = mil_ops(spec, function)
        weights = {o.outputs[0].name for o in ops if o.type == "constexpr_blockwise_shift_scale"}
        linear = [o for o in ops if o.type == "linear"]
        compressed = [o for o in linear if o.inputs["weight"].arguments[0].name in weights]
        assert len(compressed) >= len(linear) // 2  # tiny k/v projections fall under the size threshold
        for op in ops:
            if op.type == "constexpr_blockwise_shift_scale":
                data = op.inputs["data"].arguments[0].value.type.tensorType.dataType
                assert data == MIL_pb2.DataType.Value("INT8")
    # one weight file for both functions: two int8 copies would not fit in it
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
