"""What the Z3 encoding covers of the model, read from its own tables.

The actions are the transition relations registered with ``@_encodes`` in
:mod:`~ballast.proofs.transitions` (:data:`ENCODED`); a property is encoded when
each form the model gives it has its formula (state forms in :data:`SAFETY`,
step forms in :data:`STEPS`); the seeded faults are :data:`FAULT_EFFECTS`.
Nothing here is a copy: an action added to the model without an ``@_encodes``
relation is missing, and ``ballast prove`` says so (:func:`gaps_in`).

>>> enc = encodes()
>>> enc.actions["vmm_reclaim"]
'ballast.model.action_kernels.vmm_reclaim'
>>> from ballast.model.config import preset
>>> bool(gaps_in(preset("default")))
False
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ballast.model.encodings import Encodes, Gaps, gaps, real_driver_gaps
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.proofs.faults import FAULT_EFFECTS
from ballast.proofs.properties import SAFETY, STEPS
from ballast.proofs.transitions import ENCODED
from ballast.model.keyed import KeyedTable, every, has_state_form, has_step_form

__all__ = ["BACKEND", "KNOWN_GAPS", "TABLES", "encodes", "gaps_in"]

KNOWN_GAPS: dict[tuple[str, str], str] = real_driver_gaps("Z3")
"""What this backend deliberately does not encode yet, with the reason."""

BACKEND = "prove"


TABLES: tuple[KeyedTable, ...] = (
    KeyedTable("ENCODED (@_encodes)", "ballast.proofs.transitions", "actions", lambda: ENCODED,
               every("actions", but=KNOWN_GAPS)),
    KeyedTable("SAFETY", "ballast.proofs.properties", "invariants", lambda: SAFETY,
               every("invariants", but=KNOWN_GAPS, where=has_state_form)),
    KeyedTable("STEPS", "ballast.proofs.properties", "invariants", lambda: STEPS,
               every("invariants", but=KNOWN_GAPS, where=has_step_form)),
    KeyedTable("FAULT_EFFECTS", "ballast.proofs.faults", "faults", lambda: FAULT_EFFECTS,
               every("faults", but=KNOWN_GAPS)),
)
"""The Z3 encoding's tables keyed by the model's names (checked by :mod:`ballast.suites.tables`)."""


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _invariant(name: str) -> str | None:
    """Where each form of property ``name`` is encoded; None if a form is missing."""
    prop = INVARIANTS[name]
    parts = []
    if prop.state is not None:
        if name not in SAFETY:
            return None
        parts.append(_where(SAFETY[name]))
    if prop.step is not None:
        if name not in STEPS:
            return None
        parts.append(_where(STEPS[name]) + " [step]")
    return ", ".join(parts) if parts else None


def encodes() -> Encodes:
    """The Z3 encoding's actions, properties and faults, by the model's names."""
    invariants = {n: w for n in INVARIANTS if (w := _invariant(n)) is not None}
    return Encodes(BACKEND, "Z3",
                   actions={n: _where(fn) for n, fn in ENCODED.items()},
                   invariants=invariants,
                   faults={n: f"{_where(fn)} (replaces {action})"
                           for n, (action, fn) in FAULT_EFFECTS.items()},
                   known_gaps=KNOWN_GAPS)


def gaps_in(cfg: Config, faults: Iterable[str] = ()) -> Gaps:
    """What the Z3 encoding lacks of what ``cfg`` and ``faults`` switch on."""
    return gaps(encodes(), cfg, faults)
