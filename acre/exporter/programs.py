"""Trace the step module into each target's program file.

Every target gets the same signature (`acre.step.INPUT_NAMES` -> `OUTPUT_NAMES`) with two entry
points: `prefill` (C tokens) and `decode` (1 token), over a pot of P slots.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from acre.errors import EngineError
from acre.step import INPUT_NAMES, OUTPUT_NAMES, StepModel

log = logging.getLogger(__name__)


def export_executorch(step: StepModel, chunk: int, pot: int, out: Path) -> dict[str, Any]:
    """One .pte with methods `prefill` and `decode`, lowered to XNNPACK (weights are shared)."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise EngineError("executorch is not installed: pip install 'acre[android]'") from exc
    with torch.no_grad():
        programs = {
            "prefill": torch.export.export(step, step.example_inputs(chunk, pot)),
            "decode": torch.export.export(step, step.example_inputs(1, pot)),
        }
    log.info("lowering to XNNPACK (minutes for a full model)")
    edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
    out.write_bytes(edge.to_executorch().buffer)
    return {"file": out.name, "methods": {"prefill": chunk, "decode": 1}, "backend": "xnnpack"}


def export_onnx(step: StepModel, chunk: int, pot: int, out: Path) -> dict[str, Any]:
    """One ONNX graph whose chunk axis is dynamic: the same file serves prefill (C) and decode (1)."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise EngineError("onnx is not installed: pip install 'acre[onnx]'") from exc
    chunk_dim = torch.export.Dim("chunk", min=1, max=max(chunk, 2))
    dynamic = {name: None for name in INPUT_NAMES}
    dynamic["tokens"] = {0: chunk_dim}
    dynamic["positions"] = {0: chunk_dim}
    with torch.no_grad():
        program = torch.onnx.export(
            step,
            step.example_inputs(chunk, pot),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(out), external_data=False)
    return {"file": out.name, "methods": {"prefill": chunk, "decode": 1}, "dynamic_chunk": True}
