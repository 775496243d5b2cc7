"""The ExecuTorch program's weight quantization (acre/exporter/quantize.py) on the tiny model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from acre.bundle import Bundle
from acre.errors import InputError
from acre.exporter.quantize import (
    DEFAULT_SCHEME,
    QuantizedEmbedding,
    calibration_ids,
    quantize_step,
    weight_bytes,
)
from acre.runtime.engines import StepInputs, TorchEngine, open_engine
from acre.step import StepModel
from tests.conftest import TINY_CHUNK, TINY_POT

SCHEME = DEFAULT_SCHEME["android"]  # int4 MLP and embedding, int8 attention and lm_head


@pytest.fixture(scope="module")
def quantized_bundle(tiny_checkpoint_dir, tmp_path_factory):
    from acre.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("quantized") / "tiny"
    return export_bundle(
        out, ["android"], str(tiny_checkpoint_dir), chunk=TINY_CHUNK, pot=TINY_POT, quantize=SCHEME
    )


def random_inputs(bundle: Bundle, chunk: int, seed: int = 0) -> StepInputs:
    g, pot, rng = bundle.geometry, bundle.pot, np.random.default_rng(seed)
    shape = (g.layers, g.kv_heads, pot, g.head_dim)
    return StepInputs(
        tokens=rng.integers(0, g.vocab, chunk),
        positions=np.arange(300, 300 + chunk),
        pot_k=rng.standard_normal(shape, dtype=np.float32),
        pot_v=rng.standard_normal(shape, dtype=np.float32),
        pot_mask=(rng.random(pot) < 0.5).astype(np.uint8),
        last_index=np.array([chunk - 1]),
    )


def test_the_manifest_records_the_scheme_of_the_executorch_program(quantized_bundle):
    record = Bundle.open(quantized_bundle).programs["executorch"]["quantization"]
    assert record["scheme"] == SCHEME
    parts = record["parts"]
    assert [parts[p]["others"] for p in ("mlp", "embedding", "attention", "lm_head")] == [
        "int4 groups of 32",
        "int4 groups of 32",
        "int8 per channel",
        "int8 per channel",
    ]
    assert all(parts[p]["tensors_on_source_grid"] == 0 for p in parts)  # an HF source has no grids
    assert record["tensors"]["lm_head.weight"] == "int8 per channel: xnnpack 8da8w"


def test_quantized_program_is_smaller_than_fp32(quantized_bundle, tiny_bundle):
    small = Bundle.open(quantized_bundle).program_path("executorch").stat().st_size
    large = Bundle.open(tiny_bundle).program_path("executorch").stat().st_size
    assert small < 0.5 * large, (small, large)


@pytest.mark.parametrize("chunk", [TINY_CHUNK, 1])
def test_quantized_program_computes_what_the_quantized_module_computes(
    quantized_bundle, tiny_checkpoint, chunk
):
    """The .pte runs the very quantized module (XNNPACK's int kernels against torchao's reference);
    the fp32 module is measurably further away, so the test fails if quantization is skipped."""
    bundle = Bundle.open(quantized_bundle)
    fp32 = StepModel.from_hf(tiny_checkpoint.model, signal_heads=bundle.manifest["step"]["signal_heads"])
    quantized = copy.deepcopy(fp32)
    quantize_step(quantized, SCHEME)
    inputs = random_inputs(bundle, chunk)
    got = open_engine(bundle, "executorch").step(inputs)
    want, plain = TorchEngine(quantized).step(inputs), TorchEngine(fp32).step(inputs)
    near = np.abs(got.logits - want.logits).max()
    far = np.abs(plain.logits - want.logits).max()
    assert near < 0.1 * far, (near, far)
    assert np.abs(got.k_new - want.k_new).max() < 0.1 * np.abs(plain.k_new - want.k_new).max()


@pytest.mark.parametrize("bits, bytes_per_weight", [(8, 1.0), (4, 0.5)])
def test_quantized_embedding_stores_its_bits_and_stays_close_to_the_table(bits, bytes_per_weight):
    torch.manual_seed(0)
    table = torch.randn(50, 64)
    emb = QuantizedEmbedding(table, group=32, bits=bits)
    tokens = torch.tensor([0, 7, 49, 7])
    assert emb.qweight.numel() * emb.qweight.element_size() == table.numel() * bytes_per_weight
    err = (emb(tokens) - table[tokens]).abs().amax(-1) / table[tokens].abs().amax(-1)
    assert 0 < err.max() <= 0.5 / (2 ** (bits - 1) - 1) + 1e-6  # half a step of the largest group


def test_unknown_scheme_is_a_clear_error(tiny_checkpoint):
    step = StepModel.from_hf(tiny_checkpoint.model)
    with pytest.raises(InputError, match="unknown quantization scheme 'int3'"):
        quantize_step(step, "int3")


def test_export_refuses_an_unknown_scheme_or_kv_dtype_before_loading_the_model(tmp_path):
    from acre.exporter.export import export_bundle

    missing = str(tmp_path / "no-such-checkpoint")  # loading it would fail with another error
    with pytest.raises(InputError, match="unknown quantization scheme 'int3'"):
        export_bundle(tmp_path / "b", ["android"], missing, quantize="int3")
    with pytest.raises(InputError, match="kv_dtype 'bfloat16' is not float32 or float16"):
        export_bundle(tmp_path / "b", ["android"], missing, kv_dtype="bfloat16")


# The sensitive scheme (acre/exporter/sensitivity.py): per layer int8 or int4 by measured KL.


@pytest.fixture(scope="module")
def sensitive_model():
    """A tiny fp32 step module and its calibration ids."""
    from tests.conftest import make_tiny_model, make_tokenizer

    tokenizer = make_tokenizer()
    step = StepModel.from_hf(make_tiny_model(len(tokenizer)))
    return step, calibration_ids(step, tokenizer)


def sensitive(step: StepModel, ids: torch.Tensor, ceiling: int | None = None) -> dict:
    quantized = copy.deepcopy(step)
    return quantize_step(quantized, "sensitive", calibration=ids, max_weight_bytes=ceiling)


def chosen_bits(record: dict) -> dict[str, int]:
    return {name: layer["bits"] for name, layer in record["sensitivity"]["layers"].items()}


def smallest(step: StepModel) -> int:
    """Every linear layer int4 and the embedding as in 8da4w-mlp-emb: that scheme less what its int8
    attention and lm_head cost over int4."""
    from acre.exporter.sensitivity import linear_bytes

    int8 = [m.weight.shape for n, m in step.named_modules() if ".self_attn." in n or n == "lm_head"]
    saved = sum(linear_bytes(*shape, 8) - linear_bytes(*shape, 4) for shape in int8)
    return weight_bytes(step, "8da4w-mlp-emb") - saved


def test_the_sensitive_scheme_stays_within_the_default_ceiling_and_the_given_one(sensitive_model):
    from acre.exporter.sensitivity import linear_bytes

    step, ids = sensitive_model
    record = sensitive(step, ids)
    default = weight_bytes(step, "8da4w-mlp-emb")
    assert record["sensitivity"]["ceiling_bytes"] == default
    assert record["sensitivity"]["weight_bytes"] <= default
    for ceiling in (smallest(step) + 20_000, (smallest(step) + default) // 2):
        record = sensitive(step, ids, ceiling)
        bits = chosen_bits(record)
        shapes = {
            f"{n}.weight": m.weight.shape for n, m in step.named_modules() if isinstance(m, torch.nn.Linear)
        }
        total = smallest(step) + sum(
            linear_bytes(*shapes[n], 8) - linear_bytes(*shapes[n], 4) for n, b in bits.items() if b == 8
        )
        assert total == record["sensitivity"]["weight_bytes"] <= ceiling
        assert 0 < sum(b == 8 for b in bits.values()) < len(bits)  # the ceiling binds: some of each
        # what the record says is what the module holds: int8 codes span -128..127, int4 -8..7
        quantized = copy.deepcopy(step)
        quantize_step(quantized, "sensitive", calibration=ids, max_weight_bytes=ceiling)
        for name, b in bits.items():
            codes = quantized.get_submodule(name.removesuffix(".weight")).weight.qdata
            assert (int(codes.abs().max()) > 8) == (b == 8), name


def test_the_layer_made_sensitive_gets_int8_first():
    """choose() on made-up measurements: the big layer made sensitive on purpose saves the most KL per
    byte and gets int8 first; a ceiling with room for it and one small layer adds the next best."""
    from acre.exporter.sensitivity import Layer, Sensitivity, choose, linear_bytes

    layers = [
        Layer("a", 64, 64, 0.02, 0.010),
        Layer("sensitive", 256, 64, 0.90, 0.890),  # 4 times a's bytes, 89 times its KL
        Layer("b", 64, 64, 0.03, 0.020),
        Layer("c", 64, 64, 0.01, -0.001),  # int4 measured no worse: never int8
    ]
    measured = Sensitivity({x.fqn: x for x in layers}, 0.01, 100, 0.0)
    least = 1000 + sum(linear_bytes(x.rows, x.cols, 4) for x in layers)
    big, small = layers[1].extra_bytes, layers[0].extra_bytes
    assert choose(measured, 1000, least + big) == {"a": 4, "sensitive": 8, "b": 4, "c": 4}
    assert choose(measured, 1000, least + big + small) == {"a": 4, "sensitive": 8, "b": 8, "c": 4}
    assert choose(measured, 1000, least + big - 1) == {"a": 8, "sensitive": 4, "b": 8, "c": 4}
    assert choose(measured, 1000, 10**9) == {"a": 8, "sensitive": 8, "b": 8, "c": 4}


def test_the_measured_most_sensitive_layer_gets_int8_first(sensitive_model):
    step, ids = sensitive_model
    layers = sensitive(step, ids)["sensitivity"]["layers"]
    top = max(layers, key=lambda n: layers[n]["kl_saved"] / layers[n]["extra_bytes"])
    record = sensitive(step, ids, smallest(step) + layers[top]["extra_bytes"])  # room for it alone
    assert [n for n, b in chosen_bits(record).items() if b == 8] == [top]


def test_the_measurement_leaves_the_module_as_it_was_and_replays_exactly(sensitive_model):
    """measure() swaps quantized layers in and replays the stages before them: the module must come
    back unchanged, and a replayed layer's KL must equal a full pass with that layer swapped in."""
    from torchao.quantization import quantize_

    from acre.exporter import sensitivity
    from acre.exporter.quantize import _linears

    step, ids = sensitive_model
    before = {n: m for n, m in step.named_modules()}
    measured = sensitivity.measure(step, _linears(step), ids)
    assert {n: m for n, m in step.named_modules()} == before
    assert all(type(m) is torch.nn.Linear for m in _linears(step).values())

    name = "model.layers.3.self_attn.v_proj"  # late: its earlier stages were replayed
    full = copy.deepcopy(step)
    quantize_(
        full, sensitivity.linear_config(8), filter_fn=lambda m, fqn: fqn in _linears(step) and fqn != name
    )
    quantize_(full, sensitivity.linear_config(4), filter_fn=lambda m, fqn: fqn == name)
    with torch.inference_mode():
        ref = torch.log_softmax(step.lm_head(step.run(ids, torch.arange(len(ids)), *step.no_pot())[0]), -1)
        got = full.lm_head(full.run(ids, torch.arange(len(ids)), *full.no_pot())[0])
    assert measured.layers[name].kl_int4 == pytest.approx(sensitivity._kl(ref, got), rel=1e-4)
    assert measured.layers[name].kl_saved != 0


