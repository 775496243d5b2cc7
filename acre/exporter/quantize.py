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

import numpy as np
import torch
from torch import nn

from acre.errors import InputError
from acre.exporter.gguf_grid import BLOCK, Grid
from acre.step import StepModel, mean_last

PARTS = ("mlp", "attention", "lm_head", "embedding")


@dataclass(frozen=True)
class Rule:
    bits: int  # 4 or 8; 0: the source's grid (GRID); -1: int8 or int4 per layer (SENSITIVE)
    group: int | None  # None: one scale per output channel (per row for the embedding)

    def describe(self) -> str:
        if self.bits == 0:
            return "the source's own blocks"
        if self.bits == -1:
            return f"int8 per channel or int4 groups of {self.group} by measured sensitivity"
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
# Every tensor that a GGUF source stores as Q4_1 or Q8_0 keeps those very blocks (GridLinear,
# QuantizedEmbedding.from_grid); any other tensor gets the FALLBACK scheme's rule for its part.
GRID = Rule(0, BLOCK)
SCHEMES["gguf"] = dict.fromkeys(PARTS, GRID)
# The source's blocks, but lm_head (Q8_0 in SmolLM2: two int4 grid layers on XNNPACK) as one int8
# layer per output channel: one matmul of the same 8 bits a weight, at the cost of a second rounding.
SCHEMES["gguf-lm8"] = {**SCHEMES["gguf"], "lm_head": Rule(8, None)}
FALLBACK = "8da4w-mlp-emb"
# Each linear layer int8 or int4 by its measured sensitivity, within a size ceiling (default: what
# FALLBACK weighs for the model); the embedding as in FALLBACK (acre/exporter/sensitivity.py).
SENSITIVE = Rule(-1, 32)
SCHEMES["sensitive"] = {
    "mlp": SENSITIVE,
    "attention": SENSITIVE,
    "lm_head": SENSITIVE,
    "embedding": SCHEMES[FALLBACK]["embedding"],
}
# Input channels per grid layer kept out of the int8 activations, by layer name ("*": any other), as
# benchmarks/outliers.py measured them (docs/quantization.md): more for down_proj was within noise
# and over the 130 MB ceiling with lm_head's 8.
OUTLIERS: dict[str, int] = {"*": 8}


def outliers_for(fqn: str) -> int:
    return OUTLIERS.get(fqn.rsplit(".", 1)[-1], OUTLIERS["*"])


# Grid layers whose int8 input is split at a clamp c, by layer name: the quantile of |input| over the
# calibration text that sets c. W x = W clamp(x, -c, c) + W (x - clamp(x)): two passes over the same
# int4 blocks (stored once: XNNPACK keys constants by their bytes). The clamped part gets a fine int8
# step, the rest is sparse. benchmarks/outliers.py measured it (docs/quantization.md).
SPLIT_QUANTILE: dict[str, float] = {"down_proj": 0.95}


def split_quantile_for(fqn: str) -> float | None:
    return SPLIT_QUANTILE.get(fqn.rsplit(".", 1)[-1])


# chosen by benchmarks/quantization.py (docs/quantization.md); `gguf` where the source has grids
DEFAULT_SCHEME = {"android": FALLBACK}


