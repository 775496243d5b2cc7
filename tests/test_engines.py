"""Every engine, policy `full`: the same greedy answer as transformers' generate, token for token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acre.bundle import Bundle
from acre.runtime.engines import StepInputs, open_engine
from acre.runtime.session import Session

LOGIT_TOL = 1e-3  # fp32 on every engine; measured differences are ~1e-6 (XNNPACK reorders sums)
DOCUMENT = "Grass is green and the sky is blue. The pass key is 12345. Remember it. " * 3
QUESTION = "What is the pass key?"


def hf_greedy(model, prompt_ids: list[int], new_tokens: int, stop_ids: list[int]) -> list[int]:
    out = model.generate(
        torch.tensor([prompt_ids]),
        max_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=stop_ids,
        pad_token_id=stop_ids[0],
    )
    answer = out[0, len(prompt_ids) :].tolist()
    return [t for t in answer if t not in stop_ids]


@pytest.mark.parametrize("engine", ["torch", "executorch", "onnx"])
def test_greedy_answer_equals_transformers_generate(tiny_bundle, tiny_checkpoint, engine):
    session = Session(tiny_bundle, engine=engine, policy="full")
    session.ingest(DOCUMENT)
    answer = list(session.generate(session.tokenizer.encode("\n\n" + QUESTION), max_new_tokens=24))
    expected = hf_greedy(tiny_checkpoint.model, session.prompt_ids, 24, session.bundle.eos_token_ids)
    assert len(answer) >= 8, "the tiny model should not stop at once; the comparison would be empty"
    assert answer == expected


def test_a_short_question_is_prefilled_by_the_short_method_with_the_same_answer(tiny_bundle, tiny_checkpoint):
    """A call costs its rows used or not: the question takes the program's C/4-row method."""
    session = Session(tiny_bundle, engine="executorch", policy="full")
    session.ingest(DOCUMENT)
    core, short = session.engine.core, session.bundle.chunk // 4
    question = session.tokenizer.encode("\nkey?")
    assert 1 < len(question) <= short
    before = core.calls(short), core.calls(session.bundle.chunk)
    answer = list(session.generate(question, max_new_tokens=24))
    assert (core.calls(short), core.calls(session.bundle.chunk)) == (before[0] + 1, before[1])
    assert answer == hf_greedy(tiny_checkpoint.model, session.prompt_ids, 24, session.bundle.eos_token_ids)
    assert len(answer) >= 8


@pytest.mark.parametrize("engine", ["executorch", "onnx"])
@pytest.mark.parametrize("chunk", [16, 1])
def test_exported_programs_match_the_eager_module(tiny_bundle, engine, chunk):
    bundle = Bundle.open(tiny_bundle)
    reference, exported = open_engine(bundle, "torch"), open_engine(bundle, engine)
    rng = np.random.default_rng(0)
    g, pot = bundle.geometry, bundle.pot
    shape = (g.layers, g.kv_heads, pot, g.head_dim)
    mask = rng.random(pot) < 0.5
    inputs = StepInputs(
        tokens=rng.integers(0, g.vocab, chunk),
        positions=np.arange(300, 300 + chunk),
        pot_k=rng.standard_normal(shape, dtype=np.float32),
        pot_v=rng.standard_normal(shape, dtype=np.float32),
        pot_mask=mask,
        last_index=np.array([chunk - 1]),
    )
    want, got = reference.step(inputs), exported.step(inputs)
    for name in ("logits", "k_new", "v_new", "pot_attention", "q_probe"):
        a, b = getattr(want, name), getattr(got, name)
        assert a.shape == b.shape, name
        assert np.abs(a - b).max() < LOGIT_TOL, name
    assert np.abs(got.pot_attention[:, ~mask]).max() == 0  # masked slots get no attention


def test_auto_engine_prefers_the_exported_program(tiny_bundle):
    assert open_engine(Bundle.open(tiny_bundle)).name == "executorch"


def test_a_float16_pot_halves_the_pot_and_keeps_the_greedy_answer(
    tiny_checkpoint_dir, tiny_checkpoint, tmp_path
):
    """kv_dtype float16: the pot and k_new/v_new are fp16, attention runs in fp32."""
    from acre.exporter.export import export_bundle

    half = export_bundle(
        tmp_path / "b",
        ["onnx"],
        str(tiny_checkpoint_dir),
        chunk=16,
        pot=256,
        quantize="fp32",
        kv_dtype="float16",
    )
    answers = {}
    for engine in ("torch", "onnx"):
        session = Session(half, engine=engine, policy="full")
        assert session.pot.k.dtype == np.float16
        session.ingest(DOCUMENT)
        answers[engine] = list(
            session.generate(session.tokenizer.encode("\n\n" + QUESTION), max_new_tokens=24)
        )
    expected = hf_greedy(tiny_checkpoint.model, session.prompt_ids, 24, session.bundle.eos_token_ids)
    assert answers["torch"] == answers["onnx"] == expected
    g = session.geometry
    assert session.pot.k.nbytes == g.layers * g.kv_heads * 256 * g.head_dim * 2
