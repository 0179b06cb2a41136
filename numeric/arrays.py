# mypy: disable-error-code="no-any-return"
"""The whole modelled system held in flat NumPy arrays, and its exact conversion to a model
``State``.

The layout is derived from the state schema (:mod:`ballast.model.schema`), field by
field (:data:`LAYOUT`), and named after the model's fields (:func:`attribute`). Per
guest page (VM x PPN): the VMM's map ``p2m`` (MPN, ``UNBACKED_MPN`` when none),
the guest's ``ppn_use`` (``FREE``, ``BALLOON`` or a VPN) and the page flags, one
bit for each per-VM set or queue of PPNs (``BALLOONED_BIT``, ``INFLATE_QUEUE_BIT``,
..., :data:`PAGE_FLAGS`; one byte where the configuration's features use no more
than eight: :func:`page_flag_dtype`). Per VPN: the token the
guest's process expects, the guest disk slot, the PPN holding it (``vppn``) and an
LRU stamp (``lru_stamp``). Per MPN: its token and the host's sets as flags
(``FREE_BIT``, ``IN_USE_BIT``, ``COW_BIT``, ``RECLAIMED_BIT``). Per VM: targets,
counters and vCPU bit masks. Rare, irregular parts (host swap entries, queue entries
out of range or reported twice, MPNs with several mappers) live in small
dictionaries.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=2, guest_pages=4, machine_pages=6)
>>> arr = SystemArrays.from_state(cfg, initial_state(cfg))
>>> arr.to_state() == initial_state(cfg)
True
>>> int(arr.p2m.dtype.itemsize)
4
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.model.schema import (
    BACKING,
    MPN,
    PPN,
    REPORTED_PPN,
    SCHEMA,
    VCPU,
    Field,
    Kind,
    Record,
    assemble,
)
from ballast.model.state import FREE, UNBACKED, HostState, State, VmState, initial_state

__all__ = [
    "ACKED_DEFLATE_BIT", "ACKED_INFLATE_BIT", "ACKED_REFUSED_BIT", "BALLOONED_BIT",
    "BALLOON_BIT", "DEFLATE_QUEUE_BIT", "INFLATE_QUEUE_BIT", "REFUSED_BIT",
    "COW_BIT", "FREE_BIT", "IN_USE_BIT", "RECLAIMED_BIT",
    "REPORT_QUEUE_BIT", "ACKED_REPORT_BIT", "DISCARDED_BIT", "REPORTING_BIT",
    "HINTED_BIT", "HINT_REWRITTEN_BIT",
    "ARRAYS", "HOST_ARRAYS", "LAYOUT", "MPN_FLAGS", "PAGE_FLAGS", "PAGE_FLAG_DTYPE",
    "UNBACKED_MPN", "Layout", "SystemArrays", "attribute", "has_extra", "name_extra",
    "page_flag_dtype", "small_int_dtype",
]

UNBACKED_MPN = np.uint32(0xFFFFFFFF)
"""The p2m value of a PPN with no machine page (MPNs are below 2**32 - 1)."""


class Layout(enum.Enum):
    """How the arrays hold one field of the state (derived from its kind and domain)."""

    PAGE_FLAG = "one bit of the page flags per (VM, PPN); the rest in an ``_extra`` dictionary"
    MPN_FLAG = "one bit of the MPN flags per MPN"
    BITMASK = "one integer bit mask per VM"
    COUNTER = "one integer per VM (an int for the host)"
    ARRAY = "one array element per index (per VM: one row)"
    SLOTS = "one element per index, 0 = no entry, else the value + 1"
    STAMPS = "an LRU stamp per element, 0 = absent (the ``_stamp`` array)"
    DICT = "a dictionary index -> value (rare entries)"


def _layout(f: Field) -> Layout:
    if f.kind in (Kind.SET, Kind.QUEUE) and f.per_vm and f.elements in ((PPN,), (REPORTED_PPN,)):
        return Layout.PAGE_FLAG
    if f.kind is Kind.SET and f.elements == (MPN,):
        return Layout.MPN_FLAG
    if f.kind is Kind.SET and f.elements == (VCPU,):
        return Layout.BITMASK
    if f.kind is Kind.COUNTER:
        return Layout.COUNTER
    if f.kind is Kind.MAP:
        return Layout.ARRAY
    if f.kind is Kind.ORDER:
        return Layout.STAMPS
    if f.kind is Kind.PARTIAL_MAP and f.record is Record.HOST:
        return Layout.DICT
    if f.kind is Kind.PARTIAL_MAP:
        return Layout.SLOTS
    raise AssertionError(f"no NumPy layout for {f.path}")  # pragma: no cover - schema is fixed


LAYOUT: dict[str, Layout] = {f.key: _layout(f) for f in SCHEMA}
"""Every field of the schema, by key, with how the arrays hold it."""


def attribute(f: Field) -> str:
    """The :class:`SystemArrays` attribute holding field ``f`` (flags: the shared flag array)."""
    layout = LAYOUT[f.key]
    if layout is Layout.PAGE_FLAG:
        return "page_flags"
    if layout is Layout.MPN_FLAG:
        return "mpn_flags"
    name = f.key.replace(".", "_")
    return name + "_stamp" if layout is Layout.STAMPS else name


def _flag_dtype(n: int) -> np.dtype[Any]:
    return np.dtype(next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                         if np.dtype(t).itemsize * 8 >= n))


# The fields of every configuration take the low bits, each feature's come after them (both
# in schema order), so that a configuration without those features fits its flags in a byte.
_PAGE_FLAG_FIELDS = sorted((f for f in SCHEMA if LAYOUT[f.key] is Layout.PAGE_FLAG),
                           key=lambda f: f.feature is not None)
_MPN_FLAG_FIELDS = [f for f in SCHEMA if LAYOUT[f.key] is Layout.MPN_FLAG]
PAGE_FLAG_DTYPE = _flag_dtype(len(_PAGE_FLAG_FIELDS))
"""The widest type the page flags take: as many bits as there are page-flag fields.
A configuration's arrays use :func:`page_flag_dtype`, often narrower."""
_MPN_FLAG_DTYPE = _flag_dtype(len(_MPN_FLAG_FIELDS))
PAGE_FLAGS: dict[str, Any] = {f.key: PAGE_FLAG_DTYPE.type(1 << i)
                              for i, f in enumerate(_PAGE_FLAG_FIELDS)}
