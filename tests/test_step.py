"""The step module against Hugging Face transformers: same maths, any chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acre.geometry import Geometry
from acre.runtime.pot import Pot
from acre.step import StepModel

TOL = 1e-4  # fp32 logits; the whole-model difference measured here is ~1e-6


def empty_pot(step: StepModel, slots: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mask [P], keys and values [L, Hkv, P, D] of an empty pot."""
    _, _, mask, _, *kv = step.example_inputs(1, slots)
    return mask, torch.stack(kv[: step.g.layers]), torch.stack(kv[step.g.layers :])


def run(step: StepModel, ids, positions, mask, pot_k, pot_v):
    return step.run(ids, positions, mask, pot_k.unbind(0), pot_v.unbind(0))


def all_logits(step: StepModel, ids: torch.Tensor) -> torch.Tensor:
    hidden, *_ = step.run(ids, torch.arange(len(ids)), *step.no_pot())
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
    pot_mask, pot_k, pot_v = empty_pot(step, 64)
    rows = []
    for start in range(0, len(ids), chunk):
        piece = ids[start : start + chunk]
        slots = torch.arange(start, start + len(piece))  # slot i holds token i
        pos = slots + (shift if start else 0)
        hidden, k, v, attention, _ = run(step, piece, pos, pot_mask, pot_k, pot_v)
        rows.append(step.lm_head(hidden))
        pot_k[:, :, slots], pot_v[:, :, slots], pot_mask[slots] = k, v, 1  # keys come rotated at pos
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
    pot_mask, pot_k, pot_v = empty_pot(step, 8)
    noisy_k, noisy_v = torch.randn_like(pot_k) * 10, torch.randn_like(pot_v) * 10
    clean = run(step, ids, torch.arange(len(ids)), pot_mask, pot_k, pot_v)[0]
    noisy = run(step, ids, torch.arange(len(ids)), pot_mask, noisy_k, noisy_v)[0]
    assert torch.equal(clean, noisy)


def pot_after(step: StepModel, ids: torch.Tensor, start: int) -> Pot:
    """A host pot holding `ids` at positions start.. (their keys as the program returned them)."""
    pot = Pot(step.g, 64, step.inv_freq.numpy())
    _, k, v, _, _ = run(step, ids, torch.arange(start, start + len(ids)), *empty_pot(step, 1))
    slots = np.arange(len(ids))
    pot.write(slots, k.numpy(), v.numpy(), start + slots, kind=1)
    return pot


@torch.no_grad()
def test_moving_slots_re_rotates_their_keys(models, ids):
    """Keys written at positions 100.. and moved to 0.. equal keys computed at 0.. from the start;
    a pot that changed positions without re-rotating (the old un-rotated convention) is far off."""
    _, step = models
    moved, direct = pot_after(step, ids[:20], 100), pot_after(step, ids[:20], 0)
    stale_k = moved.k.copy()
    moved.move(np.arange(20), np.arange(20))
    assert np.abs(moved.k[:, :, :20] - direct.k[:, :, :20]).max() < 1e-4
    assert np.abs(stale_k[:, :, :20] - direct.k[:, :, :20]).max() > 100 * 1e-4
    assert (
        np.abs(moved.unrotated([0, 1], np.arange(20)) - direct.unrotated([0, 1], np.arange(20))).max() < 1e-4
    )


@torch.no_grad()
def test_a_moved_pot_gives_the_answers_of_one_pass(models, ids):
    """Prefix ingested at far positions, moved into place, then the rest attends to it: one pass."""
    _, step = models
    pot = pot_after(step, ids[:24], 700)
    pot.move(np.arange(24), np.arange(24))
    mask = torch.from_numpy(pot.mask.astype(np.uint8))
    hidden, *_ = run(
        step, ids[24:], torch.arange(24, len(ids)), mask, torch.from_numpy(pot.k), torch.from_numpy(pot.v)
    )
    assert (step.lm_head(hidden) - all_logits(step, ids)[24:]).abs().max() < TOL


def test_float16_keys_moved_many_times_keep_their_direction():
    """The fp16 pot rounds each re-rotation; 200 moves back and forth stay within fp16 noise."""
    g = Geometry(2, 4, 2, 64, 128, 256, 100, 10000.0, 1e-5, 4096)
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, 64, 2) / 64))
    pot = Pot(g, 8, inv_freq, dtype="float16")
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((2, 2, 8, 64)).astype(np.float16)
    pot.write(np.arange(8), keys, keys, np.zeros(8, dtype=np.int64), kind=1)
    for i in range(200):
        pot.move(np.arange(8), np.full(8, 1 + (i * 37) % 3000))
    pot.move(np.arange(8), np.zeros(8, dtype=np.int64))
    err = np.abs(pot.k.astype(np.float32) - keys.astype(np.float32)).max()
    assert 0 < err < 0.05


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
