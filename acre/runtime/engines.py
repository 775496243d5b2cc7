"""Engines: run the step program of a bundle, one small interface for every backend.

`torch` runs the eager `StepModel` (the reference; weights come from the checkpoint the bundle was
exported from), `executorch` runs `model.pte` through the native core (native/, ExecuTorch's C++
runtime), `onnx` runs `model.onnx` through onnxruntime. All take numpy inputs owned by the runtime
and return numpy outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from acre.bundle import Bundle
from acre.errors import BundleError, EngineError
from acre.signature import input_names

if TYPE_CHECKING:  # torch is imported by the eager engine only: the .pte and ONNX run paths go without it
    from acre.step import StepModel

ENGINES = ("torch", "executorch", "onnx")


@dataclass
class StepInputs:
    tokens: np.ndarray  # [C] int64
    positions: np.ndarray  # [C] int64
    pot_k: np.ndarray  # [L, Hkv, P, D], keys rotated at their slots' positions
    pot_v: np.ndarray
    pot_mask: np.ndarray  # [P] bool (the programs take it as uint8)
    last_index: np.ndarray  # [1] int64

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        """The program's inputs in order (acre.signature.input_names): each layer's pot as a view of the
        runtime's buffers, the mask as uint8 over the same bytes; nothing is copied."""
        mask = self.pot_mask.view(np.uint8)
        return (self.tokens, self.positions, mask, self.last_index, *self.pot_k, *self.pot_v)


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
    """The step program's input shapes the manifest promises, in input_names order."""
    g, pot = bundle.geometry, bundle.pot
    kv = (g.kv_heads, pot, g.head_dim)
    return [(rows,), (rows,), (pot,), (1,), *[kv] * (2 * g.layers)]


def check_input_shapes(bundle: Bundle, method: str, rows: int, actual: list[tuple[Any, ...]]) -> None:
    """Refuse a program whose inputs disagree with the manifest (dynamic dims, not ints, match any)."""
    names, shapes = input_names(bundle.geometry.layers), expected_input_shapes(bundle, rows)
    if len(actual) != len(names):
        raise BundleError(
            f"{bundle.root}: the program's {method} takes {len(actual)} inputs, the manifest's step takes "
            f"{len(names)}; manifest and program disagree (re-export the bundle)"
        )
    for name, want, have in zip(names, shapes, actual, strict=True):
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
        import torch

        from acre.exporter.checkpoint import load_checkpoint
        from acre.step import StepModel

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
        import torch

        with torch.inference_mode():
            out = self.model(*(torch.from_numpy(a) for a in inputs.as_tuple()))
        return StepOutputs.from_arrays([t.numpy() for t in out])


class ExecuTorchEngine:
    """model.pte through the native core's ExecuTorch engine (native/, acre._native): the core checks
    the program against the manifest and runs it on these numpy buffers, in the manifest's order."""

    name = "executorch"

    def __init__(self, bundle: Bundle) -> None:
        try:
            from acre import _native
        except ImportError as exc:
            raise EngineError(f"the native core is not built ({exc}); run scripts/setup.sh") from exc
        bundle.program_path("executorch")  # a bundle without the program says so first
        # Bundle.open verified the checksums already; the core checks structure and sizes again
        self.core = _native.Engine.executorch(_native.Bundle(str(bundle.root), verify_checksums=False))
        step = bundle.manifest["step"]
        self.input_names = [n["name"] if isinstance(n, dict) else n for n in step["inputs"]]
        self.output_names = [n["name"] if isinstance(n, dict) else n for n in step["outputs"]]
        # StepInputs.as_tuple gives the program's inputs in this order
        if self.input_names != list(input_names(bundle.geometry.layers)):
            raise BundleError(
                f"{bundle.root}: the step's inputs {self.input_names} are not this acre's signature"
            )
        unknown = [n for n in self.output_names if n not in {f.name for f in fields(StepOutputs)}]
        if unknown:
            raise BundleError(f"{bundle.root}: the step's {unknown} are not StepOutputs fields")
        self.chunk = bundle.chunk

    def arrays(self, inputs: StepInputs) -> list[np.ndarray]:
        """The program's inputs in manifest order: views of the runtime's arrays, the mask as uint8."""
        return [np.ascontiguousarray(a) for a in inputs.as_tuple()]  # a copy only if not contiguous

    def step(self, inputs: StepInputs) -> StepOutputs:
        out = self.core.step(len(inputs.tokens), self.arrays(inputs))
        return StepOutputs(**dict(zip(self.output_names, out, strict=True)))


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
        self.names = input_names(bundle.geometry.layers)
        if [i.name for i in self.session.get_inputs()] != list(self.names):
            raise BundleError(f"{path}: the program's inputs are not the step signature of this bundle")
        check_input_shapes(bundle, "prefill/decode", bundle.chunk, shapes)

    def step(self, inputs: StepInputs) -> StepOutputs:
        feeds = dict(zip(self.names, inputs.as_tuple(), strict=True))
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
