"""What the state form of a property reads of a state, found by reading its kernel.

A property's state form (:data:`~ballast.model.invariants.INVARIANTS`) is written twice:
as Python over frozen records, and once more as a kernel over the operations of
:mod:`ballast.model.ops` (:data:`~ballast.model.property_kernels.PROPERTY_KERNELS`), which
every backend's tests hold to the same verdicts. A kernel reads the state only through
operations that name the field they read, so running it once on an interpretation that
notes those names (:class:`ReadLog`) tells which records its truth depends on. A checker
that knows a state satisfies a property, and that a step left every record the property
reads as it was, knows the state after the step satisfies it too
(:class:`ballast.model.incremental.StepChecker` skips it then).

A field is named by its path in the state: ``p2m``, ``module.balloon``, ``guest.ppn_use``
(a record of each VM), ``host.swap`` (of the host). Whatever the log cannot tell for sure
(an operation that is no plain read of a named field, a kernel that branches on a value it
read, a property without a kernel) reads as None: the property is then always checked.

>>> from ballast.model.config import Config
>>> sorted(state_form_reads("guest_chooses_pages", Config()) or ())
['ballooned', 'deflate_queue', 'guest.ppn_use']
>>> sorted(state_form_reads("ballooned_pages_unbacked", Config()) or ())
['ballooned', 'host.swap', 'p2m']
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ballast.model.config import Config
from ballast.model.property_kernels import PROPERTY_KERNELS
from ballast.model.state import BalloonModule, GuestState, HostState, VmState

__all__ = ["FIELD_PATHS", "ReadLog", "state_form_reads"]


def _paths() -> frozenset[str]:
    vm = {f.name for f in dataclasses.fields(VmState)} - {"guest", "module"}
    return frozenset(vm | {f"guest.{f.name}" for f in dataclasses.fields(GuestState)}
                     | {f"module.{f.name}" for f in dataclasses.fields(BalloonModule)}
                     | {f"host.{f.name}" for f in dataclasses.fields(HostState)})


FIELD_PATHS: frozenset[str] = _paths()
"""Every record of a state by its path: a VM's own (``p2m``, ``guest.ppn_use``,
``module.balloon``, ...) and the host's (``host.swap``, ...)."""

_NAMED = frozenset({"vm", "pages", "vcpus", "vpns", "queued", "queue_len", "beyond",
                    "vms_count", "tokens", "token_at", "at_mpn"})
"""Reads of the field their first argument names, by its path (``vms_count``: of every VM)."""

_HOST_NAMED = {"mpns": "host.{}", "host": "host.{}"}
"""Reads of a host field named without its ``host.`` prefix."""

_HOST_COUNTERS = {"host.host.swap_room": "host.swap"}
"""Host counters derived from a record (free swap slots: from the swap entries)."""

_FIXED = {"mapped": ("p2m",), "shared": ("p2m",), "host_page_backs_two_vms": ("p2m",),
          "other_mpn": ("p2m",), "swapped": ("host.swap",), "held": ("guest.ppn_use",),
          "holding": ("guest.ppn_use",), "lowest_holding": ("guest.ppn_use",),
          "lru_victim": ("guest.lru",), "own_mpns": (),
          "hostile": (), "this_vm": (), "unit_first": ()}
"""Reads of fixed records (the VMs' maps, host swap, the guest's page table), or of the
configuration alone."""

_PURE = frozenset({"and_", "or_", "not_", "implies", "eq", "ne", "lt", "le", "add", "sub",
                   "minimum", "maximum", "where", "count", "any", "all", "lowest",
                   "up_to_last", "unit_whole", "matches_vpn", "pick", "host_page_all",
                   "host_page_any"})
"""Operations on values already read: they read no state."""


class _Unknown(Exception):
    """The kernel did something the log cannot account for."""


class _Value:
    """A value the kernel read: opaque, as the operations promise; a kernel that looks into
    it (a branch on it, arithmetic outside the operations) cannot be read this way."""

    __slots__ = ()

    def __bool__(self) -> bool:
        raise _Unknown("a branch on a value read from the state")

    def __iter__(self) -> Any:
        raise _Unknown("a value read from the state taken apart")


class ReadLog:
    """An interpretation of the operations that notes the field paths they read
    (``fields``), and fails (:class:`_Unknown`) on anything it cannot account for."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.fields: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def read(*args: Any, **kw: Any) -> _Value:
            self.fields.update(_read_by(name, args))
            return _Value()
        return read


def _read_by(name: str, args: tuple[Any, ...]) -> tuple[str, ...]:
    """The field paths operation ``name`` with ``args`` reads."""
    if name in _PURE:
        return ()
    if name in _FIXED:
        return _FIXED[name]
    field = args[0] if args and isinstance(args[0], str) else None
    if field is not None and name in _HOST_NAMED:
        path = _HOST_NAMED[name].format(field)
        path = _HOST_COUNTERS.get(path, path)
    elif field is not None and name in _NAMED:
        path = field
    else:
        raise _Unknown(f"operation {name}")
    if path not in FIELD_PATHS:
        raise _Unknown(f"field {path}")
    return (path,)


def state_form_reads(name: str, cfg: Config) -> frozenset[str] | None:
    """The field paths the state form of property ``name`` reads in configuration ``cfg``
    (of every VM it covers, and of the host), or None when its kernel cannot tell."""
    kernel = PROPERTY_KERNELS.get(name)
    if kernel is None:
        return None
    log = ReadLog(cfg)
    try:
        for part in (kernel.host, kernel.each_vm):
            if part is not None:
                part(log)
    except _Unknown:
        return None
    return frozenset(log.fields)
