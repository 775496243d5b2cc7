"""The Core ML target (`acre-export --target ios`): one multifunction ML program `model.mlpackage`.

Functions `prefill` (C rows, the default) and `decode` (1 row) share one weight file; both have the
step signature of `acre.step` over a pot of P slots. The runtime keeps owning the pot: each layer's
K/V (keys rotated at their positions) and the mask are inputs, the chunk's K/V are outputs, nothing
is Core ML state (docs/coreml.md says why). Built for iOS 18 (multifunction and blockwise weight
compression need it), fp16 compute with two fp32 islands (RMSNorm's sum of squares and the RoPE
angles, which overflow or lose whole radians in fp16). Weights: a GGUF source's Q4_1 / Q8_0 tensors
keep their own blocks (`constexpr_blockwise_shift_scale` of the file's codes and scales, no second
rounding, see `grid_blocks`); every other weight is linear-quantized to int8 per output channel.

Core ML has no int64, bool or uint8 I/O, so the integer inputs (`tokens`, `positions`,
`last_index`) are int32 and `pot_mask` is int32 0/1; the program entry lists every I/O dtype.

Prediction needs macOS/iOS. On Linux `validate_coreml` checks the saved package structurally against
the manifest: functions, I/O names, shapes and dtypes, that every op is a Core ML iOS 18 op and the
whole network is there, the fp32 islands, the compressed weights and the weight file references.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acre.bundle import MANIFEST, Bundle
from acre.errors import BundleError, EngineError
from acre.exporter.gguf_grid import BLOCK, Grid
from acre.geometry import Geometry
from acre.signature import OUTPUT_NAMES, input_names
from acre.step import StepModel

log = logging.getLogger(__name__)

ENGINE = "coreml"
DEFAULT_FUNCTION = "prefill"
DEPLOYMENT_TARGET = "iOS18"
SPEC_VERSION_IOS18 = 9
COMPUTE_PRECISION = "float16"
# Weight compression of the tensors without a source grid: int8, symmetric, one fp16 scale per output
# channel (per row of the embedding).
COMPRESSION = {
    "method": "coremltools.optimize.coreml.linear_quantize_weights",
    "dtype": "int8",
    "mode": "linear_symmetric",
    "granularity": "per_channel",
    "op_types": ["linear", "gather"],  # projections, lm_head and the embedding table
    "weight_threshold": 2048,  # tensors of at most this many elements stay fp16
}
COMPRESSED_WEIGHT_OP = "constexpr_blockwise_shift_scale"
# What the tensors with a source grid become (programs.coreml.compression.grids)
GRID_FORMATS = {
    "q4_1": "uint4 codes q, fp16 scale d and fp16 offset -m/d per block of 32 (w = d q + m = d (q + m/d))",
    "q8_0": "int8 codes q, fp16 scale d per block of 32, no offset (w = d q, exact)",
}
GRID_METHOD = "acre grid pass: constexpr_blockwise_shift_scale of the GGUF file's own codes and scales"
# Ops that must compute in fp32 (their inputs and outputs), see _Fp32Islands.
FP32_OPS = ("pow", "reduce_mean", "rsqrt", "sin", "cos")
FP32_ISLANDS = [
    "RMSNorm mean of squares: pow, reduce_mean, add eps, rsqrt",
    "RoPE angles: positions * inv_freq, sin, cos",
]
# Core ML I/O arrays (ArrayFeatureType.ArrayDataType) by name; iOS 18 I/O has int32, fp16 and fp32 only.
_ARRAY_DTYPE_NAMES = {65568: "float32", 65552: "float16", 131104: "int32", 131080: "int8", 65600: "float64"}


def _coremltools() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import coremltools
    except ImportError as exc:
        raise EngineError("coremltools is not installed: pip install 'acre[ios]'") from exc
    return coremltools


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def io_dtypes(kv_dtype: str, layers: int) -> dict[str, str]:
    """Core ML dtype of every input and output of the step signature, for a bundle's kv_dtype."""
    chunk = {"tokens": "int32", "positions": "int32", "pot_mask": "int32", "last_index": "int32"}
    inputs = {name: chunk.get(name, kv_dtype) for name in input_names(layers)}
    outputs = {
        "logits": "float32",
        "k_new": kv_dtype,
        "v_new": kv_dtype,
        "pot_attention": "float32",
        "q_probe": "float32",
    }
    return {**inputs, **outputs}


