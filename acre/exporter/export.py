"""Write a bundle: load the checkpoint, build the step module, trace it for each target, write the
tokenizer and the manifest (last, with every file's checksum)."""

from __future__ import annotations

import copy
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

import acre
from acre.bundle import KV_DTYPES, TOKENIZER_DIR, file_entries, write_manifest
from acre.errors import InputError
from acre.exporter.calibrate import find_retrieval_heads
from acre.exporter.checkpoint import Checkpoint, load_checkpoint
from acre.exporter.coreml import export_coreml
from acre.exporter.gguf_grid import Grid, read_grids
from acre.exporter.programs import export_executorch, export_onnx
from acre.exporter.quantize import (
    DEFAULT_SCHEME,
    calibration_ids,
    check_scheme,
    default_scheme,
    quantize_step,
)
from acre.exporter.sensitivity import MB
from acre.geometry import Geometry
from acre.signature import OUTPUT_NAMES, input_names
from acre.step import StepModel

# user-facing target -> (engine name in the manifest, writer, program file)
TARGETS = {
    "android": ("executorch", export_executorch, "model.pte"),
    "onnx": ("onnx", export_onnx, "model.onnx"),
    "ios": ("coreml", export_coreml, "model.mlpackage"),
}
log = logging.getLogger(__name__)
DEFAULT_CHUNK = 128
DEFAULT_POT = 1024


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """EOS plus the chat template's end-of-turn tokens, as far as the vocabulary has them."""
    ids = set()
    for candidate in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        ids.update(candidate if isinstance(candidate, list) else [candidate] if candidate is not None else [])
    vocab = tokenizer.get_vocab()
    ids.update(
        vocab[t] for t in ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>") if t in vocab
    )
    return sorted(int(i) for i in ids)


def source_grids(checkpoint: Checkpoint, g: Geometry) -> dict[str, Grid] | None:
    """The GGUF source's own Q4_1 / Q8_0 blocks, checked against the weights the step module holds."""
    if checkpoint.gguf is None:
        return None
    grids = read_grids(checkpoint.gguf, g.layers, g.heads, g.kv_heads)
    state = checkpoint.model.state_dict()
    for name, grid in grids.items():
        weight = state.get(name, state["model.embed_tokens.weight"])  # lm_head may be tied
        if not torch.equal(torch.from_numpy(grid.dequantize()), weight.detach().float()):
            raise InputError(f"{checkpoint.gguf}: {name} does not match its {grid.kind} blocks; not exported")
    return grids or None


def summary(quantization: dict[str, Any] | None, compression: dict[str, Any] | None) -> dict[str, str]:
    if quantization is not None:
        return {k: quantization[k] for k in ("scheme", "weights", "activations")}
    if compression is not None:  # Core ML: source grids where there are any, int8 per channel elsewhere
        weights = compression.get("summary", compression.get("dtype", "compressed"))
        scheme = {"scheme": compression["scheme"]} if "scheme" in compression else {}
        return {**scheme, "weights": str(weights), "activations": "float16"}
    return {"weights": "float32", "activations": "float32"}


