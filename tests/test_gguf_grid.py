"""A GGUF source's own Q4_1 / Q8_0 blocks, kept on the device without a second rounding
(acre/exporter/gguf_grid.py, GridLinear and the `gguf` scheme in acre/exporter/quantize.py)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quantize

from acre.errors import InputError
from acre.exporter import quantize as grid_scheme
from acre.exporter.gguf_grid import Grid, _q4_1, _q8_0, read_grids
from acre.exporter.quantize import GridLinear, QuantizedEmbedding, calibration_ids, quantize_step
from acre.step import StepModel

Q4_1, Q8_0 = GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q8_0


def grid_of(weight: np.ndarray, kind: GGMLQuantizationType) -> Grid:
    raw = quantize(weight.astype(np.float32), kind)
    if kind == Q4_1:
        codes, d, m = _q4_1(raw)
        return Grid("q4_1", codes, d, m)
    codes, d = _q8_0(raw)
    return Grid("q8_0", codes, d, None)


def effective_weight(layer: GridLinear) -> torch.Tensor:
    """What the layer multiplies by: its int4 pieces (codes x block scales) plus the block offsets."""
    total = layer.offset.weight.detach().repeat_interleave(32, dim=1).clone()
    for piece in layer.pieces:
        w = piece.weight
        total += (w.qdata.float().unflatten(1, (-1, 32)) * w.scale.unsqueeze(-1)).flatten(1)
    return total


def test_read_grids_returns_the_blocks_the_file_stores(tmp_path):
    rng = np.random.default_rng(0)
    up = rng.standard_normal((8, 64)).astype(np.float32)
    q = rng.standard_normal((8, 64)).astype(np.float32)  # 2 heads of 4 rows: llama.cpp permutes them
    table = rng.standard_normal((10, 64)).astype(np.float32)
    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(path, "llama")
    stored = {
        "blk.0.ffn_up.weight": (quantize(up, Q4_1), Q4_1),
        "blk.0.attn_q.weight": (quantize(q, Q4_1), Q4_1),
        "token_embd.weight": (quantize(table, Q8_0), Q8_0),
    }
    for name, (raw, kind) in stored.items():
        writer.add_tensor(name, raw, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    grids = read_grids(path, layers=1, heads=2, kv_heads=1)
    assert set(grids) == {
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",  # tied: no output.weight in the file
    }
    want = {name: dequantize(raw, kind) for name, (raw, kind) in stored.items()}
    up_grid = grids["model.layers.0.mlp.up_proj.weight"]
    assert np.array_equal(up_grid.dequantize(), want["blk.0.ffn_up.weight"])
    assert np.array_equal(grids["model.embed_tokens.weight"].dequantize(), want["token_embd.weight"])
    assert grids["model.embed_tokens.weight"].kind == "q8_0"
    # q rows come back in the Hugging Face order (transformers' reverse permutation of llama.cpp's)
    permuted = want["blk.0.attn_q.weight"].reshape(2, 2, 2, 64).swapaxes(1, 2).reshape(8, 64)
    assert np.array_equal(grids["model.layers.0.self_attn.q_proj.weight"].dequantize(), permuted)


@pytest.mark.parametrize("kind, pieces", [(Q4_1, 1), (Q8_0, 2)])
def test_grid_linear_keeps_the_source_blocks_up_to_the_bf16_block_scales(kind, pieces):
    weight = np.random.default_rng(1).standard_normal((16, 96)).astype(np.float32)
    grid = grid_of(weight, kind)
    layer = GridLinear(grid)
    assert len(layer.pieces) == pieces
    exact = torch.from_numpy(grid.dequantize())
    got = effective_weight(layer)
    # the only rounding is XNNPACK's bf16 block scale (relative 2^-9): codes up to 8, and 8 x 16 more
    # for the high piece of a Q8_0 block
    scale = torch.from_numpy(grid.scale).repeat_interleave(32, dim=1)
    bound = (8 if kind == Q4_1 else 8 * 17) * scale * 2.0**-8 + 1e-6
    assert ((got - exact).abs() <= bound).all()
    # a second rounding (symmetric int4 of the float weights, as 8da4w does) is far outside that bound
    blocks = exact.unflatten(1, (-1, 32))
    s = blocks.abs().amax(-1, keepdim=True) / 7
    requantized = ((blocks / s).round().clamp(-8, 7) * s).flatten(1)
    assert ((requantized - exact).abs() > bound).any()


def test_outlier_channels_run_in_float_and_the_layer_still_computes_the_source_weights():
    weight = np.random.default_rng(2).standard_normal((16, 64)).astype(np.float32)
    grid = grid_of(weight, Q4_1)
    layer = GridLinear(grid)
    x = torch.randn(3, 64)
    x[:, 5] *= 50.0  # an outlier channel spreads the int8 activation grid of every other one
    before = (layer(x) - x @ torch.from_numpy(grid.dequantize()).T).abs().max()
    layer.split_outliers(torch.tensor([5, 40]))
    assert layer.outlier_channels == [5, 40] and layer.inlier_mask[[5, 40]].sum() == 0
    after = (layer(x) - x @ torch.from_numpy(grid.dequantize()).T).abs().max()
    assert after < 0.5 * before, (after, before)


def test_an_input_split_at_a_clamp_computes_the_same_weights_on_a_finer_int8_grid():
    weight = np.random.default_rng(5).standard_normal((16, 64)).astype(np.float32)
    grid = grid_of(weight, Q4_1)
    layer = GridLinear(grid)
    x = torch.randn(6, 64)
    x[torch.arange(6), torch.randint(0, 64, (6,))] *= 60.0  # a spike in a different channel per row
    exact = x @ torch.from_numpy(grid.dequantize()).T
    before = (layer(x) - exact).abs().max()
    layer.split_input(3.0)
    after = (layer(x) - exact).abs().max()
    assert after < 0.5 * before, (after, before)
    with pytest.raises(ValueError, match="clamp must be positive"):
        layer.split_input(0.0)


def test_the_gguf_scheme_splits_the_inputs_split_quantile_names(tiny_checkpoint, monkeypatch):
    fp32 = StepModel.from_hf(tiny_checkpoint.model)
    grids = tiny_grids(fp32)
    ids = calibration_ids(fp32, tiny_checkpoint.tokenizer)
    monkeypatch.setattr(grid_scheme, "SPLIT_QUANTILE", {"down_proj": 0.5})
    median = copy.deepcopy(fp32)
    record = quantize_step(median, "gguf", grids, ids)
    monkeypatch.setattr(grid_scheme, "SPLIT_QUANTILE", {"down_proj": 0.99})
    high = copy.deepcopy(fp32)
    quantize_step(high, "gguf", grids, ids)
    for name, layer in median.named_modules():
        if isinstance(layer, GridLinear):
            assert (layer.clamp is not None) == name.endswith("down_proj"), name
            if layer.clamp is not None:  # a higher quantile of the same inputs clamps further out
                assert 0 < layer.clamp < high.get_submodule(name).clamp
                assert "int8 input split at |x|" in record["tensors"][f"{name}.weight"]


def test_embedding_from_a_grid_looks_up_the_source_rows_exactly():
    table = np.random.default_rng(3).standard_normal((20, 64)).astype(np.float32)
    tokens = torch.tensor([0, 19, 7])
    for kind in (Q4_1, Q8_0):
        grid = grid_of(table, kind)
        emb = QuantizedEmbedding.from_grid(grid)
        want = torch.from_numpy(grid.dequantize())[tokens]
        assert torch.allclose(emb(tokens), want, atol=1e-6, rtol=0)


def test_a_six_bit_embedding_keeps_the_q8_0_blocks_at_a_quarter_of_the_code_steps():
    table = np.random.default_rng(4).standard_normal((20, 64)).astype(np.float32)
    grid = grid_of(table, Q8_0)
    emb = QuantizedEmbedding.from_grid(grid, six_bits=True)
    assert emb.bits == 6 and emb.qweight.numel() == 20 * 64 * 3 // 4
    tokens = torch.tensor([3, 0, 19])
    codes = np.clip(np.round(grid.codes / 4.0), -32, 31)
    want = (codes.reshape(20, 2, 32) * (4 * grid.scale)[..., None]).reshape(20, 64)[tokens.numpy()]
    assert torch.allclose(emb(tokens), torch.from_numpy(want.astype(np.float32)), atol=1e-6, rtol=0)
    exact = torch.from_numpy(grid.dequantize())[tokens]
    assert 0 < (emb(tokens) - exact).abs().max() <= 2 * grid.scale.max() + 1e-6  # two code steps at most


def tiny_grids(step: StepModel) -> dict[str, Grid]:
    """Put the tiny model's linear layers on Q4_1 and its embedding on Q8_0, as a GGUF would."""
    grids = {}
    for name, param in step.state_dict().items():
        if name.endswith("proj.weight") or name in ("lm_head.weight", "model.embed_tokens.weight"):
            kind = Q8_0 if "embed" in name or "lm_head" in name else Q4_1
            grids[name] = grid_of(param.numpy(), kind)
            param.copy_(torch.from_numpy(grids[name].dequantize()))
    return grids