def test_a_ceiling_below_the_smallest_weights_is_refused_naming_the_smallest(sensitive_model):
    from acre.exporter.sensitivity import MB

    step, ids = sensitive_model
    least = smallest(step)
    with pytest.raises(InputError, match=f"the weights are {least / MB:.2f} MB, the smallest size that fits"):
        sensitive(step, ids, least - 1)
    assert sensitive(step, ids, least)["sensitivity"]["int8_layers"] == 0  # exactly the smallest fits


def test_a_weight_ceiling_for_another_scheme_is_refused_before_loading(tmp_path, capsys):
    from acre.exporter.cli import main

    missing = str(tmp_path / "no-such-checkpoint")
    args = ["--target", "android", "--model", missing, "--out", str(tmp_path / "b")]
    assert main([*args, "--quantize", "8da8w", "--max-weights-mb", "1"]) == 2
    assert "a weight ceiling applies to the sensitive scheme, not to '8da8w'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sensitive_bundle(tiny_checkpoint_dir, tmp_path_factory):
    from acre.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("sensitive") / "tiny"
    return export_bundle(
        out, ["android"], str(tiny_checkpoint_dir), chunk=TINY_CHUNK, pot=TINY_POT, quantize="sensitive"
    )


def test_the_manifest_records_each_layers_choice_and_its_measured_kl(sensitive_bundle):
    manifest = Bundle.open(sensitive_bundle).manifest
    record = manifest["programs"]["executorch"]["quantization"]
    assert record["scheme"] == manifest["quantization"]["executorch"]["scheme"] == "sensitive"
    layers = record["sensitivity"]["layers"]
    assert len(layers) == 4 * 7 + 1  # every projection of every decoder layer, and lm_head
    assert {b["bits"] for b in layers.values()} == {4, 8}
    for name, layer in layers.items():
        text = record["tensors"][name]
        assert text.startswith(
            "int8 per channel: xnnpack 8da8w" if layer["bits"] == 8 else "int4 groups of 32"
        )
        assert f"int4 alone measured {layer['kl_int4']:.4g} nats" in text
    assert record["tensors"]["model.embed_tokens.weight"] == "int4 groups of 32: portable lookup"


@pytest.mark.parametrize("chunk", [TINY_CHUNK, 1])
def test_the_sensitive_program_runs_what_the_quantized_module_computes(
    sensitive_bundle, tiny_checkpoint, chunk
):
    bundle = Bundle.open(sensitive_bundle)
    fp32 = StepModel.from_hf(tiny_checkpoint.model, signal_heads=bundle.manifest["step"]["signal_heads"])
    quantized = copy.deepcopy(fp32)
    record = quantize_step(
        quantized, "sensitive", calibration=calibration_ids(fp32, tiny_checkpoint.tokenizer)
    )
    assert record["tensors"] == bundle.manifest["programs"]["executorch"]["quantization"]["tensors"]
    inputs = random_inputs(bundle, chunk)
    got = open_engine(bundle, "executorch").step(inputs)
    want, plain = TorchEngine(quantized).step(inputs), TorchEngine(fp32).step(inputs)
    assert np.isfinite(got.logits).all()
    assert np.abs(got.logits - want.logits).max() < 0.1 * np.abs(plain.logits - want.logits).max()
