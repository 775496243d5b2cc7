"""The whole-process memory model (acre/memory.py): parts that grow as they should, and a pot fitted
to a budget that is the largest the budget holds."""

from __future__ import annotations

import pytest

from acre.budget import MIN_SLOTS, SLOT_ALIGN
from acre.errors import InputError
from acre.geometry import Geometry
from acre.memory import MIB, SessionShape, fit_pot, predict

SMOLLM2 = Geometry(30, 9, 3, 64, 576, 1536, 49152, 100000.0, 1e-5, 8192)
SHAPE = SessionShape(SMOLLM2, pot_slots=1024, kv_dtype="float32", chunk=128, span_tokens=64, reps=8,
                     probe_layers=3, refill_slots=384)  # fmt: skip
RUNTIME, PROGRAM = 37 * MIB, 197 * MIB


def test_only_the_document_parts_grow_with_the_document():
    short, long = predict(SHAPE, RUNTIME, PROGRAM, 2_000), predict(SHAPE, RUNTIME, PROGRAM, 128_000)
    for part in ("runtime", "program", "pot"):
        assert short.parts[part] == long.parts[part]
    assert long.parts["span index"] == pytest.approx(64 * short.parts["span index"], rel=0.01)
    assert long.total > short.total
    assert predict(SHAPE, RUNTIME, PROGRAM, 2_000, slots=512).parts["pot"] == short.parts["pot"] // 2


def test_a_fitted_pot_is_the_largest_the_budget_holds():
    for budget_mib in (300, 350, 600):
        budget = budget_mib * MIB
        slots = fit_pot(SHAPE, RUNTIME, PROGRAM, 128_000, budget)
        assert slots % SLOT_ALIGN == 0 and slots >= MIN_SLOTS
        assert predict(SHAPE, RUNTIME, PROGRAM, 128_000, slots).total <= budget
        if slots + SLOT_ALIGN <= SMOLLM2.window - SHAPE.chunk:
            assert predict(SHAPE, RUNTIME, PROGRAM, 128_000, slots + SLOT_ALIGN).total > budget


def test_a_budget_no_pot_fits_is_refused_with_the_smallest_that_fits():
    with pytest.raises(InputError, match="smallest budget that fits is") as refused:
        fit_pot(SHAPE, RUNTIME, PROGRAM, 128_000, 200 * MIB)
    smallest = int(str(refused.value).rpartition("is ")[2].split()[0].replace(",", ""))
    assert fit_pot(SHAPE, RUNTIME, PROGRAM, 128_000, smallest * MIB) >= MIN_SLOTS