def test_the_gguf_scheme_puts_every_tensor_on_its_grid_and_stays_near_fp32(tiny_checkpoint):
    fp32 = StepModel.from_hf(tiny_checkpoint.model)
    grids = tiny_grids(fp32)
    quantized = copy.deepcopy(fp32)
    record = quantize_step(quantized, "gguf", grids, calibration_ids(fp32, tiny_checkpoint.tokenizer))
    assert set(record["tensors"]) == set(grids)
    matmuls = {k: v for k, v in record["tensors"].items() if k != "model.embed_tokens.weight"}
    assert all(text.startswith(("q4_1 grid", "q8_0 grid")) for text in matmuls.values())
    assert record["tensors"]["model.embed_tokens.weight"].startswith("q8_0 6-bit codes")
    assert not record["symmetric"]
    layers = [m for m in quantized.modules() if isinstance(m, GridLinear)]
    # per layer: q/k/v fused, o, gate/up fused, down; and lm_head
    assert len(layers) == 4 * 4 + 1 and all(m.outliers is not None for m in layers)
    assert "rows of one layer qkv_proj" in record["tensors"]["model.layers.0.self_attn.k_proj.weight"]
    tokens = torch.arange(40) % 300
    pot = fp32.no_pot()
    with torch.no_grad():
        want = fp32.lm_head(fp32.run(tokens, torch.arange(40), *pot)[0])
        got = quantized.lm_head(quantized.run(tokens, torch.arange(40), *pot)[0])
        requant = copy.deepcopy(fp32)
        quantize_step(requant, "8da4w")
        far = requant.lm_head(requant.run(tokens, torch.arange(40), *pot)[0])
    assert (got - want).abs().max() < 0.5 * (far - want).abs().max()


