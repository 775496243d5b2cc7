"""Export under a whole-process RAM budget: the pot, K/V dtype and weights that fit, measured.

A budget holds the whole process (acre/memory.py): the runtime and the program as the backend holds
them are measured on the exported program itself, in a fresh interpreter (the exporter's own process
holds torch and the checkpoint), and the parts that grow with the document are predicted for the
document length the app will ingest. What answers best is given up only as far as the budget needs:
the requested pot first, then float32 K/V for float16 (where the target runs a float16 pot well),
then pot slots, then the requested weights for the target's default scheme (the smallest acre
ships). The program's memory plan shrinks with the pot, so a pot fitted on a larger program's
measurement fits; the chosen bundle is measured again before it is kept.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from acre.budget import MIN_SLOTS, SLOT_ALIGN, largest_pot
from acre.bundle import MANIFEST, write_manifest
from acre.errors import InputError
from acre.exporter.checkpoint import Checkpoint, load_checkpoint
from acre.exporter.export import DEFAULT_CHUNK, DEFAULT_POT, export_bundle
from acre.exporter.quantize import DEFAULT_SCHEME
from acre.geometry import Geometry
from acre.memory import MIB, SessionShape, fit_pot, predict, smallest_budget

log = logging.getLogger(__name__)
DEFAULT_DOCUMENT_TOKENS = 128_000
# targets whose program this machine can run and measure; Core ML runs only on Apple's systems
MEASURABLE = {"android": "executorch", "onnx": "onnx"}
# on ExecuTorch/XNNPACK a float16 pot measured 2.5x slower a step (README), so android keeps float32
FLOAT16_POT = {"onnx"}

_FOOTPRINT = (
    "import json, sys\n"
    "from acre.runtime.profiler import footprint\n"
    "print(json.dumps(footprint(sys.argv[1], sys.argv[2])))\n"
)


@dataclass(frozen=True)
class Config:
    pot: int
    kv_dtype: str
    quantize: str | None  # None: the target's default scheme

    def describe(self) -> str:
        return f"pot {self.pot}, {self.kv_dtype} K/V, weights {self.quantize or 'default'}"

    @property
    def dirname(self) -> str:
        return f"{self.pot}-{self.kv_dtype}-{self.quantize or 'default'}"


@dataclass(frozen=True)
class Footprint:
    """What a bundle's program holds once running, measured in a fresh process."""

    shape: SessionShape
    runtime: int
    program: int

    def peak(self, tokens: int) -> int:
        return predict(self.shape, self.runtime, self.program, tokens).total

    def with_pot(self, slots: int, kv_dtype: str) -> Footprint:
        """The same program's footprint for another pot (an upper bound when the pot is smaller)."""
        return replace(self, shape=replace(self.shape, pot_slots=slots, kv_dtype=kv_dtype))

    def smallest_budget(self, tokens: int) -> int:
        return smallest_budget(self.shape, self.runtime, self.program, tokens)

    def fit(self, tokens: int, budget: int) -> int:
        return fit_pot(self.shape, self.runtime, self.program, tokens, budget)


