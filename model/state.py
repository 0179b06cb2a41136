"""The state of the modelled system: frozen values, nothing else.

What is modelled (and what is abstracted away), in the manner of a TLA+ header:

* The **host** owns machine pages (MPNs), grouped into host pages of
  ``host_page_units`` balloon units. Each MPN is free, in arbitrary host use, or
  backing guest pages. Page *contents* are small integer tokens (0 = the zero
  page), so loss or corruption of guest data is observable. Timing, NUMA, page
  tables of the host itself and the host's storage are abstracted away.
* The **VMM** keeps, per VM, the map guest PPN -> MPN (lazy: filled on first
  touch), the set of PPNs it has accepted as ballooned, the pages it swapped out
  itself (the host-swap fallback) and the report queues shared with the guest.
* The **guest OS** keeps its own view of its PPNs (free, holding a process page,
  or given to the balloon), its processes' virtual pages (VPNs), an LRU order
  and its own virtual swap disk. Processes, the kernel's own memory and file
  caches are collapsed into "VPNs".
* The **balloon module** inside the guest keeps the target it last polled, the
  pages acknowledged in its balloon, the pages refused by the host and the size
  it reports (``actual``).
* **Processors**: per VM the vCPUs the guest has online and those it has
  parked for the host; the host's count of idle physical processors.

Messages between guest and VMM are the queues in :class:`VmState`; requests from
the host carry only quantities (targets).

>>> from ballast.model.config import Config
>>> s = initial_state(Config(vms=1, guest_pages=2, machine_pages=2))
>>> s.vms[0].guest.ppn_use
(-1, -1)
>>> sorted(s.host.free)
[0, 1]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MemberDescriptorType
from typing import Any, Callable, Iterable, Iterator, TypeVar

from ballast.model.config import Config

__all__ = [
    "BALLOON",
    "FREE",
    "UNBACKED",
    "BalloonModule",
    "GuestState",
    "HostState",
    "State",
    "VmState",
    "initial_state",
    "plain_value",
    "replace_fields",
    "state_from_dict",
]

FREE = -1
"""Guest view of a PPN: on the guest's free list."""
BALLOON = -2
"""Guest view of a PPN: allocated (pinned) by the balloon module."""
UNBACKED = -1
"""VMM view of a PPN: no MPN behind it."""


@dataclass(frozen=True, slots=True)
class HostState:
    """What the host owns: machine pages, their contents and processors."""

    free: frozenset[int]
    """MPNs in the host's free pool."""
    in_use: frozenset[int]
    """MPNs the host has taken for arbitrary use of its own (whole host pages only)."""
    content: tuple[int, ...]
    """Per MPN, the token it holds (0 = zero page)."""
    cow: frozenset[int]
    """MPNs shared copy-on-write between guest pages, hence read-only."""
    reclaimed: frozenset[int]
    """MPNs freed by a balloon reclaim and not taken by the host since (bookkeeping)."""
    swap: tuple[tuple[int, int, int], ...]
    """Host swap slots, sorted: (vm, ppn, token) for pages the host paged out itself."""
    idle_pcpus: int
    """Physical processors not given to any VM, free for the host's own use."""


@dataclass(frozen=True, slots=True)
class GuestState:
    """The guest OS's own view of its memory."""

    ppn_use: tuple[int, ...]
    """Per PPN: FREE, BALLOON, or the VPN whose data it holds."""
    lru: tuple[int, ...]
    """Resident VPNs, least recently used first."""
    expected: tuple[int, ...]
    """Per VPN, the token the guest's process last wrote (what it expects to read)."""
    disk: tuple[tuple[int, int], ...]
    """The guest's virtual swap disk, sorted: (vpn, token) of pages it paged out."""
    vcpus: frozenset[int]
    """Virtual processors the guest has online (vCPU 0 is the boot processor)."""


