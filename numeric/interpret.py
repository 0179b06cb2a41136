# mypy: disable-error-code="no-any-return"
"""The NumPy interpreter of the action kernels (:mod:`ballast.model.action_kernels`).

A kernel runs once for a whole batch: every value is an array with one row per
operation (page vectors shaped ``(batch, pages)``, VM values ``(batch,)``), and
the guard is a mask of the rows allowed to take effect; effects change only
those rows. The interpreter knows nothing of where the rows come from: it reads
and writes through a :class:`Rows` store. :class:`VmRows` is the store of the
numeric engine, whose rows are distinct VMs of one system (its shared host
resources are handed out in row order); a store whose rows are VMs of different
states (a frontier of an explorer) needs only its own :class:`Rows`.

The model's field names meet :class:`~ballast.numeric.arrays.SystemArrays` in one
place, :data:`FLAGS`, :data:`EXTRAS` and :data:`VM_ARRAYS`.

>>> import numpy as np
>>> from ballast.model.action_kernels import KERNELS
>>> from ballast.model.config import Config
>>> from ballast.numeric.arrays import SystemArrays
>>> cfg = Config(vms=2, guest_pages=2, machine_pages=4)
>>> arr = SystemArrays.initial(cfg)
>>> run_kernel(KERNELS["host_set_target"], VmRows(arr, np.array([0, 1])),
...            {"pages": np.array([1, 1])}).tolist()
[True, True]
>>> arr.target.tolist()
[1, 1]
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.model.ops import Kernel, Value
from ballast.model.property_kernels import StateCheck
from ballast.numeric.arrays import (
    ACKED_DEFLATE_BIT, ACKED_INFLATE_BIT, ACKED_REFUSED_BIT, BALLOON_BIT, BALLOONED_BIT,
    COW_BIT, DEFLATE_QUEUE_BIT, FREE_BIT, IN_USE_BIT, INFLATE_QUEUE_BIT, REFUSED_BIT,
    UNBACKED_MPN, SystemArrays,
)

__all__ = ["EXTRAS", "FLAGS", "MPN_BITS", "NumpyOps", "NumpyStateOps", "Rows", "VM_ARRAYS",
           "VmRows", "property_holds", "run_kernel"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

FLAGS: dict[str, np.uint8] = {
    "ballooned": BALLOONED_BIT, "acked_inflate": ACKED_INFLATE_BIT,
    "acked_refused": ACKED_REFUSED_BIT, "acked_deflate": ACKED_DEFLATE_BIT,
    "module.balloon": BALLOON_BIT, "module.refused": REFUSED_BIT,
    "inflate_queue": INFLATE_QUEUE_BIT, "deflate_queue": DEFLATE_QUEUE_BIT,
}
"""The model's per-PPN sets and queues -> their bit of :attr:`SystemArrays.page_flags`."""

EXTRAS: dict[str, str] = {"inflate_queue": "inflate_queue_extra",
                          "deflate_queue": "deflate_queue_extra",
                          "acked_refused": "acked_refused_extra"}
"""Fields whose rare entries (duplicates, PPNs out of range) live in a dictionary."""

VM_ARRAYS: dict[str, str] = {
    "target": "target", "cpu_target": "cpu_target", "module.target": "module_target",
    "module.cpu_target": "module_cpu_target", "module.actual": "actual",
    "guest.vcpus": "vcpus", "parked_vcpus": "parked_vcpus",
}
"""The model's per-VM numbers (and vCPU sets, held as bit masks) -> their array."""


