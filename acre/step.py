"""The step program: one transformer pass of a chunk of tokens over the pot.

This module is the only place where attention, RoPE and the pot maths live. The eager `torch`
engine runs it as is; the exporter traces this very module into `.pte` / `.onnx` / `.mlpackage`.

The program is pure: the runtime owns the pot (keys stored un-rotated, values, positions, a
validity mask) and passes it in; the program returns the chunk's new K/V and the signals the
policies need, and never stores anything between calls.

Inputs (C = chunk length, P = pot capacity):
    tokens[C] int64, positions[C] int64       the chunk; padding rows may follow the real ones
    pot_k[L,Hkv,P,D], pot_v[L,Hkv,P,D]        un-rotated keys and values of the pot slots
    pot_positions[P] int64, pot_mask[P] uint8  position shown to the model, and slot validity (1 = valid;
                                                  uint8, not bool: ExecuTorch's Java API has no bool tensors)
    last_index[1] int64                       which chunk row's logits to return
Outputs:
    logits[vocab]                             next-token logits of row `last_index`
    k_new[L,Hkv,C,D], v_new[L,Hkv,C,D]        the chunk's un-rotated keys and its values
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


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class MLP(nn.Module):
    def __init__(self, g: Geometry) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(g.hidden, g.intermediate, bias=False)
        self.up_proj = nn.Linear(g.hidden, g.intermediate, bias=False)
        self.down_proj = nn.Linear(g.intermediate, g.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


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

    def forward(
        self,
        x: torch.Tensor,  # [C, hidden]
        rope_chunk: tuple[torch.Tensor, torch.Tensor],  # cos/sin [C, D]
        rope_pot: tuple[torch.Tensor, torch.Tensor],  # cos/sin [P, D]
        pot_k: torch.Tensor,  # [Hkv, P, D] un-rotated
        pot_v: torch.Tensor,  # [Hkv, P, D]
        bias: torch.Tensor,  # [C, P + C] additive mask
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.g
        c = x.shape[0]
        groups = g.heads // g.kv_heads
        q = self.q_proj(x).view(c, g.heads, g.head_dim).transpose(0, 1)  # [H, C, D]
        k = self.k_proj(x).view(c, g.kv_heads, g.head_dim).transpose(0, 1)  # [Hkv, C, D]
        v = self.v_proj(x).view(c, g.kv_heads, g.head_dim).transpose(0, 1)

        keys = torch.cat((rotate(pot_k.float(), *rope_pot), rotate(k, *rope_chunk)), dim=1)
        values = torch.cat((pot_v.float(), v), dim=1)  # [Hkv, P + C, D]
        # Query head h reads KV head h // groups (GQA): group the query heads per KV head.
        qr = rotate(q, *rope_chunk).view(g.kv_heads, groups, c, g.head_dim)
        scores = torch.matmul(qr, keys.unsqueeze(1).transpose(-1, -2)) / math.sqrt(g.head_dim)
        probs = torch.softmax(scores + bias, dim=-1)  # [Hkv, G, C, P + C]
        out = torch.matmul(probs, values.unsqueeze(1))  # [Hkv, G, C, D]
        out = out.reshape(g.heads, c, g.head_dim).transpose(0, 1).reshape(c, g.heads * g.head_dim)
        pot_probs = probs[..., : pot_k.shape[1]].reshape(g.heads, c, -1)  # [H, C, P]
        return self.o_proj(out), k, v, pot_probs, q


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
        weights = torch.zeros(g.layers, g.heads)
        for layer, head in self.signal_heads:
            weights[layer, head] = 1.0
        self.register_buffer("signal_weights", weights, persistent=False)
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
        pot_k: torch.Tensor,
        pot_v: torch.Tensor,
        pot_positions: torch.Tensor,
        pot_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All rows: normed hidden states [C, hidden] plus k_new, v_new, pot_attention, q_probe."""
        c = tokens.shape[0]
        pot_mask = pot_mask.to(torch.bool)
        rope_chunk, rope_pot = self._rope(positions), self._rope(pot_positions)
        idx = torch.arange(c, device=tokens.device)
        causal = idx.unsqueeze(0) <= idx.unsqueeze(1)  # [C, C] row sees columns up to itself
        allowed = torch.cat((pot_mask.unsqueeze(0).expand(c, -1), causal), dim=1)
        bias = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, float("-inf"))

        h = self.model.embed_tokens(tokens)
        ks, vs, qs = [], [], []
        pot_attention = torch.zeros(c, pot_k.shape[2], dtype=torch.float32)
        for i, block in enumerate(self.model.layers):
            attn_out, k, v, pot_probs, q = block.self_attn(
                block.input_layernorm(h), rope_chunk, rope_pot, pot_k[i], pot_v[i], bias
            )
            h = h + attn_out
            h = h + block.mlp(block.post_attention_layernorm(h))
            ks.append(k)
            vs.append(v)
            if i in self.probe_layers:  # a Python decision: layers without signal heads cost nothing
                pot_attention = pot_attention + (pot_probs * self.signal_weights[i].view(-1, 1, 1)).sum(0)
            if i in self.probe_layers:
                qs.append(q)
        k_new = torch.stack(ks).to(self.kv_dtype)
        v_new = torch.stack(vs).to(self.kv_dtype)
        return self.model.norm(h), k_new, v_new, pot_attention, torch.stack(qs)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        pot_k: torch.Tensor,
        pot_v: torch.Tensor,
        pot_positions: torch.Tensor,
        pot_mask: torch.Tensor,
        last_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden, k_new, v_new, pot_attention, q_probe = self.run(
            tokens, positions, pot_k, pot_v, pot_positions, pot_mask
        )
        logits = self.lm_head(hidden.index_select(0, last_index))[0]
        return logits, k_new, v_new, pot_attention, q_probe

    def example_inputs(self, chunk: int, pot: int) -> tuple[torch.Tensor, ...]:
        g = self.g
        return (
            torch.zeros(chunk, dtype=torch.long),
            torch.arange(chunk, dtype=torch.long),
            torch.zeros(g.layers, g.kv_heads, pot, g.head_dim, dtype=self.kv_dtype),
            torch.zeros(g.layers, g.kv_heads, pot, g.head_dim, dtype=self.kv_dtype),
            torch.zeros(pot, dtype=torch.long),
            torch.zeros(pot, dtype=torch.uint8),
            torch.zeros(1, dtype=torch.long),
        )


INPUT_NAMES = ("tokens", "positions", "pot_k", "pot_v", "pot_positions", "pot_mask", "last_index")
OUTPUT_NAMES = ("logits", "k_new", "v_new", "pot_attention", "q_probe")
