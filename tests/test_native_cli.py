"""The C++ runner (native/cli, `acre-cli`) against the Python `acre`: the same greedy tokens, the same
answer and sources on the same bundle and documents, stores either one opens, and bad input refused.

The runner is $ACRE_CLI (the Makefile sets it to build/native/acre-cli, which `make native-test`
builds: a missing runner then fails), else build/native/acre-cli if it is there.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from acre.runtime.cli import main as acre_main
from acre.runtime.session import Session

REPO = Path(__file__).resolve().parents[1]
PASSAGE = "Grass is green and the sky is blue. The sun is yellow. Here we go, there and back again. "
DOCUMENTS = {
    "short": "The pass key is 12345. Remember it.\n",
    "long": PASSAGE * 12 + "The pass key is 67890. Remember it. " + PASSAGE * 12,
    "lines": "Question: what is the pass key?\nAnswer: the pass key is 0123456789.\n\n" * 8 + "Ünïcödé ✓\n",
}
QUESTIONS = ["What is the pass key?", "What colour is the sky?"]


@pytest.fixture(scope="module")
def runner() -> Path:
    given = os.environ.get("ACRE_CLI")
    path = Path(given) if given else REPO / "build" / "native" / "acre-cli"
    if not given and not path.exists():
        pytest.skip("no C++ runner at build/native/acre-cli (make native-test builds it; or set ACRE_CLI)")
    assert path.is_file() and os.access(path, os.X_OK), f"ACRE_CLI={path}: no runner there (make native-test)"
    return path


def cli(runner: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(runner), *map(str, args)], capture_output=True, text=True, timeout=300)


def answer_part(out: str) -> str:
    """What `run` prints before its memory profile: the question, the answer and the sources."""
    return out.split("\n\nmemory profile")[0]


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_the_runner_answers_with_python_acre_greedy_tokens(runner, tiny_bundle, tmp_path, capsys, name):
    doc = tmp_path / f"{name}.txt"
    doc.write_text(DOCUMENTS[name], encoding="utf-8")
    session = Session(tiny_bundle, engine="executorch")
    session.ingest(DOCUMENTS[name])
    for question in QUESTIONS:
        expected = list(session.generate(session.question_prompt_ids(question), 24))
        flags = ["--context", doc, "--question", question, "--max-new-tokens", "24", "--sources"]
        got = cli(runner, "run", tiny_bundle, *flags, "--token-ids")
        assert got.returncode == 0, got.stderr
        ids = next(line for line in got.stderr.splitlines() if line.startswith("token ids:"))
        assert [int(t) for t in ids.split(":")[1].split()] == expected
        assert acre_main(["run", str(tiny_bundle), "--engine", "executorch", *map(str, flags)]) == 0
        assert answer_part(got.stdout) == answer_part(capsys.readouterr().out)


def test_a_store_the_runner_wrote_is_reopened_by_python_acre_and_back(runner, tiny_bundle, tmp_path, capsys):
    # the same fingerprint (the core's) and the same document digest on both sides
    doc, store = tmp_path / "doc.txt", tmp_path / "store"
    doc.write_text(DOCUMENTS["long"], encoding="utf-8")
    ask = ["--question", QUESTIONS[0], "--max-new-tokens", "12", "--store", store]
    first = cli(runner, "run", tiny_bundle, "--context", doc, *ask)
    assert first.returncode == 0, first.stderr
    assert acre_main(["run", str(tiny_bundle), *map(str, ask)]) == 0  # no --context: reopens the store
    assert answer_part(capsys.readouterr().out) == answer_part(first.stdout)
    again = cli(runner, "run", tiny_bundle, "--context", doc, *ask)
    assert again.returncode == 0 and "already holds this document" in again.stderr
    assert answer_part(again.stdout) == answer_part(first.stdout)


def test_profile_ingests_a_pass_key_document_and_reports_as_json(runner, tiny_bundle):
    got = cli(runner, "profile", tiny_bundle, "--tokens", "300", "--json")
    assert got.returncode == 0, got.stderr
    report = json.loads(got.stdout)
    assert 290 <= report["document_tokens"] <= 330 and report["policy"] == "acre"
    assert report["peak_rss_bytes"] > report["pot_bytes"] > 0 and isinstance(report["answer"], str)
    assert report["budget_bytes"] is None


def test_profile_over_its_budget_exits_1(runner, tiny_bundle):
    got = cli(runner, "profile", tiny_bundle, "--tokens", "100", "--budget", "1MB")
    assert got.returncode == 1 and "OVER by" in got.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "{bundle}", "--question", "q", "--context", "{missing}"], "context file not found"),
        (["run", "{bundle}", "--question", "q", "--context", "{empty}"], "has no text"),
        (["run", "{bundle}", "--question", "q", "--context", "{pdf}"], "PDF"),
        (["run", "{bundle}", "--question", "q", "--context", "{latin1}"], "not UTF-8"),
        (["run", "{bundle}", "--question", "q", "--context", "{html}"], "plain text"),
        (["run", "{bundle}", "--question", "q"], "give --context FILE"),
        (["run", "{bundle}", "--question", " ", "--context", "{doc}"], "question is empty"),
        (["run", "{missing}", "--question", "q", "--context", "{doc}"], "bundle directory not found"),
        (["run", "{bundle}", "--context", "{doc}"], "required: --question"),
        (["run", "{bundle}", "--question", "q", "--context", "{doc}", "--frobnicate"], "unrecognized"),
        (["run", "{bundle}", "--question", "q", "--context", "{doc}", "--policy", "magic"], "invalid choice"),
        (
            ["run", "{bundle}", "--question", "q", "--context", "{doc}", "--max-new-tokens", "x"],
            "invalid int",
        ),
        (["run", "{bundle}", "--question", "q", "--context", "{doc}", "--engine", "torch"], "Python acre"),
        (["profile", "{bundle}", "--tokens", "0"], "--tokens must be positive"),
        (["profile", "{bundle}", "--tokens", "10", "--budget", "lots"], "cannot read the budget"),
        (["chat", "{bundle}"], "invalid choice"),
    ],
)
def test_bad_input_is_refused_by_name_with_exit_2(runner, tiny_bundle, tmp_path, args, words):
    files = {
        "doc": ("doc.txt", b"Some text.\n"),
        "empty": ("empty.txt", b" \n\t\n"),
        "pdf": ("paper.txt", b"%PDF-1.7\n..."),
        "latin1": ("latin1.txt", "caf\u00e9".encode("latin-1")),
        "html": ("page.html", b"<p>hello</p>"),
    }
    paths = {"bundle": tiny_bundle, "missing": tmp_path / "nothing"}
    for key, (file, data) in files.items():
        (tmp_path / file).write_bytes(data)
        paths[key] = tmp_path / file
    got = cli(runner, *[a.format(**paths) for a in args])
    assert got.returncode == 2 and words in got.stderr, got.stderr


def test_a_corrupt_bundle_is_refused_naming_the_file(runner, bundle_copy, tmp_path):
    (bundle_copy / "model.pte").write_bytes(b"not a program")
    (tmp_path / "doc.txt").write_text("Some text.\n")
    got = cli(runner, "run", bundle_copy, "--question", "q", "--context", tmp_path / "doc.txt")
    assert got.returncode == 2 and "model.pte" in got.stderr, got.stderr