"""The bit of each page-flag field: the fields of every configuration first, then those of
a feature, each in schema order."""
MPN_FLAGS: dict[str, Any] = {f.key: _MPN_FLAG_DTYPE.type(1 << i)
                             for i, f in enumerate(_MPN_FLAG_FIELDS)}
"""The bit of each MPN-flag field (the host's sets of MPNs), in schema order."""



def page_flag_dtype(cfg: Config) -> np.dtype[Any]:
    """The page flags' type under ``cfg``: enough bits for every flag of the features it
    switches on. Flags are numbered in schema order, the fields of every configuration
    first, so a configuration without the later features (free page reporting and
    hinting, reports racing a reset) keeps its flags in one byte: every pass over the
    flags then moves half the bytes.

    >>> page_flag_dtype(Config()).name, page_flag_dtype(Config(free_page_hint=True)).name
    ('uint8', 'uint16')
    """
    last = max(i for i, f in enumerate(_PAGE_FLAG_FIELDS)
               if f.feature is None or getattr(cfg, f.feature))
    return _flag_dtype(last + 1)


# The flag bits under the model's names (the engine's vocabulary).
BALLOONED_BIT = PAGE_FLAGS["ballooned"]
INFLATE_QUEUE_BIT = PAGE_FLAGS["inflate_queue"]
DEFLATE_QUEUE_BIT = PAGE_FLAGS["deflate_queue"]
ACKED_INFLATE_BIT = PAGE_FLAGS["acked_inflate"]
ACKED_REFUSED_BIT = PAGE_FLAGS["acked_refused"]
ACKED_DEFLATE_BIT = PAGE_FLAGS["acked_deflate"]
BALLOON_BIT = PAGE_FLAGS["balloon"]
REFUSED_BIT = PAGE_FLAGS["refused"]
FREE_BIT = MPN_FLAGS["free"]
IN_USE_BIT = MPN_FLAGS["in_use"]
COW_BIT = MPN_FLAGS["cow"]
RECLAIMED_BIT = MPN_FLAGS["reclaimed"]
# Free page reporting's flags (read and written by the kernels of model/reporting_kernels.py).
REPORT_QUEUE_BIT = PAGE_FLAGS["report_queue"]
ACKED_REPORT_BIT = PAGE_FLAGS["acked_report"]
DISCARDED_BIT = PAGE_FLAGS["discarded"]
REPORTING_BIT = PAGE_FLAGS["reporting"]
# Free page hinting's flags (no engine method reads or writes them yet: a known gap).
HINTED_BIT = PAGE_FLAGS["hinted"]
HINT_REWRITTEN_BIT = PAGE_FLAGS["hint_rewritten"]
# Reports in flight across a guest reset (no engine method reads or writes them yet).
STALE_INFLATE_BIT = PAGE_FLAGS["stale_inflate"]
STALE_DEFLATE_BIT = PAGE_FLAGS["stale_deflate"]

