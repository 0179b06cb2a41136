"""Which checkers of ``ballast check`` are expected to catch each seeded fault.

The checkers that drive the model's own steps (random runs, the Hypothesis
machine, the explorer) catch every fault the model defines, unless the fault
table says why one of them misses it (``Fault.missed_by``). The Z3 proofs and
the NumPy core catch a fault only through their own encoding of it, so a fault
they list as a known gap (:data:`ballast.model.encodings.REAL_DRIVER_ONLY`,
:data:`~ballast.model.encodings.MODERN_VIRTIO_ONLY`,
:data:`~ballast.model.encodings.HINTING_HIBERNATION_ONLY`,
:data:`~ballast.model.encodings.HOSTILE_ONLY`,
:data:`~ballast.model.encodings.GRANULAR_ONLY`) is not theirs to catch. This is
read without loading Z3 or NumPy, so ``ballast list
faults`` stays fast; a test checks it against the backends' own tables.

>>> catchers("reclaim_keeps_mapping")
('random', 'hypothesis', 'explore', 'prove', 'numeric')
>>> catchers("migrate_forgets_old_page")
('random', 'hypothesis', 'explore', 'numeric')
"""

from __future__ import annotations

from ballast.model.encodings import (GRANULAR_ONLY, HINTING_HIBERNATION_ONLY, HOSTILE_ONLY,
                                     MODERN_VIRTIO_ONLY, REAL_DRIVER_ONLY)
from ballast.model.faults import FAULTS

__all__ = ["ENCODED_CHECKERS", "MODEL_CHECKERS", "catchers"]

MODEL_CHECKERS = ("random", "hypothesis", "explore")
"""Checkers that take the model's own steps, seeded faults included."""

ENCODED_CHECKERS = ("prove", "numeric")
"""Checkers that catch a fault only through their own encoding of it."""


def catchers(name: str) -> tuple[str, ...]:
    """The checkers expected to catch seeded fault ``name`` within their default budgets."""
    fault = FAULTS[name]
    gaps = {item for kind, item in REAL_DRIVER_ONLY + MODERN_VIRTIO_ONLY
             + HINTING_HIBERNATION_ONLY + HOSTILE_ONLY + GRANULAR_ONLY if kind == "faults"}
    chosen = MODEL_CHECKERS + tuple(c for c in ENCODED_CHECKERS if name not in gaps)
    return tuple(c for c in chosen if c not in fault.missed_by)