def export_bundle(
    out: Path,
    targets: list[str],
    model: str | Checkpoint = "builtin",
    chunk: int = DEFAULT_CHUNK,
    pot: int | None = None,
    signal_heads: list[tuple[int, int]] | None = None,
    quantize: str | None = None,
    kv_dtype: str = "float32",
    max_weights_mb: float | None = None,
) -> Path:
    """Write a bundle to `out` (acre/exporter/fit.py fits one to a whole-process RAM budget);
    `signal_heads` overrides the calibrated retrieval heads; `quantize` names the ExecuTorch program's
    weight scheme (acre.exporter.quantize.SCHEMES; default: what a phone should run); `kv_dtype`
    ("float32" or "float16") is the pot's K/V type on every target: fp16 halves the pot's RAM;
    `max_weights_mb` is the sensitive scheme's weight ceiling (default: what FALLBACK weighs)."""
    # No target at all is allowed: such a bundle runs on the eager `torch` engine only (tests, benchmarks).
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise InputError(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)} or all")
    if kv_dtype not in KV_DTYPES:
        raise InputError(f"kv_dtype {kv_dtype!r} is not float32 or float16")
    max_weight_bytes = None if max_weights_mb is None else round(max_weights_mb * MB)
    if quantize is not None:
        check_scheme(quantize, max_weight_bytes)  # before the checkpoint loads: a typo costs no minute
    checkpoint = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    pot = DEFAULT_POT if pot is None else pot
    if chunk < 2 or pot < chunk:
        raise InputError(f"need chunk >= 2 and pot >= chunk (got chunk={chunk}, pot={pot})")
    if signal_heads is None:
        log.info("calibrating retrieval heads")
        signal_heads = find_retrieval_heads(StepModel.from_hf(checkpoint.model), checkpoint.tokenizer)
    step = StepModel.from_hf(checkpoint.model, signal_heads=signal_heads, kv_dtype=getattr(torch, kv_dtype))
    if pot + chunk > step.g.window:
        raise InputError(f"pot {pot} + chunk {chunk} exceeds the model's window of {step.g.window}")

    # Build beside the destination and swap in at the end: a failed export never leaves half a bundle.
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    programs: dict[str, dict[str, Any]] = {}
    # the source's own blocks: the android program's default scheme keeps them, and the Core ML
    # program always does (it has no --quantize choice)
    grids = source_grids(checkpoint, step.g) if {"android", "ios"} & set(targets) else None
    for target in targets:
        engine, writer, filename = TARGETS[target]
        started = time.perf_counter()
        program_step, record = step, None
        if target in DEFAULT_SCHEME:  # quantized on a copy: the other targets keep their own weights
            program_step = copy.deepcopy(step)
            scheme = quantize or default_scheme(target, grids)
            check_scheme(scheme, max_weight_bytes)
            calibration = calibration_ids(step, checkpoint.tokenizer)
            record = quantize_step(program_step, scheme, grids, calibration, max_weight_bytes)
        extra = {"grids": grids} if target == "ios" else {}
        programs[engine] = writer(program_step, chunk, pot, work / filename, **extra)
        if record is not None:
            programs[engine]["quantization"] = record
        programs[engine]["export_seconds"] = round(time.perf_counter() - started, 1)
    checkpoint.tokenizer.save_pretrained(work / TOKENIZER_DIR)
    names = [info["file"] for info in programs.values()] + [TOKENIZER_DIR]
    g = step.g
    write_manifest(
        work,
        {
            "acre_version": acre.__version__,
            "model": {
                "source": checkpoint.source,
                "architecture": checkpoint.model.config.model_type,
                "geometry": g.to_dict(),
            },
            "step": {
                "chunk": chunk,
                "pot": pot,
                "kv_dtype": kv_dtype,
                "signal_heads": [list(h) for h in step.signal_heads],
                "probe_layers": step.probe_layers,
                "inputs": list(input_names(g.layers)),
                "outputs": list(OUTPUT_NAMES),
                # keys arrive and leave rotated at their positions; a host that moves a slot
                # re-rotates it by the change with these frequencies (acre/runtime/pot.py)
                "keys": "rotated",
                "rope_inv_freq": step.inv_freq.tolist(),
            },
            # per program: what each engine's weights are (details in programs.<engine>)
            "quantization": {
                engine: summary(info.get("quantization"), info.get("compression"))
                for engine, info in programs.items()
            },
            "programs": programs,
            "tokenizer": {
                "dir": TOKENIZER_DIR,
                "chat_template": getattr(checkpoint.tokenizer, "chat_template", None),
                "eos_token_ids": stop_token_ids(checkpoint.tokenizer, checkpoint.model),
                "bos_token_id": checkpoint.tokenizer.bos_token_id,
                "special_tokens": checkpoint.tokenizer.all_special_tokens,
            },
            "files": file_entries(work, names),
            "torch_version": torch.__version__,
        },
    )
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    return out
