"""What the NumPy core covers of the model, read from its own tables.

An action is encoded when :class:`~ballast.numeric.engine.Engine` has a method by
its name and the random workload draws it (a weight in
:data:`~ballast.numeric.workload.WEIGHTS`); a property when each form the model
gives it is checked: the state form in
:data:`~ballast.numeric.invariants.NUMERIC_INVARIANTS`, the step form inside the
engine's steps (:data:`~ballast.numeric.engine.STEP_CHECKS`); a seeded fault when
it is one of :data:`~ballast.numeric.engine.ENGINE_FAULTS`.

>>> enc = encodes()
>>> enc.actions["guest_write"]
'Engine.guest_write, weight 8'
>>> from ballast.model.config import preset
>>> bool(gaps_in(preset("default")))
False
"""

from __future__ import annotations

from typing import Iterable

from ballast.model.encodings import Encodes, Gaps, gaps, real_driver_gaps
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.numeric.engine import ENGINE_FAULTS, STEP_CHECKS, engine_actions
from ballast.numeric.invariants import NUMERIC_INVARIANTS
from ballast.numeric.workload import WEIGHTS
from ballast.model.keyed import KeyedTable, every, has_state_form, has_step_form

__all__ = ["BACKEND", "KNOWN_GAPS", "TABLES", "encodes", "gaps_in"]

KNOWN_GAPS: dict[tuple[str, str], str] = real_driver_gaps("NumPy")
"""What this backend deliberately does not encode yet, with the reason."""

BACKEND = "numeric"


TABLES: tuple[KeyedTable, ...] = (
    KeyedTable("Engine (a method per action)", "ballast.numeric.engine", "actions",
               engine_actions, every("actions", but=KNOWN_GAPS)),
    KeyedTable("WEIGHTS", "ballast.numeric.workload", "actions", lambda: WEIGHTS,
               every("actions", but=KNOWN_GAPS)),
    KeyedTable("NUMERIC_INVARIANTS", "ballast.numeric.invariants", "invariants",
               lambda: NUMERIC_INVARIANTS,
               every("invariants", but=KNOWN_GAPS, where=has_state_form)),
    KeyedTable("STEP_CHECKS", "ballast.numeric.engine", "invariants", lambda: STEP_CHECKS,
               every("invariants", but=KNOWN_GAPS, where=has_step_form)),
    KeyedTable("ENGINE_FAULTS", "ballast.numeric.engine", "faults", lambda: ENGINE_FAULTS,
               every("faults", but=KNOWN_GAPS)),
)
"""The NumPy core's tables keyed by the model's names (checked by :mod:`ballast.suites.tables`)."""


def _invariant(name: str) -> str | None:
    """Where each form of property ``name`` is checked; None if a form is missing."""
    prop = INVARIANTS[name]
    parts = []
    if prop.state is not None:
        fn = NUMERIC_INVARIANTS.get(name)
        if fn is None:
            return None
        parts.append(f"invariants.{fn.__name__}")
    if prop.step is not None:
        if name not in STEP_CHECKS:
            return None
        parts.append(f"{STEP_CHECKS[name]} [step]")
    return ", ".join(parts) if parts else None


def encodes() -> Encodes:
    """The NumPy core's actions, properties and faults, by the model's names."""
    actions = {n: f"Engine.{n}, weight {WEIGHTS[n]:g}" for n in engine_actions()
               if WEIGHTS.get(n, 0) > 0}
    return Encodes(BACKEND, "NumPy", actions=actions,
                   invariants={n: w for n in INVARIANTS if (w := _invariant(n)) is not None},
                   faults={n: f"Engine.{FAULTS[n].action} (fault switched on by name)"
                           for n in ENGINE_FAULTS if n in FAULTS},
                   known_gaps=KNOWN_GAPS)


def gaps_in(cfg: Config, faults: Iterable[str] = ()) -> Gaps:
    """What the NumPy core lacks of what ``cfg`` and ``faults`` switch on."""
    return gaps(encodes(), cfg, faults)
