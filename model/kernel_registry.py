"""Registering kernels: the decorators that put the kernel of an action, or of a seeded
fault, into its feature's table under the model's own name.

Each kernel module keeps its own tables (so that a feature's kernels are read in one
place); the names are checked here against the model's tables when a kernel is
registered, so a misspelt action or fault fails at import, not in a backend.

>>> from ballast.model.ops import Kernel, Ops
>>> actions: dict[str, Kernel] = {}
>>> @action_kernel(actions)("guest_read")
... def read(o: Ops) -> None: ...
>>> list(actions)
['guest_read']
>>> faults: dict[str, tuple[str, Kernel]] = {}
>>> @fault_kernel(faults)("reclaim_keeps_mapping")
... def keeps(o: Ops) -> None: ...
>>> faults["reclaim_keeps_mapping"][0]
'vmm_reclaim'
"""

from __future__ import annotations

from typing import Callable

from ballast.model.actions import ACTIONS
from ballast.model.faults import FAULTS
from ballast.model.ops import Kernel

__all__ = ["action_kernel", "fault_kernel"]

Register = Callable[[Kernel], Kernel]


def action_kernel(table: dict[str, Kernel]) -> Callable[[str], Register]:
    """``@action_kernel(table)(name)`` puts the kernel of action ``name`` in ``table``."""
    def by_name(name: str) -> Register:
        assert name in ACTIONS, name

        def register(fn: Kernel) -> Kernel:
            table[name] = fn
            return fn
        return register
    return by_name


def fault_kernel(table: dict[str, tuple[str, Kernel]]) -> Callable[[str], Register]:
    """``@fault_kernel(table)(name)`` puts the kernel of seeded fault ``name`` in ``table``,
    beside the action it replaces."""
    def by_name(name: str) -> Register:
        fault = FAULTS[name]

        def register(fn: Kernel) -> Kernel:
            table[name] = (fault.action, fn)
            return fn
        return register
    return by_name
