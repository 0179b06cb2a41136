"""One declarative description of every field of the model's state.

:mod:`ballast.model.state` holds the state as frozen dataclasses; this module
says, once, what each of their fields *is*: its name (the model's own), the
record it lives in, who owns it, its kind (a set of PPNs, a map PPN -> MPN, a
counter, a queue, ...), its domain in terms of the :class:`Config`, and one
comment in the manner of a TLA+ variable declaration (what it stands for and
what is abstracted away). Every other encoding of the state is derived from
this table: the Z3 variables and their decoding (``ballast.proofs.encoding``),
the NumPy layout and its conversions (``ballast.numeric.arrays``), the state
paths an adapter may observe (``ballast.validate.adapters.observe``) and the
state table of the README (:func:`render_state_table`). A test checks that the
table lists exactly the dataclasses' fields.

>>> field("inflate_queue").path, field("inflate_queue").kind.value
('vms/*/inflate_queue', 'queue')
>>> field("module.target").key, field("target").key
('module.target', 'target')
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> s = initial_state(cfg)
>>> field("p2m").read(s, 0), field("free").read(s, 0)
((-1, -1), frozenset({0, 1}))
>>> field("p2m").elements[0].size(cfg), field("p2m").values.text()
(2, '-1..machine_pages-1')
"""

from __future__ import annotations

import enum
import sys
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ballast.model.config import Config
from ballast.model.state import BalloonModule, GuestState, HostState, State, VmState

__all__ = [
    "BACKING",
    "BALLOON_SIZE",
    "Bound",
    "Domain",
    "FROZEN",
    "Field",
    "HINT_CMD_ID",
    "IDLE_PCPUS",
    "Kind",
    "MPN",
    "ONLINE_VCPUS",
    "Owner",
    "PPN",
    "PPN_USE",
    "REPORTED_PPN",
    "REPORTED_SIZE",
    "Record",
    "SCHEMA",
    "TOKEN",
    "VCPU",
    "VM",
    "VPN",
    "assemble",
    "field",
    "render_state_table",
    "state_from_dict",
    "state_to_dict",
]


class Record(enum.Enum):
    """The dataclass of :mod:`ballast.model.state` a field belongs to."""

    HOST = "host"
    VM = "vm"
    GUEST = "guest"
    MODULE = "module"

    @property
    def cls(self) -> type:
        """The dataclass itself."""
        return {Record.HOST: HostState, Record.VM: VmState, Record.GUEST: GuestState,
                Record.MODULE: BalloonModule}[self]

    @property
    def path(self) -> str:
        """Where the record sits in :meth:`State.to_dict` (``*``: the VM number)."""
        return {Record.HOST: "host", Record.VM: "vms/*", Record.GUEST: "vms/*/guest",
                Record.MODULE: "vms/*/module"}[self]


class Owner(enum.Enum):
    """Who writes a field: an actor, or the channel between two of them."""

    HOST = "host"
    VMM = "VMM"
    GUEST = "guest OS"
    MODULE = "balloon module"
    GUEST_TO_VMM = "guest -> VMM"
    VMM_TO_GUEST = "VMM -> guest"


class Kind(enum.Enum):
    """The shape of a field's value."""

    SET = "set"
    """A frozenset of elements of the field's domain."""
    MAP = "map"
    """A tuple with one value for every element of the domain."""
    PARTIAL_MAP = "partial map"
    """A sorted tuple of ``(*index, value)`` entries, at most one per index."""
    QUEUE = "queue"
    """A sorted tuple of elements, duplicates kept (a multiset: the order is not modelled)."""
    ORDER = "order"
    """A tuple of distinct elements, in order."""
    COUNTER = "counter"
    """One integer."""


