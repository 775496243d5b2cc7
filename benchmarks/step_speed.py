"""Prefill and decode of several bundles' step programs in one process: three interleaved rounds, each
bundle 4 prefill chunks and 64 decode steps a round over a half-full pot; medians. No session, no
document: what the program itself costs, so that two quantization schemes compare on the same run.

    .venv/bin/python -m benchmarks.step_speed gguf=build/smollm2-android old=build/smollm2-android-8da4w

Prints one line per bundle and a JSON line with all of them. Run it on a quiet machine: XNNPACK's
threads spin-wait, and any other busy process on these 2 cores distorts every figure.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from acre.bundle import Bundle
from acre.runtime.engines import ExecuTorchEngine, StepInputs


def main(args: list[str]) -> None:
    bundles = {name: Bundle.open(d) for name, d in (a.split("=", 1) for a in args)}
    engines = {name: ExecuTorchEngine(b) for name, b in bundles.items()}
    rng = np.random.default_rng(0)
    times: dict[str, dict[str, list[float]]] = {n: {"decode": [], "prefill": []} for n in bundles}
    for _ in range(3):
        for name, engine in engines.items():
            b = bundles[name]
            g, pot, chunk = b.geometry, b.pot, b.chunk
            shape = (g.layers, g.kv_heads, pot, g.head_dim)
            k, v = (rng.standard_normal(shape).astype(b.kv_dtype) for _ in range(2))
            mask = np.arange(pot) < pot // 2
            tokens, positions = rng.integers(0, g.vocab, chunk), np.arange(pot, pot + chunk)
            prefill = StepInputs(tokens, positions, k, v, mask, np.array([chunk - 1]))
            decode = StepInputs(np.array([7]), np.array([pot]), k, v, mask, np.array([0]))
            engine.step(prefill), engine.step(decode)  # warm-up
            for inputs, key, n in ((prefill, "prefill", 4), (decode, "decode", 64)):
                for _ in range(n):
                    started = time.perf_counter()
                    engine.step(inputs)
                    times[name][key].append(time.perf_counter() - started)
    speeds = {}
    for name, t in times.items():
        decode, prefill = float(np.median(t["decode"])), float(np.median(t["prefill"]))
        speeds[name] = {
            "decode_ms": round(decode * 1000, 2),
            "decode_tok_s": round(1 / decode, 1),
            "prefill_ms": round(prefill * 1000, 1),
            "ingest_tok_s": round(bundles[name].chunk / prefill, 1),
        }
        print(name, speeds[name])
    print(json.dumps({"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "speeds": speeds}))


if __name__ == "__main__":
    main(sys.argv[1:])
