"""The pot through the binding: held bit for bit to the numpy pot it replaced (kept here as the
reference), its arrays views of the core's memory, and refusals as InputError."""

from __future__ import annotations

import numpy as np
import pytest

from acre.errors import InputError
from acre.geometry import Geometry
from acre.runtime.pot import ARRAYS, Pot, SlotKind

L, HKV, D, P = 3, 2, 8, 32


def geometry() -> Geometry:
    return Geometry(
        layers=L,
        heads=4,
        kv_heads=HKV,
        head_dim=D,
        hidden=32,
        intermediate=64,
        vocab=100,
        rope_theta=10000.0,
        rms_eps=1e-5,
        window=4096,
    )


INV_FREQ = 1.0 / 10000.0 ** (np.arange(0, D, 2) / D)


# ---- the numpy pot (acre/runtime/pot.py before the core), as the reference -------------------------
def rotate(keys: np.ndarray, by: np.ndarray) -> np.ndarray:
    angles = np.asarray(by, dtype=np.float64)[:, None] * INV_FREQ
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    half = keys.shape[-1] // 2
    first, second = keys[..., :half], keys[..., half:]
    return np.concatenate((first * cos - second * sin, second * cos + first * sin), axis=-1)


class Reference:
    def __init__(self, dtype: str) -> None:
        self.k = np.zeros((L, HKV, P, D), dtype=dtype)
        self.v = np.zeros_like(self.k)
        self.positions = np.zeros(P, dtype=np.int64)
        self.mask = np.zeros(P, dtype=bool)
        self.kind = np.zeros(P, dtype=np.int8)
        self.token = np.full(P, -1, dtype=np.int64)

    def write(self, slots, k, v, positions, kind, token=None) -> None:
        self.k[:, :, slots], self.v[:, :, slots] = k, v
        self.positions[slots], self.mask[slots], self.kind[slots] = positions, True, kind
        self.token[slots] = -1 if token is None else token

    def clear(self, slots) -> None:
        self.mask[slots], self.kind[slots], self.token[slots] = False, 0, -1

    def move(self, slots, positions) -> None:
        delta = positions - self.positions[slots]
        chosen = slots[delta != 0]
        for layer in self.k:
            layer[:, chosen] = rotate(layer[:, chosen].astype(np.float32), delta[delta != 0])
        self.positions[chosen] = positions[delta != 0]

    def compact(self, kinds) -> int:
        slots = np.flatnonzero(np.isin(self.kind, kinds))
        slots = slots[self.mask[slots]]
        slots = slots[np.argsort(self.token[slots], kind="stable")]
        self.move(slots, np.arange(len(slots)))
        return len(slots)

    def unrotated(self, layers, slots) -> np.ndarray:
        return rotate(self.k[layers][:, :, slots].astype(np.float32), -self.positions[slots])


def same(pot: Pot, ref: Reference) -> bool:
    return all(np.array_equal(getattr(pot, name), getattr(ref, name)) for name in ARRAYS)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_core_pot_is_the_numpy_pot_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    pot, ref = Pot(geometry(), P, INV_FREQ, dtype), Reference(dtype)
    doc = (SlotKind.SINK, SlotKind.L1, SlotKind.RECENT, SlotKind.REFILL)
    for step in range(60):
        n = int(rng.integers(1, 9))
        slots = rng.choice(P, n, replace=False)
        action = step % 5
        if action in (0, 1):
            k = rng.standard_normal((L, HKV, n, D)).astype(dtype)
            v = rng.standard_normal((L, HKV, n, D)).astype(dtype)
            positions = rng.integers(0, 3000, n) if action else 0
            kind = doc[int(rng.integers(0, 4))] if step % 7 else SlotKind.QUESTION
            tokens = rng.integers(0, 50, n)  # repeats: compaction's ties
            pot.write(slots, k, v, positions, kind, tokens)
            ref.write(slots, k, v, positions, kind, tokens)
        elif action == 2:
            positions = rng.integers(0, 5000, n)
            positions[0] = ref.positions[slots[0]]  # one that does not move
            pot.move(slots, positions)
            ref.move(slots, positions)
        elif action == 3:
            assert pot.compact(*doc) == ref.compact(doc)
        else:
            pot.clear(slots[:2])
            ref.clear(slots[:2])
            pot.show(slots[2:4], False)
            ref.mask[slots[2:4]] = False
        assert same(pot, ref), f"step {step}"
        layers, pick = [2, 0], rng.choice(P, 5)
        assert np.array_equal(pot.unrotated(layers, pick), ref.unrotated(layers, pick))
    assert ref.mask.any() and (ref.positions > 0).any()
    assert pot.used == int(ref.mask.sum())
    assert np.array_equal(pot.slots_of(SlotKind.L1, SlotKind.FREE), np.flatnonzero(np.isin(ref.kind, [2, 0])))
    assert np.array_equal(pot.free_slots(4, 20), 4 + np.flatnonzero(ref.kind[4:24] == 0))
    keys = rng.standard_normal((L, HKV, 6, D)).astype(dtype)
    at = rng.integers(0, 2000, 6)
    assert np.array_equal(pot.unrotate(keys, at), rotate(keys, -at))


