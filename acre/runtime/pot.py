"""The pot: the bounded RAM key/value buffer the step program attends to.

Allocated once at the bundle's capacity and never grown or reallocated: policies only write slots,
clear them, and read the slot table. `positions` is what the model sees, and each slot's key is kept
rotated at its position (RoPE), so the step program reads keys as they are. The one rule that keeps
this true lives here: a slot whose position changes is re-rotated by the difference (`move`), which
happens when positions are compacted (ingest chunk boundaries, refill), never during decode.
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
    def __init__(
        self, geometry: Geometry, capacity: int, inv_freq: np.ndarray, dtype: str = "float32"
    ) -> None:
        self.inv_freq = np.asarray(inv_freq, dtype=np.float64)  # [D/2], the model's RoPE frequencies
        if self.inv_freq.shape != (geometry.head_dim // 2,):
            raise ValueError(
                f"RoPE frequencies {self.inv_freq.shape} do not fit head_dim {geometry.head_dim}"
            )
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
        positions: np.ndarray | int,  # where `k` is rotated at (0: un-rotated)
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

    def move(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Give `slots` new positions, re-rotating their keys by the change (only where it changed)."""
        slots, positions = np.asarray(slots), np.asarray(positions, dtype=np.int64)
        delta = positions - self.positions[slots]
        moved = delta != 0
        if moved.any():
            chosen = slots[moved]
            cos, sin = rotation(delta[moved], self.inv_freq)  # once for every layer
            for layer in self.k:  # a layer at a time: the temporaries stay a layer's size, not the pot's
                layer[:, chosen] = rotated(layer[:, chosen].astype(np.float32), cos, sin)
            self.positions[chosen] = positions[moved]

    def unrotated(self, layers: list[int], slots: np.ndarray) -> np.ndarray:
        """The keys of `slots` in `layers` as if at position 0: comparable across positions (CCD)."""
        keys = self.k[layers][:, :, slots].astype(np.float32)
        return rotate(keys, -self.positions[slots], self.inv_freq)


def rotate(keys: np.ndarray, by: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """RoPE rotation of keys [..., n, D] by `by[n]` positions, in the half-split layout of acre.step
    (rotations compose: R(a) R(b) = R(a + b))."""
    return rotated(keys, *rotation(by, inv_freq))


def rotation(by: np.ndarray, inv_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n, D/2] of a rotation by `by[n]` positions. Angles in float64, so that a slot
    moved many times carries no drift from the angles, only the storage dtype's rounding of each
    result."""
    angles = np.asarray(by, dtype=np.float64)[:, None] * inv_freq  # [n, D/2]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rotated(keys: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = keys.shape[-1] // 2
    first, second = keys[..., :half], keys[..., half:]
    return np.concatenate((first * cos - second * sin, second * cos + first * sin), axis=-1)