def has_extra(f: Field) -> bool:
    """Whether a page-flag field may hold what one bit per PPN cannot: a queue (an entry
    reported twice) or a set of reported PPNs (one past the last)."""
    return f.kind is Kind.QUEUE or f.elements == (REPORTED_PPN,)


def name_extra(f: Field) -> str:
    """The dictionary holding a page-flag field's entries that its bit cannot: PPNs out of
    range, and a queue's repeated entries."""
    return f.key.replace(".", "_") + "_extra"


_EXTRA = {f.key: name_extra(f) for f in SCHEMA
          if LAYOUT[f.key] is Layout.PAGE_FLAG and has_extra(f)}

ARRAYS: tuple[str, ...] = tuple(dict.fromkeys(
    [attribute(f) for f in SCHEMA if LAYOUT[f.key] not in (Layout.DICT,)
     and not (f.record is Record.HOST and LAYOUT[f.key] is Layout.COUNTER)] + ["vppn"]))
"""The attributes of :class:`SystemArrays` that are NumPy arrays: one per field (the flag
fields share theirs), and the derived index ``vppn`` (VPN -> PPN)."""

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Arr = npt.NDArray[Any]


def small_int_dtype(largest: int) -> np.dtype[Any]:
    """The smallest signed integer type holding -2 .. ``largest``.

    >>> small_int_dtype(100), small_int_dtype(40000)
    (dtype('int16'), dtype('int32'))
    """
    return np.dtype(np.int16) if largest < 2**15 - 1 else np.dtype(np.int32)


def _token_dtype(cfg: Config) -> np.dtype[Any]:
    # Disk slots store token + 1 (0 = empty), hence the margin.
    return np.dtype(np.uint8) if cfg.tokens < 254 else np.dtype(np.uint32)