@dataclass(frozen=True)
class Bound:
    """One end of a domain: a :class:`Config` size plus an offset, or a constant.

    >>> Bound("guest_pages", 1).of(Config(guest_pages=4)), Bound("guest_pages", 1).text()
    (5, 'guest_pages+1')
    """

    size: str | None
    offset: int = 0

    def of(self, cfg: Config) -> int:
        """The bound's value in configuration ``cfg``."""
        return (int(getattr(cfg, self.size)) if self.size else 0) + self.offset

    def text(self) -> str:
        """The bound as written in the README."""
        if self.size is None:
            return str(self.offset)
        return self.size + (f"{self.offset:+d}" if self.offset else "")


@dataclass(frozen=True)
class Domain:
    """The integers ``low..high`` (both included), named in domain words."""

    name: str
    low: Bound
    high: Bound
    doc: str

    def range(self, cfg: Config) -> range:
        """Every value of the domain in ``cfg``."""
        return range(self.low.of(cfg), self.high.of(cfg) + 1)

    def size(self, cfg: Config) -> int:
        """How many values the domain has in ``cfg``."""
        return len(self.range(cfg))

    def text(self) -> str:
        """``low..high`` in the Config's words."""
        return f"{self.low.text()}..{self.high.text()}"


def _upto(size: str, name: str, doc: str, low: int = 0, extra: int = -1) -> Domain:
    return Domain(name, Bound(None, low), Bound(size, extra), doc)


MPN = _upto("machine_pages", "MPN", "a machine page of the host")
PPN = _upto("guest_pages", "PPN", "a guest-physical page")
REPORTED_PPN = _upto("guest_pages", "PPN",
                     "a PPN or one past the last (what a hostile guest may report)", extra=0)
VPN = _upto("guest_data_pages", "VPN", "a virtual page of the guest's processes")
VCPU = _upto("vcpus", "vCPU", "a virtual processor")
VM = _upto("vms", "VM", "a virtual machine")
TOKEN = _upto("tokens", "token", "page contents (0 = the zero page)", extra=0)
BACKING = _upto("machine_pages", "MPN or UNBACKED", "an MPN, or UNBACKED = -1", low=-1)
PPN_USE = _upto("guest_data_pages", "VPN, FREE or BALLOON",
                "a VPN, FREE = -1 or BALLOON = -2", low=-2)
BALLOON_SIZE = _upto("guest_pages", "pages", "a balloon size in pages", extra=0)
REPORTED_SIZE = _upto("guest_pages", "pages",
                      "a balloon size as reported (a hostile guest may claim one more)", extra=1)
ONLINE_VCPUS = _upto("vcpus", "vCPUs", "a number of online vCPUs", low=1, extra=0)
IDLE_PCPUS = _upto("pcpus", "pCPUs", "a number of physical processors", extra=0)
HINT_CMD_ID = Domain("command id", Bound(None, 0), Bound(None, 3),
                     "a free page hint command id: 0 STOP, 1 DONE, 2 or 3 a hint cycle's id")
FROZEN = Domain("frozen", Bound(None, 0), Bound(None, 1), "1 while the driver is frozen")
MIGRATING = Domain("migrating", Bound(None, 0), Bound(None, 1),
                   "1 while a balloon page migration is under way")


