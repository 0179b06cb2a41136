"""Large arrays reuse the memory freed before them, rather than fresh pages from the system.

Every kernel run and every invariant sweep of the NumPy core makes a few temporary arrays
the size of the whole system (a megabyte-sized array for each of a million guest pages),
and frees them a moment later. With glibc's default settings a block that large comes
from the system (``mmap``) and goes back when freed, or the heap's top is trimmed soon
after, so the next temporary starts on fresh pages, each faulted in and zeroed by the
kernel: a million minor faults in one seed of ``ballast check``'s numeric checker, a
quarter of its time spent in the system (``benchmarks/bench_numeric.py`` measures it).

:func:`reuse_freed_memory` raises glibc's two thresholds (``mallopt``): blocks of up to
:data:`MMAP_THRESHOLD` bytes come from the heap, and the heap keeps up to
:data:`TRIM_THRESHOLD` free bytes at its top for the next one. The process's peak memory
does not grow (the same temporaries are live at the peak either way); memory freed at the
end of a run goes back to the system when the process ends. Elsewhere than glibc, or
where the user set either threshold (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
or ``GLIBC_TUNABLES``), nothing changes.

>>> reuse_freed_memory() in (True, False)
True
>>> reuse_freed_memory() == reuse_freed_memory()  # once per process
True
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Final

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "reuse_freed_memory"]

MMAP_THRESHOLD: Final = 32 << 20
"""Blocks below this many bytes come from the heap (glibc's largest allowed value)."""

TRIM_THRESHOLD: Final = 256 << 20
"""Free bytes the heap keeps at its top before giving them back to the system."""

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
"""``mallopt`` parameter numbers (glibc's ``malloc.h``)."""

_USER_SETTINGS: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_applied: bool | None = None
"""Whether this process's allocator was tuned (None: not tried yet)."""


def reuse_freed_memory() -> bool:
    """Tune glibc's allocator as the module text says, once per process; whether it was."""
    global _applied
    if _applied is None:
        _applied = _tune()
    return _applied


def _tune() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False  # the user's own choice stands
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Each call answers 1 when glibc took the value.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
