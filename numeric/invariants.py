# mypy: disable-error-code="no-any-return"
"""Every state invariant of the model, evaluated on :class:`SystemArrays` with whole-array
operations.

Each property of ``ballast.model.invariants.INVARIANTS`` that has a kernel
(:data:`ballast.model.property_kernels.PROPERTY_KERNELS`) is checked by running
that kernel through the NumPy interpreter (:func:`ballast.numeric.state_ops.property_holds`):
the system's host part once, the per-VM part for every covered VM at once. The
message of a violation is the model's own, for the first VM found (the arrays
are turned back into a state only then). Tests check each against the model's
own check on concrete states, violating ones included.

>>> from ballast.model.config import Config
>>> from ballast.numeric.arrays import SystemArrays
>>> arr = SystemArrays.initial(Config())
>>> violations(arr)
[]
>>> arr.mpn_flags[0] = 0  # MPN 0 is now nowhere
>>> violations(arr)
[('memory_conservation', 'MPN 0 is nowhere')]
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

from ballast.model.invariants import INVARIANTS
from ballast.model.property_kernels import PROPERTY_KERNELS
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.state_ops import property_holds

__all__ = ["NUMERIC_INVARIANTS", "violations", "first_violation"]

Check = Callable[[SystemArrays], "str | None"]
Mask = npt.NDArray[np.bool_]


def _explain(a: SystemArrays, name: str, vm: int | None) -> str:
    """The model's message for a violation the kernel found (of VM ``vm``, or of the host)."""
    prop, s = INVARIANTS[name], a.to_state()
    msg = (prop.per_vm(a.cfg, s, vm) if vm is not None and prop.per_vm is not None
           else prop.check_state(a.cfg, s))
    where = f"VM {vm}" if vm is not None else "the host"
    return msg or f"{where} breaks {name} by its kernel, yet the model's check passes"


def _kernel_check(name: str) -> Check:
    """The vector form of property ``name``: its kernel on the arrays."""
    kernel, prop = PROPERTY_KERNELS[name], INVARIANTS[name]

    def check(a: SystemArrays) -> str | None:
        if kernel.host is not None and not property_holds(kernel.host, a)[0]:
            return _explain(a, name, None)
        if kernel.each_vm is not None:
            vms = np.fromiter(prop.checked_vms(a.cfg), dtype=np.int64)
            bad = vms[~property_holds(kernel.each_vm, a, vms)]
            if len(bad):
                return _explain(a, name, int(bad[0]))
        return None

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"The kernel of {name}: {prop.summary}"
    return check


NUMERIC_INVARIANTS: dict[str, Check] = {
    name: _kernel_check(name) for name in PROPERTY_KERNELS}
"""The vector form of every state invariant, by the model's property name (one missing is
reported as a gap by :mod:`ballast.numeric.encodes`, and its verdict is never a pass)."""


def violations(a: SystemArrays) -> list[tuple[str, str]]:
    """(property, message) for every state invariant ``a`` breaks, in the model's order."""
    out = []
    for name, prop in INVARIANTS.items():
        fn = NUMERIC_INVARIANTS.get(name)
        if fn is None or not prop.feature(a.cfg):
            continue
        msg = fn(a)
        if msg is not None:
            out.append((name, msg))
    return out


def first_violation(a: SystemArrays) -> tuple[str, str] | None:
    """The first broken invariant (model order), or None."""
    for name, prop in INVARIANTS.items():
        fn = NUMERIC_INVARIANTS.get(name)
        if fn is not None and prop.feature(a.cfg):
            msg = fn(a)
            if msg is not None:
                return name, msg
    return None
