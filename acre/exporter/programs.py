"""Trace the step module into each target's program file.

Every target gets the same signature (`acre.signature.input_names` -> `OUTPUT_NAMES`) with entry
points `prefill` (C tokens) and `decode` (1 token), over a pot of P slots; the ExecuTorch program also
has `short` (C/4 tokens) for questions, which would pay for C rows in `prefill`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from acre.errors import EngineError
from acre.signature import OUTPUT_NAMES, input_names
from acre.step import StepModel

log = logging.getLogger(__name__)


def executorch_methods(chunk: int) -> dict[str, int]:
    """Rows per call of each method: a call costs its rows whatever part of them is used, and a
    question (20-40 tokens) is prefilled twice before the first answer token."""
    methods = {"prefill": chunk, "decode": 1}
    if 1 < chunk // 4 < chunk:
        methods["short"] = chunk // 4
    return methods


def export_executorch(step: StepModel, chunk: int, pot: int, out: Path) -> dict[str, Any]:
    """One .pte with `executorch_methods(chunk)`, lowered to XNNPACK (weights are shared).
    Inputs are not memory-planned: the runtime hands its own pot buffers to the program, which
    reads them where they are instead of copying them into planned memory on every call."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
        from executorch.exir.passes import MemoryPlanningPass
    except ImportError as exc:
        raise EngineError("executorch is not installed: pip install 'acre[android]'") from exc
    with torch.no_grad():
        programs = {
            name: torch.export.export(step, step.example_inputs(rows, pot))
            for name, rows in executorch_methods(chunk).items()
        }
    log.info("lowering to XNNPACK (minutes for a full model)")
    edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
    config = ExecutorchBackendConfig(memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False))
    out.write_bytes(edge.to_executorch(config).buffer)
    return {"file": out.name, "methods": executorch_methods(chunk), "backend": "xnnpack"}


def export_onnx(step: StepModel, chunk: int, pot: int, out: Path) -> dict[str, Any]:
    """One ONNX graph whose chunk axis is dynamic: the same file serves prefill (C) and decode (1)."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise EngineError("onnx is not installed: pip install 'acre[onnx]'") from exc
    # AUTO, not a Dim range: the symbolic shape checker cannot prove the GQA reshapes' stride
    # guards over a declared range, though they hold for every size; decode (1 row) runs in it too
    chunk_dim = torch.export.Dim.AUTO
    # forward(tokens, positions, pot_mask, last_index, *pot): the pot tensors are one varargs entry.
    # torch.export first: torch.onnx.export turns that entry's tuple of shapes into a list and refuses it.
    dynamic = ({0: chunk_dim}, {0: chunk_dim}, None, None, (None,) * (2 * step.g.layers))
    with torch.no_grad():
        traced = torch.export.export(step, step.example_inputs(chunk, pot), dynamic_shapes=dynamic)
        program = torch.onnx.export(
            traced,
            input_names=list(input_names(step.g.layers)),
            output_names=list(OUTPUT_NAMES),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(out), external_data=False)
    return {"file": out.name, "methods": {"prefill": chunk, "decode": 1}, "dynamic_chunk": True}
