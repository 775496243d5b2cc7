"""Engines: run the step program of a bundle, one small interface for every backend.

`torch` runs the eager `StepModel` (the reference; weights come from the checkpoint the bundle was
exported from), `executorch` runs `model.pte` through `executorch.runtime`, `onnx` runs `model.onnx`
through onnxruntime. All take numpy inputs owned by the runtime and return numpy outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from acre.bundle import Bundle
from acre.errors import BundleError, EngineError
from acre.step import INPUT_NAMES, StepModel

ENGINES = ("torch", "executorch", "onnx")


@dataclass
class StepInputs:
    tokens: np.ndarray  # [C] int64
    positions: np.ndarray  # [C] int64
    pot_k: np.ndarray  # [L, Hkv, P, D]
    pot_v: np.ndarray
    pot_positions: np.ndarray  # [P] int64
    pot_mask: np.ndarray  # [P] bool (the programs take it as uint8)
    last_index: np.ndarray  # [1] int64

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        values = [getattr(self, name) for name in INPUT_NAMES]
        mask = INPUT_NAMES.index("pot_mask")
        values[mask] = values[mask].view(np.uint8)  # same bytes, no copy
        return tuple(values)


@dataclass
class StepOutputs:
    logits: np.ndarray  # [vocab]
    k_new: np.ndarray  # [L, Hkv, C, D]
    v_new: np.ndarray
    pot_attention: np.ndarray  # [C, P]
    q_probe: np.ndarray  # [Lp, H, C, D]

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray]) -> StepOutputs:
        return cls(*arrays)


class Engine(Protocol):
    name: str

    def step(self, inputs: StepInputs) -> StepOutputs:
        """Run the prefill entry point (C rows) or decode (1 row), chosen by len(inputs.tokens)."""
        ...


def expected_input_shapes(bundle: Bundle, rows: int) -> list[tuple[int, ...]]:
    """The step program's input shapes the manifest promises, in INPUT_NAMES order."""
    g, pot = bundle.geometry, bundle.pot
    kv = (g.layers, g.kv_heads, pot, g.head_dim)
    return [(rows,), (rows,), kv, kv, (pot,), (pot,), (1,)]


def check_input_shapes(bundle: Bundle, method: str, rows: int, actual: list[tuple[Any, ...]]) -> None:
    """Refuse a program whose inputs disagree with the manifest (dynamic dims, not ints, match any)."""
    for name, want, have in zip(INPUT_NAMES, expected_input_shapes(bundle, rows), actual, strict=True):
        same = len(want) == len(have) and all(
            not isinstance(h, int) or h == w for w, h in zip(want, have, strict=True)
        )
        if not same:
            raise BundleError(
                f"{bundle.root}: the program's {method} input {name} has shape {tuple(have)}, the manifest "
                f"says {want}; manifest and program disagree (re-export the bundle)"
            )


class TorchEngine:
    name = "torch"

    def __init__(self, step_model: StepModel) -> None:
        self.model = step_model.eval()

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> TorchEngine:
        from acre.exporter.checkpoint import load_checkpoint

        m = bundle.manifest
        checkpoint = load_checkpoint(m["model"]["source"])
        step = StepModel.from_hf(
            checkpoint.model,
            signal_heads=m["step"]["signal_heads"],
            kv_dtype=getattr(torch, bundle.kv_dtype),
        )
        if step.g != bundle.geometry:
            raise BundleError(f"{bundle.root}: checkpoint {m['model']['source']} does not match its geometry")
        return cls(step)

    def step(self, inputs: StepInputs) -> StepOutputs:
        with torch.inference_mode():
            out = self.model(*(torch.from_numpy(a) for a in inputs.as_tuple()))
        return StepOutputs.from_arrays([t.numpy() for t in out])


class ExecuTorchEngine:
    name = "executorch"

    def __init__(self, bundle: Bundle) -> None:
        try:
            from executorch.runtime import Runtime
        except ImportError as exc:
            raise EngineError("executorch is not installed: pip install 'acre[android]'") from exc
        path = bundle.program_path("executorch")
        try:
            program = Runtime.get().load_program(path)
            self.methods = {name: program.load_method(name) for name in ("prefill", "decode")}
            shapes = {
                name: [tuple(m.metadata.input_tensor_meta(i).sizes()) for i in range(len(INPUT_NAMES))]
                for name, m in self.methods.items()
            }
        except Exception as exc:  # the runtime raises RuntimeError/ValueError with codes
            raise BundleError(f"{path}: ExecuTorch cannot load the program ({exc})") from exc
        mask_dtype = self.methods["decode"].metadata.input_tensor_meta(INPUT_NAMES.index("pot_mask")).dtype()
        if mask_dtype != 0:  # ScalarType Byte; bundles exported before acre 0.1 took a bool mask
            raise BundleError(f"{path}: pot_mask is not uint8 in this program; re-export the bundle")
        check_input_shapes(bundle, "prefill", bundle.chunk, shapes["prefill"])
        check_input_shapes(bundle, "decode", 1, shapes["decode"])
        self.chunk = bundle.chunk

    def step(self, inputs: StepInputs) -> StepOutputs:
        method = self.methods["decode" if len(inputs.tokens) == 1 else "prefill"]
        out = method.execute([torch.from_numpy(a) for a in inputs.as_tuple()])
        return StepOutputs.from_arrays([t.numpy() for t in out])


class OnnxEngine:
    name = "onnx"

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EngineError("onnxruntime is not installed: pip install 'acre[onnx]'") from exc
        path = bundle.program_path("onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"{path}: ONNX Runtime cannot load the program ({exc})") from exc
        shapes = [tuple(i.shape) for i in self.session.get_inputs()]
        if [i.name for i in self.session.get_inputs()] != list(INPUT_NAMES):
            raise BundleError(f"{path}: the program's inputs are not the step signature {INPUT_NAMES}")
        check_input_shapes(bundle, "prefill/decode", bundle.chunk, shapes)

    def step(self, inputs: StepInputs) -> StepOutputs:
        feeds = dict(zip(INPUT_NAMES, inputs.as_tuple(), strict=True))
        return StepOutputs.from_arrays(self.session.run(None, feeds))


def open_engine(bundle: Bundle, name: str = "auto") -> Engine:
    """The named engine, or for `auto` the first program the bundle has that can run here."""
    if name == "auto":
        for candidate in ("executorch", "onnx"):
            if candidate in bundle.programs:
                try:
                    return open_engine(bundle, candidate)
                except EngineError:
                    continue
        return TorchEngine.from_bundle(bundle)
    if name == "torch":
        return TorchEngine.from_bundle(bundle)
    if name == "executorch":
        return ExecuTorchEngine(bundle)
    if name == "onnx":
        return OnnxEngine(bundle)
    raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)} or auto")
