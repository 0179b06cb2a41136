"""The NumPy core's temporaries reuse freed memory: few page faults where there were many."""

from __future__ import annotations

import doctest
import os
import platform
import subprocess
import sys

import pytest

import ballast.numeric.allocator
from ballast.numeric.allocator import reuse_freed_memory

# A sweep's pattern: a few temporaries the size of a million-page system live at once,
# then freed, again and again. Prints the minor page faults of the repeated part.
_SWEEP = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from ballast.numeric.allocator import reuse_freed_memory
    assert reuse_freed_memory()
p2m = np.arange(1 << 20, dtype=np.int64).reshape(1024, 1024) % 5000 - 1
content = np.arange(5001, dtype=np.int64)
def sweep():
    unb = p2m < 0
    at = np.where(unb, 0, p2m)
    token = np.where(unb, -1, content[at])
    return bool((token != -2).all())
sweep()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    sweep()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def test_doctests() -> None:
    assert doctest.testmod(ballast.numeric.allocator).failed == 0


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", _SWEEP, mode], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not _GLIBC, reason="the allocator is tuned under glibc only")
def test_tuned_temporaries_fault_far_fewer_pages() -> None:
    plain, tuned = _faults("plain"), _faults("tuned")
    # 20 sweeps of 8 MiB temporaries: thousands of faults untuned, a handful tuned.
    assert plain > 2000, plain
    assert tuned * 20 < plain, (tuned, plain)


@pytest.mark.skipif(not _GLIBC, reason="the allocator is tuned under glibc only")
def test_a_users_own_threshold_stands() -> None:
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    code = "from ballast.numeric.allocator import reuse_freed_memory; print(reuse_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_an_engine_tunes_the_allocator_once() -> None:
    from ballast.model.config import Config
    from ballast.numeric.engine import Engine

    Engine(Config(vms=1, guest_pages=2, machine_pages=2))
    assert ballast.numeric.allocator._applied is not None
    assert reuse_freed_memory() is ballast.numeric.allocator._applied
