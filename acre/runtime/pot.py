"""The pot: the bounded RAM key/value buffer the step program attends to.

Allocated once at the bundle's capacity and never grown or reallocated: policies only write slots,
clear them, and read the slot table. Keys are stored un-rotated; `positions` is what the model sees.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from acre.geometry import Geometry


class SlotKind(IntEnum):
    FREE = 0
    SINK = 1
    L1 = 2
    REFILL = 3
    RECENT = 4
    QUESTION = 5  # the question and the answer being decoded


class Pot:
    def __init__(self, geometry: Geometry, capacity: int, dtype: str = "float32") -> None:
        shape = (geometry.layers, geometry.kv_heads, capacity, geometry.head_dim)
        self.capacity = capacity
        self.k = np.zeros(shape, dtype=dtype)
        self.v = np.zeros(shape, dtype=dtype)
        self.positions = np.zeros(capacity, dtype=np.int64)
        self.mask = np.zeros(capacity, dtype=bool)
        # slot table: what each slot holds (kind, and which document token it came from, -1 if none)
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.token = np.full(capacity, -1, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        arrays = (self.k, self.v, self.positions, self.mask, self.kind, self.token)
        return sum(a.nbytes for a in arrays)

    @property
    def used(self) -> int:
        return int(self.mask.sum())

    def free_slots(self) -> np.ndarray:
        return np.flatnonzero(~self.mask)

    def write(
        self,
        slots: np.ndarray,
        k: np.ndarray,  # [L, Hkv, n, D]
        v: np.ndarray,
        positions: np.ndarray,
        kind: SlotKind,
        token: np.ndarray | None = None,
    ) -> None:
        self.k[:, :, slots] = k
        self.v[:, :, slots] = v
        self.positions[slots] = positions
        self.mask[slots] = True
        self.kind[slots] = kind
        self.token[slots] = -1 if token is None else token

    def clear(self, slots: np.ndarray) -> None:
        self.mask[slots] = False
        self.kind[slots] = SlotKind.FREE
        self.token[slots] = -1
