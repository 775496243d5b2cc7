"""The pot: the bounded RAM key/value buffer the step program attends to.

Run by the native core (native/src/pot.cpp, acre_pot_* in native/include/acre.h); this module
converts only. Allocated once at the bundle's capacity and never grown or reallocated: policies only
write slots, clear them, show or hide them, and read the slot table. `positions` is what the model
sees, and each slot's key is kept rotated at its position (RoPE), so the step program reads keys as
they are. The one rule that keeps this true lives in the core: a slot whose position changes is
re-rotated by the difference (`move`, `compact`), which happens when positions are compacted (ingest
chunk boundaries, refill), never during decode.

The arrays (`k`, `v`, `positions`, `mask`, `kind`, `token`) are numpy views of the core's memory, no
copies: the engines take `k`, `v` and `mask` as step inputs, and the L2 store saves all six as the
pot snapshot. Change the pot through its methods; `positions`, `kind` and `token` are read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum

import numpy as np

from acre import _native
from acre.geometry import Geometry

ARRAYS: tuple[str, ...] = tuple(_native.POT_ARRAYS)  # k, v, positions, mask, kind, token


class SlotKind(IntEnum):  # acre_slot_kind
    FREE = 0
    SINK = 1
    L1 = 2
    REFILL = 3
    RECENT = 4
    QUESTION = 5  # the question and the answer being decoded


def _slots(slots: np.ndarray | Iterable[int]) -> np.ndarray:
    return np.ascontiguousarray(slots, dtype=np.int64).reshape(-1)


class Pot:
    def __init__(
        self, geometry: Geometry, capacity: int, inv_freq: np.ndarray, dtype: str = "float32"
    ) -> None:
        self.inv_freq = np.ascontiguousarray(
            inv_freq, dtype=np.float64
        )  # [D/2], the model's RoPE frequencies
        g = geometry
        self._core = _native.Pot(
            g.layers, g.kv_heads, capacity, g.head_dim, str(np.dtype(dtype)), self.inv_freq
        )
        self.capacity: int = self._core.capacity
        views = [self._core.array(i) for i in range(len(ARRAYS))]
        self.k, self.v, self.positions, self.mask, self.kind, self.token = views

    @property
    def core(self) -> _native.Pot:
        """The core's pot (the native session works on it)."""
        return self._core

    @property
    def nbytes(self) -> int:
        return self._core.nbytes

    @property
    def used(self) -> int:
        return self._core.used

    def free_slots(self, first: int = 0, count: int | None = None) -> np.ndarray:
        """The free slots (kind FREE) of [first, first + count), ascending."""
        return self._core.free_slots(first, self.capacity - first if count is None else count)

    def slots_of(self, *kinds: SlotKind) -> np.ndarray:
        """The slots of any of `kinds`, ascending."""
        return self._core.slots_of([int(k) for k in kinds])

    def write(
        self,
        slots: np.ndarray,
        k: np.ndarray,  # [L, Hkv, n, D]
        v: np.ndarray,
        positions: np.ndarray | int,  # where `k` is rotated at (0: un-rotated)
        kind: SlotKind,
        token: np.ndarray | None = None,
    ) -> None:
        slots = _slots(slots)
        at = None
        if np.ndim(positions) or positions:
            at = np.ascontiguousarray(np.broadcast_to(positions, slots.shape), dtype=np.int64)
        tokens = (
            None if token is None else np.ascontiguousarray(np.broadcast_to(token, slots.shape), np.int64)
        )
        dtype = self.k.dtype
        self._core.write(
            slots,
            np.ascontiguousarray(k, dtype=dtype),
            np.ascontiguousarray(v, dtype=dtype),
            at,
            int(kind),
            tokens,
        )

    def clear(self, slots: np.ndarray) -> None:
        self._core.clear(_slots(slots))

    def show(self, slots: np.ndarray, visible: bool = True) -> None:
        """Show `slots` to the step program, or hide them; nothing else changes."""
        self._core.show(_slots(slots), visible)

    def move(self, slots: np.ndarray, positions: np.ndarray) -> None:
        """Give `slots` new positions, re-rotating their keys by the change (only where it changed)."""
        slots = _slots(slots)
        self._core.move(slots, np.ascontiguousarray(np.broadcast_to(positions, slots.shape), dtype=np.int64))

    def compact(self, *kinds: SlotKind) -> int:
        """Give the visible slots of `kinds` consecutive positions from 0 in the order of their document
        tokens (stable), re-rotated; returns the next free position."""
        return self._core.compact([int(k) for k in kinds])

    def unrotated(self, layers: list[int], slots: np.ndarray) -> np.ndarray:
        """The keys of `slots` in `layers` as if at position 0: comparable across positions (CCD)."""
        layers, slots = np.ascontiguousarray(layers, dtype=np.int32), _slots(slots)
        out = np.empty((len(layers), self.k.shape[1], len(slots), self.k.shape[3]), dtype=np.float32)
        self._core.unrotated(layers, slots, out)
        return out

    def unrotate(self, keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Keys [L, Hkv, n, D] not in the pot, rotated at `positions` [n], as at position 0 (float32):
        how the L2 store keeps them."""
        if keys.dtype not in (np.float32, np.float16):
            keys = keys.astype(np.float32)
        keys = np.ascontiguousarray(keys)
        out = np.empty(keys.shape, dtype=np.float32)
        self._core.unrotate(keys, np.ascontiguousarray(positions, dtype=np.int64), out)
        return out

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Put a snapshot back in place (the pot is never reallocated): ARRAYS by name, each of the
        pot's dtype and shape, all checked before anything is copied."""
        self._core.restore([(name, np.ascontiguousarray(arrays[name])) for name in ARRAYS if name in arrays])