@dataclass(frozen=True)
class Field:
    """One field of the state, described once."""

    name: str
    """The dataclass field's name (the model's name)."""
    record: Record
    """The dataclass it belongs to."""
    owner: Owner
    """Who writes it."""
    kind: Kind
    """The shape of its value."""
    elements: tuple[Domain, ...]
    """What it holds (SET, QUEUE, ORDER) or is indexed by (MAP, PARTIAL_MAP); empty for a
    COUNTER."""
    values: Domain | None
    """The values of a MAP, PARTIAL_MAP or COUNTER; None for the others."""
    doc: str
    """What it stands for and what is abstracted away."""
    feature: str | None = None
    """The Config switch without which it is always empty (or 0): part of its domain."""
    observable: bool = False
    """Whether an implementation under test can usually report it (an adapter observation)."""
    key: str = ""
    """The name the encodings use (Z3 keys, NumPy arrays and flags): the field's name,
    qualified by its record where the VM's record has a field of the same name
    (``module.target``)."""

    @property
    def path(self) -> str:
        """The path of the field in :meth:`State.to_dict` (``*``: the VM number)."""
        return f"{self.record.path}/{self.name}"

    @property
    def per_vm(self) -> bool:
        """Whether the field exists once per VM (host fields indexed by VM count too)."""
        return self.record is not Record.HOST or (bool(self.elements) and self.elements[0] is VM)

    def read(self, s: State, vm: int) -> Any:
        """The field's value in ``s`` (of VM ``vm`` if it belongs to a VM)."""
        if self.record is Record.HOST:
            return getattr(s.host, self.name)
        v = s.vms[vm]
        if self.record is Record.VM:
            return getattr(v, self.name)
        return getattr(v.guest if self.record is Record.GUEST else v.module, self.name)

    def domain_text(self) -> str:
        """The domain as the README states it."""
        def dom(d: Domain) -> str:
            return f"{d.name} {d.text()}"
        idx = " x ".join(dom(d) for d in self.elements)
        if self.kind is Kind.COUNTER:
            assert self.values is not None
            return dom(self.values)
        if self.kind in (Kind.MAP, Kind.PARTIAL_MAP):
            assert self.values is not None
            return f"{idx} -> {dom(self.values)}"
        return idx


def _f(name: str, record: Record, owner: Owner, kind: Kind, elements: tuple[Domain, ...],
       values: Domain | None, doc: str, *, feature: str | None = None,
       observable: bool = False) -> Field:
    key = f"module.{name}" if record is Record.MODULE and name in ("target", "cpu_target") \
        else name
    return Field(name, record, owner, kind, elements, values, doc, feature, observable, key)


_H, _V, _G, _M = Record.HOST, Record.VM, Record.GUEST, Record.MODULE
_S, _MAP, _PM, _Q, _O, _C = (Kind.SET, Kind.MAP, Kind.PARTIAL_MAP, Kind.QUEUE, Kind.ORDER,
                             Kind.COUNTER)

