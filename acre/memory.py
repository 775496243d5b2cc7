"""The whole process's RAM: what each part of a session holds, predicted for a document length.

A session's resident memory is the runtime (interpreter, libraries), the program as its backend
holds it (XNNPACK packs the weights at load; the memory plan's activations; the backend's
workspace), the pot (allocated once, resident once its slots are written), what grows with the
document (the span index, the lexical index, the document's ids, text and character offsets), and
the largest transient of an ingest or a question (a step's outputs, the lexical index being built).
The first two are measured where they run (they depend on the machine and the backend build), the
rest follows from the bundle's geometry; `acre profile` prints both beside the measured peak.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from acre.budget import MIN_SLOTS, SLOT_ALIGN, largest_pot, slot_bytes
from acre.errors import InputError
from acre.geometry import Geometry

MIB = 2**20
# per document token, besides the index: ids (a Python list of ints, 8 B a slot + 32 B an int
# object), its int32 copies in the store and the lexical index (3 x 4 B), the character offsets
# (2 x 4 B) and the text (UTF-8, kept as str and as bytes for the store: ~4 B a token each)
DOCUMENT_BYTES_PER_TOKEN = 8 + 32 + 12 + 8 + 8
# the core sorts one (token, span) uint64 key per token, beside the int32 ids handed to it
LEXICAL_BUILD_BYTES_PER_TOKEN = 8 + 4


def _status(field: str) -> int | None:
    """A size from Linux's /proc/self/status, in bytes (None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int:
    """The process's resident set now (elsewhere than Linux its peak, which is what is known)."""
    return _status("VmRSS") or peak_resident_bytes()


def peak_resident_bytes() -> int:
    # VmHWM, not getrusage: the kernel updates ru_maxrss only at some events, so it can lag the
    # current resident set; VmHWM is the larger of the two
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class SessionShape:
    """What fixes the document-dependent memory: the bundle's geometry and the session's settings."""

    geometry: Geometry
    pot_slots: int
    kv_dtype: str
    chunk: int
    span_tokens: int
    reps: int
    probe_layers: int
    refill_slots: int = 0  # the pot's refill region
    reuse: bool = False  # refill_mode reuse: refilled K/V are read from L2 (else re-encoded)
    fanout: int = 8  # the span index's tree (native/src/span_index.cpp)

    def pot_bytes(self, slots: int | None = None) -> int:
        return (slots or self.pot_slots) * slot_bytes(self.geometry, self.kv_dtype)

    def index_bytes_per_token(self) -> float:
        g = self.geometry
        per_span = self.probe_layers * g.kv_heads * self.reps * g.head_dim * 2  # float16 keys
        tree = 1 + 1 / (self.fanout - 1)  # the coarser levels add 1/8 + 1/64 + ...
        return per_span * tree / self.span_tokens

    def step_output_bytes(self) -> int:
        """One prefill step's outputs (k_new, v_new, pot_attention, q_probe, logits), float32."""
        g, c = self.geometry, self.chunk
        kv = 2 * g.layers * g.kv_heads * c * g.head_dim
        return 4 * (kv + c * self.pot_slots + self.probe_layers * g.heads * c * g.head_dim + g.vocab)


@dataclass(frozen=True)
class MemoryPlan:
    """Predicted resident bytes per part for one document length."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def predict(
    shape: SessionShape, runtime: int, program: int, tokens: int, slots: int | None = None
) -> MemoryPlan:
    """Peak RSS parts for a `tokens`-long document: `runtime` and `program` as measured (bytes)."""
    pot = shape.pot_bytes(slots)
    # the largest transient, beside a step's outputs and their working copies: building the lexical
    # index at the first question, or (refill_mode reuse) the refilled spans' K/V read from L2; the
    # pot snapshot and checkpoints are written from the pot's own buffers, without a copy
    g = shape.geometry
    reuse = 2 * 4 * g.layers * g.kv_heads * g.head_dim * shape.refill_slots if shape.reuse else 0
    transient = 2 * shape.step_output_bytes() + max(int(LEXICAL_BUILD_BYTES_PER_TOKEN * tokens), reuse)
    return MemoryPlan(
        {
            "runtime": runtime,
            "program": program,
            "pot": pot,
            "span index": int(shape.index_bytes_per_token() * tokens),
            "document": DOCUMENT_BYTES_PER_TOKEN * tokens,
            "transient": transient,
        }
    )


def fit_pot(shape: SessionShape, runtime: int, program: int, tokens: int, budget: int) -> int:
    """The most pot slots a whole-process `budget` holds for a `tokens`-long document; refuses with
    the smallest budget that fits when it holds fewer than the acre layout needs."""
    per_slot = slot_bytes(shape.geometry, shape.kv_dtype)
    rest = predict(shape, runtime, program, tokens, slots=SLOT_ALIGN).total - SLOT_ALIGN * per_slot
    slots = (budget - rest) // per_slot // SLOT_ALIGN * SLOT_ALIGN
    slots = min(slots, largest_pot(shape.geometry.window, shape.chunk))
    if slots < MIN_SLOTS:
        smallest = smallest_budget(shape, runtime, program, tokens)
        raise InputError(
            f"a budget of {budget / MIB:,.0f} MiB does not fit a {tokens:,}-token document: the runtime "
            f"({runtime / MIB:,.0f} MiB), the program ({program / MIB:,.0f} MiB) and the document's indexes "
            f"leave room for {max(slots, 0)} pot slots, and at least {MIN_SLOTS} are needed; the smallest "
            f"budget that fits is {-(-smallest // MIB):,} MiB"
        )
    return int(slots)


def smallest_budget(shape: SessionShape, runtime: int, program: int, tokens: int) -> int:
    """The least whole-process RAM a `tokens`-long document runs in: the smallest pot acre lays out."""
    return predict(shape, runtime, program, tokens, slots=MIN_SLOTS).total
