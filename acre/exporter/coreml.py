"""The Core ML target (`acre-export --target ios`): one multifunction ML program `model.mlpackage`.

Functions `prefill` (C rows, the default) and `decode` (1 row) share one weight file; both have the
step signature of `acre.step` over a pot of P slots. The runtime keeps owning the pot: each layer's
K/V (keys rotated at their positions) and the mask are inputs, the chunk's K/V are outputs, nothing
is Core ML state (docs/coreml.md says why). Built for iOS 18 (multifunction and blockwise weight
compression need it), fp16 compute with two fp32 islands (RMSNorm's sum of squares and the RoPE
angles, which overflow or lose whole radians in fp16), weights linear-quantized to int8 per output
channel.

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
from acre.geometry import Geometry
from acre.signature import OUTPUT_NAMES, input_names
from acre.step import StepModel

log = logging.getLogger(__name__)

ENGINE = "coreml"
DEFAULT_FUNCTION = "prefill"
DEPLOYMENT_TARGET = "iOS18"
SPEC_VERSION_IOS18 = 9
COMPUTE_PRECISION = "float16"
# Weight compression: int8, symmetric, one fp16 scale per output channel (per row of the embedding).
COMPRESSION = {
    "method": "coremltools.optimize.coreml.linear_quantize_weights",
    "dtype": "int8",
    "mode": "linear_symmetric",
    "granularity": "per_channel",
    "op_types": ["linear", "gather"],  # projections, lm_head and the embedding table
    "weight_threshold": 2048,  # tensors of at most this many elements stay fp16
}
COMPRESSED_WEIGHT_OP = "constexpr_blockwise_shift_scale"
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


def _compress(ct: Any, model: Any) -> Any:
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
    return cto.linear_quantize_weights(model, config=config)


def _load_program(ct: Any, package: Path) -> Any:
    """The package's MIL program with its weights (pymil), as coremltools' own multifunction tools do."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    spec = ct.utils.load_spec(str(package))
    weights = Path(package) / "Data" / "com.apple.CoreML" / "weights"
    return milproto_load(spec, spec.specificationVersion, str(weights))


def _dequantize(op: Any) -> np.ndarray:
    data = op.data.val.astype(np.float32)
    scale = op.scale.val.astype(np.float32)
    offset = op.offset.val.astype(np.float32) if getattr(op, "offset", None) is not None else 0.0
    for axis, (n, s) in enumerate(zip(data.shape, scale.shape, strict=True)):
        scale = np.repeat(scale, n // s, axis=axis)
        if isinstance(offset, np.ndarray):
            offset = np.repeat(offset, n // offset.shape[axis], axis=axis)
    return (data - offset) * scale


def dequantized_weights(package: str | Path, function: str | None = None) -> dict[str, np.ndarray]:
    """The compressed weights of a saved package's function (default: `prefill`, or the only one),
    dequantized to fp32, keyed by torch parameter name with dots as underscores
    (`model_layers_0_self_attn_q_proj_weight`). A constant shared by two parameters (tied
    embeddings) is listed under the one coremltools kept."""
    ct = _coremltools()
    program = _load_program(ct, Path(package))
    if function is None:
        function = (
            DEFAULT_FUNCTION if DEFAULT_FUNCTION in program.functions else next(iter(program.functions))
        )
    out: dict[str, np.ndarray] = {}
    for op in program.functions[function].operations:
        if op.op_type == COMPRESSED_WEIGHT_OP:
            name = op.name.removeprefix("p_").removeprefix("step_").split("_to_fp16")[0]
            out[name] = _dequantize(op)
    return out


def _weight_error(step: StepModel, package: Path) -> dict[str, Any]:
    """Relative error ||W - dequant(W)|| / ||W|| of every compressed weight against the fp32 tensor."""
    params = {name.replace(".", "_"): p.detach().float().numpy() for name, p in step.state_dict().items()}
    errors, elements = [], 0
    for name, deq in dequantized_weights(package).items():
        if name not in params:
            raise EngineError(f"Core ML compression: weight {name} has no parameter in the step module")
        ref = params[name]
        errors.append(float(np.linalg.norm(ref - deq) / max(np.linalg.norm(ref), 1e-30)))
        elements += ref.size
    return {
        "weights": len(errors),
        "elements": elements,
        "relative_error_mean": round(float(np.mean(errors)), 6) if errors else None,
        "relative_error_max": round(float(np.max(errors)), 6) if errors else None,
    }


def package_bytes(package: Path) -> int:
    return sum(p.stat().st_size for p in Path(package).rglob("*") if p.is_file())


def export_coreml(step: StepModel, chunk: int, pot: int, out: Path) -> dict[str, Any]:
    """Write `out` (a .mlpackage) with functions `prefill` (chunk rows) and `decode` (1 row), validate
    it, and return the manifest's program entry."""
    ct = _coremltools()
    out = Path(out)
    methods = {"prefill": chunk, "decode": 1}
    quiet = logging.getLogger("coremltools")  # its INFO is one line per op and pass
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        entry = _export(ct, step, methods, pot, out)
    finally:
        quiet.setLevel(level)
    return entry


def _export(ct: Any, step: StepModel, methods: dict[str, int], pot: int, out: Path) -> dict[str, Any]:
    chunk = methods["prefill"]
    with tempfile.TemporaryDirectory(prefix="coreml-", dir=out.parent) as tmp:
        parts: dict[str, Path] = {}
        for function, rows in methods.items():
            log.info("Core ML: converting %s (%d rows) and compressing its weights", function, rows)
            model = _compress(ct, _convert(ct, step, rows, pot))
            parts[function] = Path(tmp) / f"{function}.mlpackage"
            model.save(str(parts[function]))
            del model
        error = _weight_error(step, parts[DEFAULT_FUNCTION])
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
        "compression": {**COMPRESSION, **error},
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
    size in bytes, ops per function, compressed weights, ops kept in fp32."""
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
        declared = str((compression or {}).get("dtype", "none"))
        try:
            quantized = MIL_pb2.DataType.Value(declared.upper())
        except ValueError:  # no or an unknown dtype declared: every compressed weight disagrees
            quantized = None
        for op in ops:
            values = [op.attributes["val"]] if op.type == "const" else []
            for param, argument in op.inputs.items():
                for binding in argument.arguments:
                    if binding.WhichOneof("binding") != "value":
                        continue
                    values.append(binding.value)
                    compressed_data = op.type == COMPRESSED_WEIGHT_OP and param == "data"
                    if compressed_data and binding.value.type.tensorType.dataType != quantized:
                        problems.append(f"{name}: compressed weight {op.outputs[0].name} is not {declared}")
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
        "fp32_ops": fp32_kept,
        "weight_files": blob_sizes,
    }