def signature_shapes(g: Geometry, pot: int, probe_layers: list[int], rows: int) -> dict[str, tuple[int, ...]]:
    """Shape of every input and output of the step program for `rows` chunk rows (docs/bundle.md)."""
    new = (g.layers, g.kv_heads, rows, g.head_dim)
    chunk = {"tokens": (rows,), "positions": (rows,), "pot_mask": (pot,), "last_index": (1,)}
    return {
        **{name: chunk.get(name, (g.kv_heads, pot, g.head_dim)) for name in input_names(g.layers)},
        "logits": (g.vocab,),
        "k_new": new,
        "v_new": new,
        "pot_attention": (rows, pot),
        "q_probe": (len(probe_layers), g.heads, rows, g.head_dim),
    }


class _Fp32Islands:
    """`op_selector` for coremltools' FP16ComputePrecision: returns False for ops that stay fp32.

    Two places of a Llama step break in fp16. RMSNorm squares the residual stream, and SmolLM2's
    reaches ~25,000 (squared 6e8, fp16 tops out at 65,504), so the norm would divide by inf. RoPE
    multiplies integer positions by frequencies up to 1: an angle near 1,000 rad has an fp16 spacing
    of 0.5, so sin/cos would be off by up to a quarter radian. The selector runs over the ops in
    order; an op stays fp32 if it is a `pow` or reads a value derived (through ops kept fp32) from
    `positions` or from a `pow`. The derivation stops at rsqrt, sin and cos, whose
    outputs are safe in fp16. Everything else computes in fp16.
    """

    SOURCES = frozenset({"positions"})
    STOP = frozenset({"rsqrt", "sin", "cos"})

    def __init__(self) -> None:
        self.derived: set[str] = set()
        self.kept: Counter[str] = Counter()

    def _derived(self, var: Any) -> bool:
        while var.op is not None and var.op.op_type == "cast":  # casts never reach the selector
            var = var.op.x
        return var.name in self.SOURCES if var.op is None else var.name in self.derived

    def __call__(self, op: Any) -> bool:
        inputs = [v for vs in op.inputs.values() for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
        keep = op.op_type == "pow" or any(self._derived(v) for v in inputs)
        if keep:
            self.kept[op.op_type] += 1
            if op.op_type not in self.STOP:
                self.derived.update(o.name for o in op.outputs)
        return not keep


class _CoreMLStep(torch.nn.Module):
    """The step module with `pot_mask` taken as int32 0/1: Core ML arrays have no bool or uint8, and
    coremltools' torch.export frontend has no uint8 inputs."""

    def __init__(self, step: StepModel) -> None:
        super().__init__()
        self.step = step  # parameters export as `p_step_<name>`, see dequantized_weights

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        pot_mask: torch.Tensor,
        last_index: torch.Tensor,
        *pot: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        return self.step(tokens, positions, pot_mask, last_index, *pot)


def _convert(ct: Any, step: StepModel, rows: int, pot: int) -> Any:
    """One function (`rows` chunk rows) as a single-function ML program, fp16 with fp32 islands."""
    example = list(step.example_inputs(rows, pot))
    names = input_names(step.g.layers)
    example[names.index("pot_mask")] = torch.zeros(pot, dtype=torch.int32)
    with torch.no_grad():
        program = torch.export.export(_CoreMLStep(step).eval(), tuple(example)).run_decompositions({})
    kv = _dtype_name(step.kv_dtype)
    dtypes = io_dtypes(kv, step.g.layers)
    numpy_dtype = {"int32": np.int32, "float32": np.float32, "float16": np.float16}
    inputs = [
        ct.TensorType(name=name, shape=tuple(x.shape), dtype=numpy_dtype[dtypes[name]])
        for name, x in zip(names, example, strict=True)
    ]
    outputs = [ct.TensorType(name=name, dtype=numpy_dtype[dtypes[name]]) for name in OUTPUT_NAMES]
    islands = _Fp32Islands()
    model = ct.convert(
        program,
        inputs=inputs,
        outputs=outputs,
        convert_to="mlprogram",
        compute_precision=ct.transform.FP16ComputePrecision(op_selector=islands),
        minimum_deployment_target=ct.target.iOS18,
        skip_model_load=True,  # loading compiles the model, which only macOS can do
    )
    if not islands.kept["pow"] or not islands.kept["sin"]:
        raise EngineError(f"Core ML conversion: the fp32 islands were not found (kept {dict(islands.kept)})")
    return model


def grid_blocks(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """`data`, `scale`, `offset` of a `constexpr_blockwise_shift_scale` (output = scale * (data - offset),
    blocks of 32 along the input implied by the scale's shape [rows, cols // 32]) holding `grid` as the
    file stores it, or None if it cannot be held.

    Q8_0 (w = d q): the int8 codes and fp16 scales as they are, no offset: exact. Q4_1 (w = d q + m):
    the uint4 codes and fp16 scales, and the offset -m/d, which has to be a float of the scale's
    dtype (or an integer of the codes'): its fp16 rounding is the one change, at most 2^-11 |m| (half
    an fp16 ulp of m/d, times d) per weight, no more than rounding m itself to fp16. A block with
    d = 0 (every weight m) is held as scale m, codes 1, offset 0: exact. None if an offset is beyond
    fp16's range (such a tensor gets int8 per channel instead)."""
    scale = grid.scale.astype(np.float16)
    if grid.kind == "q8_0":
        return grid.codes.astype(np.int8), scale, None
    if grid.kind != "q4_1" or grid.minimum is None:
        raise EngineError(f"Core ML: no block format for a {grid.kind} grid")
    d, m = grid.scale.astype(np.float64), grid.minimum.astype(np.float64)
    flat = d == 0
    with np.errstate(over="ignore"):  # beyond fp16: inf, refused below
        offset = np.where(flat, 0.0, -m / np.where(flat, 1.0, d)).astype(np.float16)
    if not np.isfinite(offset).all():
        return None
    codes = grid.codes.astype(np.uint8)
    if flat.any():
        codes = codes.copy()
        codes.reshape(*flat.shape, BLOCK)[flat] = 1
        scale = np.where(flat, grid.minimum, grid.scale).astype(np.float16)
    return codes, scale, offset


def _param_stem(op_name: str) -> str:
    """Torch parameter name (dots as underscores) of a converted weight's MIL const or constexpr op:
    `p_step_model_layers_0_mlp_up_proj_weight_to_fp16[_...]` -> `model_layers_0_mlp_up_proj_weight`."""
    return op_name.removeprefix("p_").removeprefix("step_").split("_to_fp16")[0]


def _grid_pass(grids: dict[str, Grid], done: dict[str, str]) -> Any:
    """A MIL graph pass that replaces each weight const whose parameter (`grids`, by stem) has a source
    grid with a `constexpr_blockwise_shift_scale` of that grid; `done` collects stem -> grid kind.
    It runs before coremltools' int8 quantizer, which leaves consts that feed a constexpr op alone."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass

    class OntoGrids(AbstractGraphPass):
        def apply(self, prog: Any) -> None:
            for block in prog.functions.values():
                with block:
                    for op in list(block.operations):
                        if op.op_type == "const" and _param_stem(op.name) in grids:
                            self._replace(block, op)

        def _replace(self, block: Any, op: Any) -> None:
            stem = _param_stem(op.name)
            grid = grids[stem]
            weight = op.outputs[0].val
            # the const must be this grid's tensor, in this layout: a wrong name or a transposed
            # const would otherwise put other weights on the grid
            if not np.array_equal(weight, grid.dequantize().astype(weight.dtype)):
                raise EngineError(f"Core ML: the converted {stem} is not its {grid.kind} grid's weights")
            blocks = grid_blocks(grid)
            if blocks is None:
                log.warning("Core ML: %s's q4_1 offsets exceed fp16; it gets int8 per channel", stem)
                done[stem] = "fallback"
                return
            data, scale, offset = blocks
            if grid.kind == "q4_1":
                data = data.astype(types.np_uint4_dtype)
            var = mb.constexpr_blockwise_shift_scale(
                data=data, scale=scale, offset=offset, before_op=op, name=f"{op.name}_{grid.kind}"
            )
            block.replace_uses_of_var_after_op(
                anchor_op=op, old_var=op.outputs[0], new_var=var, no_check_var_types=True
            )
            block.remove_ops([op])
            done[stem] = grid.kind

    return OntoGrids()


def _compress(ct: Any, model: Any, grids: dict[str, Grid] | None = None) -> tuple[Any, dict[str, str]]:
    """The converted model with its weights compressed: the tensors of `grids` (keyed by parameter
    stem) on their source grids, the others int8 per channel. Returns it and stem -> grid kind of the
    tensors put on a grid."""
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models.utils import _apply_graph_pass
    from coremltools.optimize import coreml as cto

    quantizer = cto.OpLinearQuantizerConfig(
        mode=COMPRESSION["mode"],
        dtype=COMPRESSION["dtype"],
        granularity=COMPRESSION["granularity"],
        weight_threshold=COMPRESSION["weight_threshold"],
    )
    # By consumer op type, not globally: a global config would also quantize constant tensors the
    # graph builds (all-zero accumulators give a zero scale and NaNs).
    config = cto.OptimizationConfig(op_type_configs={t: quantizer for t in COMPRESSION["op_types"]})
    # the two passes in one program round trip, as cto.linear_quantize_weights builds its own
    int8 = PASS_REGISTRY["compression::linear_quantize_weights"]
    int8.set_options([PassOption("config", config), PassOption("joint_compression", False)])
    done: dict[str, str] = {}
    passes = ([_grid_pass(grids, done)] if grids else []) + [int8]
    return _apply_graph_pass(model, passes), done


def _load_program(ct: Any, package: Path) -> Any:
    """The package's MIL program with its weights (pymil), as coremltools' own multifunction tools do."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    spec = ct.utils.load_spec(str(package))
    weights = Path(package) / "Data" / "com.apple.CoreML" / "weights"
    return milproto_load(spec, spec.specificationVersion, str(weights))


def _blocks(op: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
    """A constexpr_blockwise_shift_scale's data, and its scale and offset repeated to data's shape."""
    data = op.data.val.astype(np.float32)  # int8, or uint4 held as uint8
    scale = op.scale.val.astype(np.float32)
    offset = op.offset.val.astype(np.float32) if getattr(op, "offset", None) is not None else 0.0
    for axis, (n, s) in enumerate(zip(data.shape, scale.shape, strict=True)):
        scale = np.repeat(scale, n // s, axis=axis)
        if isinstance(offset, np.ndarray):
            offset = np.repeat(offset, n // offset.shape[axis], axis=axis)
    return data, scale, offset


def _dequantize(op: Any) -> np.ndarray:
    """scale * (data - offset) in fp32: exact for the int8 and Q8_0 codes, and for Q4_1 up to fp32's
    own rounding. (Core ML produces the weights in fp16, the program's compute precision.)"""
    data, scale, offset = _blocks(op)
    return (data - offset) * scale


def _compressed_ops(package: str | Path, function: str | None = None) -> dict[str, Any]:
    """Parameter stem -> constexpr_blockwise_shift_scale op of a saved package's function (default:
    `prefill`, or the only one)."""
    ct = _coremltools()
    program = _load_program(ct, Path(package))
    if function is None:
        function = (
            DEFAULT_FUNCTION if DEFAULT_FUNCTION in program.functions else next(iter(program.functions))
        )
    ops = program.functions[function].operations
    return {_param_stem(op.name): op for op in ops if op.op_type == COMPRESSED_WEIGHT_OP}


def dequantized_weights(package: str | Path, function: str | None = None) -> dict[str, np.ndarray]:
    """The compressed weights of a saved package's function (default: `prefill`, or the only one),
    dequantized to fp32, keyed by torch parameter name with dots as underscores
    (`model_layers_0_self_attn_q_proj_weight`). A constant shared by two parameters (tied
    embeddings) is listed under the one coremltools kept."""
    return {stem: _dequantize(op) for stem, op in _compressed_ops(package, function).items()}


def _code_dtype(op: Any) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(op.data.dtype)


def _describe(op: Any, kind: str | None) -> str:
    """What a compressed weight is, read from its op: grid kind (if it is on the source's blocks),
    code dtype, scale granularity, offset."""
    data, scale = op.data.val, op.scale.val
    dtype = _code_dtype(op)
    offset = getattr(op, "offset", None) is not None
    block = data.shape[-1] // scale.shape[-1]
    if kind in GRID_FORMATS:
        extra = " and fp16 offset" if offset else ""
        return f"{kind} grid, the source's codes and scales: {dtype} codes, fp16 scale{extra} per {block}"
    per = "per output channel" if scale.shape[-1] == 1 else f"per block of {block}"
    why = " (its q4_1 offsets exceed fp16)" if kind == "fallback" else ""
    return f"re-rounded from the fp16 weights{why}: {dtype} {per}, fp16 scale ({COMPRESSION['mode']})"


def _stats(errors: list[float], elements: int) -> dict[str, Any]:
    return {
        "weights": len(errors),
        "elements": elements,
        "relative_error_mean": round(float(np.mean(errors)), 8) if errors else None,
        "relative_error_max": round(float(np.max(errors)), 8) if errors else None,
    }


def _weight_error(step: StepModel, package: Path, on_grid: dict[str, str] | None = None) -> dict[str, Any]:
    """Every compressed weight of the package against the step's fp32 tensor (for a GGUF source, the
    grid's exact dequantized weights): relative error ||W - dequant(W)|| / ||W||, overall and per
    format (q4_1 / q8_0 grid, int8 per channel), beside the error of merely rounding W to fp16, which
    the fp16 program applies to every weight anyway, and that of the dequantized weight rounded to
    fp16 (both roundings, as the program computes); the largest error in code steps (scale units);
    and the per-tensor record (parameter name -> what was done; a tied parameter names the constant)."""
    on_grid = on_grid or {}
    state = step.state_dict()
    params = {name.replace(".", "_"): name for name in state}
    errors: list[float] = []
    elements = 0
    by_format: dict[str, dict[str, Any]] = {}
    tensors: dict[str, str] = {}
    dtypes: Counter[str] = Counter()
    for stem, op in _compressed_ops(package).items():
        if stem not in params:
            raise EngineError(f"Core ML compression: weight {stem} has no parameter in the step module")
        name = params[stem]
        ref = state[name].detach().float().numpy()
        data, scale, offset = _blocks(op)
        deq = (data - offset) * scale
        error = float(np.linalg.norm(ref - deq) / max(float(np.linalg.norm(ref)), 1e-30))
        norm = max(float(np.linalg.norm(ref)), 1e-30)
        fp16 = float(np.linalg.norm(ref - ref.astype(np.float16)) / norm)
        # what an fp16 program computes with, if Core ML rounds the decompressed weights once
        device = float(np.linalg.norm(ref - deq.astype(np.float16)) / norm)
        steps = float(np.max(np.abs(ref - deq) / np.where(scale == 0, np.inf, np.abs(scale))))
        errors.append(error)
        elements += ref.size
        kind = on_grid.get(stem)
        fmt = kind if kind in GRID_FORMATS else "int8"
        acc = by_format.setdefault(fmt, {"errors": [], "fp16": [], "device": [], "elements": 0, "steps": 0.0})
        acc["errors"].append(error)
        acc["fp16"].append(fp16)
        acc["device"].append(device)
        acc["elements"] += ref.size
        acc["steps"] = max(acc["steps"], steps)
        tensors[name] = _describe(op, kind)
        dtypes[_code_dtype(op)] += 1
    # tied parameters (lm_head and the embedding) are one constant: say so under both names
    for name in list(state):
        alias = None if name in tensors else _twin(state, name, list(tensors))
        if alias is not None:
            tensors[name] = f"the constant of {alias} (tied): {tensors[alias]}"
    formats = {
        fmt: {
            **_stats(acc["errors"], acc["elements"]),
            "fp16_rounding_relative_error_mean": round(float(np.mean(acc["fp16"])), 8),
            "in_fp16_relative_error_mean": round(float(np.mean(acc["device"])), 8),
            "largest_error_in_code_steps": round(acc["steps"], 6),
        }
        for fmt, acc in sorted(by_format.items())
    }
    return {**_stats(errors, elements), "dtypes": dict(dtypes), "by_format": formats, "tensors": tensors}


def _summary(tensors: dict[str, str]) -> str:
    """One line for the manifest's top-level `quantization`: how many parameters got what."""
    kinds = (next((k for k in GRID_FORMATS if f"{k} grid" in text), "int8") for text in tensors.values())
    counts = Counter(kinds)
    parts = []
    if counts["q4_1"]:
        parts.append(f"{counts['q4_1']} tensors on their GGUF Q4_1 blocks (uint4 codes, fp16 scale, offset)")
    if counts["q8_0"]:
        parts.append(f"{counts['q8_0']} on their GGUF Q8_0 blocks (int8 codes, fp16 scale)")
    if counts["int8"]:
        parts.append(f"{counts['int8']} int8 per output channel, re-rounded from the fp16 weights")
    return "; ".join(parts + ["the rest (norms, small tensors) fp16"])


def package_bytes(package: Path) -> int:
    return sum(p.stat().st_size for p in Path(package).rglob("*") if p.is_file())


def export_coreml(
    step: StepModel, chunk: int, pot: int, out: Path, grids: dict[str, Grid] | None = None
) -> dict[str, Any]:
    """Write `out` (a .mlpackage) with functions `prefill` (chunk rows) and `decode` (1 row), validate
    it, and return the manifest's program entry. `grids` (parameter name -> the GGUF source's blocks,
    acre.exporter.gguf_grid; their dequantized weights must be the step's) are kept as they are; the
    other weights are int8 per channel."""
    ct = _coremltools()
    out = Path(out)
    methods = {"prefill": chunk, "decode": 1}
    quiet = logging.getLogger("coremltools")  # its INFO is one line per op and pass
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        entry = _export(ct, step, methods, pot, out, grids or {})
    finally:
        quiet.setLevel(level)
    return entry


def _twin(state: dict[str, torch.Tensor], name: str, others: list[str]) -> str | None:
    """The first of `others` whose tensor equals `name`'s. Tied weights (the embedding and lm_head) are
    one constant in the program: coremltools merges equal constants, whatever the torch names."""
    t = state[name]
    return next((o for o in others if state[o].shape == t.shape and torch.equal(state[o], t)), None)


def _check_grids_placed(step: StepModel, grids: dict[str, Grid], done: dict[str, str]) -> None:
    """Every grid went onto its tensor's constant (or onto the constant of the parameter it is tied
    to, which holds the same grid): a grid whose constant the pass did not find would silently leave
    that tensor to int8."""
    state = step.state_dict()
    placed = [n for n in state if n.replace(".", "_") in done]
    missing = []
    for name in grids:
        twin = None if name not in state or name in placed else _twin(state, name, placed)
        same = twin is not None and twin in grids and np.array_equal(grids[twin].codes, grids[name].codes)
        if name not in placed and not same:
            missing.append(name)
    if missing:
        raise EngineError(f"Core ML: no weight constant of the converted program took the grid of {missing}")


def _export(
    ct: Any, step: StepModel, methods: dict[str, int], pot: int, out: Path, grids: dict[str, Grid]
) -> dict[str, Any]:
    chunk = methods["prefill"]
    stems = {name.replace(".", "_"): grid for name, grid in grids.items()}
    on_grid: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="coreml-", dir=out.parent) as tmp:
        parts: dict[str, Path] = {}
        for function, rows in methods.items():
            log.info("Core ML: converting %s (%d rows) and compressing its weights", function, rows)
            model, done = _compress(ct, _convert(ct, step, rows, pot), stems)
            _check_grids_placed(step, grids, done)
            if on_grid and done != on_grid:
                raise EngineError(f"Core ML: {function} put other tensors on grids than prefill")
            on_grid = done
            parts[function] = Path(tmp) / f"{function}.mlpackage"
            model.save(str(parts[function]))
            del model
        error = _weight_error(step, parts[DEFAULT_FUNCTION], on_grid)
        log.info("Core ML: merging the functions into %s (weights shared)", out.name)
        desc = ct.utils.MultiFunctionDescriptor()
        for function, path in parts.items():
            desc.add_function(str(path), src_function_name="main", target_function_name=function)
        desc.default_function_name = DEFAULT_FUNCTION
        ct.utils.save_multifunction(desc, str(out))
    entry: dict[str, Any] = {
        "file": out.name,
        "methods": methods,
        "default_function": DEFAULT_FUNCTION,
        "format": "mlprogram",
        "deployment_target": DEPLOYMENT_TARGET,
        "compute_precision": COMPUTE_PRECISION,
        "fp32_islands": FP32_ISLANDS,
        "io_dtypes": io_dtypes(_dtype_name(step.kv_dtype), step.g.layers),
        "compression": _compression_entry(error, on_grid),
        "coremltools_version": ct.__version__,
    }
    manifest = {
        "model": {"geometry": step.g.to_dict()},
        "step": {
            "chunk": chunk,
            "pot": pot,
            "kv_dtype": _dtype_name(step.kv_dtype),
            "probe_layers": step.probe_layers,
            "inputs": list(input_names(step.g.layers)),
            "outputs": list(OUTPUT_NAMES),
        },
        "programs": {ENGINE: entry},
    }
    report = validate_coreml(out, manifest)
    entry["package_bytes"] = report["bytes"]
    log.info("Core ML: %s valid, %.1f MB", out.name, report["bytes"] / 1e6)
    return entry


def _compression_entry(error: dict[str, Any], on_grid: dict[str, str]) -> dict[str, Any]:
    """programs.coreml.compression: the scheme, the code dtypes (validation counts them), the rule of
    each kind of tensor, every tensor's record and the measured errors."""
    kinds = Counter(v for v in on_grid.values() if v in GRID_FORMATS)
    dtypes = error.pop("dtypes")
    entry: dict[str, Any] = {
        "scheme": "gguf" if kinds else "int8-per-channel",
        "summary": _summary(error["tensors"]),
        "dtype": ", ".join(sorted(dtypes, key=lambda k: -dtypes[k])) or "none",
        "dtypes": dtypes,
    }
    if kinds:
        entry["source_grids"] = {
            "method": GRID_METHOD,
            "formats": {k: GRID_FORMATS[k] for k in sorted(kinds)},
            "weights": dict(kinds),
        }
    entry["others"] = {**COMPRESSION, "weights": error["weights"] - sum(kinds.values())}
    return {**entry, **error}


# --- validation (Linux: structure only; prediction needs macOS) ------------------------------------


def _walk_ops(block: Any) -> Any:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk_ops(inner)


def _array(feature: Any) -> tuple[tuple[int, ...], str]:
    array = feature.type.multiArrayType
    return tuple(int(d) for d in array.shape), _ARRAY_DTYPE_NAMES.get(array.dataType, str(array.dataType))


def validate_coreml(
    bundle_or_path: Bundle | str | Path, manifest: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check a saved Core ML package against a manifest; raise BundleError naming every disagreement.

    `bundle_or_path` is a Bundle, a bundle directory (its manifest.json is read unless `manifest` is
    given) or the .mlpackage itself (then `manifest` is required). Returns a report: package path,
    size in bytes, ops per function, compressed weights (and by code dtype), ops kept in fp32."""
    ct = _coremltools()
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry
    from coremltools.proto import MIL_pb2

    if isinstance(bundle_or_path, Bundle):
        root, manifest = bundle_or_path.root, manifest or bundle_or_path.manifest
        package = None
    else:
        path = Path(bundle_or_path)
        root, package = (None, path) if path.suffix == ".mlpackage" else (path, None)
    if manifest is None:
        if root is None:
            raise BundleError(f"{package}: validating a bare package needs the manifest")
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BundleError(f"{root / MANIFEST}: cannot read the manifest ({exc})") from exc
    try:
        program = manifest["programs"][ENGINE]
        g = Geometry.from_dict(manifest["model"]["geometry"])
        step = manifest["step"]
        pot, probe_layers = int(step["pot"]), [int(x) for x in step["probe_layers"]]
        names_in, names_out = list(step["inputs"]), list(step["outputs"])
        methods = {str(k): int(v) for k, v in program["methods"].items()}
        kv_dtype = str(step["kv_dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"manifest has no usable {ENGINE} program or step fields ({exc})") from exc
    if package is None:
        package = root / program["file"]
    where = str(package)
    if not package.is_dir():
        raise BundleError(f"{where}: Core ML package missing")
    try:
        spec = ct.utils.load_spec(str(package))
    except Exception as exc:  # protobuf and package-format errors come in many types
        raise BundleError(f"{where}: not a readable Core ML package ({exc})") from exc

    problems: list[str] = []
    if spec.WhichOneof("Type") != "mlProgram":
        raise BundleError(f"{where}: not an ML program (it is {spec.WhichOneof('Type')})")
    if spec.specificationVersion < SPEC_VERSION_IOS18:
        problems.append(
            f"specification version {spec.specificationVersion}, iOS 18 needs >= {SPEC_VERSION_IOS18}"
        )
    functions = {f.name: f for f in spec.description.functions}
    if set(functions) != set(methods):
        problems.append(f"functions {sorted(functions)}, manifest says {sorted(methods)}")
    default = program.get("default_function", DEFAULT_FUNCTION)
    if spec.description.defaultFunctionName != default:
        problems.append(
            f"default function {spec.description.defaultFunctionName!r}, manifest says {default!r}"
        )

    expected_dtypes = io_dtypes(kv_dtype, g.layers)
    if "io_dtypes" in program and program["io_dtypes"] != expected_dtypes:
        problems.append(
            f"manifest io_dtypes {program['io_dtypes']} are not the Core ML mapping {expected_dtypes}"
        )
    for name, rows in methods.items():
        if name not in functions:
            continue
        shapes = signature_shapes(g, pot, probe_layers, rows)
        for kind, want, have in (
            ("inputs", names_in, functions[name].input),
            ("outputs", names_out, functions[name].output),
        ):
            if [f.name for f in have] != want:
                problems.append(f"{name}: {kind} {[f.name for f in have]}, manifest says {want}")
                continue
            for feature in have:
                shape, dtype = _array(feature)
                if shape != shapes[feature.name] or dtype != expected_dtypes[feature.name]:
                    problems.append(
                        f"{name}: {feature.name} is {list(shape)} {dtype}, the manifest implies "
                        f"{list(shapes[feature.name])} {expected_dtypes[feature.name]}"
                    )

    # The MIL program: every op a Core ML op of the target opset, the whole network present,
    # the fp32 islands in fp32, the compressed weights as declared, every weight blob present.
    ops_report: dict[str, int] = {}
    compressed: dict[str, int] = {}
    code_dtypes: dict[str, dict[str, int]] = {}
    fp32_kept: dict[str, int] = {}
    model_dir = package / "Data" / "com.apple.CoreML"
    blob_sizes: dict[str, int] = {}
    compression = program.get("compression")
    for name in methods:
        if name not in spec.mlProgram.functions:
            problems.append(f"{name}: no MIL function of that name")
            continue
        fn = spec.mlProgram.functions[name]
        ops = list(_walk_ops(fn.block_specializations[fn.opset]))
        ops_report[name] = len(ops)
        types = Counter(op.type for op in ops)
        dtype_of = {v.name: v.type.tensorType.dataType for v in fn.inputs}
        for op in ops:
            for out in op.outputs:
                dtype_of[out.name] = out.type.tensorType.dataType
        unknown = sorted(
            t
            for t in types
            if t not in SSAOpRegistry.core_ops or ct.target.iOS18 not in SSAOpRegistry.core_ops[t]
        )
        if unknown:
            problems.append(f"{name}: ops that are not Core ML iOS 18 ops: {unknown}")
        for op_type, want in (("linear", 7 * g.layers + 1), ("softmax", g.layers), ("pow", 2 * g.layers + 1)):
            if types[op_type] != want:
                problems.append(
                    f"{name}: {types[op_type]} {op_type} ops, a {g.layers}-layer step has {want} "
                    "(the network is not all there)"
                )
        fp32 = MIL_pb2.DataType.Value("FLOAT32")
        kept = 0
        for op in ops:
            if op.type not in FP32_OPS:
                continue
            args = [b.name for b in op.inputs["x"].arguments if b.name] if "x" in op.inputs else []
            if any(dtype_of.get(a) != fp32 for a in args) or any(
                o.type.tensorType.dataType != fp32 for o in op.outputs
            ):
                problems.append(f"{name}: {op.type} op {op.outputs[0].name} does not compute in fp32")
            kept += 1
        fp32_kept[name] = kept
        if types["sin"] != 1 or types["cos"] != 1:  # the chunk's RoPE: pot keys come rotated
            problems.append(f"{name}: {types['sin']} sin / {types['cos']} cos ops, the chunk's RoPE has 1")
        compressed[name] = types[COMPRESSED_WEIGHT_OP]
        if compression is not None and compressed[name] != compression.get("weights"):
            problems.append(
                f"{name}: {compressed[name]} compressed weights, manifest says {compression.get('weights')}"
            )
        # code dtypes: `dtypes` counts them (a program with source grids has uint4 and int8 codes);
        # a manifest without it declares one `dtype` for all
        declared = dict((compression or {}).get("dtypes") or {str((compression or {}).get("dtype")): None})
        codes: Counter[str] = Counter()
        for op in ops:
            values = [op.attributes["val"]] if op.type == "const" else []
            for param, argument in op.inputs.items():
                for binding in argument.arguments:
                    if binding.WhichOneof("binding") != "value":
                        continue
                    values.append(binding.value)
                    if op.type == COMPRESSED_WEIGHT_OP and param == "data":
                        code = MIL_pb2.DataType.Name(binding.value.type.tensorType.dataType).lower()
                        codes[code] += 1
                        if code not in declared:
                            problems.append(
                                f"{name}: compressed weight {op.outputs[0].name} is {code}, "
                                f"not {'/'.join(declared)}"
                            )
            for value in values:
                if value.WhichOneof("value") != "blobFileValue":
                    continue
                blob = value.blobFileValue
                file = blob.fileName.replace("@model_path/", "")
                if file not in blob_sizes:
                    path = model_dir / file
                    blob_sizes[file] = path.stat().st_size if path.is_file() else -1
                if blob_sizes[file] < 0:
                    problems.append(f"{name}: weight file {file} is missing")
                elif blob.offset >= blob_sizes[file]:
                    problems.append(f"{name}: weight of {op.outputs[0].name} lies past the end of {file}")
        code_dtypes[name] = dict(codes)
        counted = {k: v for k, v in declared.items() if v is not None}
        if counted and dict(codes) != counted:
            problems.append(f"{name}: compressed weights by code dtype {dict(codes)}, manifest {counted}")
    if problems:
        shown = "; ".join(problems[:8])
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise BundleError(f"{where}: Core ML package disagrees with the manifest: {shown}{more}")
    return {
        "package": str(package),
        "bytes": package_bytes(package),
        "functions": {n: methods[n] for n in methods},
        "ops": ops_report,
        "compressed_weights": compressed,
        "code_dtypes": code_dtypes,
        "fp32_ops": fp32_kept,
        "weight_files": blob_sizes,
    }