class Rows(Protocol):
    """Where a batch's rows live: reads give one row per operation, writes take the
    mask of rows whose guard held."""

    cfg: Config
    n: int

    def read(self, field: str) -> Any:
        """A field of every row: ``(n,)`` numbers, ``(n, pages)``, ``(n, vcpus)``, ``(n, vpns)``."""

    def write(self, field: str, value: Any, ok: Mask) -> None:
        """Set a field in the rows of ``ok``."""

    def queue_len(self, field: str) -> Ints:
        """Entries on each row's queue, duplicates and PPNs out of range included."""

    def beyond(self, field: str) -> Mask:
        """Whether each row's queue or set names a PPN out of range."""

    def beyond_values(self, field: str) -> list[set[int]]:
        """Each row's entries out of range (and duplicates) of a queue or set."""

    def queue_add(self, field: str, mask: Mask, ok: Mask) -> None:
        """Report the PPNs of ``mask`` once more (rows of ``ok``)."""

    def queue_clear(self, field: str, ok: Mask) -> None:
        """Empty the queue of the rows of ``ok``."""

    def carry_beyond(self, dst: str, src: str, ok: Mask) -> None:
        """Set ``dst`` gains queue ``src``'s PPNs out of range (rows of ``ok``)."""

    def clear_beyond(self, field: str, ok: Mask) -> None:
        """Set ``field`` loses its PPNs out of range (rows of ``ok``)."""

    def host(self, field: str) -> Ints:
        """A host counter as each row sees it."""

    def claim(self, field: str, need: Ints, ok: Mask) -> Mask:
        """Grant ``need`` of a host counter to rows of ``ok`` that can have it; take it."""

    def give(self, field: str, n: Ints, ok: Mask) -> None:
        """Return ``n`` to a host counter (rows of ``ok``)."""

    def unback(self, mask: Mask, ok: Mask, by_balloon: bool, scrub: bool) -> None:
        """The VMM unmaps the PPNs of ``mask`` (rows of ``ok``)."""

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        """Forget host-swap entries of the PPNs of ``mask`` (rows of ``ok``)."""

    def commit(self) -> None:
        """Write back whatever was kept aside while the kernel ran."""


Unback = Callable[[Ints, Ints, bool, bool], None]