@dataclass
class SystemArrays:
    """Every part of a model ``State`` as arrays (see the module docstring).

    The attributes are those :func:`attribute` derives from the state schema (a test
    checks it), plus the derived ``vppn``, ``clock`` and ``refs``.
    """

    cfg: Config
    p2m: Arr
    ppn_use: Arr
    page_flags: Arr
    expected: Arr
    disk: Arr
    lru_stamp: Arr
    vppn: Arr
    content: Arr
    mpn_flags: Arr
    target: I64
    cpu_target: I64
    module_target: I64
    module_cpu_target: I64
    actual: I64
    vcpus: I64
    parked_vcpus: I64
    stats_free: I64
    hint_cmd_id: I64
    hinting_for: I64
    frozen: I64
    migrating: I64
    idle_pcpus: int = 0
    clock: int = 0
    swap: dict[tuple[int, int], int] = field(default_factory=dict)
    refs: dict[int, int] = field(default_factory=dict)
    inflate_queue_extra: dict[int, list[int]] = field(default_factory=dict)
    deflate_queue_extra: dict[int, list[int]] = field(default_factory=dict)
    acked_refused_extra: dict[int, set[int]] = field(default_factory=dict)
    stale_inflate_extra: dict[int, list[int]] = field(default_factory=dict)
    stale_deflate_extra: dict[int, list[int]] = field(default_factory=dict)

    # -- construction -------------------------------------------------------
    @classmethod
    def initial(cls, cfg: Config) -> "SystemArrays":
        """The model's initial state, built directly (no Python objects per page)."""
        V, P, D, M = cfg.vms, cfg.guest_pages, cfg.guest_data_pages, cfg.machine_pages
        tok = _token_dtype(cfg)
        vcpus = (1 << cfg.vcpus) - 1 if cfg.processors else 0
        return cls(
            cfg=cfg,
            p2m=np.full((V, P), UNBACKED_MPN, dtype=np.uint32),
            ppn_use=np.full((V, P), FREE, dtype=small_int_dtype(max(D, 1))),
            page_flags=np.zeros((V, P), dtype=page_flag_dtype(cfg)),
            expected=np.zeros((V, D), dtype=tok),
            disk=np.zeros((V, D), dtype=tok),
            lru_stamp=np.zeros((V, D), dtype=np.uint32),
            vppn=np.full((V, D), -1, dtype=small_int_dtype(P)),
            content=np.zeros(M, dtype=tok),
            mpn_flags=np.full(M, FREE_BIT, dtype=_MPN_FLAG_DTYPE),
            target=np.zeros(V, dtype=np.int64),
            cpu_target=np.full(V, cfg.vcpus if cfg.processors else 0, dtype=np.int64),
            module_target=np.zeros(V, dtype=np.int64),
            module_cpu_target=np.full(V, cfg.vcpus if cfg.processors else 0, dtype=np.int64),
            actual=np.zeros(V, dtype=np.int64),
            vcpus=np.full(V, vcpus, dtype=np.int64),
            parked_vcpus=np.zeros(V, dtype=np.int64),
            stats_free=np.zeros(V, dtype=np.int64),
            hint_cmd_id=np.zeros(V, dtype=np.int64),
            hinting_for=np.zeros(V, dtype=np.int64),
            frozen=np.zeros(V, dtype=np.int64),
            migrating=np.zeros(V, dtype=np.int64),
            idle_pcpus=cfg.pcpus - cfg.vms * cfg.vcpus if cfg.processors else 0,
        )

    @classmethod
    def from_state(cls, cfg: Config, s: State) -> "SystemArrays":
        """Arrays holding exactly the model state ``s`` (field by field, as the schema says)."""
        a = cls.initial(cfg)
        a.mpn_flags[:] = 0
        for write in _HOST_WRITERS:
            write(a, s.host)
        for v, vm in enumerate(s.vms):
            flags = [0] * cfg.guest_pages
            for write_vm in _VM_WRITERS:
                write_vm(a, v, vm, flags)
            a.page_flags[v] = flags
            for ppn, u in enumerate(vm.guest.ppn_use):
                if u >= 0:
                    a.vppn[v, u] = ppn
        a.rebuild_refs()
        return a

    def rebuild_refs(self) -> None:
        """Recount the MPNs that back more than one guest page (from ``p2m``)."""
        flat = self.p2m.ravel()
        backed = flat[flat != UNBACKED_MPN]
        uniq, counts = np.unique(backed, return_counts=True)
        self.refs = {int(m): int(c) for m, c in zip(uniq[counts > 1], counts[counts > 1])}

    # -- conversion back ------------------------------------------------------
    def to_state(self) -> State:
        """The model ``State`` these arrays hold (exact inverse of :meth:`from_state`)."""
        host = {key: read(self) for key, read in _HOST_READERS}
        vms = []
        for v in range(self.cfg.vms):
            # One list per VM: the flag readers below test a handful of small ints, which
            # is far cheaper in Python than one NumPy call per field.
            row = self.page_flags[v].tolist()
            vms.append({key: read_vm(self, v, row) for key, read_vm in _VM_READERS})
        return assemble(host, vms)

    # -- sizes ---------------------------------------------------------------
    def nbytes(self) -> int:
        """Bytes held by the arrays (the dictionaries hold only rare entries)."""
        return sum(int(getattr(self, name).nbytes) for name in ARRAYS)

    def copy(self) -> "SystemArrays":
        """An independent copy (arrays and dictionaries)."""
        out = self.copy_dicts()
        for name in ARRAYS:
            setattr(out, name, getattr(self, name).copy())
        return out

    def snapshot(self, vms: Any, into: "SystemArrays | None" = None,
                 only: frozenset[str] | None = None) -> "SystemArrays":
        """A copy exact for VMs ``vms`` and for the host; the other VMs' rows are left
        undefined. What a step form reads of the pre-state of the VMs a batch acts on, at
        the cost of their rows rather than of the whole system: ``into``, an earlier
        snapshot of these arrays, lends its arrays (no allocation); ``only`` names the
        arrays to copy (the others are shared with these arrays, not to be read)."""
        out = self.copy_dicts()
        rows = np.asarray(vms, dtype=np.int64)
        for name in ARRAYS:
            if only is not None and name not in only:
                continue
            now = getattr(self, name)
            lent = getattr(into, name) if into is not None else None
            # An array the earlier snapshot did not copy is these arrays' own: never lent.
            part = lent if lent is not None and lent is not now else np.empty_like(now)
            if name in HOST_ARRAYS:
                np.copyto(part, now)
            else:
                part[rows] = now[rows]
            setattr(out, name, part)
        return out

    def copy_dicts(self) -> "SystemArrays":
        """A copy sharing the arrays, with dictionaries of its own."""
        out = object.__new__(SystemArrays)
        out.__dict__.update(self.__dict__)
        out.swap = dict(self.swap)
        out.refs = dict(self.refs)
        out.inflate_queue_extra = {k: list(v) for k, v in self.inflate_queue_extra.items()}
        out.deflate_queue_extra = {k: list(v) for k, v in self.deflate_queue_extra.items()}
        out.acked_refused_extra = {k: set(v) for k, v in self.acked_refused_extra.items()}
        out.stale_inflate_extra = {k: list(v) for k, v in self.stale_inflate_extra.items()}
        out.stale_deflate_extra = {k: list(v) for k, v in self.stale_deflate_extra.items()}
        return out

    def vm_record(self, v: int) -> dict[str, Any]:
        """Every field of VM ``v``'s own records (the VMM's, the guest's, the module's; not
        the host's), by key, as the model holds them."""
        row = self.page_flags[v].tolist()
        return {key: read_vm(self, v, row) for key, read_vm in _VM_READERS}


