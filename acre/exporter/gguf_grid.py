"""The quantization grids a GGUF checkpoint stores, read as they are (no dequantize-then-requantize).

llama.cpp's Q4_1 keeps each block of 32 weights as 4-bit codes q in 0..15 with an fp16 scale d and an
fp16 minimum m (weight = d * q + m); Q8_0 keeps int8 codes with an fp16 scale (weight = d * q). The
exporter reproduces these grids on the device instead of rounding the dequantized weights a second
time onto a grid of its own (acre/exporter/quantize.py). Other GGUF types are not read here: those
tensors are quantized from their float weights like any Hugging Face checkpoint's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acre.errors import ModelLoadError

BLOCK = 32  # weights per block, for both Q4_1 and Q8_0

# Hugging Face parameter name (layer suffix) -> GGUF tensor name
_LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


@dataclass(frozen=True)
class Grid:
    """One tensor's blocks, rows in the Hugging Face layout: codes [rows, cols], per-block scale and
    (Q4_1) minimum [rows, cols // 32] in float32 (exact: they are fp16 in the file)."""

    kind: str  # "q4_1" or "q8_0"
    codes: np.ndarray  # uint8 0..15 (q4_1) or int8 (q8_0)
    scale: np.ndarray
    minimum: np.ndarray | None

    def dequantize(self) -> np.ndarray:
        """The float32 weights, computed as gguf-py (and so transformers) computes them."""
        rows, cols = self.codes.shape
        q = self.codes.reshape(rows, cols // BLOCK, BLOCK).astype(np.float32)
        w = self.scale[..., None] * q
        if self.minimum is not None:
            w = w + self.minimum[..., None]
        return w.reshape(rows, cols)


def _q4_1(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, 20)  # fp16 d, fp16 m, 16 bytes of two codes each
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = blocks[..., 4:]
    codes = np.concatenate((qs & 0x0F, qs >> 4), axis=-1)  # low nibbles are weights 0..15, high 16..31
    return codes.reshape(rows, -1), d, m


def _q8_0(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, 34)  # fp16 d, 32 int8 codes
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    codes = blocks[..., 2:].copy().view(np.int8)
    return codes.reshape(rows, -1), d


def _unpermute_rows(a: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of q/k rows for its RoPE (as transformers does on load)."""
    half = a.shape[0] // heads // 2
    return a.reshape(heads, half, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)


def read_grids(path: Path, layers: int, heads: int, kv_heads: int) -> dict[str, Grid]:
    """Grids of the Q4_1 / Q8_0 tensors of a Llama-family GGUF, keyed by Hugging Face parameter name
    (`model.layers.0.mlp.up_proj.weight`, `model.embed_tokens.weight`, `lm_head.weight`)."""
    from gguf import GGMLQuantizationType, GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # gguf raises several types for a damaged file
        raise ModelLoadError(f"{path}: cannot read GGUF ({exc})") from exc
    tensors = {t.name: t for t in reader.tensors}
    names = {"model.embed_tokens.weight": "token_embd.weight"}
    names["lm_head.weight"] = "output.weight" if "output.weight" in tensors else "token_embd.weight"
    for i in range(layers):
        for hf, gg in _LAYER_TENSORS.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    grids: dict[str, Grid] = {}
    for hf_name, gguf_name in names.items():
        t = tensors.get(gguf_name)
        if t is None:
            continue
        raw = np.asarray(t.data)
        if t.tensor_type == GGMLQuantizationType.Q4_1:
            codes, d, m = _q4_1(raw)
            parts: list[np.ndarray] = [codes, d, m]
        elif t.tensor_type == GGMLQuantizationType.Q8_0:
            parts = list(_q8_0(raw))
        else:
            continue
        if ".attn_q." in gguf_name or ".attn_k." in gguf_name:
            n = heads if ".attn_q." in gguf_name else kv_heads
            parts = [_unpermute_rows(p, n) for p in parts]
        if len(parts) == 3:
            grids[hf_name] = Grid("q4_1", parts[0], parts[1], parts[2])
        else:
            grids[hf_name] = Grid("q8_0", parts[0], parts[1], None)
    return grids
