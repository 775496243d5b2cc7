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

from acre.errors import BundleError
from acre.geometry import Geometry

FORMAT = "acre-bundle"
VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"

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
        if m.get("version") != VERSION:
            raise BundleError(
                f"{where}: bundle format version {m.get('version')!r}, this acre reads version {VERSION}; "
                "re-export the bundle with this acre"
            )
        try:
            geometry = self.geometry
            chunk, pot = self.chunk, self.pot
            files = m["files"]
            for info in self.programs.values():
                _check_relative(info["file"], where)
            _check_relative(m["tokenizer"]["dir"], where)
            self.eos_token_ids  # noqa: B018 - parse check
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: missing or malformed field ({exc})") from exc
        if min(chunk, pot, geometry.layers, geometry.vocab) < 1 or not isinstance(files, dict):
            raise BundleError(f"{where}: malformed field: chunk, pot, layers and vocab must be positive")
        for name in files:
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