def test_gguf_lm8_keeps_every_grid_but_lm_head_which_is_one_int8_layer(tiny_checkpoint):
    fp32 = StepModel.from_hf(tiny_checkpoint.model)
    grids = tiny_grids(fp32)
    quantized = copy.deepcopy(fp32)
    record = quantize_step(quantized, "gguf-lm8", grids, calibration_ids(fp32, tiny_checkpoint.tokenizer))
    assert record["tensors"]["lm_head.weight"] == "int8 per channel: xnnpack 8da8w"
    assert not isinstance(quantized.lm_head, GridLinear)
    others = {
        k: v for k, v in record["tensors"].items() if k not in ("lm_head.weight", "model.embed_tokens.weight")
    }
    assert set(others) == set(grids) - {"lm_head.weight", "model.embed_tokens.weight"}
    assert all(text.startswith(("q4_1 grid", "q8_0 grid")) for text in others.values())
    tokens = torch.arange(40) % 300
    with torch.no_grad():
        want = fp32.lm_head(fp32.run(tokens, torch.arange(40), *fp32.no_pot())[0])
        got = quantized.lm_head(quantized.run(tokens, torch.arange(40), *fp32.no_pot())[0])
        requant = copy.deepcopy(fp32)
        quantize_step(requant, "8da4w")
        far = requant.lm_head(requant.run(tokens, torch.arange(40), *fp32.no_pot())[0])
    assert (got - want).abs().max() < 0.5 * (far - want).abs().max()