# -- conversions, one writer and one reader per field of the schema ----------------------
HostWriter = Callable[[SystemArrays, HostState], None]
VmWriter = Callable[[SystemArrays, int, VmState, list[int]], None]
HostReader = Callable[[SystemArrays], Any]
VmReader = Callable[[SystemArrays, int, list[int]], Any]


def _vm_getter(f: Field) -> Callable[[VmState], Any]:
    return operator.attrgetter(f.name if f.record is Record.VM else f"{f.record.value}.{f.name}")


def _vm_writer(f: Field) -> VmWriter:
    """How :meth:`SystemArrays.from_state` writes a VM's field ``f``."""
    layout, name, get = LAYOUT[f.key], attribute(f), _vm_getter(f)
    if layout is Layout.PAGE_FLAG:
        bit, extra, queue = int(PAGE_FLAGS[f.key]), _EXTRA.get(f.key), f.kind is Kind.QUEUE

        def page_flags(a: SystemArrays, v: int, vm: VmState, flags: list[int]) -> None:
            for p in get(vm):
                if extra is None or (0 <= p < len(flags) and not (queue and flags[p] & bit)):
                    flags[p] |= bit
                elif queue:
                    getattr(a, extra).setdefault(v, []).append(p)
                else:
                    getattr(a, extra).setdefault(v, set()).add(p)
        return page_flags
    if layout is Layout.STAMPS:
        def stamps(a: SystemArrays, v: int, vm: VmState, flags: list[int]) -> None:
            order, arr = get(vm), getattr(a, name)
            for i, x in enumerate(order):
                arr[v, x] = a.clock + i + 1
            a.clock += len(order)
        return stamps
    if layout is Layout.BITMASK:
        def bitmask(a: SystemArrays, v: int, vm: VmState, flags: list[int]) -> None:
            getattr(a, name)[v] = sum(1 << c for c in get(vm))
        return bitmask
    if layout is Layout.SLOTS:
        def slots(a: SystemArrays, v: int, vm: VmState, flags: list[int]) -> None:
            arr = getattr(a, name)
            for i, x in get(vm):
                arr[v, i] = x + 1
        return slots
    if layout is Layout.ARRAY and f.values is BACKING:
        def backing(a: SystemArrays, v: int, vm: VmState, flags: list[int]) -> None:
            getattr(a, name)[v] = [UNBACKED_MPN if m == UNBACKED else m for m in get(vm)]
        return backing
    assert layout in (Layout.ARRAY, Layout.COUNTER), f.path

    def plain(a: SystemArrays, v: int, vm: VmState, flags: list[int]) -> None:
        getattr(a, name)[v] = get(vm)
    return plain


def _host_writer(f: Field) -> HostWriter:
    """How :meth:`SystemArrays.from_state` writes a host field ``f``."""
    layout, name, get = LAYOUT[f.key], attribute(f), operator.attrgetter(f.name)
    if layout is Layout.MPN_FLAG:
        bit = MPN_FLAGS[f.key]

        def mpn_flags(a: SystemArrays, h: HostState) -> None:
            mpns = get(h)
            if mpns:
                a.mpn_flags[np.fromiter(mpns, dtype=np.int64, count=len(mpns))] |= bit
        return mpn_flags
    if layout is Layout.ARRAY:
        def array(a: SystemArrays, h: HostState) -> None:
            getattr(a, name)[:] = np.asarray(get(h), dtype=np.int64)
        return array
    if layout is Layout.DICT:
        def entries(a: SystemArrays, h: HostState) -> None:
            setattr(a, name, {tuple(e[:-1]): e[-1] for e in get(h)})
        return entries
    assert layout is Layout.COUNTER, f.path

    def counter(a: SystemArrays, h: HostState) -> None:
        setattr(a, name, get(h))
    return counter


