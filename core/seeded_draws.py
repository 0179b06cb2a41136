"""Hypothesis draws that depend on the seed alone, not on which modules are loaded.

Recent Hypothesis versions now and then draw a constant instead of a random value, and
take those constants from two pools: a fixed global pool (0, 1, powers of two, ...) and the
literals it mines from the source of every *local* module loaded in the process (not the
standard library, not site-packages). Ballast installed in editable mode is local, so the
Hypothesis checker's runs, and at a fixed budget its verdict, changed with which of Ballast's
own modules a process happened to import: the machine seeded 0, 100 runs of 40 steps on the
default preset with the fault ``hint_skips_rewritten_page``, found the fault with only the model
and the machine loaded and missed it once the explorer, the prover and the NumPy core were
imported too (as ``ballast check`` does when it runs them all); under pytest it gave other runs
again; and an edited literal anywhere in the package, or a non-editable install, changes the
runs again. Inside :func:`seed_only_draws` Hypothesis mines nothing, so its constants come
from the global pool only and the same seed and budget give the same runs whatever else is
loaded.

Where the installed Hypothesis has no constant pools (versions before the mining), there is
nothing to replace and :func:`seed_only_draws` changes nothing.

>>> from hypothesis import find, settings, strategies as st
>>> with seed_only_draws():
...     find(st.integers(0, 10), lambda x: x >= 3, settings=settings(database=None))
3
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["seed_only_draws"]

_providers: ModuleType | None
try:  # Hypothesis's constant pools: internal names, absent in older versions
    from hypothesis.internal.conjecture import providers as _providers
    from hypothesis.internal.constants_ast import Constants
    _MINER = "_get_local_constants"
    _MINED = getattr(_providers, _MINER)
    _CACHE = getattr(_providers, "CONSTANTS_CACHE")
except (ImportError, AttributeError):  # pragma: no cover - older Hypothesis: nothing mined
    _providers = None


@contextmanager
def seed_only_draws() -> Iterator[None]:
    """Within this block, Hypothesis's providers see no constants mined from loaded modules
    (restored on leaving, also on an exception). The cache of constants each draw may take
    is emptied on entering and on leaving, so neither side sees the other's pools."""
    if _providers is None:  # pragma: no cover - older Hypothesis
        yield
        return
    none_mined = Constants()
    _CACHE.cache.clear()
    setattr(_providers, _MINER, lambda: none_mined)
    try:
        yield
    finally:
        setattr(_providers, _MINER, _MINED)
        _CACHE.cache.clear()
