"""End-to-end checks on the real SmolLM2-135M-Instruct (slow: conversion, XNNPACK lowering ~8 min).

Run with the rest (`make test`), or alone with `pytest -m slow`; skip with `-m "not slow"`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from acre.bundle import Bundle
from acre.haystack import passkey_document
from acre.runtime.engines import StepInputs, open_engine
from acre.runtime.session import Session

pytestmark = pytest.mark.slow

DOCUMENT = (
    "Acre keeps the document's keys and values on flash and a small pot of them in RAM. "
    "The pass key is 31415. Remember it. The sky is blue and the grass is green. "
) * 6


@pytest.fixture(scope="module")
def checkpoint():
    from acre.exporter.checkpoint import load_checkpoint

    return load_checkpoint("builtin")


@pytest.fixture(scope="module")
def bundle(checkpoint, tmp_path_factory):
    """An fp32 bundle of the real model: ACRE_TEST_BUNDLE names one already exported (for example
    build/smollm2-android-fp32 of benchmarks/quantization.sh), else one is exported here (~5 min)."""
    from acre.exporter.export import export_bundle

    reuse = os.environ.get("ACRE_TEST_BUNDLE")
    if reuse:
        b = Bundle.open(reuse)
        scheme = b.programs.get("executorch", {}).get("quantization", {}).get("scheme", "fp32")
        if scheme != "fp32" or b.kv_dtype != "float32" or b.manifest["model"]["source"] != "builtin":
            pytest.fail(f"ACRE_TEST_BUNDLE={reuse} must be the builtin model exported with --quantize fp32")
        return b.root

    # fp32 weights: these tests hold the exported program to transformers' own answers
    return export_bundle(
        tmp_path_factory.mktemp("real") / "smollm2",
        ["android"],
        checkpoint,
        chunk=128,
        pot=1024,  # the shipped layout: the dialogue test needs its refill and question regions
        quantize="fp32",
    )


@pytest.mark.parametrize("engine", ["torch", "executorch"])
def test_greedy_answer_equals_transformers_on_the_real_model(bundle, checkpoint, engine):
    session = Session(bundle, engine=engine, policy="full")
    session.ingest(DOCUMENT)
    answer = list(session.generate(session.question_prompt_ids("What is the pass key?"), max_new_tokens=20))
    stop = session.bundle.eos_token_ids
    out = checkpoint.model.generate(
        torch.tensor([session.prompt_ids]),
        max_new_tokens=20,
        do_sample=False,
        eos_token_id=stop,
        pad_token_id=stop[0],
    )
    expected = [t for t in out[0, len(session.prompt_ids) :].tolist() if t not in stop]
    assert len(answer) >= 5 and answer == expected


def test_executorch_logits_match_eager_on_the_real_model(bundle):
    b = Bundle.open(bundle)
    eager, exported = open_engine(b, "torch"), open_engine(b, "executorch")
    g, rng = b.geometry, np.random.default_rng(0)
    shape = (g.layers, g.kv_heads, b.pot, g.head_dim)
    inputs = StepInputs(
        tokens=rng.integers(0, g.vocab, b.chunk),
        positions=np.arange(200, 200 + b.chunk),
        pot_k=rng.standard_normal(shape, dtype=np.float32),
        pot_v=rng.standard_normal(shape, dtype=np.float32),
        pot_mask=rng.random(b.pot) < 0.3,
        last_index=np.array([b.chunk - 1]),
    )
    want, got = eager.step(inputs), exported.step(inputs)
    assert np.abs(want.logits - got.logits).max() < 1e-2  # XNNPACK fp32 reorders sums
    assert np.abs(want.k_new - got.k_new).max() < 1e-2  # measured 1.5e-3 (values up to ~3)


def test_acre_finds_a_pass_key_far_past_the_window_on_the_real_model(bundle, tmp_path):
    session = Session(bundle, engine="executorch")
    document = passkey_document(session.tokenizer, 20_000, 0.4, "72904")
    n = session.ingest(document, store=tmp_path / "doc")
    answer = "".join(session.ask("What is the pass key?", max_new_tokens=16))
    assert n > 2 * session.geometry.window  # ~19.3k tokens against an 8,192-token window
    assert "72904" in answer, answer


# A dialogue about one passage of a real book: turns 2 and 3 name nothing ("it"), so they are
# answered right only if the dialogue carries what turn 1 was about (its kept turns in the question
# region, and the passage refilled again for the follow-ups). The 135M model answers these three
# on the shipped program and the eager engine as well (with the shipped 1,024-slot layout; with 512
# slots the refill holds two spans and turn 2 fails); harder follow-ups (what happened next, how
# it tasted) it gets wrong even with the passage in view.
TURNS = (
    ("What words were printed on the label of the little bottle that Alice found on the table?", "drink me"),
    ("Did she drink it?", "yes"),
    ("Remind me, what was written on it?", "drink me"),
)


def test_a_three_turn_dialogue_about_a_real_book_follows_its_references(bundle, tmp_path):
    from acre.documents import read_document

    session = Session(bundle, engine="executorch")
    book = read_document(Path(__file__).parents[1] / "benchmarks/data/documents/alice-in-wonderland.txt")
    assert session.ingest(book, store=tmp_path / "alice") > 4 * session.geometry.window
    answers = []
    for question, expected in TURNS:
        answers.append("".join(session.chat(question, max_new_tokens=32)))
        assert expected in answers[-1].lower(), answers
        bottle = [s for s in session.last.sources if "DRINK ME" in s.text]
        assert bottle, (question, [s.start for s in session.last.sources])  # the passage is in view
    assert session.last.notices == [] and len(session.dialogue.turns) == 3


def test_the_c_runner_and_the_jvm_answer_suite_questions_with_python_acres_greedy_tokens(bundle, tmp_path):
    """The C++ runner, the Java API (JNI) and the Python binding on the real model, one document of the
    suite's questions family (2k tokens of real prose, three questions about it): the very same greedy
    token ids. The JVM side is native/jni/tests' GreedyIds, built by native/jni/test.sh (make test runs
    it first) into $ACRE_JNI (default build/jni)."""
    import subprocess

    from benchmarks.suite import cell
    from tests.test_native_cli import REPO, cli

    runner = Path(os.environ.get("ACRE_CLI") or REPO / "build" / "native" / "acre-cli")
    assert runner.is_file(), f"no C++ runner at {runner} (make native-test builds it)"
    jni = Path(os.environ.get("ACRE_JNI") or REPO / "build" / "jni")
    assert (jni / "classes" / "org" / "acre" / "GreedyIds.class").is_file(), f"{jni}: run native/jni/test.sh"
    session = Session(bundle, engine="executorch")
    cases = cell(session.tokenizer, "questions", 2000, 3)
    assert len({c.document for c in cases}) == 1 and len({c.reply_tokens for c in cases}) == 1
    budget = str(cases[0].reply_tokens)
    doc, store = tmp_path / "document.txt", tmp_path / "l2"
    doc.write_text(cases[0].document, encoding="utf-8")
    session.ingest(cases[0].document, store=store)
    # one session asking in turn (as the JVM does), and each question first after reopening the store
    # (as each run of the runner does): a question leaves the pot as it found it, so they agree too
    in_turn = [list(session.generate(session.question_prompt_ids(c.question), int(budget))) for c in cases]
    assert all(len(ids) >= 3 for ids in in_turn)
    for case, asked_in_turn in zip(cases, in_turn, strict=True):
        reopened = Session(bundle, engine="executorch")
        reopened.open_document(store)
        ids = list(reopened.generate(reopened.question_prompt_ids(case.question), int(budget)))
        flags = ["--context", doc, "--question", case.question, "--max-new-tokens", budget]
        got = cli(runner, "run", bundle, *flags, "--store", store, "--token-ids")
        assert got.returncode == 0, got.stderr
        line = next(line for line in got.stderr.splitlines() if line.startswith("token ids:"))
        assert [int(t) for t in line.split(":")[1].split()] == ids == asked_in_turn
    java = subprocess.run(
        ["java", f"-Djava.library.path={jni}", "-cp", str(jni / "classes"), "org.acre.GreedyIds",
         str(bundle), str(doc), str(tmp_path / "jvm.l2"), budget, *[c.question for c in cases]],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert java.returncode == 0, java.stderr
    assert [[int(t) for t in line.split()] for line in java.stdout.splitlines()] == in_turn