class VmRows:
    """Rows that are distinct VMs ``vms`` of one :class:`SystemArrays`, in ascending order.

    ``unback`` is the engine's (it keeps the counts of shared MPNs and the free-MPN
    hint); without one, unmapping is not available.
    """

    def __init__(self, arr: SystemArrays, vms: Ints, unback: Unback | None = None) -> None:
        self.arr = arr
        self.cfg = arr.cfg
        self.vms = vms
        self.n = len(vms)
        self._unback = unback
        self._pf: npt.NDArray[np.uint8] | None = None
        self._use: Any = None

    def _flags(self) -> npt.NDArray[np.uint8]:
        if self._pf is None:
            self._pf = self.arr.page_flags[self.vms]
        return self._pf

    def _uses(self) -> Any:
        if self._use is None:
            self._use = self.arr.ppn_use[self.vms]
        return self._use

    def _extra(self, field: str) -> dict[int, Any]:
        return getattr(self.arr, EXTRAS[field])

    def read(self, field: str) -> Any:
        a = self.arr
        if field in FLAGS:
            return (self._flags() & FLAGS[field]) != 0
        if field == "guest.ppn_use":
            return self._uses()
        if field == "p2m":
            m = a.p2m[self.vms].astype(np.int64)
            return np.where(m == int(UNBACKED_MPN), -1, m)
        if field in ("guest.vcpus", "parked_vcpus"):
            bits = getattr(a, VM_ARRAYS[field])[self.vms]
            return ((bits[:, None] >> np.arange(self.cfg.vcpus)) & 1) == 1
        if field == "guest.lru":
            return a.lru_stamp[self.vms] != 0
        if field == "guest.disk":
            return a.disk[self.vms] != 0
        return getattr(a, VM_ARRAYS[field])[self.vms]

    def write(self, field: str, value: Any, ok: Mask) -> None:
        a = self.arr
        if field in FLAGS:
            bit = FLAGS[field]
            rows = self._flags()
            new = np.where(np.broadcast_to(value, rows.shape), rows | bit, rows & ~bit)
            self._pf = np.where(ok[:, None], new, rows).astype(np.uint8)
        elif field == "guest.ppn_use":
            use = self._uses()
            self._use = np.where(ok[:, None], value, use).astype(use.dtype)
        elif field in ("guest.vcpus", "parked_vcpus"):
            packed = (np.asarray(value, dtype=np.int64) << np.arange(self.cfg.vcpus)).sum(axis=1)
            getattr(a, VM_ARRAYS[field])[self.vms[ok]] = packed[ok]
        else:
            target = getattr(a, VM_ARRAYS[field])
            target[self.vms[ok]] = np.broadcast_to(value, (self.n,))[ok]

    def queue_len(self, field: str) -> Ints:
        n = ((self._flags() & FLAGS[field]) != 0).sum(axis=1).astype(np.int64)
        extra = self._extra(field)
        if extra:
            n += np.array([len(extra.get(int(v), ())) for v in self.vms], dtype=np.int64)
        return n

    def beyond_values(self, field: str) -> list[set[int]]:
        extra = self._extra(field)
        if not extra:
            return [set() for _ in range(self.n)]
        return [set(extra.get(int(v), ())) for v in self.vms]

    def beyond(self, field: str) -> Mask:
        P = self.cfg.guest_pages
        extra = self._extra(field)
        if not extra:
            return np.zeros(self.n, dtype=bool)
        return np.array([any(not 0 <= p < P for p in extra.get(int(v), ())) for v in self.vms],
                        dtype=bool)

    def queue_add(self, field: str, mask: Mask, ok: Mask) -> None:
        bit = FLAGS[field]
        rows = self._flags()
        sel = mask & ok[:, None]
        dup = sel & ((rows & bit) != 0)
        if dup.any():
            extra = self._extra(field)
            for r, p in zip(*np.nonzero(dup)):
                extra.setdefault(int(self.vms[r]), []).append(int(p))
        rows[sel] |= bit

    def queue_clear(self, field: str, ok: Mask) -> None:
        rows = self._flags()
        rows[ok] &= ~FLAGS[field]
        extra = self._extra(field)
        if extra:
            for v in self.vms[ok].tolist():
                extra.pop(v, None)

    def carry_beyond(self, dst: str, src: str, ok: Mask) -> None:
        P = self.cfg.guest_pages
        extra, into = self._extra(src), self._extra(dst)
        if extra:
            for v in self.vms[ok].tolist():
                bad = {p for p in extra.get(v, ()) if not 0 <= p < P}
                if bad:
                    into.setdefault(v, set()).update(bad)

    def clear_beyond(self, field: str, ok: Mask) -> None:
        extra = self._extra(field)
        if extra:
            for v in self.vms[ok].tolist():
                extra.pop(v, None)

    def host(self, field: str) -> Ints:
        return np.full(self.n, getattr(self.arr, field), dtype=np.int64)

    def claim(self, field: str, need: Ints, ok: Mask) -> Mask:
        # One host for every row: rows are granted in order while the counter lasts.
        want = np.where(ok, need, 0)
        granted = ok & (np.cumsum(want) <= getattr(self.arr, field))
        setattr(self.arr, field, getattr(self.arr, field) - int(want[granted].sum()))
        return granted

    def give(self, field: str, n: Ints, ok: Mask) -> None:
        setattr(self.arr, field, getattr(self.arr, field)
                + int(np.broadcast_to(n, (self.n,))[ok].sum()))

    def unback(self, mask: Mask, ok: Mask, by_balloon: bool, scrub: bool) -> None:
        assert self._unback is not None, "these rows cannot unmap pages"
        r, c = np.nonzero(mask & ok[:, None])
        self._unback(self.vms[r], c.astype(np.int64), by_balloon, scrub)

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        a = self.arr
        if a.swap:
            r, c = np.nonzero(mask & ok[:, None])
            for v, p in zip(self.vms[r].tolist(), c.tolist()):
                a.swap.pop((v, p), None)

    def commit(self) -> None:
        if self._pf is not None:
            self.arr.page_flags[self.vms] = self._pf
        if self._use is not None:
            self.arr.ppn_use[self.vms] = self._use


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Broadcast a VM value (``(n,)``) against a vector (``(n, k)``)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim != b.ndim:
        if a.ndim == 1:
            a = a[:, None]
        else:
            b = b[:, None]
    return a, b


