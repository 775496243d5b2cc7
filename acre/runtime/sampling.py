"""Next-token choice: greedy, or temperature with nucleus (top-p) filtering.

Run by the native core (native/src/sampling.cpp, acre_sample in native/include/acre.h); this module
converts only. `Rng(seed)` is numpy's default_rng(seed) stream (PCG64 through SeedSequence), and the
draw is numpy's Generator.choice, so a seed gives the tokens it gave when sampling was numpy's.
"""

from __future__ import annotations

import numpy as np

from acre import _native

Rng = _native.Rng


def sample(logits: np.ndarray, temperature: float, top_p: float, rng: _native.Rng) -> int:
    return _native.sample(np.ascontiguousarray(logits, dtype=np.float32), temperature, top_p, rng)