@dataclass(frozen=True, slots=True)
class BalloonModule:
    """The balloon driver or application inside the guest."""

    target: int
    """Balloon size (pages) the module last read from the VMM (polling)."""
    balloon: frozenset[int]
    """PPNs whose inflate the VMM has acknowledged, held pinned by the module."""
    refused: frozenset[int]
    """PPNs the VMM refused, held until the module frees them."""
    actual: int
    """Balloon size the module last reported to the VMM (virtio ``actual``)."""
    cpu_target: int
    """Number of online vCPUs the module last read from the VMM."""
    reporting: frozenset[int] = frozenset()
    """Free page reporting: PPNs the module took off the guest's free list for a report,
    until it has taken the device's acknowledgement of that report."""
    hinting_for: int = 0
    """Free page hinting: the command id of the hint cycle the module last read and tags its
    hints with (0: it has read none)."""
    frozen: int = 0
    """Hibernation: 1 while the driver is frozen (the guest hibernated), else 0."""
    migrating: int = 0
    """Balloon page migration: 1 from the new page's report until the old page's release,
    while the module holds its balloon lock for the migration, else 0."""


@dataclass(frozen=True, slots=True)
class VmState:
    """One virtual machine: the VMM's records, the guest and its balloon module."""

    p2m: tuple[int, ...]
    """VMM: per PPN, the MPN backing it, or UNBACKED."""
    ballooned: frozenset[int]
    """VMM: PPNs it accepted into the balloon (unmapped, MPN given back to the host)."""
    target: int
    """VMM: balloon size the host asked for (a quantity, never page numbers)."""
    cpu_target: int
    """VMM: number of vCPUs the host wants this VM to keep online."""
    inflate_queue: tuple[int, ...]
    """Guest -> VMM: PPNs reported for inflation, not yet processed (sorted)."""
    deflate_queue: tuple[int, ...]
    """Guest -> VMM: PPNs reported for deflation, not yet processed (sorted)."""
    acked_inflate: frozenset[int]
    """VMM -> guest: inflated PPNs acknowledged, not yet seen by the module."""
    acked_refused: frozenset[int]
    """VMM -> guest: inflated PPNs refused, not yet seen by the module."""
    acked_deflate: frozenset[int]
    """VMM -> guest: deflated PPNs acknowledged, not yet seen by the module."""
    parked_vcpus: frozenset[int]
    """vCPUs the guest took offline and reported, whose processor the VMM has not yet reclaimed."""
    guest: GuestState
    """The guest OS's view."""
    module: BalloonModule
    """The balloon module inside the guest."""
    report_queue: frozenset[int] = frozenset()
    """Guest -> VMM: free pages reported on the reporting queue, not yet processed."""
    acked_report: frozenset[int] = frozenset()
    """VMM -> guest: reported free pages the VMM processed, not yet seen by the module."""
    discarded: frozenset[int] = frozenset()
    """VMM: PPNs it discarded after a free page report, not written by the guest since."""
    stats_free: int = 0
    """Guest -> VMM: free guest pages the last statistics report gave (statistics queue)."""
    hint_cmd_id: int = 0
    """VMM -> guest: the free page hint command id the device shows: 0 STOP, 1 DONE, 2 or 3
    the id of the hint cycle under way."""
    hinted: frozenset[int] = frozenset()
    """VMM: PPNs hinted free in the current hint cycle and not written since: the pages the
    migration may skip."""
    hint_rewritten: frozenset[int] = frozenset()
    """VMM: PPNs hinted free in the current hint cycle and written by the guest since (dirty
    again): the migration must send them."""
    stale_inflate: tuple[int, ...] = ()
    """Guest -> VMM: PPNs the guest's previous incarnation reported for inflation, still in
    flight when it reset (``reset_races_reports``), sorted."""
    stale_deflate: tuple[int, ...] = ()
    """Guest -> VMM: PPNs the previous incarnation reported for deflation, still in flight
    when it reset (``reset_races_reports``), sorted."""

    def replace(self, **changes: Any) -> "VmState":
        """A copy with some fields changed."""
        return replace_fields(self, **changes)