def default_scheme(target: str, grids: dict[str, Grid] | None) -> str:
    return "gguf" if grids else DEFAULT_SCHEME[target]


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
        self.register_buffer("offset", None)  # per-group constant of an asymmetric source grid (Q4_1)

    @classmethod
    def from_grid(cls, grid: Grid, six_bits: bool = False) -> QuantizedEmbedding:
        """The source's own blocks: Q8_0 codes, or Q4_1 codes with their minimum, exactly. With
        `six_bits` a Q8_0 table keeps its blocks and scales but every fourth code step (code / 4,
        rounded), packed four codes in three bytes: 3/4 of the bytes (docs/quantization.md)."""
        vocab, dim = grid.codes.shape
        emb = cls(torch.zeros(1, dim), BLOCK, 8 if grid.kind == "q8_0" else 4)
        scale = torch.from_numpy(grid.scale)
        if grid.kind == "q8_0" and six_bits and dim % 4 == 0:
            codes = np.clip(np.round(grid.codes / 4.0), -32, 31).astype(np.int32) + 32  # 0..63
            words = codes.reshape(vocab, dim // 4, 4) @ (64 ** np.arange(4))  # 24 bits each
            packed = np.stack([(words >> (8 * i)) & 255 for i in range(3)], axis=-1)
            emb.qweight = torch.from_numpy(packed.astype(np.uint8).reshape(vocab, -1))
            emb.bits, scale = 6, 4 * scale
        elif grid.kind == "q8_0":
            emb.qweight = torch.from_numpy(grid.codes.copy())
        else:  # Q4_1: d * q + m = d * (q - 8) + (m + 8 d), packed two codes a byte like int4 rows
            nibbles = torch.from_numpy(grid.codes.astype(np.uint8)).reshape(vocab, dim // 2, 2)
            emb.qweight = nibbles[..., 0] + 16 * nibbles[..., 1]
            emb.offset = torch.from_numpy(grid.minimum) + 8 * scale
        emb.scales = scale.half() if grid.kind == "q8_0" else scale  # fp16 in the file: exact
        return emb

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        c = tokens.shape[0]
        rows = self.qweight.index_select(0, tokens)
        if self.bits == 4:
            packed = rows.to(torch.int32)
            high = torch.div(packed, 16, rounding_mode="floor")
            rows = torch.stack((packed - 16 * high, high), dim=-1).reshape(c, -1) - 8
        elif self.bits == 6:  # three bytes -> one 24-bit word -> four 6-bit codes
            b = rows.to(torch.int32).reshape(c, -1, 3)
            word = b[..., 0] + 256 * b[..., 1] + 65536 * b[..., 2]
            codes = []
            for _ in range(4):
                rest = torch.div(word, 64, rounding_mode="floor")
                codes.append(word - 64 * rest)
                word = rest
            rows = torch.stack(codes, dim=-1).reshape(c, -1) - 32
        scales = self.scales.index_select(0, tokens).to(torch.float32)
        out = rows.to(torch.float32).reshape(c, -1, self.group) * scales.unsqueeze(-1)
        if self.offset is not None:
            out = out + self.offset.index_select(0, tokens).unsqueeze(-1)
        return out.reshape(c, -1)


def _int4_linear(codes: np.ndarray, scale: np.ndarray) -> nn.Linear:
    """An XNNPACK 8da4w linear layer with the given int4 codes (-8..7) and per-block scales. XNNPACK keeps
    block scales in bf16, so they are rounded to bf16 here: the eager module then computes what the
    lowered program computes."""
    from torchao.quantization import IntxUnpackedToInt8Tensor
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import (
        IntxUnpackedToInt8TensorActivationQuantization as ActQuant,
    )

    rows, cols = codes.shape
    weight = IntxUnpackedToInt8Tensor(
        torch.from_numpy(codes.astype(np.int8)),
        torch.from_numpy(scale).to(torch.bfloat16).float(),
        torch.zeros(scale.shape, dtype=torch.int8),
        torch.int4,
        (1, BLOCK),
        torch.float32,
        ActQuant.INT8_ASYM_PER_TOKEN,
    )
    layer = nn.Linear(cols, rows, bias=False)
    layer.weight = nn.Parameter(weight, requires_grad=False)
    return layer


class GridLinear(nn.Module):
    """A linear layer on a GGUF block grid with no second rounding (up to bf16 block scales).

    XNNPACK's int4 blocks are symmetric (codes -8..7, one scale per 32), so the codes go there and
    each block's constant part goes to a small float layer over the input's 32-sums:
        Q4_1   w = d q + m           = d (q - 8) + (m + 8 d)
        Q8_0   w = d q, q = 16 h + l = 16 d h + d (l - 8) + 8 d    (h in -8..7, l in 0..15)
    so a Q8_0 tensor costs two int4 layers: 8 bits a weight, as stored."""

    def __init__(self, grid: Grid, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        rows, cols = grid.codes.shape
        codes = grid.codes.astype(np.int16)
        if grid.kind == "q4_1":
            pieces = [(codes - 8, grid.scale)]
            offset = grid.minimum + 8 * grid.scale
        else:
            high = np.floor_divide(codes, 16)
            pieces = [(high, 16 * grid.scale), (codes - 16 * high - 8, grid.scale)]
            offset = 8 * grid.scale
        self.pieces = nn.ModuleList(_int4_linear(c, s) for c, s in pieces)
        self.offset = nn.Linear(cols // BLOCK, rows, bias=bias is not None)
        self.offset.weight = nn.Parameter(torch.from_numpy(offset.astype(np.float32)), requires_grad=False)
        if bias is not None:
            self.offset.bias = nn.Parameter(bias.detach().float().clone(), requires_grad=False)
        self.grid = grid  # kept for split_outliers (a plain attribute: not exported)
        self.outliers: nn.Linear | None = None
        self.register_buffer("inlier_mask", None)
        self.outlier_channels: list[int] = []
        self.clamp: float | None = None  # split_input's c: a constant of the traced graph

    def split_outliers(self, channels: torch.Tensor) -> None:
        """Take these input channels out of the int8-quantized activations (LLM.int8()'s idea): their
        columns of the int4 part run in float32, the rest see inputs with a smaller range. Exact: the
        float columns are the grid's own values."""
        rows, cols = self.grid.codes.shape
        channels = channels.sort().values
        full = torch.from_numpy(self.grid.dequantize()) - self.offset.weight.repeat_interleave(BLOCK, dim=1)
        self.outliers = nn.Linear(len(channels), rows, bias=False)
        self.outliers.weight = nn.Parameter(full[:, channels].contiguous(), requires_grad=False)
        mask = torch.ones(cols)
        mask[channels] = 0.0
        self.inlier_mask = mask
        self.outlier_channels = channels.tolist()  # constants of the traced graph

    def split_input(self, clamp: float) -> None:
        """Run the int4 part twice, on clamp(x, -c, c) and on what lies beyond: exact in float (the two
        parts sum to x), and each part's int8 grid is finer than one grid over x's whole range."""
        if not clamp > 0:
            raise ValueError(f"clamp must be positive, got {clamp}")
        self.clamp = float(clamp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Block sums and outlier columns in ops XNNPACK lowers (mean_last, slices): a sum or an
        # index_select would be portable kernels splitting every layer into several delegate calls.
        y = self.offset(mean_last(x.unflatten(-1, (-1, BLOCK))).flatten(-2) * BLOCK)
        inliers = x
        if self.outliers is not None:
            y = y + self.outliers(torch.cat([x[..., i : i + 1] for i in self.outlier_channels], dim=-1))
            inliers = x * self.inlier_mask
        parts = [inliers]
        if self.clamp is not None:
            low = inliers.clamp(-self.clamp, self.clamp)
            parts = [low, inliers - low]
        for piece in self.pieces:
            for part in parts:
                y = y + piece(part)
        return y


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


def _tensor_part(name: str) -> str | None:
    return "embedding" if name == "model.embed_tokens.weight" else _part_of(name.removesuffix(".weight"))


def _inside(fqn: str, modules: set[str]) -> bool:
    return any(fqn == m or fqn.startswith(m + ".") for m in modules)


def check_scheme(scheme: str, max_weight_bytes: int | None = None) -> None:
    if scheme not in SCHEMES:
        raise InputError(f"unknown quantization scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    if max_weight_bytes is not None and SENSITIVE not in SCHEMES[scheme].values():
        raise InputError(f"a weight ceiling applies to the sensitive scheme, not to {scheme!r}")


def _linears(step: StepModel) -> dict[str, nn.Linear]:
    return {n: m for n, m in step.named_modules() if isinstance(m, nn.Linear) and _part_of(n)}


def _fixed_bytes(step: StepModel, embedding: Rule | None) -> int:
    """Bytes of everything but the linear layers: the embedding by its rule, the rest (norms) float32."""
    from acre.exporter.sensitivity import embedding_bytes

    vocab, dim = step.model.embed_tokens.weight.shape
    linear = {f"{n}.weight" for n in _linears(step)} | {f"{n}.bias" for n in _linears(step)}
    rest = sum(p.numel() for n, p in step.named_parameters() if n not in linear and "embed_tokens" not in n)
    return embedding_bytes(vocab, dim, embedding and embedding.bits, embedding and embedding.group) + 4 * rest


def weight_bytes(step: StepModel, scheme: str) -> int:
    """What the weights of a scheme of plain int8/int4 rules weigh for this (unquantized) model, as
    acre.exporter.sensitivity counts them: the sensitive scheme's default ceiling is FALLBACK's."""
    from acre.exporter.sensitivity import linear_bytes

    rules = SCHEMES[scheme]
    if any(r.bits <= 0 for r in rules.values()):
        raise InputError(f"the weights of scheme {scheme!r} depend on the source; they are not estimated")
    linears = sum(
        linear_bytes(*m.weight.shape, rules[_part_of(n)].bits if _part_of(n) in rules else None)
        for n, m in _linears(step).items()
    )
    return _fixed_bytes(step, rules.get("embedding")) + linears


def _sensitive(
    step: StepModel, calibration: torch.Tensor | None, max_weight_bytes: int | None
) -> tuple[dict[str, int], dict[str, Any]]:
    """Bits per linear layer for the sensitive scheme, and the manifest's record of the choice."""
    from acre.exporter import sensitivity

    if calibration is None:
        raise InputError("the sensitive scheme measures each layer on calibration text; none was given")
    ceiling = weight_bytes(step, FALLBACK) if max_weight_bytes is None else max_weight_bytes
    fixed = _fixed_bytes(step, SCHEMES["sensitive"]["embedding"])
    measured = sensitivity.measure(step, _linears(step), calibration)
    bits = sensitivity.choose(measured, fixed, ceiling)
    layers = measured.layers.values()
    total = fixed + sum(sensitivity.linear_bytes(x.rows, x.cols, bits[x.fqn]) for x in layers)
    record = {
        "ceiling_bytes": ceiling,
        "ceiling": f"{FALLBACK}'s weights" if max_weight_bytes is None else "--max-weights-mb",
        "weight_bytes": total,
        "int8_layers": sum(b == 8 for b in bits.values()),
        "int4_layers": sum(b == 4 for b in bits.values()),
        "kl_all_int8": round(measured.kl_int8, 6),
        "calibration_positions": measured.positions,
        "seconds": measured.seconds,
        "measure": "mean KL against fp32 on the calibration text, every linear layer int8 but this one int4",
    }
    why = {
        x.fqn: f"int4 alone measured {x.kl_int4:.4g} nats ({x.kl_saved:+.3g} against all int8) "
        f"for {x.extra_bytes / 1e6:.3f} MB saved"
        for x in layers
    }
    record["layers"] = {  # the same figures for programs: bits chosen, KL measured, bytes int8 costs
        f"{x.fqn}.weight": {
            "bits": bits[x.fqn],
            "kl_int4": round(x.kl_int4, 6),
            "kl_saved": round(x.kl_saved, 6),
            "extra_bytes": x.extra_bytes,
        }
        for x in layers
    }
    return bits, {"record": record, "why": why}


def calibration_ids(step: StepModel, tokenizer: Any, tokens: int = 512) -> torch.Tensor:
    """Token ids to find the activation outlier channels on: the retrieval-head probes' prose and
    question, so the exporter needs no data set. Outlier channels are a property of the model (the
    same few hidden dimensions carry large values whatever the text), which is why so little serves."""
    import random

    from acre.exporter.calibrate import _case

    doc, question, _ = _case(tokenizer, random.Random(1), min(tokens, step.g.window // 2))
    return torch.tensor(doc + question)


@torch.no_grad()
def _input_stats(
    step: StepModel, layers: dict[str, GridLinear], ids: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Per grid layer, over the calibration ids: each input channel's peak |x|, and for the layers
    SPLIT_QUANTILE names, that quantile of |x| over all their input values."""
    peaks: dict[str, torch.Tensor] = {}
    clamps: dict[str, float] = {}

    def hook(name: str) -> Any:
        def record(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            values = args[0].detach().abs().reshape(-1, args[0].shape[-1])
            peak = values.amax(0)
            peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak
            quantile = split_quantile_for(name)
            if quantile is not None:  # one calibration pass: each layer sees its input once
                clamps[name] = float(torch.quantile(values.flatten().float(), quantile))

        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    try:
        pot = step.no_pot()
        hidden, *_ = step.run(ids, torch.arange(len(ids)), *pot)
        step.lm_head(hidden)
    finally:
        for handle in handles:
            handle.remove()
    return peaks, clamps


# Layers that read one input, fused into one grid layer (rows stacked): the offsets, outlier columns
# and int8 quantization of that input are done once instead of per layer. Exact: each output row
# keeps its own blocks, and the input's int8 grid is per token, the same for every layer.
FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def _fused(name: str, grids: list[Grid], biases: list[torch.Tensor | None]) -> GridLinear:
    """One grid layer whose rows are those of `grids` (of one kind), in order."""
    if len({b is None for b in biases}) != 1:
        raise ValueError(f"{name}: fused layers need biases on all or none")
    minimum = None if grids[0].minimum is None else np.concatenate([g.minimum for g in grids])
    grid = Grid(
        grids[0].kind,
        np.concatenate([g.codes for g in grids]),
        np.concatenate([g.scale for g in grids]),
        minimum,
    )
    bias = None if biases[0] is None else torch.cat(biases)
    return GridLinear(grid, bias)


def _onto_grids(step: StepModel, grids: dict[str, Grid], calibration: torch.Tensor | None) -> dict[str, str]:
    """Replace every linear layer and the embedding that has a source grid (layers of one input fused,
    FUSED); return what was done per source tensor (for the manifest)."""
    layers: dict[str, GridLinear] = {}
    sources: dict[str, list[str]] = {}  # grid layer -> the source tensors' layers it holds
    for name, module in list(step.named_modules()):
        prefix = f"{name}." if name else ""
        for fused, members in FUSED.items():
            children = [getattr(module, m, None) for m in members]
            member_grids = [grids.get(f"{prefix}{m}.weight") for m in members]
            kinds = {g.kind for g in member_grids if g is not None}
            if not hasattr(module, fused) or None in member_grids or len(kinds) != 1:
                continue
            biases = [c.bias for c in children]
            setattr(module, fused, _fused(prefix + fused, member_grids, biases))
            for m in members:
                delattr(module, m)
            layers[prefix + fused] = getattr(module, fused)
            sources[prefix + fused] = [prefix + m for m in members]
        for child_name, child in list(module.named_children()):
            fqn = prefix + child_name
            grid = grids.get(fqn + ".weight")
            if isinstance(child, nn.Linear) and grid is not None and _part_of(fqn):
                layers[fqn] = GridLinear(grid, child.bias)
                sources[fqn] = [fqn]
                setattr(module, child_name, layers[fqn])
    done = {
        fqn: f"{layer.grid.kind} grid: {len(layer.pieces)} x xnnpack 8da4w blocks of {BLOCK}"
        for fqn, layer in layers.items()
    }
    for fqn, members in sources.items():
        if len(members) > 1:
            done[fqn] += f", rows of one layer {fqn.rsplit('.', 1)[-1]} with the other layers of its input"
    if calibration is not None:
        peaks, clamps = _input_stats(step, layers, calibration)
        for fqn, peak in peaks.items():
            count = min(outliers_for(fqn), len(peak))
            if count:
                layers[fqn].split_outliers(peak.topk(count).indices)
                done[fqn] += f", {count} outlier input channels in float32"
        for fqn, clamp in clamps.items():
            layers[fqn].split_input(clamp)
            done[fqn] += (
                f", int8 input split at |x| = {clamp:.4g} (the {split_quantile_for(fqn)} quantile on the "
                "calibration text): two passes over the same blocks"
            )
    tensors = {f"{source}.weight": done[fqn] for fqn in layers for source in sources[fqn]}
    embedding = grids.get("model.embed_tokens.weight")
    if embedding is not None:
        # 6-bit codes for a Q8_0 table: the one rounding acre adds, to fit the size ceiling
        step.model.embed_tokens = QuantizedEmbedding.from_grid(embedding, six_bits=True)
        kept = "6-bit codes (code / 4) on the q8_0 blocks" if step.model.embed_tokens.bits == 6 else "grid"
        tensors["model.embed_tokens.weight"] = f"{embedding.kind} {kept}: portable lookup"
    return tensors


def quantize_step(
    step: StepModel,
    scheme: str,
    grids: dict[str, Grid] | None = None,
    calibration: torch.Tensor | None = None,
    max_weight_bytes: int | None = None,
) -> dict[str, Any]:
    """Quantize `step` in place by `scheme`; return the manifest's `quantization` record. `grids` are
    the source checkpoint's own blocks (acre.exporter.gguf_grid), which the `gguf` scheme keeps;
    `calibration` token ids find the activation outlier channels of those layers, and the sensitive
    scheme measures each layer on them, within `max_weight_bytes` (default: FALLBACK's size)."""
    check_scheme(scheme, max_weight_bytes)
    rules = SCHEMES[scheme]
    if not rules:
        return {"scheme": "fp32", "weights": "float32", "activations": "float32"}
    from torchao.quantization import quantize_

    from acre.exporter.sensitivity import linear_config

    counts = {part: _params(step, part) for part in PARTS}
    tensors: dict[str, str] = {}  # parameter name -> what was done, for the manifest
    if GRID in rules.values():
        if not grids:
            raise InputError(
                f"quantization scheme {scheme!r} keeps a GGUF source's own Q4_1/Q8_0 blocks, and this "
                f"checkpoint has none; use --quantize {FALLBACK}"
            )
        kept = {name: grid for name, grid in grids.items() if rules.get(_tensor_part(name) or "") is GRID}
        tensors = _onto_grids(step, kept, calibration)
    on_grid = {name for name, m in step.named_modules() if isinstance(m, GridLinear)}
    chosen: dict[str, int] = {}
    sensitive: dict[str, Any] = {}
    if SENSITIVE in rules.values():  # measured before anything is quantized: against the fp32 module
        chosen, sensitive = _sensitive(step, calibration, max_weight_bytes)

    parts: dict[str, Any] = {}
    for part in PARTS:
        rule = rules.get(part)
        kept = sum(_tensor_part(name) == part for name in tensors)
        if rule is GRID:  # the part's tensors that have no grid get the fallback scheme's rule
            rule = SCHEMES[FALLBACK][part]
        parts[part] = {"params": counts[part], "tensors_on_source_grid": kept}
        if rule is None:
            parts[part]["others"] = "float32"
            continue
        if part == "embedding":
            if not kept:
                weight = step.model.embed_tokens.weight
                step.model.embed_tokens = QuantizedEmbedding(weight, rule.group, rule.bits)
                tensors["model.embed_tokens.weight"] = f"{rule.describe()}: portable lookup"
                parts[part]["others"] = rule.describe()
            continue
        if rule.group and step.g.hidden % rule.group:
            raise InputError(f"hidden size {step.g.hidden} is not a multiple of the group size {rule.group}")
        rest = [  # in module order: the manifest lists tensors as the model runs them
            name
            for name, m in step.named_modules()
            if isinstance(m, nn.Linear) and _part_of(name) == part and not _inside(name, on_grid)
        ]
        # per layer: the rule's bits, or the sensitive scheme's choice (the same two torchao configs)
        bits = {name: chosen[name] if rule is SENSITIVE else rule.bits for name in rest}
        if rule is not SENSITIVE and rule.group != (32 if rule.bits == 4 else None):
            raise InputError(f"linear layers are int8 per channel or int4 in groups of 32, not {rule}")
        for width in sorted(set(bits.values()), reverse=True):
            names = [name for name, b in bits.items() if b == width]
            quantize_(step, linear_config(width), filter_fn=lambda m, fqn, r=set(names): fqn in r)
            done = Rule(width, 32 if width == 4 else None).describe()
            for name in names:
                why = f"; {sensitive['why'][name]}" if name in sensitive.get("why", {}) else ""
                tensors[f"{name}.weight"] = f"{done}: xnnpack 8da{width}w{why}"
        if rest:
            counts_by = [f"{sum(b == w for b in bits.values())} int{w}" for w in (8, 4)]
            parts[part]["others"] = rule.describe() if rule is not SENSITIVE else ", ".join(counts_by)
    if on_grid:
        # the blocks' constant parts: small, and int8 per channel costs nothing measurable
        offsets = {f"{name}.offset" for name in on_grid}
        quantize_(step, linear_config(8), filter_fn=lambda m, fqn: fqn in offsets)
    dense = [p for p in PARTS if p in rules and p != "embedding"]
    extra = {"sensitivity": sensitive["record"]} if sensitive else {}
    return {
        "scheme": scheme,
        "weights": ", ".join(f"{p} {rules[p].describe()}" for p in PARTS if p in rules),
        "activations": "int8 dynamic per token at the inputs of " + ", ".join(dense) + "; float32 elsewhere"
        if dense
        else "float32",
        "parts": parts,
        "tensors": tensors,
        "symmetric": not tensors,
        "tool": "torchao Int8DynamicActivationIntxWeightConfig; acre GridLinear and QuantizedEmbedding",
        **extra,
    }
