"""The seeded faults of :mod:`ballast.model.faults` as broken transition relations.

Each entry replaces one action's encoding, exactly as the model's fault
replaces that action's step function; ``tests/proofs`` checks both agree on
random states. The proofs must refute every one of them (negative controls).
Every seeded fault has one, except the declared known gaps of the Z3 backend:

>>> from ballast.model.faults import FAULTS
>>> from ballast.proofs.encodes import KNOWN_GAPS
>>> sorted(set(FAULTS) - set(FAULT_EFFECTS)) == sorted(n for k, n in KNOWN_GAPS if k == "faults")
True
"""

from __future__ import annotations

from typing import Mapping

from ballast.errors import InputError
from ballast.model.action_kernels import FAULT_KERNELS
from ballast.proofs.transitions import ENCODED, Effect, kernel_effect

__all__ = ["FAULT_EFFECTS", "effects_with"]

FAULT_EFFECTS: dict[str, tuple[str, Effect]] = {}
"""Fault name -> (the action it replaces, its broken encoding)."""


# Every fault of an action is a kernel too (ballast.model.action_kernels).
for _name, (_action, _kernel) in FAULT_KERNELS.items():
    FAULT_EFFECTS[_name] = (_action, kernel_effect(_kernel))


def effects_with(faults: tuple[str, ...] | list[str] = ()) -> Mapping[str, Effect]:
    """The encoded action table with the named faults seeded in."""
    table = dict(ENCODED)
    for name in faults:
        if name not in FAULT_EFFECTS:
            raise InputError("<fault>", None, f"unknown fault {name!r}; expected one of "
                             f"{', '.join(sorted(FAULT_EFFECTS))}")
        action, fn = FAULT_EFFECTS[name]
        table[action] = fn
    return table
