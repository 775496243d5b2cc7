"""Weight quantization schemes for the ExecuTorch (XNNPACK) program.

A scheme says, for each part of the step module (MLP, attention projections, lm_head, token
embedding), how its weights are stored:

* Linear layers go through torchao's `Int8DynamicActivationIntxWeightConfig`, which XNNPACK runs
  as "8da{4,8}w": activations quantized to int8 per token at run time, weights int8 per output
  channel or int4 in groups of 32 along the input (XNNPACK has no int8 group kernels).
* The embedding is a lookup, not a matmul, and torchao's weight-only path leaves a
  `torchao::dequantize_affine` that the ExecuTorch runtime has no kernel for. `QuantizedEmbedding`
  below does the lookup with plain ops instead (index_select on int8 rows, or on packed int4 rows
  unpacked by integer division, times the rows' group scales), which every ExecuTorch runtime
  (the pip one, the Android AAR) has portable kernels for.

`quantize_step(step, scheme)` changes the module in place and returns the manifest record of what
was done. Only the ExecuTorch target uses it; the Core ML program records its own compression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from acre.errors import InputError
from acre.step import StepModel

PARTS = ("mlp", "attention", "lm_head", "embedding")


@dataclass(frozen=True)
class Rule:
    bits: int  # 4 or 8
    group: int | None  # None: one scale per output channel (per row for the embedding)

    def describe(self) -> str:
        return f"int{self.bits} " + (f"groups of {self.group}" if self.group else "per channel")


# name -> part -> rule; a part that is absent stays float32.
SCHEMES: dict[str, dict[str, Rule]] = {
    "fp32": {},
    "8da8w": {
        "mlp": Rule(8, None),
        "attention": Rule(8, None),
        "lm_head": Rule(8, None),
        "embedding": Rule(8, None),
    },
    "8da4w": {
        "mlp": Rule(4, 32),
        "attention": Rule(4, 32),
        "lm_head": Rule(4, 32),
        "embedding": Rule(8, None),
    },
    # 4-bit where most of the weights are (MLP), 8-bit where a 135M model is sensitive.
    "8da4w-mlp": {
        "mlp": Rule(4, 32),
        "attention": Rule(8, None),
        "lm_head": Rule(4, 32),
        "embedding": Rule(8, None),
    },
    # 4-bit MLP only: lm_head, attention and embedding int8.
    "8da4w-mlp-only": {
        "mlp": Rule(4, 32),
        "attention": Rule(8, None),
        "lm_head": Rule(8, None),
        "embedding": Rule(8, None),
    },
    # 4-bit MLP and embedding (a lookup: its error does not feed every next-token distribution);
    # int8 attention and lm_head.
    "8da4w-mlp-emb": {
        "mlp": Rule(4, 32),
        "attention": Rule(8, None),
        "lm_head": Rule(8, None),
        "embedding": Rule(4, 32),
    },
}
DEFAULT_SCHEME = {"android": "8da4w-mlp-emb"}  # chosen by benchmarks/quantization.py (docs/quantization.md)


class QuantizedEmbedding(nn.Module):
    """Token embedding with int8 or packed int4 rows and float32 scales (one per row or per group of
    columns). int4 packs two columns a byte (low nibble first, offset by 8) and unpacks them with
    integer division and remainder, which every ExecuTorch runtime has portable kernels for."""

    def __init__(self, weight: torch.Tensor, group: int | None = None, bits: int = 8) -> None:
        super().__init__()
        vocab, dim = weight.shape
        self.group, self.bits = group or dim, bits
        if dim % self.group or dim % 2:
            raise InputError(f"embedding width {dim} is not a multiple of the group size {self.group}")
        if bits not in (4, 8):
            raise InputError(f"the embedding is quantized to int8 or int4, not int{bits}")
        top = 2 ** (bits - 1) - 1  # 127 or 7
        blocks = weight.detach().float().reshape(vocab, dim // self.group, self.group)
        scales = blocks.abs().amax(-1).clamp(min=1e-12) / top
        q = torch.round(blocks / scales.unsqueeze(-1)).clamp(-top, top).reshape(vocab, dim)
        if bits == 8:
            self.register_buffer("qweight", q.to(torch.int8))
        else:
            nibbles = (q + 8).to(torch.uint8).reshape(vocab, dim // 2, 2)
            self.register_buffer("qweight", nibbles[..., 0] + 16 * nibbles[..., 1])  # [vocab, dim // 2]
        self.register_buffer("scales", scales)  # [vocab, dim // group]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        c = tokens.shape[0]
        rows = self.qweight.index_select(0, tokens)
        if self.bits == 4:
            packed = rows.to(torch.int32)
            high = torch.div(packed, 16, rounding_mode="floor")
            rows = torch.stack((packed - 16 * high, high), dim=-1).reshape(c, -1) - 8
        scales = self.scales.index_select(0, tokens)
        return (rows.to(torch.float32).reshape(c, -1, self.group) * scales.unsqueeze(-1)).reshape(c, -1)


def _part_of(fqn: str) -> str | None:
    if fqn == "lm_head":
        return "lm_head"
    if ".mlp." in fqn:
        return "mlp"
    if ".self_attn." in fqn:
        return "attention"
    return None


def _params(step: StepModel, part: str) -> int:
    if part == "embedding":
        return step.model.embed_tokens.weight.numel()
    return sum(
        m.weight.numel() for n, m in step.named_modules() if isinstance(m, nn.Linear) and _part_of(n) == part
    )


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise InputError(f"unknown quantization scheme {scheme!r}; choose from {', '.join(SCHEMES)}")


def quantize_step(step: StepModel, scheme: str) -> dict[str, Any]:
    """Quantize `step` in place by `scheme`; return the manifest's `quantization` record."""
    check_scheme(scheme)
    rules = SCHEMES[scheme]
    if not rules:
        return {"scheme": "fp32", "weights": "float32", "activations": "float32"}
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    parts: dict[str, Any] = {}
    for part in PARTS:
        rule = rules.get(part)
        count = _params(step, part)
        if rule is None:
            parts[part] = {"dtype": "float32", "params": count}
            continue
        if part == "embedding":
            weight = step.model.embed_tokens.weight
            step.model.embed_tokens = QuantizedEmbedding(weight, rule.group, rule.bits)
            parts[part] = {
                "dtype": f"int{rule.bits}",
                "group": rule.group,
                "params": count,
                "kernel": "portable lookup" + (" (two int4 a byte)" if rule.bits == 4 else ""),
            }
            continue
        if rule.group and step.g.hidden % rule.group:
            raise InputError(f"hidden size {step.g.hidden} is not a multiple of the group size {rule.group}")
        config = Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4 if rule.bits == 4 else torch.int8,
            weight_granularity=PerGroup(rule.group) if rule.group else PerAxis(0),
        )
        quantize_(
            step, config, filter_fn=lambda m, fqn, p=part: isinstance(m, nn.Linear) and _part_of(fqn) == p
        )
        parts[part] = {
            "dtype": f"int{rule.bits}",
            "group": rule.group,
            "params": count,
            "kernel": f"xnnpack 8da{rule.bits}w",
        }
    dense = [p for p in PARTS if p in rules and p != "embedding"]
    return {
        "scheme": scheme,
        "weights": ", ".join(f"{p} {rules[p].describe()}" for p in PARTS if p in rules),
        "activations": "int8 dynamic per token at the inputs of " + ", ".join(dense) + "; float32 elsewhere"
        if dense
        else "float32",
        "parts": parts,
        "symmetric": True,
        "tool": "torchao Int8DynamicActivationIntxWeightConfig; embedding: acre QuantizedEmbedding",
    }
