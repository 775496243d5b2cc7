"""Bad input gets one clear error naming the cause; nothing crashes deep inside an engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from acre.bundle import Bundle
from acre.errors import BundleError, InputError
from acre.runtime.session import Session


def edit_manifest(bundle, change) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_missing_program_file_is_named(bundle_copy):
    (bundle_copy / "model.pte").unlink()
    with pytest.raises(BundleError, match=r"model\.pte: missing"):
        Bundle.open(bundle_copy)


def test_truncated_program_file_is_named(bundle_copy):
    path = bundle_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"model\.onnx: .*truncated"):
        Bundle.open(bundle_copy)


def test_modified_program_file_fails_its_checksum(bundle_copy):
    path = bundle_copy / "model.pte"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one bit pattern changed
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.pte: sha256 checksum mismatch"):
        Bundle.open(bundle_copy)


def test_modified_tokenizer_fails_its_checksum(bundle_copy):
    path = bundle_copy / "tokenizer" / "tokenizer.json"
    text = path.read_text()
    path.write_text(text.replace("pass", "past", 1))
    with pytest.raises(BundleError, match=r"tokenizer\.json"):
        Bundle.open(bundle_copy)


def test_checksum_entry_that_disagrees_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m["files"]["model.onnx"].update(sha256="0" * 64))
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 checksum mismatch"):
        Bundle.open(bundle_copy)


def test_manifest_of_another_version_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(version=99))
    with pytest.raises(BundleError, match="version 99"):
        Bundle.open(bundle_copy)


def test_manifest_missing_a_field_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m["step"].pop("pot"))
    with pytest.raises(BundleError, match="missing or malformed field"):
        Bundle.open(bundle_copy)


def test_manifest_that_is_not_json_is_refused(bundle_copy):
    (bundle_copy / "manifest.json").write_bytes(b"{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.open(bundle_copy)


def test_manifest_cannot_point_outside_the_bundle(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m["programs"]["onnx"].update(file="../elsewhere.onnx"))
    with pytest.raises(BundleError, match="outside the bundle"):
        Bundle.open(bundle_copy)


def test_missing_bundle_directory_is_named(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        Bundle.open(tmp_path / "nope")


def test_engine_the_bundle_lacks_is_named(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m["programs"].pop("onnx"))
    with pytest.raises(BundleError, match="no onnx program"):
        Session(bundle_copy, engine="onnx", policy="full")


@pytest.fixture(scope="module")
def session(tiny_bundle):
    return Session(tiny_bundle, engine="onnx", policy="full")


@pytest.mark.parametrize("bad", [-1, 10**6])
def test_token_ids_out_of_range_are_refused(session, bad):
    with pytest.raises(InputError, match=f"token id {bad} outside"):
        session.ingest_ids([5, 6, bad])


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_document_is_refused(session, text):
    with pytest.raises(InputError, match="document is empty"):
        session.ingest(text)


def test_empty_question_is_refused(session):
    session.ingest("The sky is blue.")
    with pytest.raises(InputError, match="question is empty"):
        list(session.ask("  "))


def test_question_before_any_document_is_refused(tiny_bundle):
    with pytest.raises(InputError, match="no document ingested"):
        list(Session(tiny_bundle, engine="onnx", policy="full").ask("What?"))


def test_question_that_does_not_fit_the_pot_is_refused(session):
    session.ingest("The sky is blue.")
    with pytest.raises(InputError, match="only .* pot slots are left"):
        list(session.ask("Why is the sky blue? " * 100))


def _every_bundle_file(bundle) -> list[str]:
    return sorted(json.loads((bundle / "manifest.json").read_text())["files"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_every_bundle_file_truncated_flipped_or_missing_is_named(tiny_bundle, tmp_path, damage):
    import shutil

    for name in _every_bundle_file(tiny_bundle):
        copy = Path(shutil.copytree(tiny_bundle, tmp_path / f"{damage}-{name.replace('/', '_')}"))
        path = copy / name
        data = bytearray(path.read_bytes())
        if damage == "delete":
            path.unlink()
        elif damage == "truncate":
            path.write_bytes(bytes(data[: len(data) // 2]))
        else:
            data[len(data) // 3] ^= 0x01
            path.write_bytes(bytes(data))
        with pytest.raises(BundleError, match=re.escape(name)):
            Bundle.open(copy)
        shutil.rmtree(copy)


@pytest.mark.parametrize("engine", ["executorch", "onnx"])
def test_manifest_shapes_that_disagree_with_the_program_are_refused(bundle_copy, engine):
    from acre.runtime.engines import open_engine

    edit_manifest(bundle_copy, lambda m: m["step"].update(pot=m["step"]["pot"] * 2))
    with pytest.raises(BundleError, match="pot_mask has shape .* manifest and program disagree"):
        open_engine(Bundle.open(bundle_copy), engine)


def test_manifest_geometry_that_disagrees_with_the_program_is_refused(bundle_copy):
    from acre.runtime.engines import open_engine

    edit_manifest(
        bundle_copy, lambda m: m["model"]["geometry"].update(head_dim=m["model"]["geometry"]["head_dim"] * 2)
    )
    edit_manifest(bundle_copy, lambda m: m["step"].update(rope_inv_freq=m["step"]["rope_inv_freq"] * 2))
    with pytest.raises(BundleError, match="manifest and program disagree"):
        open_engine(Bundle.open(bundle_copy), "executorch")


@pytest.mark.parametrize("bad", [b"caf\xe9".decode("latin-1").encode("latin-1"), 42, None])
def test_a_question_that_is_not_text_is_refused(session, bad):
    session.ingest("Some document text about a garden.")
    with pytest.raises(InputError, match="question must be text"):
        list(session.ask(bad))


@pytest.mark.parametrize("bad", [b"\xff\xfe document", 3.5])
def test_a_document_that_is_not_text_is_refused(session, bad):
    with pytest.raises(InputError, match="document must be text"):
        session.ingest(bad)


# ---- stores that do not disappear -----------------------------------------------------------
STORED = "The lighthouse keeper kept the key under the third stone. " * 12
OTHER = "A different report about the harbour, its boats and their crews. " * 12


@pytest.fixture(scope="module")
def acre_session(tiny_bundle):
    return Session(tiny_bundle, engine="torch")


def test_a_store_that_is_a_file_is_a_clear_error(acre_session, tmp_path):
    from acre.runtime.l2 import StoreError

    path = tmp_path / "notes.txt"
    path.write_text("my notes")
    with pytest.raises(StoreError, match=r"notes\.txt: is a file, not a store directory"):
        acre_session.ingest(STORED, store=path)
    with pytest.raises(StoreError, match="is a file"):
        acre_session.open_document(path)
    assert path.read_text() == "my notes"


def test_a_directory_of_other_files_is_not_written_into(acre_session, tmp_path):
    from acre.runtime.l2 import StoreError

    (tmp_path / "thesis.tex").write_text("draft")
    with pytest.raises(StoreError, match=r"not an acre L2 store \(it holds thesis\.tex\)"):
        acre_session.ingest(STORED, store=tmp_path, replace=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_another_document_is_refused_unless_replace(tiny_bundle, acre_session, tmp_path):
    from acre.runtime.l2 import StoreError

    store = tmp_path / "doc"
    n = acre_session.ingest(STORED, store=store)
    with pytest.raises(StoreError, match=r"doc: already holds another document; .*replace=True"):
        acre_session.ingest(OTHER, store=store)
    # the store still holds the first document, whole
    later = Session(tiny_bundle, engine="torch")
    assert later.open_document(store) == n
    assert later.document_ids == later.document_prompt_ids(STORED)
    # the same document again is reopened, not refused
    assert later.ingest(STORED, store=store) == n and later.resumed_from == n
    # and replace=True replaces it (by the session that holds the store's writer lock)
    m = acre_session.ingest(OTHER, store=store, replace=True)
    assert acre_session.resumed_from is None
    assert later.open_document(store) == m
    assert later.document_ids == later.document_prompt_ids(OTHER)


def test_an_unfinished_ingest_of_another_document_is_refused_too(tiny_bundle, tmp_path):
    from acre.runtime.l2 import StoreError

    store = tmp_path / "doc"
    session = Session(tiny_bundle, engine="torch", checkpoint_tokens=64)
    real_step = session.engine.step
    calls = []

    def step(inputs):
        calls.append(1)
        if len(calls) > 20:
            raise KeyboardInterrupt
        return real_step(inputs)

    session.engine.step = step
    with pytest.raises(KeyboardInterrupt):
        session.ingest(STORED * 3, store=store)
    session.engine.step = real_step
    with pytest.raises(StoreError, match="another document .its ingest unfinished."):
        Session(tiny_bundle, engine="torch").ingest(OTHER, store=store)
