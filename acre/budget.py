"""Memory budget: how many pot slots a RAM budget buys, and how budgets are written ("48MB")."""

from __future__ import annotations

import re

import numpy as np

from acre.errors import InputError
from acre.geometry import Geometry

SLOT_ALIGN = 64  # pots are whole multiples of this many slots
MIN_SLOTS = 256  # below this the acre layout has no room for its regions at the default chunk
_UNITS = {"": 2**20, "B": 1, "KB": 2**10, "KIB": 2**10, "MB": 2**20, "MIB": 2**20, "GB": 2**30, "GIB": 2**30}


def parse_bytes(text: str) -> int:
    """'48MB', '1.5GB', '512KiB' or a plain number of MiB -> bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in _UNITS:
        raise InputError(f"cannot read the budget {text!r}; write it like 48MB or 1.5GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def slot_bytes(geometry: Geometry, kv_dtype: str = "float32") -> int:
    """RAM one pot slot costs: K and V of every layer, plus its position, mask, kind and token."""
    kv = geometry.layers * geometry.kv_heads * geometry.head_dim * 2 * np.dtype(kv_dtype).itemsize
    return kv + 8 + 1 + 1 + 8


def largest_pot(window: int, chunk: int) -> int:
    """The most pot slots a model's window holds beside one chunk, in whole steps of SLOT_ALIGN."""
    room = window - chunk
    return room - room % SLOT_ALIGN


def slots_for_budget(geometry: Geometry, budget_bytes: int, kv_dtype: str = "float32") -> int:
    per_slot = slot_bytes(geometry, kv_dtype)
    slots = budget_bytes // per_slot // SLOT_ALIGN * SLOT_ALIGN
    if slots < MIN_SLOTS:
        raise InputError(
            f"a budget of {budget_bytes / 2**20:.1f} MiB holds {budget_bytes // per_slot} pot slots "
            f"({per_slot} bytes each); at least {MIN_SLOTS} are needed, i.e. "
            f"{MIN_SLOTS * per_slot / 2**20:.1f} MiB"
        )
    return int(min(slots, geometry.window - 128 - (geometry.window - 128) % SLOT_ALIGN))
