"""The ExecuTorch program's weight quantization (acre/exporter/quantize.py) on the tiny model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from acre.bundle import Bundle
from acre.errors import InputError
from acre.exporter.quantize import DEFAULT_SCHEME, QuantizedEmbedding, quantize_step
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
