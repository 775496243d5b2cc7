"""The fixed mmap threshold (acre/runtime/malloc.py): big blocks keep going to mmap after a free."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# In a fresh interpreter: free one 4 MiB block, then count how many of ten more such blocks glibc
# serves with mmap (mallinfo2's hblks). Without the fix the first free raises the threshold to
# 4 MiB and the later blocks come from the heap.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from acre.runtime.malloc import fix_mmap_threshold
    fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else False

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblks
    blocks = [libc.malloc(4 << 20) for _ in range(10)]
    print(fixed, libc.mallinfo2().hblks - before)
    for b in blocks:
        libc.free(b)
    """
)


def probe(mode: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    fixed, mmapped = done.stdout.split()
    return fixed, int(mmapped)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_big_blocks_still_go_to_mmap_after_a_free_once_the_threshold_is_fixed():
    try:
        unfixed = probe("plain")
    except subprocess.CalledProcessError:
        pytest.skip("no glibc mallinfo2 here")
    assert unfixed == ("False", 0)  # glibc's dynamic threshold: the heap serves them
    assert probe("fix") == ("True", 10)


def test_a_session_fixes_the_threshold(monkeypatch, tiny_bundle):
    from acre.runtime import session as session_module

    calls = []
    monkeypatch.setattr(session_module, "fix_mmap_threshold", lambda: calls.append(1) or True)
    session_module.Session(tiny_bundle, engine="onnx")
    assert calls == [1]
