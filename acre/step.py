"""The step program: one transformer pass of a chunk of tokens over the pot.

This module is the only place where attention, RoPE and the pot maths live. The eager `torch`
engine runs it as is; the exporter traces this very module into `.pte` / `.onnx` / `.mlpackage`.

The program is pure: the runtime owns the pot (keys already rotated at the positions the model sees
them at, values, a validity mask) and passes it in; the program returns the chunk's new K/V and the
signals the policies need, and never stores anything between calls. What a call costs in the pot is
one read of it: no RoPE of pot keys (the runtime re-rotates a slot only when its position changes,
acre/runtime/pot.py), no concatenation of pot and chunk (two blocks, one softmax over their scores),
and one input tensor per layer so that no layer's slice is copied out of a larger tensor.

Inputs (C = chunk length, P = pot capacity, L layers):
    tokens[C] int64, positions[C] int64       the chunk; padding rows may follow the real ones
    pot_mask[P] uint8                         slot validity (1 = valid; uint8, not bool: ExecuTorch's
                                              Java API has no bool tensors)
    last_index[1] int64                       which chunk row's logits to return
    pot_k_0..pot_k_{L-1} [Hkv,P,D]            each layer's pot keys, rotated at their positions
    pot_v_0..pot_v_{L-1} [Hkv,P,D]            each layer's pot values
Outputs:
    logits[vocab]                             next-token logits of row `last_index`
    k_new[L,Hkv,C,D], v_new[L,Hkv,C,D]        the chunk's keys (rotated at `positions`) and values
    pot_attention[C,P]                        attention each chunk row puts on each pot slot,
                                              summed over the signal heads (retrieval heads)
    q_probe[Lp,H,C,D]                         un-rotated queries of the probe layers
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers import PretrainedConfig

from acre.geometry import Geometry


def mean_last(x: torch.Tensor) -> torch.Tensor:
    """x.mean(-1, keepdim=True) written as the one mean XNNPACK lowers (a 4-D tensor's two inner dims):
    any other mean is a portable kernel between two delegate calls, in every layer of the program."""
    n = x.shape[-1]
    return x.reshape(-1, 1, n, 1).mean(dim=(2, 3), keepdim=True).reshape(*x.shape[:-1], 1)


def columns(x: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    """x split along its last dim into these widths, as slices: XNNPACK lowers a slice, not a split."""
    ends = [sum(widths[: i + 1]) for i in range(len(widths))]
    return [x[..., end - w : end] for w, end in zip(widths, ends, strict=True)]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(mean_last(x32.pow(2)) + self.eps)
        return self.weight * x32.to(x.dtype)


class MLP(nn.Module):
    def __init__(self, g: Geometry) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(g.hidden, g.intermediate, bias=False)
        self.up_proj = nn.Linear(g.hidden, g.intermediate, bias=False)
        self.down_proj = nn.Linear(g.intermediate, g.hidden, bias=False)
        # gate and up as one layer over their shared input, if the exporter fused them (quantize.FUSED)
        self.gate_up_proj: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up_proj is None:
            gate, up = self.gate_proj(x), self.up_proj(x)
        else:
            both = self.gate_up_proj(x)
            gate, up = columns(both, [both.shape[-1] // 2] * 2)
        return self.down_proj(nn.functional.silu(gate) * up)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE in the half-split layout Llama checkpoints use (HF `rotate_half`)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, g: Geometry) -> None:
        super().__init__()
        self.g = g
        self.q_proj = nn.Linear(g.hidden, g.heads * g.head_dim, bias=g.qkv_bias)
        self.k_proj = nn.Linear(g.hidden, g.kv_heads * g.head_dim, bias=g.qkv_bias)
        self.v_proj = nn.Linear(g.hidden, g.kv_heads * g.head_dim, bias=g.qkv_bias)
        self.o_proj = nn.Linear(g.heads * g.head_dim, g.hidden, bias=False)
        # q, k and v as one layer over their shared input, if the exporter fused them (quantize.FUSED)
        self.qkv_proj: nn.Module | None = None

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.qkv_proj is None:
            return self.q_proj(x), self.k_proj(x), self.v_proj(x)
        kv = self.g.kv_heads * self.g.head_dim
        q, k, v = columns(self.qkv_proj(x), [self.g.heads * self.g.head_dim, kv, kv])
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,  # [C, hidden]
        rope_chunk: tuple[torch.Tensor, torch.Tensor],  # cos/sin [C, D]
        pot_k: torch.Tensor,  # [Hkv, P, D] rotated at the slots' positions
        pot_v: torch.Tensor,  # [Hkv, P, D]
        pot_bias: torch.Tensor,  # [P] additive mask of the pot block
        causal_bias: torch.Tensor,  # [G * C, C] additive mask of the chunk block
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.g
        c = x.shape[0]
        groups = g.heads // g.kv_heads
        q, k, v = self.project(x)
        q = q.reshape(c, g.heads, g.head_dim).transpose(0, 1)  # [H, C, D]
        k = rotate(k.reshape(c, g.kv_heads, g.head_dim).transpose(0, 1), *rope_chunk)
        v = v.reshape(c, g.kv_heads, g.head_dim).transpose(0, 1)  # [Hkv, C, D]
        pot_k, pot_v = pot_k.float(), pot_v.float()  # no-ops for a float32 pot
        # Query head h reads KV head h // groups (GQA): the query heads of one KV head are rows of
        # one batched matmul, so no key or value is broadcast or copied.
        cos, sin = rope_chunk
        qr = rotate(q, cos / math.sqrt(g.head_dim), sin / math.sqrt(g.head_dim)).contiguous()
        qr = qr.view(g.kv_heads, groups * c, g.head_dim)
        pot_scores = torch.bmm(qr, pot_k.transpose(1, 2)) + pot_bias  # [Hkv, G*C, P]
        chunk_scores = torch.bmm(qr, k.transpose(1, 2)) + causal_bias  # [Hkv, G*C, C]
        probs = torch.softmax(torch.cat((pot_scores, chunk_scores), dim=-1), dim=-1)  # scores, not keys
        pot_probs, chunk_probs = columns(probs, [pot_k.shape[1], c])
        pot_probs, chunk_probs = pot_probs.contiguous(), chunk_probs.contiguous()
        out = torch.bmm(pot_probs, pot_v) + torch.bmm(chunk_probs, v)  # [Hkv, G*C, D]
        out = out.reshape(g.heads, c, g.head_dim).transpose(0, 1).reshape(c, g.heads * g.head_dim)
        return self.o_proj(out), k, v, pot_probs.reshape(g.heads, c, -1), q


class Block(nn.Module):
    def __init__(self, g: Geometry) -> None:
        super().__init__()
        self.self_attn = Attention(g)
        self.mlp = MLP(g)
        self.input_layernorm = RMSNorm(g.hidden, g.rms_eps)
        self.post_attention_layernorm = RMSNorm(g.hidden, g.rms_eps)


class Decoder(nn.Module):
    """Named like Hugging Face's `model.*` so a Llama state dict loads without renaming."""

    def __init__(self, g: Geometry) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(g.vocab, g.hidden)
        self.layers = nn.ModuleList(Block(g) for _ in range(g.layers))
        self.norm = RMSNorm(g.hidden, g.rms_eps)


def default_signal_heads(layers: int, heads: int) -> list[tuple[int, int]]:
    """Every head of the layers past the first two (which attend broadly and locally). Exports
    replace this with calibrated retrieval heads (acre.exporter.calibrate)."""
    return [(layer, head) for layer in range(min(2, layers - 1), layers) for head in range(heads)]


class StepModel(nn.Module):
    def __init__(
        self,
        config: PretrainedConfig,
        signal_heads: Sequence[Sequence[int]] | None = None,
        kv_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        g = Geometry.from_hf_config(config)
        self.g = g
        self.kv_dtype = kv_dtype
        self.signal_heads = [
            (int(a), int(b)) for a, b in (signal_heads or default_signal_heads(g.layers, g.heads))
        ]
        # layers whose queries are returned (q_probe): those holding a signal head
        self.probe_layers = sorted({layer for layer, _ in self.signal_heads})
        self.model = Decoder(g)
        self.lm_head = nn.Linear(g.hidden, g.vocab, bias=False)
        # inv_freq and scaling come from transformers, so every RoPE variant it knows (llama3,
        # linear, dynamic at init) matches the checkpoint exactly.
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        rope = LlamaRotaryEmbedding(config)
        self.register_buffer("inv_freq", rope.inv_freq.detach().clone().float(), persistent=False)
        self.rope_scale = float(rope.attention_scaling)

    @classmethod
    def from_hf(cls, hf_model: nn.Module, **kwargs: object) -> StepModel:
        step = cls(hf_model.config, **kwargs)  # type: ignore[arg-type]
        state = dict(hf_model.state_dict())
        if "lm_head.weight" not in state:  # tied embeddings
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
        step.load_state_dict(state, strict=True)
        return step.eval()

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float().unsqueeze(-1) * self.inv_freq  # [N, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos() * self.rope_scale, emb.sin() * self.rope_scale

    def run(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        pot_mask: torch.Tensor,
        pot_k: Sequence[torch.Tensor],
        pot_v: Sequence[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All rows: normed hidden states [C, hidden] plus k_new, v_new, pot_attention, q_probe."""
        c = tokens.shape[0]
        groups = self.g.heads // self.g.kv_heads
        rope_chunk = self._rope(positions)
        idx = torch.arange(c, device=tokens.device)
        causal = (idx.unsqueeze(0) <= idx.unsqueeze(1)).repeat(groups, 1)  # [G*C, C] row sees up to itself
        causal_bias = torch.zeros(causal.shape, dtype=torch.float32).masked_fill(~causal, float("-inf"))
        pot_bias = torch.zeros(pot_mask.shape, dtype=torch.float32).masked_fill(pot_mask == 0, float("-inf"))

        h = self.model.embed_tokens(tokens)
        ks, vs, qs = [], [], []
        pot_attention = torch.zeros(c, pot_mask.shape[0], dtype=torch.float32)
        for i, block in enumerate(self.model.layers):
            attn_out, k, v, pot_probs, q = block.self_attn(
                block.input_layernorm(h), rope_chunk, pot_k[i], pot_v[i], pot_bias, causal_bias
            )
            h = h + attn_out
            h = h + block.mlp(block.post_attention_layernorm(h))
            ks.append(k)
            vs.append(v)
            if i in self.probe_layers:  # a Python decision: layers without signal heads cost nothing
                for layer, head in self.signal_heads:
                    if layer == i:
                        pot_attention = pot_attention + pot_probs[head]
                qs.append(q)
        k_new = torch.stack(ks).to(self.kv_dtype)
        v_new = torch.stack(vs).to(self.kv_dtype)
        return self.model.norm(h), k_new, v_new, pot_attention, torch.stack(qs)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        pot_mask: torch.Tensor,
        last_index: torch.Tensor,
        *pot: torch.Tensor,  # the layers' keys, then the layers' values (input_names)
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        layers = self.g.layers
        hidden, k_new, v_new, pot_attention, q_probe = self.run(
            tokens, positions, pot_mask, pot[:layers], pot[layers:]
        )
        logits = self.lm_head(hidden.index_select(0, last_index))[0]
        return logits, k_new, v_new, pot_attention, q_probe

    def call(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        pot_k: torch.Tensor,  # [L, Hkv, P, D]
        pot_v: torch.Tensor,
        pot_mask: torch.Tensor,
        last_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """forward() with the pot as two whole tensors (eager use: engines, calibration, tests)."""
        return self(tokens, positions, pot_mask, last_index, *pot_k.unbind(0), *pot_v.unbind(0))

    def no_pot(self) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """run()'s pot arguments for a pot with nothing in it (one masked slot): the mask, keys, values."""
        _, _, mask, _, *kv = self.example_inputs(1, 1)
        return mask, kv[: self.g.layers], kv[self.g.layers :]

    def example_inputs(self, chunk: int, pot: int) -> tuple[torch.Tensor, ...]:
        """Inputs in the program's order (input_names): what export traces with."""
        g = self.g
        kv = [torch.zeros(g.kv_heads, pot, g.head_dim, dtype=self.kv_dtype) for _ in range(2 * g.layers)]
        return (
            torch.zeros(chunk, dtype=torch.long),
            torch.arange(chunk, dtype=torch.long),
            torch.zeros(pot, dtype=torch.uint8),
            torch.zeros(1, dtype=torch.long),
            *kv,
        )