def _lift(fn: Callable[[Any, Any], Any]) -> Callable[["NumpyOps", Any, Any], Any]:
    def op(self: "NumpyOps", a: Any, b: Any) -> Any:
        return fn(*_pair(a, b))
    return op


class NumpyOps:
    """:class:`~ballast.model.ops.Ops` over a batch of rows; ``ok`` is the guard so far."""

    def __init__(self, rows: Rows, args: Mapping[str, Any]) -> None:
        self.cfg = rows.cfg
        self.rows = rows
        self.args = args
        self.ok: Mask = np.ones(rows.n, dtype=bool)
        self._sets: dict[str, tuple[Mask, Ints, Mask, list[list[int]]]] = {}
        self._writing = False

    # -- reading -----------------------------------------------------------------------
    def vm(self, field: str) -> Value:
        return self.rows.read(field)

    pages = vcpus = vpns = vm

    def host(self, field: str) -> Value:
        return self.rows.host(field)

    def queued(self, field: str) -> Value:
        return self.rows.read(field)

    def queue_len(self, field: str) -> Value:
        return self.rows.queue_len(field)

    def beyond(self, field: str) -> Value:
        return self.rows.beyond(field)

    # -- arguments -----------------------------------------------------------------------
    def arg(self, name: str) -> Value:
        return np.asarray(self.args[name], dtype=np.int64).reshape(-1)

    def _ppn_set(self, name: str) -> tuple[Mask, Ints, Mask, list[list[int]]]:
        """(in-range mask, size, distinct, PPNs out of range) of a PPN-set argument given
        as a boolean mask per row or a list of tuples."""
        if name in self._sets:
            return self._sets[name]
        raw, n, P = self.args[name], self.rows.n, self.cfg.guest_pages
        out: tuple[Mask, Ints, Mask, list[list[int]]]
        if isinstance(raw, np.ndarray) and raw.dtype == bool:
            out = (raw, raw.sum(axis=1).astype(np.int64), np.ones(n, dtype=bool),
                   [[] for _ in range(n)])
        else:
            sel = np.zeros((n, P), dtype=bool)
            size = np.zeros(n, dtype=np.int64)
            distinct = np.ones(n, dtype=bool)
            outside: list[list[int]] = []
            for k, t in enumerate(raw):
                t = tuple(t)
                size[k] = len(t)
                ints = all(isinstance(p, (int, np.integer)) for p in t)
                distinct[k] = ints and len(set(t)) == len(t)
                outside.append([int(p) for p in t if ints and not 0 <= p < P])
                if ints:
                    sel[k, [int(p) for p in t if 0 <= p < P]] = True
            out = (sel, size, distinct, outside)
        self._sets[name] = out
        return out

    def arg_pages(self, name: str) -> Value:
        return self._ppn_set(name)[0]

    def arg_size(self, name: str) -> Value:
        return self._ppn_set(name)[1]

    def arg_distinct(self, name: str) -> Value:
        return self._ppn_set(name)[2]

    def arg_beyond(self, name: str) -> Value:
        return np.array([bool(x) for x in self._ppn_set(name)[3]], dtype=bool)

    def arg_beyond_within(self, name: str, field: str) -> Value:
        outside = self._ppn_set(name)[3]
        if not any(outside):
            return True
        have = self.rows.beyond_values(field)
        return np.array([set(x) <= h for x, h in zip(outside, have)], dtype=bool)

    def arg_vcpu(self, name: str) -> Value:
        return self.arg(name)[:, None] == np.arange(self.cfg.vcpus)

    # -- arithmetic and logic ------------------------------------------------------------
    def and_(self, *xs: Value) -> Value:
        out = xs[0]
        for x in xs[1:]:
            out = np.logical_and(*_pair(out, x))
        return out

    def or_(self, *xs: Value) -> Value:
        out = xs[0]
        for x in xs[1:]:
            out = np.logical_or(*_pair(out, x))
        return out

    def not_(self, x: Value) -> Value:
        return np.logical_not(x)

    def implies(self, a: Value, b: Value) -> Value:
        return np.logical_or(*_pair(np.logical_not(a), b))

    eq = _lift(lambda a, b: a == b)
    ne = _lift(lambda a, b: a != b)
    lt = _lift(lambda a, b: a < b)
    le = _lift(lambda a, b: a <= b)
    add = _lift(lambda a, b: a + b)
    sub = _lift(lambda a, b: a - b)
    minimum = _lift(np.minimum)
    maximum = _lift(np.maximum)

    def where(self, cond: Value, a: Value, b: Value) -> Value:
        cond, a = _pair(cond, a)
        cond, b = _pair(cond, b)
        return np.where(cond, a, b)

    # -- reductions and selections ----------------------------------------------------------
    def count(self, mask: Value) -> Value:
        return mask.sum(axis=1).astype(np.int64)

    def any(self, mask: Value) -> Value:
        return mask.any(axis=1)

    def all(self, mask: Value) -> Value:
        return mask.all(axis=1)

    def lowest(self, mask: Value, k: Value) -> Value:
        return mask & (np.cumsum(mask, axis=1) <= np.asarray(k).reshape(-1, 1))

    def up_to_last(self, mask: Value) -> Value:
        return np.logical_or.accumulate(mask[:, ::-1], axis=1)[:, ::-1]

    # -- guard and effect -------------------------------------------------------------------
    def require(self, cond: Value) -> None:
        assert not self._writing, "a kernel requires nothing after its effect"
        self.ok &= cond

    def set_vm(self, field: str, value: Value) -> None:
        self._writing = True
        self.rows.write(field, value, self.ok)

    set_pages = set_vcpus = set_vm

    def queue_add(self, field: str, mask: Value) -> None:
        self._writing = True
        self.rows.queue_add(field, mask, self.ok)

    def queue_clear(self, field: str) -> None:
        self._writing = True
        self.rows.queue_clear(field, self.ok)

    def carry_beyond(self, dst: str, src: str) -> None:
        self._writing = True
        self.rows.carry_beyond(dst, src, self.ok)

    def clear_beyond(self, field: str) -> None:
        self._writing = True
        self.rows.clear_beyond(field, self.ok)

    def claim(self, field: str, n: Value) -> None:
        assert not self._writing, "a claim comes after the guard, before the effect"
        need = np.broadcast_to(np.asarray(n, dtype=np.int64), (self.rows.n,))
        self.ok = self.rows.claim(field, need, self.ok)
        self._writing = True

    def give(self, field: str, n: Value) -> None:
        self._writing = True
        self.rows.give(field, n, self.ok)

    def unback(self, mask: Value, by_balloon: bool, scrub: bool = True) -> None:
        self._writing = True
        self.rows.unback(mask, self.ok, by_balloon, scrub)

    def drop_swap(self, mask: Value) -> None:
        self._writing = True
        self.rows.drop_swap(mask, self.ok)