def _vm_reader(f: Field) -> VmReader:
    """How :meth:`SystemArrays.to_state` reads a VM's field ``f`` (``row``: its page flags,
    as a list)."""
    layout, name = LAYOUT[f.key], attribute(f)
    if layout is Layout.PAGE_FLAG:
        bit, extra, queue = PAGE_FLAGS[f.key], _EXTRA.get(f.key), f.kind is Kind.QUEUE

        def page_flags(a: SystemArrays, v: int, row: list[int]) -> Any:
            pages = [ppn for ppn, flags in enumerate(row) if flags & bit]
            more = getattr(a, extra).get(v, ()) if extra else ()
            if queue:
                return tuple(sorted(pages + list(more))) if more else tuple(pages)
            return frozenset(pages).union(more)
        return page_flags
    if layout is Layout.STAMPS:
        def stamps(a: SystemArrays, v: int, row: list[int]) -> Any:
            st = getattr(a, name)[v]
            present = np.flatnonzero(st)
            return tuple(present[np.argsort(st[present], kind="stable")].tolist())
        return stamps
    if layout is Layout.BITMASK:
        def bitmask(a: SystemArrays, v: int, row: list[int]) -> Any:
            return _bits(int(getattr(a, name)[v]))
        return bitmask
    if layout is Layout.SLOTS:
        def slots(a: SystemArrays, v: int, row: list[int]) -> Any:
            r = getattr(a, name)[v]
            return tuple((i, int(r[i]) - 1) for i in np.flatnonzero(r).tolist())
        return slots
    if layout is Layout.ARRAY and f.values is BACKING:
        def backing(a: SystemArrays, v: int, row: list[int]) -> Any:
            return tuple(UNBACKED if m == UNBACKED_MPN else m for m in getattr(a, name)[v].tolist())
        return backing
    if layout is Layout.ARRAY:
        def array(a: SystemArrays, v: int, row: list[int]) -> Any:
            return tuple(getattr(a, name)[v].tolist())
        return array
    assert layout is Layout.COUNTER, f.path

    def counter(a: SystemArrays, v: int, row: list[int]) -> Any:
        return int(getattr(a, name)[v])
    return counter


def _host_reader(f: Field) -> HostReader:
    """How :meth:`SystemArrays.to_state` reads a host field ``f``."""
    layout, name = LAYOUT[f.key], attribute(f)
    if layout is Layout.MPN_FLAG:
        bit = MPN_FLAGS[f.key]
        return lambda a: frozenset(np.flatnonzero(a.mpn_flags & bit).tolist())
    if layout is Layout.ARRAY:
        return lambda a: tuple(getattr(a, name).tolist())
    if layout is Layout.DICT:
        return lambda a: tuple(sorted((*k, t) for k, t in getattr(a, name).items()))
    assert layout is Layout.COUNTER, f.path
    return lambda a: int(getattr(a, name))


_HOST_WRITERS = [_host_writer(f) for f in SCHEMA if f.record is Record.HOST]
_VM_WRITERS = [_vm_writer(f) for f in SCHEMA if f.record is not Record.HOST]
_HOST_READERS = [(f.key, _host_reader(f)) for f in SCHEMA if f.record is Record.HOST]
HOST_ARRAYS = frozenset(attribute(f) for f in SCHEMA if f.record is Record.HOST
                        and not f.per_vm) & frozenset(ARRAYS)
"""The arrays of :data:`ARRAYS` that are the host's (one entry per MPN), not a VM's."""
_VM_READERS = [(f.key, _vm_reader(f)) for f in SCHEMA if f.record is not Record.HOST]


def _bits(mask: int) -> frozenset[int]:
    return frozenset(i for i in range(mask.bit_length()) if mask >> i & 1)


def _check_initial(cfg: Config) -> bool:
    """True if :meth:`SystemArrays.initial` equals the model's initial state."""
    return SystemArrays.initial(cfg).to_state() == initial_state(cfg)