def measure_footprint(bundle: Path, engine: str) -> Footprint:
    done = subprocess.run(
        [sys.executable, "-c", _FOOTPRINT, str(bundle), engine], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise InputError(f"could not run the exported program to measure it: {done.stderr.strip()[-400:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    shape = data.pop("shape")
    shape["geometry"] = Geometry.from_dict(shape["geometry"])
    return Footprint(shape=SessionShape(**shape), **data)


def export_within_budget(
    out: Path,
    target: str,
    model: str | Checkpoint,
    budget: int,
    tokens: int = DEFAULT_DOCUMENT_TOKENS,
    chunk: int | None = None,
    pot: int | None = None,
    quantize: str | None = None,
    kv_dtype: str | None = None,
    **export_options: Any,
) -> Path:
    """Write the bundle for `target` whose whole process fits `budget` bytes with a `tokens`-long
    document; `pot`, `kv_dtype` and `quantize` are what is wanted (a pinned `kv_dtype` is kept)."""
    if target not in MEASURABLE:
        raise InputError(
            f"--budget measures the exported program, and {target} programs do not run on this machine; "
            f"budget one of {', '.join(MEASURABLE)} (the same model and pot hold about the same RAM)"
        )
    if tokens < 1:
        raise InputError(f"the document length for a budget must be at least 1 token (got {tokens})")
    checkpoint = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    chunk = chunk or DEFAULT_CHUNK
    # a small window's pot is smaller
    want = pot or min(DEFAULT_POT, largest_pot(checkpoint.model.config.max_position_embeddings, chunk))
    kvs = [kv_dtype] if kv_dtype else ["float32"] + (["float16"] if target in FLOAT16_POT else [])
    quantized = target in DEFAULT_SCHEME  # only the ExecuTorch program's weights are quantized
    schemes = [quantize if quantized else None] + ([None] if quantized and quantize is not None else [])
    work = Path(out).with_name(Path(out).name + ".budget")  # one directory a trial, the kept one renamed
    shutil.rmtree(work, ignore_errors=True)
    measured: dict[Config, Footprint] = {}

    def export(config: Config) -> Footprint:
        log.info("exporting with %s to measure it", config.describe())
        where = work / config.dirname
        export_bundle(
            where, [target], checkpoint, chunk=chunk, pot=config.pot, quantize=config.quantize,
            kv_dtype=config.kv_dtype, **export_options,
        )  # fmt: skip
        found = measured[config] = measure_footprint(where, MEASURABLE[target])
        heads = json.loads((where / MANIFEST).read_text(encoding="utf-8"))["step"]["signal_heads"]
        export_options["signal_heads"] = [tuple(h) for h in heads]  # calibrated once, not per trial
        log.info("%s: %.1f MiB predicted at %s tokens", config.describe(), found.peak(tokens) / MIB, tokens)
        return found

    try:
        chosen, first = None, None
        smallest: list[tuple[int, Config]] = []
        for scheme in schemes:
            first = Config(want, kvs[0], scheme)
            footprint = export(first)
            chosen = choose(footprint, first, kvs, tokens, budget)
            for kv in kvs:
                least = footprint.with_pot(want, kv).smallest_budget(tokens)
                smallest.append((least, replace(first, pot=MIN_SLOTS, kv_dtype=kv)))
            if chosen is not None:
                break
        if chosen is None or first is None:
            least, config = min(smallest, key=lambda option: option[0])
            raise InputError(
                f"a budget of {budget / MIB:,.0f} MiB does not fit a {tokens:,}-token document with any pot, "
                f"K/V dtype or weights acre exports for {target}; the smallest budget that fits is "
                f"{-(-least // MIB):,} MiB ({config.describe()})"
            )
        for _ in range(2):  # the chosen bundle, measured: a smaller pot's program is smaller still
            footprint = measured.get(chosen) or export(chosen)
            if footprint.peak(tokens) <= budget:
                break
            chosen = replace(chosen, pot=footprint.fit(tokens, budget))
        else:
            raise InputError(f"the exported program outgrew its measurement: {chosen.describe()} is over")
        if chosen.kv_dtype == first.kv_dtype and chosen.pot < first.pot:
            # the program's memory plan grows with the pot: two measurements give its slope, and the
            # largest pot that slope fits is tried (kept only if its own measurement fits)
            larger = replace(
                chosen,
                pot=interpolated_pot(measured[first], first.pot, footprint, chosen.pot, tokens, budget),
            )
            if larger.pot > chosen.pot and export(larger).peak(tokens) <= budget:
                chosen = larger
        where = work / chosen.dirname
        record_budget(
            where, budget, tokens, measured[chosen], given_up=diff(Config(want, kvs[0], schemes[0]), chosen)
        )
        if Path(out).exists():
            shutil.rmtree(out)
        where.rename(out)
        return Path(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def interpolated_pot(at_a: Footprint, a: int, at_b: Footprint, b: int, tokens: int, budget: int) -> int:
    """The largest pot (whole steps, at most `a`) whose peak, with the program's size interpolated
    linearly in the pot between its measurements at pots `a` and `b` (< a), fits `budget`."""
    per_slot = (at_a.program - at_b.program) / (a - b)
    pot = b
    while pot + SLOT_ALIGN <= a:
        program = int(at_b.program + per_slot * (pot + SLOT_ALIGN - b))
        if predict(at_b.shape, at_b.runtime, program, tokens, slots=pot + SLOT_ALIGN).total > budget:
            break
        pot += SLOT_ALIGN
    return pot


def choose(footprint: Footprint, measured: Config, kvs: list[str], tokens: int, budget: int) -> Config | None:
    """From one program's measurement, the configuration that fits `budget` and gives up least: the
    measured pot with the first K/V dtype that holds it, else the largest pot any of them holds. The
    measured program bounds a float16 pot's or a smaller pot's program from above."""
    options = []
    for kv in kvs:
        wanted = footprint.with_pot(measured.pot, kv)
        if wanted.smallest_budget(tokens) <= budget:
            options.append(replace(measured, pot=min(wanted.fit(tokens, budget), measured.pot), kv_dtype=kv))
    return max(options, key=lambda c: c.pot, default=None)  # max keeps the first of equals


def diff(wanted: Config, chosen: Config) -> list[str]:
    """What the budget cost, in the user's terms."""
    return [
        f"{name} {a or 'default'} -> {b or 'default'}"
        for name, a, b in (
            ("pot", wanted.pot, chosen.pot),
            ("K/V", wanted.kv_dtype, chosen.kv_dtype),
            ("weights", wanted.quantize, chosen.quantize),
        )
        if a != b
    ]


def record_budget(root: Path, budget: int, tokens: int, footprint: Footprint, given_up: list[str]) -> None:
    """The budget, what was measured and predicted, and what was given up, in the bundle's manifest."""
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("format"), manifest.pop("version")
    plan = predict(footprint.shape, footprint.runtime, footprint.program, tokens)
    manifest["budget"] = {
        "bytes": budget,
        "document_tokens": tokens,
        "measured": {"runtime": footprint.runtime, "program": footprint.program},
        "predicted": plan.parts,
        "predicted_peak_bytes": plan.total,
        "given_up": given_up,
    }
    write_manifest(root, manifest)