@dataclass(frozen=True, slots=True)
class State:
    """The whole system: the host and every VM."""

    host: HostState
    """The host's machine pages, swap and processors."""
    vms: tuple[VmState, ...]
    """Every VM, indexed by VM number."""

    def with_vm(self, vm: int, new: VmState) -> "State":
        """A copy with VM ``vm`` replaced."""
        return State(self.host, self.vms[:vm] + (new,) + self.vms[vm + 1:])

    def mappers(self) -> dict[int, list[tuple[int, int]]]:
        """MPN -> the (vm, ppn) pairs it backs (derived from the VMM's maps)."""
        out: dict[int, list[tuple[int, int]]] = {}
        for v, vm in enumerate(self.vms):
            for p, m in enumerate(vm.p2m):
                if m != UNBACKED:
                    out.setdefault(m, []).append((v, p))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (lists, ints, dicts), the inverse of :func:`state_from_dict`
        (field by field of the state schema, :func:`ballast.model.schema.state_to_dict`)."""
        from ballast.model.schema import state_to_dict

        return state_to_dict(self)


_R = TypeVar("_R")

_COPIERS: dict[type, tuple[frozenset[str], Callable[[Any, dict[str, Any]], Any]] | None] = {}
"""Per record class: its field names and a function that copies a record with some fields
changed, when a copy may be made field by field (every field set by ``__init__``, no
``__post_init__``), else None."""


def _copier(cls: type, names: tuple[str, ...]) -> Callable[[Any, dict[str, Any]], Any]:
    """A function ``(record, changes) -> copy`` for the records of ``cls``, written out field
    by field: each field is set through its slot's own descriptor (the records are frozen,
    and their own ``__init__`` sets every field past the frozen check too), with no loop
    over the names and no look-up of a descriptor by name at each call. Long traces of
    large guests make hundreds of thousands of copies of records of twenty fields."""
    scope: dict[str, Any] = {"make": object.__new__, "cls": cls}
    lines = ["def copy(record, changes):", "    new = make(cls)", "    get = changes.get"]
    for i, name in enumerate(names):
        scope[f"set_{i}"] = getattr(cls, name).__set__
        lines.append(f"    set_{i}(new, get({name!r}, record.{name}))")
    lines.append("    return new")
    exec("\n".join(lines), scope)
    copy: Callable[[Any, dict[str, Any]], Any] = scope["copy"]
    return copy


def replace_fields(record: _R, **changes: Any) -> _R:
    """``dataclasses.replace(record, **changes)``, the same copy for the same arguments (and
    a TypeError for a name that is no field), without re-reading the class's fields at
    every call: long traces of large guests make hundreds of thousands of these copies.

    >>> from ballast.model.config import Config
    >>> vm = initial_state(Config(vms=1, guest_pages=2, machine_pages=2)).vms[0]
    >>> replace_fields(vm, target=1) == dataclasses.replace(vm, target=1)
    True
    >>> replace_fields(vm, no_such_field=1)
    Traceback (most recent call last):
    ...
    TypeError: VmState has no field no_such_field
    """
    cls = type(record)
    try:
        known = _COPIERS[cls]
    except KeyError:
        known = _COPIERS[cls] = _copy_plan(cls)
    if known is None:
        return dataclasses.replace(record, **changes)  # type: ignore[type-var]
    name_set, copy = known
    if not name_set.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - name_set)[0]}")
    made: _R = copy(record, changes)
    return made


def _copy_plan(cls: type) -> tuple[frozenset[str], Callable[[Any, dict[str, Any]], Any]] | None:
    """The field names of ``cls`` and its copier, or None when a copy must go through
    ``dataclasses.replace`` (a field set otherwise than by ``__init__``)."""
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    slotted = all(isinstance(getattr(cls, name, None), MemberDescriptorType) for name in names)
    if not slotted or not all(f.init for f in fields) or hasattr(cls, "__post_init__"):
        return None
    return frozenset(names), _copier(cls, names)


def plain_value(value: Any) -> Any:
    """The :meth:`State.to_dict` form of a state or any part of one (sets sorted, tuples
    as lists, records as dicts).

    >>> plain_value((frozenset({2, 1}), (3,)))
    [[1, 2], [3]]
    """
    cls = type(value)
    if cls in _LEAVES:
        return value
    names = _RECORD_FIELDS.get(cls, _UNSEEN)
    if names is _UNSEEN:
        # Once per class: a record (a dataclass instance, not a dataclass itself) names
        # its fields; anything else has none. Validating a long trace converts millions of
        # values, most of them numbers inside tuples.
        is_record = dataclasses.is_dataclass(value) and not isinstance(value, type)
        names = _RECORD_FIELDS[cls] = (
            tuple(f.name for f in dataclasses.fields(value)) if is_record else None)
    if names is not None:
        return {name: plain_value(getattr(value, name)) for name in names}
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        if all(type(v) in _LEAVES for v in value):
            return list(value)
        return [plain_value(v) for v in value]
    return value


_LEAVES: frozenset[type] = frozenset({int, str, bool, float, type(None)})
"""Types :func:`plain_value` returns as they are."""

_UNSEEN: Any = object()
_RECORD_FIELDS: dict[type, tuple[str, ...] | None] = {}
"""Per class :func:`plain_value` met: its record's field names, or None for no record."""


