"""The native core opens and verifies bundles as acre.bundle does: a bad bundle is a BundleError naming
the file, never a crash."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from acre._native import BUNDLE_VERSIONS, Tokenizer
from acre._native import Bundle as NativeBundle

from acre.bundle import Bundle
from acre.errors import BundleError
from tests.test_vectors import ERROR_WORDS, VECTORS


def edit_manifest(root: Path, edit) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def test_the_core_reads_the_geometry_python_reads(tiny_bundle):
    core, python = NativeBundle(str(tiny_bundle)), Bundle.open(tiny_bundle)
    g = core.geometry
    assert {k: g[k] for k in python.geometry.to_dict() if k in g} == {
        k: v for k, v in python.geometry.to_dict().items() if k in g
    }
    assert (g["chunk"], g["pot"], g["kv_dtype"]) == (python.chunk, python.pot, python.kv_dtype)
    assert core.program_path("executorch") == str(python.program_path("executorch"))
    assert json.loads(core.manifest_json) == python.manifest


def test_the_fingerprint_is_the_one_stores_were_written_with(tiny_bundle):
    # what the Python host computed before the core did (kept here as the reference): a store ingested
    # then names it in its meta, and opens only under a bundle with the same fingerprint
    m = Bundle.open(tiny_bundle).manifest
    programs = {
        name: info["sha256"] for name, info in sorted(m["files"].items()) if not name.startswith("tokenizer/")
    }
    blob = json.dumps(
        {"geometry": m["model"]["geometry"], "step": m["step"], "programs": programs}, sort_keys=True
    )
    assert NativeBundle(str(tiny_bundle)).fingerprint == hashlib.sha256(blob.encode()).hexdigest()


def test_the_core_opens_the_bundles_tokenizer(tiny_bundle):
    python = Bundle.open(tiny_bundle)
    tokenizer = Tokenizer.from_bundle(NativeBundle(str(tiny_bundle)))
    assert tokenizer.token_to_id("<|im_end|>") in python.eos_token_ids


def test_a_wrong_version_is_refused(bundle_copy):
    low, high = BUNDLE_VERSIONS
    for version in (high + 1, low - 1, "2"):
        edit_manifest(bundle_copy, lambda m, v=version: m.update(version=v))
        with pytest.raises(BundleError, match=f"manifest.json: bundle format version {json.dumps(version)},"):
            NativeBundle(str(bundle_copy))


def test_a_corrupt_manifest_is_refused(bundle_copy):
    (bundle_copy / "manifest.json").write_bytes(b'{"format": "acre-bundle", "version": 1, "model": {')
    with pytest.raises(BundleError, match="manifest.json: not valid JSON"):
        NativeBundle(str(bundle_copy))
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json: missing; not an acre bundle"):
        NativeBundle(str(bundle_copy))


@pytest.mark.parametrize("name", ["model.pte", "tokenizer/tokenizer.json"])
def test_a_missing_file_is_refused_by_name(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=re.escape(name) + ": missing from the bundle"):
        NativeBundle(str(bundle_copy))


def test_a_checksum_mismatch_is_refused_by_name_unless_checksums_are_skipped(bundle_copy):
    path = bundle_copy / "model.pte"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.pte: sha256 checksum mismatch"):
        NativeBundle(str(bundle_copy))
    assert NativeBundle(str(bundle_copy), verify_checksums=False).geometry["pot"] > 0  # size still right
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(BundleError, match="model.pte: 100 bytes, manifest says"):
        NativeBundle(str(bundle_copy), verify_checksums=False)


def test_every_shared_bad_manifest_is_refused_for_its_reason(tmp_path):
    """tests/vectors/bad_manifests.json, the cases every reader must refuse, read by the core."""
    assert NativeBundle(str(VECTORS / "bundle")).geometry["pot"] == 256
    low, high = BUNDLE_VERSIONS
    for case in json.loads((VECTORS / "bad_manifests.json").read_text()):
        if case["error"] == "version" and low <= case["manifest"]["version"] <= high:
            continue  # "another version" to acre.bundle, which reads one; the core reads both 1 and 2
        copy = tmp_path / case["name"].replace(" ", "_")
        shutil.copytree(VECTORS / "bundle", copy)
        (copy / "manifest.json").write_text(json.dumps(case["manifest"]))
        with pytest.raises(BundleError, match=ERROR_WORDS[case["error"]]):
            NativeBundle(str(copy))


def test_a_directory_that_is_not_there_is_refused(tmp_path):
    with pytest.raises(BundleError, match="bundle directory not found"):
        NativeBundle(str(tmp_path / "absent"))