def test_fusing_the_layers_of_one_input_changes_no_output(tiny_checkpoint, monkeypatch):
    """q/k/v and gate/up as rows of one grid layer compute what the separate layers compute: the same
    blocks, outlier channels (chosen on the shared input) and per-token int8 input."""
    fp32 = StepModel.from_hf(tiny_checkpoint.model)
    grids = tiny_grids(fp32)
    ids = calibration_ids(fp32, tiny_checkpoint.tokenizer)
    fused = copy.deepcopy(fp32)
    quantize_step(fused, "gguf", grids, ids)
    monkeypatch.setattr(grid_scheme, "FUSED", {})
    separate = copy.deepcopy(fp32)
    record = quantize_step(separate, "gguf", grids, ids)
    assert (
        fused.model.layers[0].self_attn.qkv_proj is not None
        and separate.model.layers[0].self_attn.qkv_proj is None
    )
    assert not any("rows of one layer" in text for text in record["tensors"].values())
    tokens = torch.arange(40) % 300
    with torch.no_grad():
        want = separate.lm_head(separate.run(tokens, torch.arange(40), *fp32.no_pot())[0])
        got = fused.lm_head(fused.run(tokens, torch.arange(40), *fp32.no_pot())[0])
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()


def test_the_gguf_scheme_without_a_gguf_source_is_a_clear_error(tiny_checkpoint):
    step = StepModel.from_hf(tiny_checkpoint.model)
    with pytest.raises(InputError, match="keeps a GGUF source's own Q4_1/Q8_0 blocks"):
        quantize_step(step, "gguf", grids=None)