SCHEMA: tuple[Field, ...] = (
    # -- host -------------------------------------------------------------------------
    _f("free", _H, Owner.HOST, _S, (MPN,), None,
       "MPNs in the host's free pool. Where in memory they lie (NUMA, host page tables) "
       "is abstracted away."),
    _f("in_use", _H, Owner.HOST, _S, (MPN,), None,
       "MPNs the host took for some use of its own, whole host pages only; what it uses "
       "them for is abstracted away."),
    _f("content", _H, Owner.HOST, _MAP, (MPN,), TOKEN,
       "Per MPN, the token it holds: page contents abstracted to a few tokens, 0 = the "
       "zero page."),
    _f("cow", _H, Owner.HOST, _S, (MPN,), None,
       "MPNs shared copy-on-write between guest pages (with `sharing`), hence read-only."),
    _f("reclaimed", _H, Owner.HOST, _S, (MPN,), None,
       "MPNs a balloon reclaim freed and the host has not taken since (bookkeeping for "
       "the properties)."),
    _f("swap", _H, Owner.HOST, _PM, (VM, PPN), TOKEN,
       "Host swap (with `host_swap`): the token of each guest page the host paged out "
       "itself, the labelled fallback; the host's storage is abstracted away."),
    _f("idle_pcpus", _H, Owner.HOST, _C, (), IDLE_PCPUS,
       "Physical processors given to no VM; scheduling is abstracted away.",
       feature="processors", observable=True),
    # -- VMM, per VM ------------------------------------------------------------------
    _f("p2m", _V, Owner.VMM, _MAP, (PPN,), BACKING,
       "The VMM's map PPN -> MPN, filled lazily on first touch."),
    _f("ballooned", _V, Owner.VMM, _S, (PPN,), None,
       "PPNs the VMM accepted into the balloon: unmapped, their MPN given back to the "
       "host.", observable=True),
    _f("target", _V, Owner.VMM, _C, (), BALLOON_SIZE,
       "The balloon size the host asked for: a quantity, never page numbers.",
       observable=True),
    _f("cpu_target", _V, Owner.VMM, _C, (), ONLINE_VCPUS,
       "The number of vCPUs the host wants the VM to keep online.", feature="processors"),
    _f("inflate_queue", _V, Owner.GUEST_TO_VMM, _Q, (REPORTED_PPN,), None,
       "PPNs the guest reported for inflation, not yet processed; the wire encoding and "
       "the arrival order are abstracted away.", observable=True),
    _f("deflate_queue", _V, Owner.GUEST_TO_VMM, _Q, (REPORTED_PPN,), None,
       "PPNs the guest reported for deflation, not yet processed.", observable=True),
    _f("acked_inflate", _V, Owner.VMM_TO_GUEST, _S, (PPN,), None,
       "Inflated PPNs the VMM acknowledged, not yet seen by the module."),
    _f("acked_refused", _V, Owner.VMM_TO_GUEST, _S, (REPORTED_PPN,), None,
       "Reported PPNs the VMM refused, not yet seen by the module."),
    _f("acked_deflate", _V, Owner.VMM_TO_GUEST, _S, (PPN,), None,
       "Deflated PPNs the VMM acknowledged, not yet seen by the module."),
    _f("parked_vcpus", _V, Owner.GUEST_TO_VMM, _S, (VCPU,), None,
       "vCPUs the guest took offline and reported, whose processor the VMM has not yet "
       "reclaimed.", feature="processors"),
    _f("report_queue", _V, Owner.GUEST_TO_VMM, _S, (PPN,), None,
       "Free pages the guest reported on the reporting queue (virtio F_REPORTING), not yet "
       "processed by the VMM; the report's wire format (page orders, scatterlists) is "
       "abstracted away.", feature="free_page_reporting", observable=True),
    _f("acked_report", _V, Owner.VMM_TO_GUEST, _S, (PPN,), None,
       "Reported free pages the VMM processed and returned, not yet seen by the module.",
       feature="free_page_reporting"),
    _f("discarded", _V, Owner.VMM, _S, (PPN,), None,
       "PPNs the VMM discarded after a free page report, not written by the guest since: "
       "they must read back as zero or `poison_val`.", feature="free_page_reporting",
       observable=True),
    _f("stats_free", _V, Owner.GUEST_TO_VMM, _C, (), BALLOON_SIZE,
       "The guest's free memory in pages as its last statistics report gave it (virtio "
       "F_STATS_VQ, VIRTIO_BALLOON_S_MEMFREE); the other statistics are abstracted away.",
       feature="stats_queue", observable=True),
    _f("hint_cmd_id", _V, Owner.VMM_TO_GUEST, _C, (), HINT_CMD_ID,
       "The free page hint command id the device shows the guest (virtio F_FREE_PAGE_HINT, "
       "free_page_hint_cmd_id): STOP, DONE, or the id of the hint cycle under way; QEMU "
       "counts ids up from 0x80000000, two alternating ids tell a cycle from the last.",
       feature="free_page_hint", observable=True),
    _f("hinted", _V, Owner.VMM, _S, (PPN,), None,
       "PPNs hinted free in the current hint cycle and not written since: the pages the "
       "migration may skip; the migration's rounds and dirty bitmap are abstracted away.",
       feature="free_page_hint", observable=True),
    _f("hint_rewritten", _V, Owner.VMM, _S, (PPN,), None,
       "PPNs hinted free in the current hint cycle and written by the guest since (the dirty "
       "log marked them again): the migration must send them.", feature="free_page_hint",
       observable=True),
    _f("stale_inflate", _V, Owner.GUEST_TO_VMM, _Q, (REPORTED_PPN,), None,
       "PPNs the guest's previous incarnation reported for inflation, still in flight when "
       "the guest reset (`reset_races_reports`): what the VMM must not apply to the new one.",
       feature="reset_races_reports"),
    _f("stale_deflate", _V, Owner.GUEST_TO_VMM, _Q, (REPORTED_PPN,), None,
       "PPNs the previous incarnation reported for deflation, still in flight when the guest "
       "reset (`reset_races_reports`).", feature="reset_races_reports"),
    # -- guest OS, per VM -------------------------------------------------------------
    _f("ppn_use", _G, Owner.GUEST, _MAP, (PPN,), PPN_USE,
       "The guest's own view of each PPN: free, given to the balloon, or holding a VPN. "
       "Kernel memory, file caches and fragmentation are abstracted away."),
    _f("lru", _G, Owner.GUEST, _O, (VPN,), None,
       "Resident VPNs, least recently used first (the guest's replacement order)."),
    _f("expected", _G, Owner.GUEST, _MAP, (VPN,), TOKEN,
       "Per VPN, the token its process last wrote: what it expects to read back."),
    _f("disk", _G, Owner.GUEST, _PM, (VPN,), TOKEN,
       "The guest's own virtual swap disk: the token of each VPN it paged out."),
    _f("vcpus", _G, Owner.GUEST, _S, (VCPU,), None,
       "vCPUs the guest has online (vCPU 0 is the boot processor).", feature="processors",
       observable=True),
    # -- balloon module, per VM -------------------------------------------------------
    _f("target", _M, Owner.MODULE, _C, (), BALLOON_SIZE,
       "The balloon size the module last read from the VMM; the polling timer is "
       "abstracted away.", observable=True),
    _f("balloon", _M, Owner.MODULE, _S, (PPN,), None,
       "PPNs whose inflate the VMM acknowledged, held pinned by the module.",
       observable=True),
    _f("refused", _M, Owner.MODULE, _S, (PPN,), None,
       "PPNs the VMM refused, held pinned until the module frees them.", observable=True),
    _f("actual", _M, Owner.MODULE, _C, (), REPORTED_SIZE,
       "The balloon size the module last reported to the VMM (virtio `actual`).",
       observable=True),
    _f("cpu_target", _M, Owner.MODULE, _C, (), ONLINE_VCPUS,
       "The number of online vCPUs the module last read from the VMM.",
       feature="processors"),
    _f("reporting", _M, Owner.MODULE, _S, (PPN,), None,
       "Free pages the module took off the guest's free list for a free page report, until "
       "it has seen the report returned.", feature="free_page_reporting"),
    _f("hinting_for", _M, Owner.MODULE, _C, (), HINT_CMD_ID,
       "The hint cycle's command id the module last read and tags its hints with (0: none).",
       feature="free_page_hint"),
    _f("frozen", _M, Owner.MODULE, _C, (), FROZEN,
       "1 while the driver is frozen for hibernation: the guest runs nothing; the "
       "hibernation image itself is abstracted away (the guest's state is kept as it is).",
       feature="hibernation", observable=True),
    _f("migrating", _M, Owner.MODULE, _C, (), MIGRATING,
       "1 from a balloon page migration's report of the new page until the old page's "
       "release: the module holds its balloon lock, so it neither inflates nor deflates, "
       "and takes the new page's acknowledgement only after the release; the isolation of "
       "the old page and compaction's choice of it are abstracted away.",
       feature="migration"),
)
"""Every field of the state, host first, then the VMM's, the guest's and the module's
records of one VM, each in its dataclass's order."""

