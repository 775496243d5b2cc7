"""The command lines: run, reopen, profile, budgets, and their errors."""

from __future__ import annotations

import json

import pytest

from acre.budget import parse_bytes, slot_bytes, slots_for_budget
from acre.bundle import Bundle
from acre.errors import InputError
from acre.runtime.cli import main as acre_main

DOC = "The sun is yellow. The pass key is 67890. Here we go, there and back again. " * 30


def test_run_streams_an_answer_and_prints_the_memory_profile(tiny_bundle, tmp_path, capsys):
    (tmp_path / "doc.txt").write_text(DOC)
    code = acre_main(
        [
            "run",
            str(tiny_bundle),
            "--engine",
            "onnx",
            "--context",
            str(tmp_path / "doc.txt"),
            "--question",
            "What is the pass key?",
            "--max-new-tokens",
            "5",
            "--store",
            str(tmp_path / "s"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "A: " in out and "memory profile" in out and "L2 on flash" in out
    assert (tmp_path / "s" / "store.json").is_file()
    # the same document again, from its store, without the text
    code = acre_main(
        [
            "run",
            str(tiny_bundle),
            "--engine",
            "onnx",
            "--store",
            str(tmp_path / "s"),
            "--question",
            "What is the pass key?",
            "--max-new-tokens",
            "5",
        ]
    )
    assert code == 0 and "no re-ingest" in capsys.readouterr().err
    # the same text given again finds it already there
    args = ["run", str(tiny_bundle), "--engine", "onnx", "--store", str(tmp_path / "s")]
    code = acre_main([*args, "--context", str(tmp_path / "doc.txt"), "--question", "Key?"])
    assert code == 0 and "already holds this document" in capsys.readouterr().err


def test_profile_reports_pot_index_l2_and_rss_as_json(tiny_bundle, capsys):
    assert acre_main(["profile", str(tiny_bundle), "--engine", "onnx", "--tokens", "900", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    bundle = Bundle.open(tiny_bundle)
    assert report["pot_slots"] == bundle.pot
    assert report["pot_bytes"] >= bundle.pot * slot_bytes(bundle.geometry)
    assert report["document_tokens"] >= 900 and report["l2_disk_bytes"] > 0 and report["index_bytes"] > 0
    assert report["peak_rss_bytes"] > report["pot_bytes"]


def test_profile_predicts_the_whole_process_and_checks_a_budget_against_it(tiny_bundle, capsys):
    args = ["profile", str(tiny_bundle), "--engine", "executorch", "--tokens", "300"]
    assert acre_main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    parts = report["predicted"]
    assert set(parts) == {"runtime", "program", "pot", "span index", "document", "transient"}
    assert report["predicted_peak_bytes"] == sum(parts.values())
    assert report["measured"]["runtime"] == parts["runtime"] > 0 and parts["program"] > 0
    assert report["peak_rss_bytes"] >= parts["runtime"] + parts["program"]
    roomy = report["predicted_peak_bytes"] + report["peak_rss_bytes"]
    assert acre_main([*args, "--budget", f"{roomy}B"]) == 0
    assert ": fits" in capsys.readouterr().out
    # a budget below what the runtime and program hold fits no pot: the smallest that fits is named
    assert acre_main([*args, "--budget", "1KB"]) == 1
    out = capsys.readouterr().out
    assert "OVER" in out and "smallest budget that fits is" in out


def test_non_utf8_context_is_a_clear_error(tiny_bundle, tmp_path, capsys):
    (tmp_path / "doc.txt").write_bytes(b"\xff\xfe caf\xe9")
    code = acre_main(["run", str(tiny_bundle), "--context", str(tmp_path / "doc.txt"), "--question", "Why?"])
    assert code == 2 and "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text,expected",
    [("48MB", 48 * 2**20), ("1.5GB", int(1.5 * 2**30)), ("512KiB", 2**19), ("64", 64 * 2**20)],
)
def test_budgets_are_read_with_units(text, expected):
    assert parse_bytes(text) == expected


def test_budget_picks_the_pot_and_refuses_what_cannot_run(tiny_checkpoint):
    from acre.geometry import Geometry

    g = Geometry.from_hf_config(tiny_checkpoint.model.config)
    slots = slots_for_budget(g, 400 * 2**10)
    assert slots % 64 == 0 and slots * slot_bytes(g) <= 400 * 2**10 < (slots + 64) * slot_bytes(g)
    with pytest.raises(InputError, match="at least 256 are needed"):
        slots_for_budget(g, 10_000)
    with pytest.raises(InputError, match="cannot read the budget"):
        parse_bytes("lots")


def test_store_on_a_file_is_a_clear_error_not_a_traceback(tiny_bundle, tmp_path, capsys):
    (tmp_path / "doc.txt").write_text(DOC)
    (tmp_path / "notes").write_text("mine")
    base = ["run", str(tiny_bundle), "--engine", "onnx", "--question", "Key?"]
    base += ["--store", str(tmp_path / "notes")]
    for extra in (["--context", str(tmp_path / "doc.txt")], []):
        assert acre_main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert "acre: error:" in err and "is a file, not a store directory" in err
        assert "Traceback" not in err
    assert (tmp_path / "notes").read_text() == "mine"


def test_another_document_needs_replace(tiny_bundle, tmp_path, capsys):
    (tmp_path / "a.txt").write_text(DOC)
    (tmp_path / "b.txt").write_text("The moon is grey. The pass key is 12345. " * 30)
    base = ["run", str(tiny_bundle), "--engine", "onnx", "--question", "Key?", "--max-new-tokens", "2"]
    store = ["--store", str(tmp_path / "s")]
    assert acre_main([*base, *store, "--context", str(tmp_path / "a.txt")]) == 0
    capsys.readouterr()
    first = json.loads((tmp_path / "s" / "store.json").read_text())
    assert acre_main([*base, *store, "--context", str(tmp_path / "b.txt")]) == 2
    err = capsys.readouterr().err
    assert "already holds another document" in err and "--replace" in err
    assert acre_main([*base, *store, "--replace"]) == 2
    assert "--replace needs --context" in capsys.readouterr().err
    assert acre_main([*base, *store, "--context", str(tmp_path / "b.txt"), "--replace"]) == 0
    assert "already holds" not in capsys.readouterr().err
    info = json.loads((tmp_path / "s" / "store.json").read_text())
    assert info["complete"] and info["document_sha256"] != first["document_sha256"]  # b.txt now


def test_a_pdf_context_is_the_same_document_as_its_text_twin(tiny_bundle, tmp_path, capsys):
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "documents"
    base = ["run", str(tiny_bundle), "--engine", "onnx", "--question", "Key?", "--max-new-tokens", "2"]
    base += ["--store", str(tmp_path / "s")]
    assert acre_main([*base, "--context", str(fixtures / "twin.txt")]) == 0
    capsys.readouterr()
    assert acre_main([*base, "--context", str(fixtures / "twin.pdf")]) == 0
    assert "already holds this document" in capsys.readouterr().err  # same tokens: reopened
    assert acre_main([*base, "--context", str(fixtures / "scanned.pdf")]) == 2
    assert "without a text layer" in capsys.readouterr().err


def test_sources_are_printed_after_the_answer(tiny_bundle, tmp_path, capsys):
    import re

    doc = "".join(f"Line {i}: the crate on dock {i % 9} holds {300 + 11 * i} apples.\n" for i in range(14))
    (tmp_path / "doc.txt").write_text(doc)
    args = ["run", str(tiny_bundle), "--engine", "onnx", "--question", "How many apples on dock 4?"]
    args += ["--max-new-tokens", "2", "--store", str(tmp_path / "s"), "--sources"]
    assert acre_main([*args, "--context", str(tmp_path / "doc.txt")]) == 0
    out = capsys.readouterr().out
    rest = out.partition("\n\nsources (")[2]
    assert rest and rest.index("[1] characters") < rest.index("memory profile")
    rest = rest.partition("memory profile")[0]
    for start, end in re.findall(r"\[\d+\] characters ([\d,]+)-([\d,]+)", rest):
        quoted = doc[int(start.replace(",", "")) : int(end.replace(",", ""))]
        assert "\n".join("    " + line for line in quoted.splitlines()) in rest
    # the reopened store quotes the same passages
    assert acre_main(args) == 0
    assert capsys.readouterr().out.partition("\n\nsources (")[2].partition("memory profile")[0] == rest


def test_chat_answers_each_line_of_input_with_the_dialogue_so_far(tiny_bundle, tmp_path, capsys, monkeypatch):
    import io

    (tmp_path / "doc.txt").write_text(DOC)
    monkeypatch.setattr("sys.stdin", io.StringIO("Key?\nAnd the sun?\n\nnot asked\n"))
    args = ["chat", str(tiny_bundle), "--engine", "onnx", "--context", str(tmp_path / "doc.txt")]
    assert acre_main([*args, "--max-new-tokens", "3", "--sources"]) == 0
    out = capsys.readouterr().out
    assert out.count("A: ") == 2 and "Q: Key?" in out and "Q: And the sun?" in out
    assert "not asked" not in out and out.count("sources") == 2  # an empty line ends the dialogue