def write_tiny_gguf(model: torch.nn.Module, path) -> None:
    """The tiny model's linear layers as Q4_1 and its embedding and lm_head as Q8_0, laid out as
    llama.cpp writes them (q/k rows permuted); the model's weights become the file's dequantized ones."""
    config = model.config
    names = {"model.embed_tokens.weight": "token_embd.weight", "lm_head.weight": "output.weight"}
    hf_to_gguf = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }  # fmt: skip
    for i in range(config.num_hidden_layers):
        names.update({f"model.layers.{i}.{a}.weight": f"blk.{i}.{b}.weight" for a, b in hf_to_gguf.items()})
    writer = GGUFWriter(path, "llama")
    state = model.state_dict()
    for hf, gg in names.items():
        w = state[hf].numpy()
        heads = config.num_attention_heads if ".attn_q." in gg else config.num_key_value_heads
        permute = ".attn_q." in gg or ".attn_k." in gg
        if permute:
            w = w.reshape(heads, 2, w.shape[0] // heads // 2, -1).swapaxes(1, 2).reshape(w.shape)
        kind = Q4_1 if gg.startswith("blk.") else Q8_0
        raw = quantize(w, kind)
        back = dequantize(raw, kind)
        if permute:
            back = back.reshape(heads, -1, 2, back.shape[1]).swapaxes(1, 2).reshape(back.shape)
        state[hf].copy_(torch.from_numpy(back))
        writer.add_tensor(gg, raw, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_source_exports_on_its_own_grid_and_the_program_computes_the_module(tmp_path):
    from acre.bundle import Bundle
    from acre.exporter.checkpoint import Checkpoint
    from acre.exporter.export import export_bundle, source_grids
    from acre.runtime.engines import TorchEngine, open_engine
    from tests.conftest import TINY_CHUNK, TINY_POT, make_tiny_model, make_tokenizer
    from tests.test_quantize import random_inputs

    tokenizer = make_tokenizer()
    model = make_tiny_model(len(tokenizer), seed=5)
    write_tiny_gguf(model, tmp_path / "tiny.gguf")
    checkpoint = Checkpoint(model=model, tokenizer=tokenizer, source="tiny.gguf", gguf=tmp_path / "tiny.gguf")
    out = export_bundle(tmp_path / "b", ["android"], checkpoint, chunk=TINY_CHUNK, pot=TINY_POT)
    bundle = Bundle.open(out)
    record = bundle.programs["executorch"]["quantization"]
    assert record["scheme"] == "gguf" and len(record["tensors"]) == 4 * 7 + 2
    assert bundle.manifest["quantization"]["executorch"]["scheme"] == "gguf"

    # The program's only error is the int8 activations (XNNPACK rounds them its own way, so it is not
    # bit-equal to torchao's eager reference): it stays as near the source weights as the eager module
    # on the grid, and far nearer than a module requantized onto a symmetric int4 grid of its own.
    step = StepModel.from_hf(model, signal_heads=bundle.manifest["step"]["signal_heads"])
    on_grid, requantized = copy.deepcopy(step), copy.deepcopy(step)
    quantize_step(on_grid, "gguf", source_grids(checkpoint, step.g), calibration_ids(step, tokenizer))
    quantize_step(requantized, "8da4w")
    for chunk in (TINY_CHUNK, 1):
        inputs = random_inputs(bundle, chunk)
        exact = TorchEngine(step).step(inputs).logits
        program = np.abs(open_engine(bundle, "executorch").step(inputs).logits - exact).max()
        eager = np.abs(TorchEngine(on_grid).step(inputs).logits - exact).max()
        second_rounding = np.abs(TorchEngine(requantized).step(inputs).logits - exact).max()
        assert program < 2 * eager and program < 0.5 * second_rounding, (program, eager, second_rounding)


@pytest.mark.slow
def test_the_built_in_model_is_exported_on_its_own_q4_1_and_q8_0_blocks():
    """Every Q4_1 / Q8_0 tensor of SmolLM2's GGUF: the exporter's codes and scales reproduce the weights
    transformers dequantized from it, up to the bf16 rounding of the block scales."""
    from acre.exporter.checkpoint import load_checkpoint
    from acre.exporter.export import source_grids

    checkpoint = load_checkpoint("builtin")
    step = StepModel.from_hf(checkpoint.model)
    grids = source_grids(checkpoint, step.g)  # raises unless each grid equals the loaded weights exactly
    assert grids is not None and len(grids) == 30 * 7 + 2
    quantize_step(step, "gguf", grids)
    layers = {name: m for name, m in step.named_modules() if isinstance(m, GridLinear)}
    assert len(layers) == 30 * 4 + 1  # every linear layer (q/k/v fused, gate/up fused) and lm_head
    for name, layer in layers.items():
        grid = layer.grid  # the source tensors' blocks, rows stacked where layers were fused
        parent, leaf = name.rsplit(".", 1) if "." in name else ("", name)
        sources = [grids[f"{parent}.{m}.weight"] for m in grid_scheme.FUSED.get(leaf, ())] or [
            grids[name + ".weight"]
        ]
        assert np.array_equal(grid.dequantize(), np.concatenate([g.dequantize() for g in sources])), name
        scale = torch.from_numpy(grid.scale).repeat_interleave(32, dim=1)
        bound = (8 if grid.kind == "q4_1" else 8 * 17) * scale * 2.0**-8 + 1e-7
        error = (effective_weight_of_quantized(layer) - torch.from_numpy(grid.dequantize())).abs()
        assert (error <= bound).all(), name
    tokens = torch.tensor([0, 1234, 49151])
    table = grids["model.embed_tokens.weight"]
    codes = np.clip(np.round(table.codes / 4.0), -32, 31).reshape(49152, 18, 32)
    six_bit = torch.from_numpy((codes * (4 * table.scale)[..., None]).reshape(49152, 576).astype(np.float32))
    assert torch.allclose(step.model.embed_tokens(tokens), six_bit[tokens], atol=1e-6, rtol=0)


def effective_weight_of_quantized(layer: GridLinear) -> torch.Tensor:
    """effective_weight for a layer whose offsets are int8 too (quantize_step does that): the offsets'
    own rounding is left out, since they are the blocks' constants, not their codes."""
    total = torch.from_numpy(layer.grid.minimum if layer.grid.kind == "q4_1" else 0 * layer.grid.scale)
    total = (total + 8 * torch.from_numpy(layer.grid.scale)).repeat_interleave(32, dim=1)
    for piece in layer.pieces:
        w = piece.weight
        total = total + (w.qdata.float().unflatten(1, (-1, 32)) * w.scale.unsqueeze(-1)).flatten(1)
    return total
