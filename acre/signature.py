"""The step program's signature: its inputs and outputs by name, in order (acre/step.py documents
them). It lives apart from the step module so that the runtime can check a program without torch."""

from __future__ import annotations

CHUNK_INPUTS = ("tokens", "positions", "pot_mask", "last_index")
OUTPUT_NAMES = ("logits", "k_new", "v_new", "pot_attention", "q_probe")


def input_names(layers: int) -> tuple[str, ...]:
    """The step program's inputs in order: the chunk, the mask, then one pot tensor per layer."""
    keys = tuple(f"pot_k_{i}" for i in range(layers))
    values = tuple(f"pot_v_{i}" for i in range(layers))
    return (*CHUNK_INPUTS, *keys, *values)