def run_kernel(kernel: Kernel, rows: Rows, args: Mapping[str, Any]) -> Mask:
    """Run ``kernel`` on every row; the mask of rows whose guard held (and took effect)."""
    o = NumpyOps(rows, args)
    kernel(o)
    rows.commit()
    return o.ok


# --------------------------------------------------------------------------
# Property kernels (ballast.model.property_kernels): which VMs of one system break them.

MPN_BITS: dict[str, np.uint8] = {"free": FREE_BIT, "in_use": IN_USE_BIT, "cow": COW_BIT}
"""The host's per-MPN sets -> their bit of :attr:`SystemArrays.mpn_flags`."""


class NumpyStateOps(NumpyOps):
    """:class:`~ballast.model.ops.StateOps` over VMs ``vms`` of one system, a row each; a
    host value or an MPN vector is one row (``(1,)``, ``(1, machine_pages)``)."""

    def __init__(self, arr: SystemArrays, vms: Ints) -> None:
        super().__init__(VmRows(arr, vms), {})
        self.arr = arr
        self.vms = vms
        self._by_page: Ints | None = None
        self._every_vm = len(vms) == self.cfg.vms and bool((vms == np.arange(len(vms))).all())

    def mpns(self, field: str) -> Value:
        a = self.arr
        if field == "content":
            return a.content[None, :]
        return ((a.mpn_flags & MPN_BITS[field]) != 0)[None, :]

    def pages(self, field: str) -> Value:
        if not self._every_vm:
            return super().pages(field)
        # Every VM in order: read the system's arrays in place rather than a copy of them.
        a = self.arr
        if field in FLAGS:
            return (a.page_flags & FLAGS[field]) != 0
        if field == "guest.ppn_use":
            return a.ppn_use
        if field == "p2m" and a.p2m.dtype == np.uint32 and UNBACKED_MPN == 0xFFFFFFFF:
            return a.p2m.view(np.int32)  # UNBACKED_MPN reads as -1, as the model's UNBACKED
        return super().pages(field)

    def _page_counts(self) -> Ints:
        """How many guest pages (of every VM) each MPN backs."""
        if self._by_page is None:
            p2m, M = self.arr.p2m, len(self.arr.mpn_flags)
            mpn = p2m[p2m != UNBACKED_MPN]
            self._by_page = np.bincount(mpn[mpn < M], minlength=M)
        return self._by_page

    def mapped(self) -> Value:
        return (self._page_counts() > 0)[None, :]

    def shared(self, across_vms: bool) -> Value:
        twice = self._page_counts() > 1
        if not across_vms or not twice.any():
            return twice[None, :]
        # Only MPNs behind two or more pages can back pages of two or more VMs.
        p2m, M = self.arr.p2m, len(self.arr.mpn_flags)
        backed = (p2m != UNBACKED_MPN) & (p2m < M)
        backed[backed] = twice[p2m[backed]]
        vm, _ = np.nonzero(backed)
        mpn = p2m[backed].astype(np.int64)
        pairs = np.unique(vm * M + mpn)  # each (VM, MPN) once
        return (np.bincount(pairs % M, minlength=M) > 1)[None, :]

    def swapped(self) -> Value:
        out = np.zeros((len(self.vms), self.cfg.guest_pages), dtype=bool)
        if self.arr.swap:
            row = {int(v): r for r, v in enumerate(self.vms)}
            for v, p in self.arr.swap:
                if v in row and 0 <= p < self.cfg.guest_pages:
                    out[row[v], p] = True
        return out

    def vms_count(self, field: str) -> Value:
        bits = getattr(self.arr, VM_ARRAYS[field]).astype(np.int64)
        total = int(((bits[:, None] >> np.arange(self.cfg.vcpus)) & 1).sum())
        return np.array([total], dtype=np.int64)

    def _units(self, mask: Value) -> Any:
        return np.asarray(mask).reshape(len(mask), -1, self.cfg.host_page_units)

    def host_page_all(self, mask: Value) -> Value:
        return self._units(mask).all(axis=2)

    def host_page_any(self, mask: Value) -> Value:
        return self._units(mask).any(axis=2)


def property_holds(check: StateCheck, arr: SystemArrays, vms: Ints | None = None) -> Mask:
    """Whether a part of a property kernel holds: per VM of ``vms`` (a mask over them) for a
    per-VM part, once for the system (a mask of one row) for a host part (``vms`` None)."""
    rows = np.zeros(1, dtype=np.int64) if vms is None else vms
    n = 1 if vms is None else len(vms)
    out = check(NumpyStateOps(arr, rows))
    return np.broadcast_to(np.asarray(out, dtype=bool), (n,))