def state_from_dict(data: dict[str, Any]) -> State:
    """Rebuild a :class:`State` from :meth:`State.to_dict` output (field by field of the
    state schema, :func:`ballast.model.schema.state_from_dict`)."""
    from ballast.model.schema import state_from_dict as from_schema

    return from_schema(data)


def initial_state(cfg: Config) -> State:
    """The unique initial state: every MPN free, every guest freshly booted, balloons empty.

    Guest pages are unbacked until first touched (lazy backing). Each VM starts
    with ``cfg.vcpus`` vCPUs online when the processors feature is on.
    """
    vcpus = frozenset(range(cfg.vcpus)) if cfg.processors else frozenset()
    host = HostState(
        free=frozenset(range(cfg.machine_pages)),
        in_use=frozenset(),
        content=(0,) * cfg.machine_pages,
        cow=frozenset(),
        reclaimed=frozenset(),
        swap=(),
        idle_pcpus=cfg.pcpus - cfg.vms * cfg.vcpus if cfg.processors else 0,
    )
    guest = GuestState(
        ppn_use=(FREE,) * cfg.guest_pages,
        lru=(),
        expected=(0,) * cfg.guest_data_pages,
        disk=(),
        vcpus=vcpus,
    )
    module = BalloonModule(target=0, balloon=frozenset(), refused=frozenset(), actual=0,
                           cpu_target=len(vcpus))
    vm = VmState(
        p2m=(UNBACKED,) * cfg.guest_pages,
        ballooned=frozenset(),
        target=0,
        cpu_target=len(vcpus),
        inflate_queue=(),
        deflate_queue=(),
        acked_inflate=frozenset(),
        acked_refused=frozenset(),
        acked_deflate=frozenset(),
        parked_vcpus=frozenset(),
        guest=guest,
        module=module,
    )
    return State(host, (vm,) * cfg.vms)


def iter_resident(guest: GuestState) -> Iterator[tuple[int, int]]:
    """(ppn, vpn) for every PPN holding a process page."""
    for p, use in enumerate(guest.ppn_use):
        if use >= 0:
            yield p, use


def swap_of(host: HostState, vm: int) -> dict[int, int]:
    """PPN -> token of VM ``vm``'s pages in host swap."""
    return {p: t for (v, p, t) in host.swap if v == vm}


def sorted_tuple(items: Iterable[int]) -> tuple[int, ...]:
    """Canonical form of a queue: sorted, duplicates kept."""
    return tuple(sorted(items))