_BY_KEY = {f.key: f for f in SCHEMA}
_NAMES = {r: [(f.name, f.key) for f in SCHEMA if f.record is r] for r in Record}


def field(key: str) -> Field:
    """The field the encodings call ``key`` (see :attr:`Field.key`)."""
    return _BY_KEY[key]


def assemble(host: Mapping[str, Any], vms: Iterable[Mapping[str, Any]]) -> State:
    """A :class:`State` from field values given by key: one mapping for the host's fields,
    one per VM for the others.

    >>> from ballast.model.state import initial_state
    >>> s = initial_state(Config(vms=1, guest_pages=1, machine_pages=1))
    >>> assemble({f.key: f.read(s, 0) for f in SCHEMA if f.record is Record.HOST},
    ...          [{f.key: f.read(s, 0) for f in SCHEMA if f.record is not Record.HOST}]) == s
    True
    """
    def build(record: Record, values: Mapping[str, Any], **parts: Any) -> Any:
        return record.cls(**{name: values[key] for name, key in _NAMES[record]}, **parts)

    return State(build(Record.HOST, host),
                 tuple(build(Record.VM, v, guest=build(Record.GUEST, v),
                             module=build(Record.MODULE, v)) for v in vms))


def _plain(f: Field, value: Any) -> Any:
    """A field's value in JSON-able form: sets sorted, tuples as lists."""
    if f.kind is Kind.SET:
        return sorted(value)
    if f.kind is Kind.PARTIAL_MAP:
        return [list(entry) for entry in value]
    if f.kind is Kind.COUNTER:
        return value
    return list(value)