def test_arrays_are_views_of_the_core_memory():
    pot = Pot(geometry(), P, INV_FREQ)
    k_address = pot.k.ctypes.data
    assert [pot.k.shape, pot.positions.shape] == [(L, HKV, P, D), (P,)]
    assert [a.dtype for a in (pot.k, pot.v, pot.positions, pot.mask, pot.kind, pot.token)] == [
        np.float32,
        np.float32,
        np.int64,
        bool,
        np.int8,
        np.int64,
    ]
    rows = np.ones((L, HKV, 2, D), dtype=np.float32)
    pot.write(np.array([3, 9]), rows, 2 * rows, np.array([5, 6]), SlotKind.L1, np.array([7, 8]))
    assert pot.k[1, 1, 9, 0] != 0 and pot.v[0, 0, 3, 0] == 2 and pot.positions[9] == 6 and pot.mask[3]
    assert pot.kind[3] == SlotKind.L1 and pot.token[9] == 8
    pot.move(np.array([3]), np.array([100]))
    assert pot.k.ctypes.data == k_address and pot.positions[3] == 100  # the same memory, changed in place
    assert pot.k.flags.writeable and not pot.positions.flags.writeable and not pot.kind.flags.writeable
    assert pot.nbytes == 2 * pot.k.nbytes + P * (8 + 1 + 1 + 8)
    view = pot.k
    del pot
    assert view[1, 1, 9, 0] != 0  # the view keeps the core's pot alive


def test_restore_puts_a_snapshot_back_in_place():
    pot, other = Pot(geometry(), P, INV_FREQ), Pot(geometry(), P, INV_FREQ)
    rows = np.arange(L * HKV * 2 * D, dtype=np.float32).reshape(L, HKV, 2, D)
    pot.write(np.array([1, 2]), rows, rows, np.array([4, 5]), SlotKind.SINK, np.array([0, 1]))
    state = {name: getattr(pot, name).copy() for name in ARRAYS}
    address = other.k.ctypes.data
    other.restore(state)
    assert all(np.array_equal(getattr(other, name), state[name]) for name in ARRAYS)
    assert other.k.ctypes.data == address and other.used == 2
    with pytest.raises(InputError, match="'mask' is not"):
        other.restore({**state, "mask": state["mask"].astype(np.uint8)})
    with pytest.raises(InputError, match="no array 'token'"):
        other.restore({name: state[name] for name in ARRAYS[:-1]})


def test_refusals_name_the_bad_input():
    pot = Pot(geometry(), P, INV_FREQ)
    rows = np.zeros((L, HKV, 2, D), dtype=np.float32)
    with pytest.raises(InputError, match="slot 32 at 1 is out of range"):
        pot.write(np.array([0, P]), rows, rows, 0, SlotKind.L1)
    with pytest.raises(InputError, match="given twice"):
        pot.move(np.array([4, 4]), np.array([1, 2]))
    with pytest.raises(InputError, match="would overflow"):
        pot.move(np.array([4]), np.array([2**31]))
    with pytest.raises(InputError, match=r"not \[L, Hkv, n, D\]"):
        pot.write(np.array([0, 1, 2]), rows, rows, 0, SlotKind.L1)
    with pytest.raises(InputError, match="slot kind 0"):
        pot.write(np.array([0, 1]), rows, rows, 0, SlotKind.FREE)
    with pytest.raises(InputError, match="no slot kinds"):
        pot.compact()
    with pytest.raises(InputError, match="layer 3 is out of range"):
        pot.unrotated([3], np.array([0]))
    with pytest.raises(InputError, match="head_dim"):
        Pot(geometry(), P, INV_FREQ[:-1])
    with pytest.raises(InputError, match="float32 or float16"):
        Pot(geometry(), P, INV_FREQ, "int8")
    assert pot.used == 0 and not pot.kind.any()  # nothing was written
