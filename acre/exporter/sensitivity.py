"""The `sensitive` scheme: which linear layers keep int8 weights, by measured sensitivity, within a size.

For a source without grids of its own (a Hugging Face fp16/bf16/fp32 directory), each linear layer
(every projection of every decoder layer, and `lm_head`) is either int8 per output channel (XNNPACK
8da8w) or int4 in groups of 32 (8da4w). `measure` scores each layer on the exporter's calibration
text (synthetic prose, no data set): with every linear layer at int8, that one layer alone at int4,
how far the next-token distributions move from the fp32 module's (mean KL over all positions of one
causal pass), less the all-int8 module's KL. `choose` then gives int8 to the layers with the most KL
saved per extra byte, greedily, until the weights reach the ceiling; the rest stay int4.

Speed: the layers are quantized once per width (two `quantize_` calls on detached copies, the same
torchao config the program gets, so the measured rounding is what XNNPACK runs) and swapped into the
step module one at a time, then restored. The attention and MLP sub-modules before the swapped layer
replay their recorded outputs instead of recomputing them: a layer deep in the model costs little more
than the layers after it and `lm_head`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from acre.errors import InputError
from acre.step import StepModel

GROUP = 32  # int4 weights: one bf16 scale per 32 inputs, as XNNPACK's qb4w kernels take them
MB = 1_000_000


def linear_config(bits: int) -> Any:
    """torchao's config for XNNPACK's 8da8w (int8 per output channel) or 8da4w (int4, groups of 32)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    if bits == 8:
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(GROUP))


def linear_bytes(rows: int, cols: int, bits: int | None) -> int:
    """Bytes of one weight matrix as the program holds it: int8 codes and an fp32 scale per row, or
    packed int4 codes and a bf16 scale per group of 32; None: float32."""
    if bits == 8:
        return rows * cols + 4 * rows
    if bits == 4:
        return rows * cols // 2 + 2 * rows * (cols // GROUP)
    return 4 * rows * cols


def embedding_bytes(vocab: int, dim: int, bits: int | None, group: int | None) -> int:
    """Bytes of QuantizedEmbedding's table (int8 or packed int4 codes, fp32 scales), or float32."""
    if bits is None:
        return 4 * vocab * dim
    return vocab * dim * bits // 8 + 4 * vocab * (dim // (group or dim))


@dataclass(frozen=True)
class Layer:
    fqn: str
    rows: int
    cols: int
    kl_int4: float  # mean KL against fp32, every linear layer int8 but this one int4
    kl_saved: float  # kl_int4 less the all-int8 module's KL: what keeping this layer int8 is worth

    @property
    def extra_bytes(self) -> int:
        return linear_bytes(self.rows, self.cols, 8) - linear_bytes(self.rows, self.cols, 4)


@dataclass(frozen=True)
class Sensitivity:
    layers: dict[str, Layer]  # in execution order
    kl_int8: float  # every linear layer int8
    positions: int
    seconds: float


def _parent(root: nn.Module, fqn: str) -> tuple[nn.Module, str]:
    parent, _, name = fqn.rpartition(".")
    return (root.get_submodule(parent) if parent else root), name


@contextmanager
def _swapped(root: nn.Module, modules: dict[str, nn.Module]) -> Iterator[None]:
    """Put `modules` in place of the sub-modules with those names; put the originals back after."""
    saved = {}
    try:
        for fqn, module in modules.items():
            parent, name = _parent(root, fqn)
            saved[fqn] = getattr(parent, name)
            setattr(parent, name, module)
        yield
    finally:
        for fqn, module in saved.items():
            parent, name = _parent(root, fqn)
            setattr(parent, name, module)


class _Replay(nn.Module):
    """Returns what the module it stands in for returned on the same input in the base pass."""

    def __init__(self, output: Any) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.output


def _quantized_copies(linears: dict[str, nn.Linear], bits: int) -> dict[str, nn.Module]:
    from torchao.quantization import quantize_

    holder = nn.ModuleDict({str(i): copy.deepcopy(m) for i, m in enumerate(linears.values())})
    quantize_(holder, linear_config(bits))
    return {fqn: holder[str(i)] for i, fqn in enumerate(linears)}


def _kl(ref: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean KL(ref || logits) over positions; `ref` is log-probabilities."""
    return float((ref.exp() * (ref - torch.log_softmax(logits.float(), -1))).sum(-1).mean())


@torch.inference_mode()
def measure(step: StepModel, linears: dict[str, nn.Linear], ids: torch.Tensor) -> Sensitivity:
    """Score each of `linears` (name -> layer of `step`, named as in step.named_modules()); `step` is
    left as it was."""
    started = time.perf_counter()
    positions, pot = torch.arange(len(ids)), step.no_pot()
    ref = torch.log_softmax(step.lm_head(step.run(ids, positions, *pot)[0]), -1)
    int8, int4 = _quantized_copies(linears, 8), _quantized_copies(linears, 4)
    # attention and MLP sub-modules in execution order, their outputs recorded in the all-int8 pass
    stages = [f"model.layers.{i}.{part}" for i in range(step.g.layers) for part in ("self_attn", "mlp")]
    outputs: dict[str, Any] = {}
    hooks = [
        step.get_submodule(name).register_forward_hook(
            lambda _m, _a, out, name=name: outputs.__setitem__(name, out)
        )
        for name in stages
    ]
    with _swapped(step, int8):
        try:
            hidden = step.run(ids, positions, *pot)[0]
        finally:
            for hook in hooks:
                hook.remove()
        kl_int8 = _kl(ref, step.lm_head(hidden))
        layers = {}
        for fqn, layer in linears.items():
            if fqn == "lm_head":  # the decoder is unchanged: only lm_head runs again
                logits = int4[fqn](hidden)
            else:
                # replay every stage before the one that holds this layer
                before = next(i for i, s in enumerate(stages) if fqn.startswith(s + "."))
                replays = {s: _Replay(outputs[s]) for s in stages[:before]}
                with _swapped(step, {**replays, fqn: int4[fqn]}):
                    logits = step.lm_head(step.run(ids, positions, *pot)[0])
            kl = _kl(ref, logits)
            rows, cols = layer.weight.shape
            layers[fqn] = Layer(fqn, rows, cols, kl, kl - kl_int8)
    return Sensitivity(layers, kl_int8, len(ids), round(time.perf_counter() - started, 1))


def choose(sensitivity: Sensitivity, fixed_bytes: int, ceiling: int) -> dict[str, int]:
    """Bits per layer (8 or 4): int8 to the layers with the largest KL saved per extra byte, greedily,
    while the weights (`fixed_bytes` of everything that is not one of these layers, plus the layers)
    stay within `ceiling` bytes. Layers whose int4 measured no worse than int8 stay int4."""
    layers = sensitivity.layers.values()
    total = fixed_bytes + sum(linear_bytes(x.rows, x.cols, 4) for x in layers)
    if total > ceiling:
        raise InputError(
            f"a weight ceiling of {ceiling / MB:.2f} MB is too small for this model: with every linear "
            f"layer int4 the weights are {total / MB:.2f} MB, the smallest size that fits "
            f"(--max-weights-mb {(total + MB - 1) // MB})"
        )
    bits = {x.fqn: 4 for x in layers}
    for x in sorted(layers, key=lambda x: x.kl_saved / x.extra_bytes, reverse=True):
        if x.kl_saved > 0 and total + x.extra_bytes <= ceiling:
            bits[x.fqn], total = 8, total + x.extra_bytes
    return bits
