"""The bundle: a directory with `manifest.json`, program files and the tokenizer.

Written by `acre-export`, read by every runtime. Validated on open: format and version, required
fields, and every listed file's presence, size and sha256. Any problem is a `BundleError` naming the
file, never a crash deep inside an engine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from acre.errors import BundleError
from acre.geometry import Geometry

FORMAT = "acre-bundle"
VERSION = 2  # 2: keys rotated in the pot, one pot input per layer (acre/step.py)
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
KV_DTYPES = ("float32", "float16")  # what step.kv_dtype may be

# target name -> (engine that runs it, program file)
PROGRAM_FILES = {"executorch": "model.pte", "onnx": "model.onnx", "coreml": "model.mlpackage"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entries(root: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 and size of each file (directories such as .mlpackage are expanded to their files)."""
    entries: dict[str, dict[str, Any]] = {}
    for name in names:
        path = root / name
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in paths:
            rel = p.relative_to(root).as_posix()
            entries[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return entries


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict[str, Any]

    @property
    def geometry(self) -> Geometry:
        return Geometry.from_dict(self.manifest["model"]["geometry"])

    @property
    def chunk(self) -> int:
        return int(self.manifest["step"]["chunk"])

    @property
    def pot(self) -> int:
        return int(self.manifest["step"]["pot"])

    @property
    def kv_dtype(self) -> str:
        return str(self.manifest["step"]["kv_dtype"])

    @property
    def rope_inv_freq(self) -> np.ndarray:
        return np.asarray(self.manifest["step"]["rope_inv_freq"], dtype=np.float64)

    @property
    def programs(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest["programs"])

    def program_path(self, engine: str) -> Path:
        if engine not in self.programs:
            have = ", ".join(sorted(self.programs)) or "none"
            raise BundleError(f"{self.root}: no {engine} program in this bundle (it has: {have})")
        return self.root / self.programs[engine]["file"]

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / self.manifest["tokenizer"]["dir"]

    @property
    def eos_token_ids(self) -> list[int]:
        return [int(t) for t in self.manifest["tokenizer"]["eos_token_ids"]]

    @classmethod
    def open(cls, path: str | Path, verify_checksums: bool = True) -> Bundle:
        root = Path(path)
        manifest_path = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"{root}: bundle directory not found")
        if not manifest_path.is_file():
            raise BundleError(f"{manifest_path}: missing; not an acre bundle")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
        bundle = cls(root=root, manifest=manifest)
        bundle._validate_manifest()
        bundle._verify_files(verify_checksums)
        return bundle

    def _validate_manifest(self) -> None:
        m, where = self.manifest, self.root / MANIFEST
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise BundleError(f"{where}: not an acre bundle manifest (format is not {FORMAT!r})")
        if type(m.get("version")) is not int or m["version"] != VERSION:
            raise BundleError(
                f"{where}: bundle format version {m.get('version')!r}, this acre reads version {VERSION}; "
                "re-export the bundle with this acre"
            )
        try:
            _check_fields(m)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: missing or malformed field ({exc})") from exc
        for info in self.programs.values():
            _check_relative(info["file"], where)
        _check_relative(m["tokenizer"]["dir"], where)
        for name in m["files"]:
            _check_relative(name, where)

    def _verify_files(self, verify_checksums: bool) -> None:
        for name, info in self.manifest["files"].items():
            path = self.root / name
            if not path.is_file():
                raise BundleError(f"{path}: missing from the bundle")
            size = path.stat().st_size
            if size != info.get("bytes"):
                raise BundleError(
                    f"{path}: {size} bytes, manifest says {info.get('bytes')} (truncated or replaced)"
                )
            if verify_checksums and sha256_file(path) != info.get("sha256"):
                raise BundleError(f"{path}: sha256 checksum mismatch (file modified or corrupt)")
        for engine, info in self.programs.items():
            listed = any(
                n == info["file"] or n.startswith(info["file"] + "/") for n in self.manifest["files"]
            )
            if not listed:
                raise BundleError(
                    f"{self.root / MANIFEST}: {engine} program {info['file']} has no checksum entry"
                )


def _positive_int(value: Any, what: str) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")


def _check_fields(m: dict[str, Any]) -> None:
    """Every field a runtime reads is present, of the right type and in range."""
    g = m["model"]["geometry"]
    for name in ("layers", "heads", "kv_heads", "head_dim", "hidden", "intermediate", "vocab", "window"):
        _positive_int(g[name], f"model.geometry.{name}")
    for name in ("rope_theta", "rms_eps"):
        if type(g[name]) not in (int, float) or not g[name] > 0:
            raise ValueError(f"model.geometry.{name} must be a positive number")
    if g["heads"] % g["kv_heads"]:
        raise ValueError("model.geometry.heads must be a multiple of kv_heads")
    step = m["step"]
    _positive_int(step["chunk"], "step.chunk")
    _positive_int(step["pot"], "step.pot")
    if step["kv_dtype"] not in KV_DTYPES:
        raise ValueError(f"step.kv_dtype {step['kv_dtype']!r} is not float32 or float16")
    heads = step["signal_heads"]
    if not isinstance(heads, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(type(x) is int for x in h)
        and 0 <= h[0] < g["layers"] and 0 <= h[1] < g["heads"]
        for h in heads
    ):  # fmt: skip
        raise ValueError("step.signal_heads must be [layer, head] pairs inside the model")
    if sorted({h[0] for h in heads}) != step["probe_layers"]:
        raise ValueError("step.probe_layers must be the layers of the signal heads")
    freq = step["rope_inv_freq"]
    if (
        not isinstance(freq, list)
        or len(freq) != g["head_dim"] // 2
        or not all(type(f) in (int, float) and f > 0 for f in freq)
    ):
        raise ValueError("step.rope_inv_freq must be head_dim / 2 positive numbers")
    programs = m["programs"]
    if not isinstance(programs, dict) or not all(
        isinstance(p, dict) and isinstance(p.get("file"), str) for p in programs.values()
    ):
        raise ValueError("programs must map engines to {file: ...}")
    tokenizer = m["tokenizer"]
    if not isinstance(tokenizer["dir"], str):
        raise ValueError("tokenizer.dir must be a path")
    eos = tokenizer["eos_token_ids"]
    if not isinstance(eos, list) or not all(type(t) is int and 0 <= t < g["vocab"] for t in eos):
        raise ValueError("tokenizer.eos_token_ids must be token ids of the vocabulary")
    files = m["files"]
    if not isinstance(files, dict) or not all(
        isinstance(f, dict) and isinstance(f.get("sha256"), str) and type(f.get("bytes")) is int
        for f in files.values()
    ):
        raise ValueError("files must map names to {sha256, bytes}")


def _check_relative(name: str, where: Path) -> None:
    """A manifest may only name files inside its bundle."""
    p = PurePosixPath(str(name))
    if not str(name) or p.is_absolute() or ".." in p.parts or "\\" in str(name):
        raise BundleError(f"{where}: file name {name!r} points outside the bundle")


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    manifest = {"format": FORMAT, "version": VERSION, **manifest}
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(root / MANIFEST)