def _value(f: Field, raw: Any) -> Any:
    """The inverse of :func:`_plain`: a field's value from its JSON-able form."""
    if f.kind is Kind.SET:
        return frozenset(raw)
    if f.kind is Kind.PARTIAL_MAP:
        return tuple(tuple(entry) for entry in raw)
    if f.kind is Kind.COUNTER:
        return raw
    return tuple(raw)


_FIELDS = {r: [f for f in SCHEMA if f.record is r] for r in Record}


_VM_ORDER = tuple(f.name for f in dataclasses.fields(VmState))
"""A VM record's fields in their own order (its guest and module records among them)."""


def state_to_dict(s: State) -> dict[str, Any]:
    """The plain JSON-able form of a state (:meth:`State.to_dict`), field by field of
    :data:`SCHEMA`: ``{"host": {...}, "vms": [{..., "guest": {...}, "module": {...}}]}``.

    >>> from ballast.model.state import initial_state
    >>> d = state_to_dict(initial_state(Config(vms=1, guest_pages=1, machine_pages=1)))
    >>> d["host"]["free"], d["vms"][0]["p2m"], d["vms"][0]["module"]["balloon"]
    ([0], [-1], [])
    """
    def part(record: Record, obj: Any) -> dict[str, Any]:
        return {f.name: _plain(f, getattr(obj, f.name)) for f in _FIELDS[record]}

    def vm_part(vm: Any) -> dict[str, Any]:
        # In the record's own field order (the guest and module records sit among the
        # VM's fields), so that the form is the record's plain value key for key.
        own = part(Record.VM, vm)
        nested = {"guest": part(Record.GUEST, vm.guest), "module": part(Record.MODULE, vm.module)}
        return {name: nested[name] if name in nested else own[name]
                for name in _VM_ORDER if name in nested or name in own}

    return {"host": part(Record.HOST, s.host), "vms": [vm_part(vm) for vm in s.vms]}


def state_from_dict(data: Mapping[str, Any]) -> State:
    """The state of a :func:`state_to_dict` form (a missing field raises ``KeyError``).

    >>> from ballast.model.state import initial_state
    >>> s = initial_state(Config(vms=2, guest_pages=2, machine_pages=4))
    >>> state_from_dict(state_to_dict(s)) == s
    True
    """
    def values(record: Record, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {f.key: _value(f, raw[f.name]) for f in _FIELDS[record]}

    return assemble(values(Record.HOST, data["host"]),
                    [{**values(Record.VM, vm), **values(Record.GUEST, vm["guest"]),
                      **values(Record.MODULE, vm["module"])} for vm in data["vms"]])


def render_state_table() -> str:
    """The README's table of the state's fields, generated from :data:`SCHEMA`.

    >>> render_state_table().splitlines()[0]
    '| field | owner | kind | domain | meaning |'
    """
    rows = ["| field | owner | kind | domain | meaning |", "|---|---|---|---|---|"]
    for f in SCHEMA:
        meaning = f.doc + (f" Only with `{f.feature}`." if f.feature else "")
        rows.append(f"| `{f.path}` | {f.owner.value} | {f.kind.value} | {f.domain_text()} "
                    f"| {meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m ballast.model.schema prints the README's table
    sys.stdout.write(render_state_table())
