"""The step module against Hugging Face transformers: same maths, any chunking."""

from __future__ import annotations

import pytest
import torch

from acre.step import StepModel

TOL = 1e-4  # fp32 logits; the whole-model difference measured here is ~1e-6


def empty_pot(step: StepModel, slots: int):
    return step.example_inputs(1, slots)[2:6]


def all_logits(step: StepModel, ids: torch.Tensor) -> torch.Tensor:
    hidden, *_ = step.run(ids, torch.arange(len(ids)), *empty_pot(step, 4))
    return step.lm_head(hidden)


@pytest.fixture(scope="module")
def models(tiny_checkpoint):
    hf = tiny_checkpoint.model
    return hf, StepModel.from_hf(hf)


@pytest.fixture(scope="module")
def ids(models):
    torch.manual_seed(1)
    return torch.randint(3, models[0].config.vocab_size, (48,))


@torch.no_grad()
def test_logits_match_transformers(models, ids):
    hf, step = models
    ref = hf(ids.unsqueeze(0)).logits[0]
    assert (all_logits(step, ids) - ref).abs().max() < TOL


def chunked_logits(step: StepModel, ids: torch.Tensor, chunk: int = 16, shift: int = 0) -> torch.Tensor:
    """Prefill `ids` chunk by chunk, each chunk over the pot holding all earlier tokens.
    `shift` displaces the positions of every chunk after the first (a simulated off-by-one bug)."""
    pot_k, pot_v, pot_pos, pot_mask = (t.clone() for t in empty_pot(step, 64))
    rows = []
    for start in range(0, len(ids), chunk):
        piece = ids[start : start + chunk]
        slots = torch.arange(start, start + len(piece))  # slot i holds token i
        pos = slots + (shift if start else 0)
        hidden, k, v, attention, _ = step.run(piece, pos, pot_k, pot_v, pot_pos, pot_mask)
        rows.append(step.lm_head(hidden))
        pot_k[:, :, slots], pot_v[:, :, slots], pot_pos[slots], pot_mask[slots] = k, v, pos, True
        # each head's attention sums to 1 over pot + chunk, so the pot part is bounded by the head count
        bound = len(step.signal_heads)
        assert attention.shape == (len(piece), 64) and (attention <= bound + 1e-4).all()
    return torch.cat(rows)


@torch.no_grad()
def test_chunked_prefill_over_the_pot_matches_one_pass(models, ids):
    _, step = models
    assert (chunked_logits(step, ids) - all_logits(step, ids)).abs().max() < TOL


@torch.no_grad()
def test_pot_slots_outside_the_mask_are_ignored(models, ids):
    _, step = models
    pot_k, pot_v, pot_pos, pot_mask = empty_pot(step, 8)
    noisy_k, noisy_v = torch.randn_like(pot_k) * 10, torch.randn_like(pot_v) * 10
    clean = step.run(ids, torch.arange(len(ids)), pot_k, pot_v, pot_pos, pot_mask)[0]
    noisy = step.run(ids, torch.arange(len(ids)), noisy_k, noisy_v, pot_pos, pot_mask)[0]
    assert torch.equal(clean, noisy)


# The parity tolerance is only meaningful if the usual implementation mistakes break it.
@torch.no_grad()
def test_parity_check_catches_rope_off_by_one(models, ids):
    hf, step = models
    ref = hf(ids.unsqueeze(0)).logits[0]
    assert (chunked_logits(step, ids, shift=1) - ref).abs().max() > 100 * TOL


@torch.no_grad()
def test_parity_check_catches_a_skipped_layer(models, ids):
    hf, step = models
    ref = hf(ids.unsqueeze(0)).logits[0]
    broken = StepModel.from_hf(hf)
    broken.model.layers[2].mlp.down_proj.weight.zero_()
    broken.model.layers[2].self_attn.o_proj.weight.zero_()  # the block now passes h through unchanged
    assert (all_logits(broken, ids) - ref).abs().max() > 100 * TOL


@torch.no_grad()
def test_parity_check_catches_wrong_gqa_head_mapping(models, ids):
    hf, step = models
    ref = hf(ids.unsqueeze(0)).logits[0]
    broken = StepModel.from_hf(hf)
    g = broken.g
    for block in broken.model.layers:  # swap the two KV heads: query head h now reads the wrong one
        w = block.self_attn.k_proj.weight.view(g.kv_heads, g.head_dim, g.hidden)
        block.self_attn.k_proj.weight.copy_(w.flip(0).reshape(-1, g.hidden))
        w = block.self_attn.v_proj.weight.view(g.kv_heads, g.head_dim, g.hidden)
        block.self_attn.v_proj.weight.copy_(w.flip(0).reshape(-1, g.hidden))
    assert (all_logits(broken, ids) - ref).abs().max() > 100 * TOL


@torch.no_grad()
def test_qwen2_style_qkv_bias_matches_transformers():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    hf = Qwen2ForCausalLM(cfg).eval()
    for module in hf.modules():  # random biases, so a missing bias would show
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            module.bias.normal_(0, 0.5)
    step = StepModel.from_hf(hf)
    ids = torch.randint(0, 128, (20,))
    assert (all_logits(step, ids) - hf(ids.unsqueeze(0)).logits[0]).abs().max() < TOL
