"""Model geometry: the numbers that fix every tensor shape in the step program and the caches."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Geometry:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    vocab: int
    rope_theta: float
    rms_eps: float
    window: int  # the model's native context window (max_position_embeddings)
    qkv_bias: bool = False  # Qwen2-style biases on q/k/v projections

    @property
    def kv_bytes_per_token_fp16(self) -> int:
        return self.layers * self.kv_heads * self.head_dim * 2 * 2

    @classmethod
    def from_hf_config(cls, config: Any) -> Geometry:
        heads = config.num_attention_heads
        return cls(
            layers=config.num_hidden_layers,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            vocab=config.vocab_size,
            rope_theta=float(_rope_theta(config)),
            rms_eps=float(config.rms_norm_eps),
            window=int(config.max_position_embeddings),
            qkv_bias=bool(getattr(config, "attention_bias", False) or config.model_type == "qwen2"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        names = {f.name for f in fields(cls)}
        missing = {f.name for f in fields(cls) if f.default is not False} - set(data)
        if missing:
            raise KeyError(f"geometry is missing {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})


def _rope_theta(config: Any) -> float:
    theta = getattr(config, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    return theta
