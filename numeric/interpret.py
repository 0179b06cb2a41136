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

import operator
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.model.ops import Kernel, Value, vector_width
from ballast.model.property_kernels import StateCheck
from ballast.numeric.arrays import (
    ACKED_DEFLATE_BIT, ACKED_INFLATE_BIT, ACKED_REFUSED_BIT, ACKED_REPORT_BIT, BALLOON_BIT,
    BALLOONED_BIT, COW_BIT, DEFLATE_QUEUE_BIT, DISCARDED_BIT, FREE_BIT, IN_USE_BIT,
    INFLATE_QUEUE_BIT, RECLAIMED_BIT, REFUSED_BIT, REPORT_QUEUE_BIT, REPORTING_BIT,
    STALE_DEFLATE_BIT, STALE_INFLATE_BIT, HINTED_BIT, HINT_REWRITTEN_BIT,
    UNBACKED_MPN, SystemArrays,
)
from ballast.numeric.onehot import OneHot, dense, one_hot
from ballast.numeric.rowscan import entries, first_k, row_counts, up_to_last

__all__ = ["EXTRAS", "FLAGS", "MPN_BITS", "MemoryRows", "NumpyOps", "NumpyStateOps", "PageSets",
           "Rows", "VM_ARRAYS", "Vmm", "VmRows", "WriteLog", "mpn_index", "page_sets",
           "constant_of", "flags_as", "property_holds", "run_kernel", "uniform"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

FLAGS: dict[str, np.unsignedinteger[Any]] = {
    "ballooned": BALLOONED_BIT, "acked_inflate": ACKED_INFLATE_BIT,
    "acked_refused": ACKED_REFUSED_BIT, "acked_deflate": ACKED_DEFLATE_BIT,
    "module.balloon": BALLOON_BIT, "module.refused": REFUSED_BIT,
    "inflate_queue": INFLATE_QUEUE_BIT, "deflate_queue": DEFLATE_QUEUE_BIT,
    "report_queue": REPORT_QUEUE_BIT, "acked_report": ACKED_REPORT_BIT,
    "discarded": DISCARDED_BIT, "module.reporting": REPORTING_BIT,
    "stale_inflate": STALE_INFLATE_BIT, "stale_deflate": STALE_DEFLATE_BIT,
    "hinted": HINTED_BIT, "hint_rewritten": HINT_REWRITTEN_BIT,
}
"""The model's per-PPN sets and queues -> their bit of :attr:`SystemArrays.page_flags`."""

_FLAGS_AS: dict[Any, dict[str, Any]] = {}
""":data:`FLAGS` in each type the page flags take (:func:`flags_as`)."""


def flags_as(dtype: Any) -> dict[str, Any]:
    """:data:`FLAGS` with each bit in ``dtype``, the type of a configuration's page flags
    (:func:`~ballast.numeric.arrays.page_flag_dtype`): an operation between the flags and
    a bit of a wider type would widen its result, and move twice the bytes.

    >>> flags_as(np.dtype(np.uint8))["ballooned"].dtype.name
    'uint8'
    >>> int(flags_as(np.dtype(np.uint8))["hinted"])  # beyond one byte: a feature's, off
    0
    """
    known = _FLAGS_AS.get(dtype)
    if known is None:
        # A flag beyond the type belongs to a feature the configuration switches off: its
        # set is empty, so its bit is 0 (it reads as empty and clears as nothing; a write
        # that would put a page in it is refused, see VmRows._no_such_flag).
        wide, t = 1 << (8 * np.dtype(dtype).itemsize), np.dtype(dtype).type
        known = _FLAGS_AS[dtype] = {k: t(int(b) if int(b) < wide else 0)
                                    for k, b in FLAGS.items()}
    return known


EXTRAS: dict[str, str] = {"inflate_queue": "inflate_queue_extra",
                          "deflate_queue": "deflate_queue_extra",
                          "acked_refused": "acked_refused_extra",
                          "stale_inflate": "stale_inflate_extra",
                          "stale_deflate": "stale_deflate_extra"}
"""Fields whose rare entries (duplicates, PPNs out of range) live in a dictionary."""

VM_ARRAYS: dict[str, str] = {
    "target": "target", "cpu_target": "cpu_target", "module.target": "module_target",
    "module.cpu_target": "module_cpu_target", "module.actual": "actual",
    "guest.vcpus": "vcpus", "parked_vcpus": "parked_vcpus", "stats_free": "stats_free",
    "hint_cmd_id": "hint_cmd_id", "module.hinting_for": "hinting_for",
    "module.frozen": "frozen",
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


# --------------------------------------------------------------------------
# Memory (``ops.MemoryOps``): machine pages, contents tokens, the LRU order, host pages.

_MEMORY_READS = frozenset({"host.swap", "guest.expected"})
_UNIT_BITS = {"host.free": FREE_BIT, "host.in_use": IN_USE_BIT, "host.reclaimed": RECLAIMED_BIT}


class Vmm(Protocol):
    """The VMM of one system: how it backs, copies and shares machine pages."""

    def vmm_touch(self, vms: Ints, ppns: Ints, tokens: Ints, write: Mask, cow: bool,
                  name: str, lowest: bool = False) -> tuple[Mask, Ints]:
        """``fault_in`` (and ``write_page`` where ``write``) per (VM, PPN), in order: which
        succeeded and the MPN each ends on (``lowest``: see ``MemoryOps.touch``)."""

    def vmm_share_pages(self, vm: int, ppn: int, other_vm: int, other_ppn: int,
                        cow: bool) -> None:
        """Map ``vm``'s MPN of ``ppn`` for ``other_ppn`` of ``other_vm`` too."""

    def vmm_swap_out_oldest(self, actor: int) -> None:
        """Page out the oldest page on the host, whichever VM's (for VM ``actor``)."""

    def vmm_mark_free(self, mpns: Ints) -> None:
        """MPNs that just became free."""

    def vmm_write_pages(self, vm: int, ppns: list[int], token: int, name: str) -> bool:
        """``write_page`` of each of ``ppns`` of ``vm`` in order, all or none: whether the
        free MPNs they need were there (nothing changes otherwise)."""


class MemoryRows(Rows, Protocol):
    """The memory operations of a :class:`Rows` store (see :class:`VmRows`)."""

    def vm_numbers(self) -> Ints:
        """The VM of each row."""

    def read_tokens(self, field: str) -> Any:
        """Tokens of a store, 0 where none is present (in the type the MPN contents use)."""

    def at_mpn(self, field: str, mpn: Ints) -> Any:
        """The host's value of each MPN (0 or False: none), tokens in the contents' type."""

    def units(self, field: str) -> Mask:
        """A host set over the units of each row's host page."""

    def set_units(self, field: str, value: Mask, ok: Mask) -> None:
        """Write a host set over the units of the host pages of rows ``ok``."""

    def lru_victim(self) -> OneHot:
        """One-hot: each row's least recently used resident VPN."""

    def other_mpn(self, other_vm: Ints, other_at: Mask) -> Ints:
        """The MPN of another VM's page (-1: none)."""

    def set_tokens(self, field: str, mask: Mask, token: Any, ok: Mask) -> None:
        """Store tokens for the entries of ``mask`` (rows of ``ok``)."""

    def drop_tokens(self, field: str, mask: Mask, ok: Mask) -> None:
        """Forget entries of a store (rows of ``ok``)."""

    def queue_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        """Report one PPN number, in range or not (rows of ``ok``)."""

    def set_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        """A set gains one PPN number, in range or not (rows of ``ok``)."""

    def queue_copy(self, dst: str, src: str, ok: Mask) -> None:
        """Queue ``dst`` becomes a copy of queue ``src`` (rows of ``ok``)."""

    def lru_use(self, vpn: Mask, resident: Mask, ok: Mask) -> None:
        """The one-hot VPNs become the most recently used (rows of ``ok``, in row order)."""

    def lru_remove(self, mask: Mask, ok: Mask) -> None:
        """VPNs leave the LRU order."""

    def touch(self, at: Mask, token: Ints, write: Mask, cow: bool, ok: Mask,
              lowest: bool = False) -> tuple[Mask, Ints]:
        """The VMM backs (and writes) one page per row of ``ok``: rows granted, MPNs
        (``lowest``: see ``MemoryOps.touch``)."""

    def share(self, at: Mask, other_vm: Ints, other_at: Mask, cow: bool, ok: Mask) -> None:
        """The VMM shares a page of each row of ``ok`` with another VM's."""

    def swap_out_oldest(self, ok: Mask) -> None:
        """The VMM pages out the oldest page on the host for each row of ``ok``, in order."""

    def claim_swap(self, need: Ints, ok: Mask) -> Mask:
        """Grant host swap slots in row order."""

    def write_pages(self, mask: Mask, token: Ints, ok: Mask) -> Mask:
        """The VMM writes a token to the pages of ``mask`` that hold anything, row by row of
        ``ok``: the rows whose MPNs were there."""
    def token_at(self, field: str, at: Any) -> Ints:
        """The token of the one entry ``at`` of each row's store (0: none)."""

    def holding(self, vpn: Ints) -> OneHot | None:
        """The PPN holding each row's VPN from an index (None: no index to answer from)."""

    def write_at(self, field: str, at: OneHot, value: Any, ok: Mask) -> None:
        """Set one entry of a page or VPN vector per row of ``ok``."""


def mpn_index(mpn: Any, machine_pages: int) -> Any:
    """Each entry of ``mpn`` as an index into a table of ``machine_pages + 1`` entries: the
    MPN itself, or ``machine_pages`` where it names none (negative, or beyond the host's).

    A signed array is read as unsigned, so that a negative MPN (UNBACKED) lands above every
    MPN and one clamp does both checks without widening the array.

    >>> mpn_index(np.array([[-1, 0, 2, 3]], dtype=np.int32), 3).tolist()
    [[3, 0, 2, 3]]
    >>> mpn_index(np.array([5, -7]), 4).tolist()
    [4, 4]
    """
    kind, size = mpn.dtype.kind, mpn.dtype.itemsize
    if kind == "i" and np.iinfo(mpn.dtype).max >= machine_pages:
        return np.minimum(mpn.view(f"u{size}"), machine_pages)
    if kind == "u":
        return np.minimum(mpn, machine_pages)
    wide = mpn.astype(np.int64)
    return np.where((wide >= 0) & (wide < machine_pages), wide, machine_pages)


def _per_row(x: Any, n: int, dtype: Any = None) -> Any:
    """``x`` (one value per row, or one for every row) as an ``(n,)`` array: itself where it
    is one already (the kernels' values mostly are)."""
    if type(x) is np.ndarray and x.shape == (n,) and (dtype is None or x.dtype == dtype):
        return x
    if np.ndim(x) == 0:
        return np.full(n, x, dtype=dtype)
    return np.broadcast_to(np.asarray(x, dtype=dtype), (n,))


def _rows_of(mask: Any) -> Ints:
    """The positions where a one-dimensional mask holds (``np.flatnonzero`` without its
    reshaping, which the interpreter pays on every row set)."""
    return np.asarray(mask).nonzero()[0]


def _one_entry(at: Any, ok: Mask) -> int:
    """For rows of one row: the column the one-hot ``at`` names there, -1 where it names
    none or the row's guard failed. One operation at a time (shrinking, replay) then goes
    in Python numbers rather than arrays of one entry, a fraction of the cost.

    >>> _one_entry(OneHot(np.array([2]), 4), np.array([True]))
    2
    >>> _one_entry(OneHot(np.array([2]), 4), np.array([False]))
    -1
    """
    return int(at.index[0]) if ok[0] else -1


def _one_value(value: Any) -> int:
    """The one row's entry of a value given per row or for every row."""
    t = type(value)
    if t is int or t is bool:
        return int(value)
    if t is np.ndarray:
        return int(value.reshape(-1)[0] if value.ndim else value)
    return int(value if np.ndim(value) == 0 else np.asarray(value).reshape(-1)[0])


def _entries(mask: Any, ok: Mask) -> tuple[Ints, Ints]:
    """(row, column) of every entry of ``mask`` in the rows of ``ok``, row by row."""
    if isinstance(mask, OneHot):
        r = _rows_of(ok & mask.present())
        return r, _in_rows(mask.index, r)
    return entries(mask & ok[:, None])


def _in_rows(values: Any, rows: Ints) -> Any:
    """``values`` (one per row) of the rows ``rows`` (ascending, distinct): ``values``
    itself, unindexed, where those are every row (nearly always, in a batch whose guards
    hold)."""
    return values if len(rows) == len(values) else values[rows]


def uniform(x: Any) -> Any:
    """The one value of an array that repeats a single entry everywhere (a constant of
    :meth:`NumpyOps.filled`, seen through every position), else None: found from its
    strides, without reading its entries.

    >>> uniform(np.broadcast_to(np.True_, (3, 4))), uniform(np.zeros((3, 4))) is None
    (True, True)
    """
    if type(x) is np.ndarray and x.ndim and x.size and not any(x.strides):
        return x.flat[0].item()
    return None


def constant_of(value: Any) -> Any:
    """The one value of ``value`` where it is the same everywhere (a Python or NumPy
    scalar, or a :func:`uniform` array), as a Python number; else None.

    >>> constant_of(np.int16(-1)), constant_of(np.broadcast_to(True, (2, 3)))
    (-1, True)
    >>> constant_of(np.array([1, 2])) is None
    True
    """
    if type(value) is np.ndarray:
        return uniform(value)
    if isinstance(value, np.generic):
        return value.item()
    return value if np.ndim(value) == 0 else None


def _whole_rows(mask: Any, ok: Mask) -> Ints | None:
    """The rows of ``ok`` when ``mask`` holds everywhere in them (a reset), else None."""
    if isinstance(mask, OneHot) or not ok.any():
        return None
    same = uniform(mask)
    whole = bool(mask[ok].all()) if same is None else bool(same)
    return _rows_of(ok) if whole else None


def renumber_stamps(a: SystemArrays) -> None:
    """Compact the LRU stamps to ``1..resident`` (same order) when the clock runs high."""
    flat = a.lru_stamp.ravel()
    live = _rows_of(flat)
    order = np.argsort(flat[live], kind="stable")
    flat[live[order]] = np.arange(1, len(live) + 1, dtype=np.uint32)
    a.clock = len(live)


class _VmMemory:
    """The memory operations of :class:`VmRows`."""

    arr: SystemArrays
    cfg: Config
    vms: Ints
    n: int
    vmm: "Vmm | None"
    name: str
    _units_at: Ints | None

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        raise NotImplementedError

    def _vmm(self) -> Vmm:
        assert self.vmm is not None, "these rows have no VMM"
        return self.vmm

    def vm_numbers(self) -> Ints:
        return self.vms

    def read_memory(self, field: str) -> Any:
        a = self.arr
        if field == "guest.expected":
            # Tokens in their own narrow type (one byte while they fit in one): a sweep's
            # gathers and compares over every VPN move a fraction of 64-bit copies' bytes.
            return a.expected[self.vms]
        out = np.zeros((self.n, self.cfg.guest_pages), dtype=bool)
        if a.swap:
            row = {int(v): k for k, v in enumerate(self.vms.tolist())}
            for (v, p) in a.swap:
                if v in row:
                    out[row[v], p] = True
        return out

    def read_tokens(self, field: str) -> Any:
        a = self.arr
        if field == "guest.disk":
            # A slot holds its token plus one (0: empty), so an empty slot reads as token 0
            # (in the tokens' own unsigned type: raised to 1 first, so nothing wraps).
            out = np.maximum(a.disk[self.vms], 1)
            out -= 1
            return out
        out = np.zeros((self.n, self.cfg.guest_pages), dtype=a.content.dtype)
        if a.swap:
            row = {int(v): k for k, v in enumerate(self.vms.tolist())}
            for (v, p), t in a.swap.items():
                if v in row:
                    out[row[v], p] = t
        return out

    def at_mpn(self, field: str, mpn: Ints) -> Any:
        # One gather from a table with an extra last entry for "no MPN" (negative, or beyond
        # the host's): no mask passes over the (VMs x pages) array. Building the table costs
        # a pass over the host's MPNs, so a few MPNs (one op per call) are read in place.
        a = self.arr
        M = len(a.content)
        mpn = np.asarray(mpn)
        if mpn.size == 1:  # one MPN (one op per call): read in Python numbers
            x = int(mpn.reshape(-1)[0])
            named = 0 <= x < M
            if field == "host.cow":
                got: Any = named and bool(a.mpn_flags[x] & COW_BIT)
            else:
                got = a.content[x] if named else a.content.dtype.type(0)
            return np.full(mpn.shape, got)
        if mpn.size * 8 < M:
            at = mpn_index(mpn, M)
            named = at < M
            at = np.where(named, at, 0)
            if field == "host.cow":
                return named & ((a.mpn_flags[at] & COW_BIT) != 0)
            return np.where(named, a.content[at], 0)
        if field == "host.cow":
            table = np.zeros(M + 1, dtype=bool)
            np.not_equal(a.mpn_flags & COW_BIT, 0, out=table[:M])
        else:  # tokens in their own narrow type, as the contents hold them
            table = np.zeros(M + 1, dtype=a.content.dtype)
            table[:M] = a.content
        return np.take(table, mpn_index(mpn, M))  # take: about half the time of indexing

    def _unit_index(self) -> Ints:
        """The MPNs of each row's host page (read, never written: kept for the next ask)."""
        if self._units_at is None:
            u = self.cfg.host_page_units
            self._units_at = self.vms[:, None] * u + np.arange(u)[None, :]
        return self._units_at

    def units(self, field: str) -> Mask:
        return (self.arr.mpn_flags[self._unit_index()] & _UNIT_BITS[field]).astype(bool)

    def set_units(self, field: str, value: Mask, ok: Mask) -> None:
        a, bit = self.arr, _UNIT_BITS[field]
        idx, val = self._unit_index(), np.asarray(value)
        if val.shape != idx.shape:
            val = np.broadcast_to(val, idx.shape)
        if np.count_nonzero(ok) != self.n:
            idx, val = idx[ok], val[ok]
        # The units of distinct host pages are distinct MPNs: set or cleared in place where
        # every unit gets the same value (taking or returning a whole host page).
        same = uniform(val)
        some = np.count_nonzero(val) if same is None else (val.size if same else 0)
        if some == val.size:
            a.mpn_flags[idx] |= bit
        elif not some:
            a.mpn_flags[idx] &= ~bit
        else:
            now = a.mpn_flags[idx]
            a.mpn_flags[idx] = np.where(val, now | bit, now & ~bit)
        if field == "host.free" and self.vmm is not None and some:
            self.vmm.vmm_mark_free(idx[val])

    def lru_victim(self) -> OneHot:
        if self.n == 1:
            row = self.arr.lru_stamp[int(self.vms[0])]
            vic = int(np.argmin(row - row.dtype.type(1)))  # as below, for one row
            return OneHot(np.array([vic if row[vic] else -1], dtype=np.int64), len(row))
        st = self.arr.lru_stamp[self.vms]
        # Unsigned stamps less one: an absent VPN (stamp 0) wraps to the largest value,
        # so the smallest is the oldest resident VPN without a pass to mask the absent.
        vic = np.argmin(st - np.ones(1, dtype=st.dtype), axis=1)
        has = st[np.arange(self.n), vic] != 0
        return OneHot(np.where(has, vic, -1), st.shape[1])

    def token_at(self, field: str, at: Any) -> Ints:
        """The token of the one entry ``at`` of each row's store (0: none)."""
        if not isinstance(at, OneHot):
            return np.where(at, self.read_tokens(field), 0).sum(axis=1).astype(np.int64)
        if self.n == 1:
            col, vm = int(at.index[0]), int(self.vms[0])
            if col < 0:
                return np.zeros(1, dtype=np.int64)
            if field == "guest.disk":
                slot = int(self.arr.disk[vm, col])
                return np.array([slot - 1 if slot > 0 else 0], dtype=np.int64)
            return np.array([self.arr.swap.get((vm, col), 0)], dtype=np.int64)
        r = _rows_of(at.present())
        c = at.index[r]
        out = np.zeros(self.n, dtype=np.int64)
        if field == "guest.disk":
            d = self.arr.disk[self.vms[r], c].astype(np.int64)
            out[r] = np.where(d > 0, d - 1, 0)
        elif self.arr.swap:
            swap = self.arr.swap
            for k, v, p in zip(r.tolist(), self.vms[r].tolist(), c.tolist()):
                out[k] = swap.get((v, p), 0)
        return out

    def other_mpn(self, other_vm: Ints, other_at: Mask) -> Ints:
        w = np.asarray(other_vm, dtype=np.int64)
        valid = (w >= 0) & (w < self.cfg.vms) & other_at.any(axis=1)
        m = self.arr.p2m[np.where(valid, w, 0), np.argmax(other_at, axis=1)].astype(np.int64)
        return np.where(valid & (m != int(UNBACKED_MPN)), m, -1)

    def set_tokens(self, field: str, mask: Mask, token: Any, ok: Mask) -> None:
        a = self.arr
        if self.n == 1 and isinstance(mask, OneHot) and np.ndim(token) <= 1:
            col = _one_entry(mask, ok)
            if col >= 0:
                vm, x = int(self.vms[0]), _one_value(token)
                if field == "guest.disk":
                    a.disk[vm, col] = x + 1
                else:
                    a.swap[(vm, col)] = x
            return
        tok = np.asarray(token, dtype=np.int64)
        r, c = _entries(mask, ok)
        t = _per_row(tok, self.n)[r] if tok.ndim <= 1 else tok[r, c]
        if field == "guest.disk":
            a.disk[self.vms[r], c] = t + 1
        else:
            for v, p, x in zip(self.vms[r].tolist(), c.tolist(), t.tolist()):
                a.swap[(v, p)] = x

    def drop_tokens(self, field: str, mask: Mask, ok: Mask) -> None:
        if field == "host.swap":
            self.drop_swap(mask, ok)
            return
        if self.n == 1 and isinstance(mask, OneHot):
            c = _one_entry(mask, ok)
            if c >= 0:
                self.arr.disk[int(self.vms[0]), c] = 0
            return
        whole = _whole_rows(mask, ok)
        if whole is not None:
            self.arr.disk[self.vms[whole]] = 0
            return
        r, c = _entries(mask, ok)
        self.arr.disk[self.vms[r], c] = 0

    def queue_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        a, P, bit = self.arr, self.cfg.guest_pages, FLAGS[field]
        rows = self._flags()  # type: ignore[attr-defined]
        self._flags_changed()  # type: ignore[attr-defined]
        for k in _rows_of(ok).tolist():
            p = int(ppn[k])
            if 0 <= p < P and not rows[k, p] & bit:
                rows[k, p] |= bit
            else:
                getattr(a, EXTRAS[field]).setdefault(int(self.vms[k]), []).append(p)

    def set_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        a, P, bit = self.arr, self.cfg.guest_pages, FLAGS[field]
        rows = self._flags()  # type: ignore[attr-defined]
        self._flags_changed()  # type: ignore[attr-defined]
        for k in _rows_of(ok).tolist():
            p = int(ppn[k])
            if 0 <= p < P:
                rows[k, p] |= bit
            else:
                getattr(a, EXTRAS[field]).setdefault(int(self.vms[k]), set()).add(p)

    def queue_copy(self, dst: str, src: str, ok: Mask) -> None:
        a = self.arr
        rows = self._flags()  # type: ignore[attr-defined]
        have = (rows & FLAGS[src]) != 0
        rows[ok] = np.where(have[ok], rows[ok] | FLAGS[dst], rows[ok] & ~FLAGS[dst])
        self._flags_changed()  # type: ignore[attr-defined]
        into, extra = getattr(a, EXTRAS[dst]), getattr(a, EXTRAS[src])
        for v in self.vms[ok].tolist():
            if extra.get(v):
                into[v] = list(extra[v])
            else:
                into.pop(v, None)

    def lru_use(self, vpn: Mask, resident: Mask, ok: Mask) -> None:
        a = self.arr
        if self.n == 1:
            c = _one_entry(one_hot(vpn), ok)
            if c >= 0:
                a.clock += 1
                a.lru_stamp[int(self.vms[0]), c] = a.clock
                if a.clock > 2**31:
                    renumber_stamps(a)
            return
        live, vs = _entries(one_hot(vpn), ok)
        a.lru_stamp[self.vms[live], vs] = a.clock + 1 + np.arange(len(live))
        a.clock += len(live)
        if a.clock > 2**31:
            renumber_stamps(a)

    def lru_remove(self, mask: Mask, ok: Mask) -> None:
        whole = _whole_rows(mask, ok)
        if whole is not None:
            self.arr.lru_stamp[self.vms[whole]] = 0
            return
        r, c = _entries(mask, ok)
        self.arr.lru_stamp[self.vms[r], c] = 0

    def touch(self, at: Mask, token: Ints, write: Mask, cow: bool, ok: Mask,
              lowest: bool = False) -> tuple[Mask, Ints]:
        if self.n == 1:
            return self._touch_row(at, token, write, cow, bool(ok[0]), lowest)
        idx = _rows_of(ok)
        tok = _in_rows(_per_row(token, self.n, np.int64), idx)
        wr = _in_rows(_per_row(write, self.n, np.bool_), idx)
        page = (np.maximum(_in_rows(at.index, idx), 0) if isinstance(at, OneHot)
                else np.argmax(at[idx], axis=1))
        # The VMM reads the tokens and write marks, never writes them.
        done, new = self._vmm().vmm_touch(_in_rows(self.vms, idx), page, tok, wr, cow,
                                          self.name, lowest)
        self._forget_flags()
        granted = np.zeros(self.n, dtype=bool)
        granted[idx[done]] = True
        mpn = np.full(self.n, -1, dtype=np.int64)
        new = np.asarray(new, dtype=np.int64)
        mpn[idx] = np.where(new == int(UNBACKED_MPN), -1, new)
        return granted, mpn

    def _touch_row(self, at: Mask, token: Ints, write: Mask, cow: bool, ok: bool,
                   lowest: bool) -> tuple[Mask, Ints]:
        """:meth:`touch` of rows of one row, its values taken as Python numbers."""
        self._forget_flags()
        if not ok:
            return np.zeros(1, dtype=bool), np.full(1, -1, dtype=np.int64)
        page = (max(int(at.index[0]), 0) if isinstance(at, OneHot)
                else int(np.argmax(np.asarray(at)[0])))
        done, new = self._vmm().vmm_touch(
            self.vms, np.array([page]), np.array([_one_value(token)]),
            np.array([bool(_one_value(write))]), cow, self.name, lowest)
        m = int(new[0])
        return (np.array([bool(done[0])]),
                np.array([-1 if m == int(UNBACKED_MPN) else m], dtype=np.int64))

    def share(self, at: Mask, other_vm: Ints, other_at: Mask, cow: bool, ok: Mask) -> None:
        for k in _rows_of(ok).tolist():
            self._vmm().vmm_share_pages(int(self.vms[k]), int(np.argmax(at[k])),
                                        int(other_vm[k]), int(np.argmax(other_at[k])), cow)

    def swap_out_oldest(self, ok: Mask) -> None:
        for k in _rows_of(ok).tolist():
            self._vmm().vmm_swap_out_oldest(int(self.vms[k]))
        self._forget_flags()

    def claim_swap(self, need: Ints, ok: Mask) -> Mask:
        room = self.cfg.host_swap_slots - len(self.arr.swap)
        return ok & (np.cumsum(np.where(ok, need, 0)) <= room)

    def write_pages(self, mask: Mask, token: Ints, ok: Mask) -> Mask:
        a, out = self.arr, ok.copy()
        tok = _per_row(token, self.n, np.int64)
        for k in _rows_of(ok).tolist():
            v = int(self.vms[k])
            held = [p for p in _rows_of(mask[k]).tolist()
                    if a.p2m[v, p] != UNBACKED_MPN or (v, p) in a.swap]
            if held:
                out[k] = self._vmm().vmm_write_pages(v, held, int(tok[k]), self.name)
        self._forget_flags()
        return out

    def _forget_flags(self) -> None:
        """The VMM changed page flags in place (a page it backs leaves the balloon): flags
        read before are read again. Nothing was written before it (it comes first)."""
        setattr(self, "_pf", None)
        self._flag_reads.clear()  # type: ignore[attr-defined]

    def _sync_one_vppn(self, use: Any, old: Any) -> None:
        """:meth:`sync_vppn` of rows of one row: its changed PPNs, no row selected."""
        a, v = self.arr, int(self.vms[0])
        old = a.ppn_use[v] if old is None else old
        changed = (old != use).nonzero()[0]
        if not len(changed):
            return
        was, now = old[changed], use[changed]
        gone = was >= 0  # every VPN that left its PPN first, then where each one came
        if gone.any():
            a.vppn[v, was[gone]] = -1
        came = now >= 0
        if came.any():
            a.vppn[v, now[came]] = changed[came]

    def sync_vppn(self, use: Any, old: Any = None) -> None:
        """Keep the VPN -> PPN index of the rows in step with their new page use (``old``:
        the rows' page use in the arrays, when the caller has it)."""
        a = self.arr
        vms = self.vms
        if len(vms) == 1:
            self._sync_one_vppn(use[0], None if old is None else old[0])
            return
        # Rows left holding no VPN (a reset) lose their whole index row at once.
        empty = ~(use >= 0).any(axis=1)
        if empty.any():
            a.vppn[vms[empty]] = -1
            vms, use = vms[~empty], use[~empty]
            old = None if old is None else old[~empty]
        old = a.ppn_use[vms] if old is None else old
        # Few entries change: compare once, then look only at those.
        r, c = entries(old != use)
        if not len(r):
            return
        was, now = old[r, c], use[r, c]
        gone = was >= 0
        a.vppn[vms[r[gone]], was[gone]] = -1
        came = now >= 0
        a.vppn[vms[r[came]], now[came]] = c[came]


class _NumpyMemory:
    """The memory operations of :class:`NumpyOps`."""

    cfg: Config
    rows: Any
    args: Mapping[str, Any]
    ok: Mask
    _writing: bool
    _scalars: bool

    def arg(self, name: str) -> Value:
        raise NotImplementedError

    def _arg_rows(self, name: str) -> Ints:
        raise NotImplementedError

    def _arg_one(self, name: str, width: int) -> OneHot:
        if self._scalars:  # one row: its number checked in Python
            i = int(self.args[name][0])
            return OneHot(np.array([i if 0 <= i < width else -1]), width)
        x = self._arg_rows(name)
        return OneHot(np.where((x >= 0) & (x < width), x, -1), width)

    def arg_page(self, name: str) -> Value:
        return self._arg_one(name, self.cfg.guest_pages)

    def arg_vpn(self, name: str) -> Value:
        return self._arg_one(name, self.cfg.guest_data_pages)

    def arg_is(self, name: str, value: str) -> Value:
        return np.array([x == value for x in self.args[name]], dtype=bool)

    def this_vm(self) -> Value:
        return self.rows.vm_numbers()

    def hostile(self) -> Value:
        return np.isin(self.rows.vm_numbers(), np.array(sorted(self.cfg.hostile_vms), dtype=np.int64))

    def tokens(self, field: str) -> Value:
        return self.rows.read_tokens(field)

    def at_mpn(self, field: str, mpn: Value, otherwise: Value = None) -> Value:
        value = self.rows.at_mpn(field, mpn)
        if otherwise is None:
            return value
        # No MPN reads as 0 (or False), so only the entries where the other value is not 0
        # (the few pages on host swap) can change: those are set, not every entry chosen.
        other, mpn = np.asarray(otherwise), np.asarray(mpn)
        if other.shape != value.shape or mpn.shape != value.shape or \
                value.dtype != other.dtype or not value.flags.writeable:
            return np.where(mpn < 0, other, value)
        at = np.flatnonzero(other != 0)  # a mask scans faster than 64-bit numbers
        at = at[np.take(mpn, at) < 0]
        if len(at):
            value = value.copy() if value.base is not None else value
            value.ravel()[at] = other.ravel()[at]
        return value

    def units(self, field: str) -> Value:
        return self.rows.units(field)

    def lru_victim(self) -> Value:
        return self.rows.lru_victim()

    def pick(self, values: Value, onehot: Value) -> Value:
        values = dense(values)
        if isinstance(onehot, OneHot):
            return onehot.gather(values, False if values.dtype == bool else 0)
        if values.dtype == bool:
            return (values & onehot).any(axis=1)
        return np.where(onehot, values, 0).sum(axis=1).astype(np.int64)

    def token_at(self, field: str, at: Value) -> Value:
        return self.rows.token_at(field, at)

    def other_mpn(self, other_vm: Value, other_at: Value) -> Value:
        return self.rows.other_mpn(other_vm, dense(other_at))

    def set_units(self, field: str, value: Value) -> None:
        self._writing = True
        self.rows.set_units(field, dense(value), self.ok)

    def set_vpns(self, field: str, value: Value) -> None:
        self._writing = True
        self.rows.write(field, dense(value), self.ok)

    def set_tokens(self, field: str, mask: Value, token: Value) -> None:
        self._writing = True
        self.rows.set_tokens(field, mask, token, self.ok)

    def drop_tokens(self, field: str, mask: Value) -> None:
        self._writing = True
        self.rows.drop_tokens(field, mask, self.ok)

    def queue_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        self._writing = True
        self.rows.queue_add_ppn(field, _per_row(ppn, self.rows.n),
                                self.ok & _per_row(when, self.rows.n))

    def set_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        self._writing = True
        self.rows.set_add_ppn(field, _per_row(ppn, self.rows.n),
                              self.ok & _per_row(when, self.rows.n))

    def queue_copy(self, dst: str, src: str) -> None:
        self._writing = True
        self.rows.queue_copy(dst, src, self.ok)

    def lru_use(self, vpn: Value, resident: Value) -> None:
        self._writing = True
        self.rows.lru_use(vpn, resident, self.ok)

    def lru_remove(self, mask: Value) -> None:
        self._writing = True
        self.rows.lru_remove(mask, self.ok)

    def touch(self, at: Value, token: Value, write: Value, cow: bool = True,
              lowest: bool = False) -> Value:
        assert not self._writing, "the VMM backs pages after the guard, before other effects"
        self.ok, mpn = self.rows.touch(at, token, write, cow, self.ok, lowest)
        self._writing = True
        return mpn

    def share(self, at: Value, other_vm: Value, other_at: Value, cow: bool = True) -> None:
        self._writing = True
        self.rows.share(dense(at), _per_row(other_vm, self.rows.n), dense(other_at), cow,
                        self.ok)

    def swap_out_oldest(self) -> None:
        self._writing = True
        self.rows.swap_out_oldest(self.ok)

    def write_pages(self, mask: Value, token: Value) -> None:
        assert not self._writing, "the VMM writes pages after the guard, before other effects"
        self.ok = self.rows.write_pages(mask, token, self.ok)
        self._writing = True


class VmRows(_VmMemory):
    """Rows that are distinct VMs ``vms`` of one :class:`SystemArrays`, in ascending order
    (for the host-page actions: distinct host pages).

    ``unback`` is the engine's (it keeps the counts of shared MPNs and the free-MPN
    hint); without one, unmapping is not available. ``vmm`` is the engine's VMM (its
    allocation of MPNs, copy-on-write and sharing), ``name`` the action the rows run.
    """

    def __init__(self, arr: SystemArrays, vms: Ints, unback: Unback | None = None,
                 vmm: "Vmm | None" = None, name: str = "") -> None:
        self.arr = arr
        self.cfg = arr.cfg
        self.vms = vms
        self.n = len(vms)
        self._unback = unback
        self.vmm = vmm
        self.name = name
        self._pf: npt.NDArray[np.unsignedinteger[Any]] | None = None
        # Flag bits given one value in every row and page, not yet applied to the rows
        # (see _flag_everywhere): those cleared, and of them those then set.
        self._pf_clear = 0
        self._pf_set = 0
        self._bits = flags_as(arr.page_flags.dtype)
        self._units_at = None
        self._use: Any = None
        self._use_before: Any = None
        # Whether the copies above were changed (then written back by commit); a copy
        # only read is dropped.
        self._pf_dirty = False
        self._use_dirty = False
        # Each flag read as truth values, until the flags change: a kernel reads the same
        # set several times (its guard, its effect), and each read is a pass over the rows.
        self._flag_reads: dict[str, Mask] = {}

    def _flags(self) -> npt.NDArray[np.unsignedinteger[Any]]:
        if self._pf is None:
            self._pf = self.arr.page_flags[self.vms]
        if self._pf_clear:
            # Flags every row was given one value of (a reset, a queue emptied): set or
            # cleared together, in one pass, before anything reads or changes the rows.
            pf, word = self._pf, self._pf.dtype.type
            pf &= ~word(self._pf_clear)
            if self._pf_set:
                pf |= word(self._pf_set)
            self._pf_clear = self._pf_set = 0
        return self._pf

    def _flag_everywhere(self, bit: Any, value: bool) -> None:
        """Every row's every page gets ``value`` for the flag ``bit``: noted, and applied
        with the other such flags when the rows are next read, changed or written back."""
        self._pf_clear |= int(bit)
        if value:
            self._pf_set |= int(bit)
        else:
            self._pf_set &= ~int(bit)
        self._flags_changed()

    def _no_such_flag(self, field: str, value: Any, ok: Mask) -> None:
        """A write to the flag of a feature the configuration switches off (its bit does
        not fit the flags' type): nothing to do where it puts no page in the set; where it
        would, the kernel and the configuration disagree, an internal error."""
        if np.any(np.broadcast_to(value, (self.n, *np.shape(value)[1:]))[ok]):
            raise AssertionError(f"{self.name}: writes {field}, whose feature is switched "
                                 "off in this configuration")

    def _flags_changed(self) -> None:
        """The rows' flags were changed in place: written back at commit, read again."""
        self._pf_dirty = True
        self._flag_reads.clear()

    def _uses(self) -> Any:
        if self._use is None:
            self._use = self.arr.ppn_use[self.vms]
        return self._use

    def _extra(self, field: str) -> dict[int, Any]:
        return getattr(self.arr, EXTRAS[field])

    def read(self, field: str) -> Any:
        a = self.arr
        if field in _MEMORY_READS:
            return self.read_memory(field)
        if field in FLAGS:
            known = self._flag_reads.get(field)
            if known is None:
                known = (self._flags() & self._bits[field]).astype(bool)  # cheaper than != 0
                known.flags.writeable = False  # shared by every read until the flags change
                self._flag_reads[field] = known
            return known
        if field == "guest.ppn_use":
            return self._uses()
        if field == "p2m":
            m = a.p2m[self.vms].astype(np.int64)
            return np.where(m == int(UNBACKED_MPN), -1, m)
        if field in ("guest.vcpus", "parked_vcpus"):
            bits = getattr(a, VM_ARRAYS[field])[self.vms]
            return ((bits[:, None] >> np.arange(self.cfg.vcpus)) & 1) == 1
        if field == "guest.lru":
            return a.lru_stamp[self.vms].astype(bool)
        if field == "guest.disk":
            return a.disk[self.vms].astype(bool)
        return getattr(a, VM_ARRAYS[field])[self.vms]

    def write(self, field: str, value: Any, ok: Mask) -> None:
        a = self.arr
        every = np.count_nonzero(ok) == self.n  # a count, cheaper than ok.all()
        if field == "guest.expected":
            shape = (self.n, a.expected.shape[1])
            same = constant_of(value)
            if every and same is not None:  # one token everywhere
                a.expected[self.vms] = same
            elif every:  # assigned as it is: a constant is not spread over the rows first
                a.expected[self.vms] = np.broadcast_to(value, shape)
            else:
                a.expected[self.vms[ok]] = np.broadcast_to(value, shape)[ok]
        elif field in FLAGS:
            bit = self._bits[field]
            same = constant_of(value)
            if not bit:
                self._no_such_flag(field, value if same is None else same, ok)
                return
            if every and same is not None:
                self._flag_everywhere(bit, bool(same))
                return
            rows = self._flags()
            # In place (the rows are this store's own copy), by arithmetic on the flag
            # words: the bit cleared in the rows of ``ok``, then set where ``value`` holds.
            # Selecting with np.where, or a ufunc's ``where=``, costs 8-20 times as much.
            if every:
                rows &= ~bit
            else:
                rows &= np.where(ok[:, None], ~bit, ~rows.dtype.type(0))
            if same is not None:  # a constant (a reset): the bit set everywhere or nowhere
                if same:
                    rows |= bit if every else np.where(ok[:, None], bit, rows.dtype.type(0))
            else:
                v = value if np.shape(value) == rows.shape else np.broadcast_to(value, rows.shape)
                if v.dtype != np.bool_:
                    v = v != 0
                on = v if every else v & ok[:, None]
                if on.any():
                    rows |= on.view(np.uint8).astype(rows.dtype, copy=False) << _bit_shift(bit)
            self._flags_changed()
        elif field == "guest.ppn_use":
            same = constant_of(value)
            if every and isinstance(same, int) and same < 0:
                # Every page of every row holds no VPN (a reset): straight into the arrays,
                # and the rows' VPN index is empty. A change kept aside before is replaced.
                a.ppn_use[self.vms] = same
                a.vppn[self.vms] = -1
                self._use = self._use_before = None
                self._use_dirty = False
                return
            if every and isinstance(same, int):
                # Every row gets one number: nothing of the rows is read. Their index is
                # synced against the arrays, which hold them as they were.
                if not self._use_dirty:
                    self._use_before = None
                self._use = np.full((self.n, a.ppn_use.shape[1]), same, dtype=a.ppn_use.dtype)
                self._use_dirty = True
                return
            use = self._uses()
            if not self._use_dirty:
                # The rows as the arrays hold them until commit (what write_at changed
                # before this, it changed in the arrays too).
                self._use_before = use
            new = value if np.shape(value) == use.shape else np.broadcast_to(value, use.shape)
            self._use = (new if every else np.where(ok[:, None], new, use)).astype(use.dtype)
            self._use_dirty = True
        elif field in ("guest.vcpus", "parked_vcpus"):
            packed = (np.asarray(value, dtype=np.int64) << np.arange(self.cfg.vcpus)).sum(axis=1)
            getattr(a, VM_ARRAYS[field])[self.vms[ok]] = packed[ok]
        else:
            target = getattr(a, VM_ARRAYS[field])
            if every:  # no selection of the rows, and a constant assigned as it is
                target[self.vms] = value if np.ndim(value) == 0 else _per_row(value, self.n)
            else:
                target[self.vms[ok]] = _per_row(value, self.n)[ok]

    def write_at(self, field: str, at: OneHot, value: Any, ok: Mask) -> None:
        a = self.arr
        if self.n == 1 and (field == "guest.expected"
                            or field == "guest.ppn_use" and not self._use_dirty):
            col = _one_entry(at, ok)
            if col < 0:
                return
            vm, x = int(self.vms[0]), _one_value(value)
            if field == "guest.expected":
                a.expected[vm, col] = x
                return
            # As below: into the arrays and the VPN -> PPN index, old entry first.
            was = int(a.ppn_use[vm, col])
            a.ppn_use[vm, col] = x
            if self._use is not None:
                self._use[0, col] = x
            if was >= 0:
                a.vppn[vm, was] = -1
            if x >= 0:
                a.vppn[vm, x] = col
            return
        r = _rows_of(ok & at.present())
        c = _in_rows(at.index, r)
        val = _in_rows(_per_row(value, self.n), r)
        v = _in_rows(self.vms, r)
        if field == "guest.ppn_use" and not self._use_dirty:
            # Straight into the arrays, the VPN -> PPN index with them (a whole-row write
            # pending in the copy is joined instead, and synced by commit).
            old = a.ppn_use[v, c].astype(np.int64)
            a.ppn_use[v, c] = val
            if self._use is not None:
                self._use[r, c] = val
            gone = old >= 0
            a.vppn[v[gone], old[gone]] = -1
            came = val >= 0
            a.vppn[v[came], val[came]] = c[came]
        elif field == "guest.ppn_use":
            self._use[r, c] = val
        elif field == "guest.expected":
            a.expected[v, c] = val
        elif field in FLAGS:
            rows, bit = self._flags(), self._bits[field]
            if not bit:
                self._no_such_flag(field, np.any(val), np.ones(self.n, dtype=bool))
                return
            rows[r, c] = np.where(val != 0, rows[r, c] | bit, rows[r, c] & ~bit)
            self._flags_changed()
        else:
            now = self.read(field)
            new = np.asarray(value)
            self.write(field, np.where(at.dense(), new[:, None] if new.ndim == 1 else new, now),
                       ok)

    def holding(self, vpn: Ints) -> OneHot | None:
        if self._use_dirty:
            return None
        if self.n == 1:
            d = _one_value(vpn)
            held = (int(self.arr.vppn[int(self.vms[0]), d])
                    if 0 <= d < self.cfg.guest_data_pages else -1)
            return OneHot(np.array([held], dtype=np.int64), self.cfg.guest_pages)
        v = _per_row(vpn, self.n, np.int64)
        known = (v >= 0) & (v < self.cfg.guest_data_pages)
        ppn = np.full(self.n, -1, dtype=np.int64)
        ppn[known] = self.arr.vppn[self.vms[known], v[known]]
        return OneHot(ppn, self.cfg.guest_pages)

    def queue_len(self, field: str) -> Ints:
        n = row_counts(self.read(field))
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
        bit = self._bits[field]
        if not bit:
            self._no_such_flag(field, mask, ok)
            return
        sel = mask & ok[:, None]
        dup = sel & self.read(field)
        if dup.any():
            extra = self._extra(field)
            for r, p in zip(*entries(dup)):
                extra.setdefault(int(self.vms[r]), []).append(int(p))
        rows = self._flags()
        # Arithmetic on the flag words, not a selection of them (several times cheaper).
        rows |= sel.view(np.uint8).astype(rows.dtype, copy=False) << _bit_shift(bit)
        self._flags_changed()

    def queue_clear(self, field: str, ok: Mask) -> None:
        if np.count_nonzero(ok) == self.n:
            self._flag_everywhere(self._bits[field], False)
        else:
            rows = self._flags()
            rows[ok] &= ~self._bits[field]
            self._flags_changed()
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
        if field == "host.swap_room":
            return self.claim_swap(need, ok)
        # One host for every row: rows are granted in order while the counter lasts.
        want = np.where(ok, need, 0)
        granted = ok & (np.cumsum(want) <= getattr(self.arr, field))
        setattr(self.arr, field, getattr(self.arr, field) - int(want[granted].sum()))
        return granted

    def give(self, field: str, n: Ints, ok: Mask) -> None:
        setattr(self.arr, field, getattr(self.arr, field)
                + int(_per_row(n, self.n)[ok].sum()))

    def unback(self, mask: Mask, ok: Mask, by_balloon: bool, scrub: bool) -> None:
        assert self._unback is not None, "these rows cannot unmap pages"
        r, c = _entries(mask, ok)
        self._unback(self.vms[r], c.astype(np.int64), by_balloon, scrub)

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        a = self.arr
        if not a.swap:
            return
        if isinstance(mask, OneHot):
            r, c = _entries(mask, ok)
            for v, p in zip(self.vms[r].tolist(), c.tolist()):
                a.swap.pop((v, p), None)
            return
        m, P = np.broadcast_to(mask, (self.n, self.cfg.guest_pages)), self.cfg.guest_pages
        if np.count_nonzero(m & ok[:, None]) <= len(a.swap):
            r, c = entries(m & ok[:, None])
            for v, p in zip(self.vms[r].tolist(), c.tolist()):
                a.swap.pop((v, p), None)
            return
        # Fewer swap entries than pages named (a reset of whole VMs): look each entry up.
        row = {v: k for k, v in enumerate(self.vms.tolist())}
        for v, p in list(a.swap):
            k = row.get(v)
            if k is not None and ok[k] and 0 <= p < P and m[k, p]:
                del a.swap[(v, p)]

    def commit(self) -> None:
        if self._pf_dirty:
            self.arr.page_flags[self.vms] = self._flags()
        if self._use_dirty:
            self.sync_vppn(self._use, self._use_before)
            self.arr.ppn_use[self.vms] = self._use


def _bit_shift(bit: Any) -> Any:
    """The position of a one-bit flag, in the flags' own type (a shift by it stays that
    type).

    >>> int(_bit_shift(np.uint8(8)))
    3
    """
    return type(bit)(int(bit).bit_length() - 1)


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Broadcast a VM value (``(n,)``) against a vector (``(n, k)``)."""
    if type(a) is OneHot:
        a = a.dense()
    if type(b) is OneHot:
        b = b.dense()
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim != b.ndim \
            and a.ndim and b.ndim:  # a 0-d array is a constant, broadcast as it is
        if a.ndim == 1:
            a = a[:, None]
        else:
            b = b[:, None]
    return a, b


class PageSets:
    """A PPN-set argument of a batch (``ppns``, ``refuse``), one set per row, read as the
    kernels ask for it: which PPNs in range (a mask per row), how many entries, whether
    they are distinct, whether some lie out of range and which (None where none does).

    Built by :func:`page_sets`; a store that runs one set for many rows (an explorer's
    instance, the same argument for every state of a batch) builds it once per set."""

    __slots__ = ("mask", "size", "distinct", "beyond", "outside")

    def __init__(self, mask: Mask, size: Ints, distinct: Mask, beyond: Mask,
                 outside: list[list[int]] | None) -> None:
        self.mask = mask
        self.size = size
        self.distinct = distinct
        self.beyond = beyond
        self.outside = outside


def page_sets(values: Any, repeats: Ints, pages: int) -> PageSets:
    """The PPN-set argument whose ``k``-th set (a tuple of PPNs, any values) holds for the
    next ``repeats[k]`` rows, for a VM of ``pages`` PPNs.

    >>> sets = page_sets([(1, 2), (0, 0, 7)], np.array([2, 1]), pages=4)
    >>> sets.mask.astype(int).tolist(), sets.size.tolist(), sets.distinct.tolist()
    ([[0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0]], [2, 2, 3], [True, True, False])
    >>> sets.beyond.tolist(), sets.outside
    ([False, False, True], [[], [], [7]])
    """
    k = len(values)
    if k == 1 and int(repeats[0]) == 1:
        one = tuple(values[0])
        if all(type(p) is int for p in one):  # one set of plain PPNs (one op per call)
            mask = np.zeros((1, pages), dtype=bool)
            if min(one, default=0) >= 0 and max(one, default=0) < pages:
                mask[0, one] = True
                out: list[int] = []
            else:
                mask[0, [p for p in one if 0 <= p < pages]] = True
                out = [p for p in one if not 0 <= p < pages]
            return PageSets(mask, np.array([len(one)]), np.array([len(set(one)) == len(one)]),
                            np.array([bool(out)]), [out] if out else None)
    sets = [tuple(t) for t in values]
    sel = np.zeros((k, pages), dtype=bool)
    size = np.fromiter(map(len, sets), dtype=np.int64, count=k)
    if k > 1 and not size.any():  # every set empty (a report with nothing refused)
        return PageSets(np.zeros((int(repeats.sum()), pages), dtype=bool),
                        np.zeros(int(repeats.sum()), dtype=np.int64),
                        np.ones(int(repeats.sum()), dtype=bool),
                        np.zeros(int(repeats.sum()), dtype=bool), None)
    flat = np.array([p for t in sets for p in t]) if k > 1 else np.zeros(0, dtype=object)
    if k > 1 and (flat.dtype.kind == "i" or (flat.dtype.kind == "f" and not len(flat))):
        # Every PPN an integer (the usual case): all sets at once, not one PPN at a time.
        flat = flat.astype(np.int64, copy=False)
        row = np.repeat(np.arange(k), size)
        inside = (flat >= 0) & (flat < pages)
        sel[row[inside], flat[inside]] = True
        # A set names some PPN twice where its sorted PPNs repeat one.
        order = np.lexsort((flat, row))
        twice = (row[order][1:] == row[order][:-1]) & (flat[order][1:] == flat[order][:-1])
        distinct = np.ones(k, dtype=bool)
        distinct[row[order][1:][twice]] = False
        out_rows = set(row[~inside].tolist()) if not inside.all() else set()
        outside = [[int(p) for p in t if not 0 <= p < pages] if j in out_rows else []
                   for j, t in enumerate(sets)] if out_rows else [[]] * k
    else:  # one set (one op per call), or some PPN not an integer: a set at a time
        distinct = np.ones(k, dtype=bool)
        outside = []
        for j, t in enumerate(sets):
            ints = all(isinstance(p, (int, np.integer)) for p in t)
            distinct[j] = ints and len(set(t)) == len(t)
            outside.append([int(p) for p in t if ints and not 0 <= p < pages])
            if ints:
                sel[j, [int(p) for p in t if 0 <= p < pages]] = True
    beyond = np.fromiter(map(bool, outside), dtype=bool, count=k)
    rows = (None if not beyond.any() else
            [x for x, n in zip(outside, repeats.tolist()) for _ in range(n)])
    if bool((repeats == 1).all()):  # one row a set: nothing to spread
        return PageSets(sel, size, distinct, beyond, rows)
    return PageSets(np.repeat(sel, repeats, axis=0), np.repeat(size, repeats),
                    np.repeat(distinct, repeats), np.repeat(beyond, repeats), rows)


def _and_one(hot: OneHot, x: Any) -> Any:
    """``hot`` and ``x`` (a truth value, one per row, a vector or another one-hot)."""
    if len(hot.index) == 1 and type(x) is np.ndarray and x.dtype == bool and x.ndim:
        i = int(hot.index[0])  # one row: its one entry looked up in Python numbers
        held = x[0, i] if x.ndim == 2 else x[0]
        return OneHot(np.array([i if i >= 0 and held else -1], dtype=np.int64), hot.width)
    if isinstance(x, OneHot):
        return OneHot(np.where(hot.index == x.index, hot.index, -1), hot.width)
    if isinstance(x, (bool, np.bool_)) or (isinstance(x, np.ndarray) and x.ndim <= 1):
        return hot.keep(x)
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype == bool:
        return hot.keep(hot.gather(x, False))
    return np.logical_and(*_pair(hot, x))


_FILLED: dict[tuple[Any, ...], Any] = {}
"""The constant vectors :func:`_constant_vector` made, by shape, type and value."""


def _constant_vector(shape: tuple[int, int], value: Any) -> Any:
    """``value`` seen through every entry of a ``shape`` array: no array of that size is
    made, and each shape and value is made once (read-only, so it can be shared)."""
    key = (shape, type(value), value)
    known = _FILLED.get(key)
    if known is None:
        if len(_FILLED) >= 256:
            _FILLED.clear()
        known = _FILLED[key] = np.broadcast_to(np.asarray(value), shape)
    return known


_TRUTHS = (bool, np.bool_)
"""The types of a constant truth value in a kernel."""

_NUMBERS = (int, bool)
"""The types of a kernel's constants and, for one row read as numbers, its VM values."""


def _without_uniform(xs: tuple[Any, ...], decides: bool) -> tuple[tuple[Any, ...], Any]:
    """The operands of an ``and_`` (``decides`` False) or ``or_`` (True) with the vectors that
    are one constant everywhere (:meth:`NumpyOps.filled`, a ``not_`` of one) taken out: such
    a vector holding ``decides`` is the answer (it has the widest shape a kernel's value
    has); one holding the other value drops out where another operand is a vector too."""
    const = [x for x in xs if type(x) is np.ndarray and x.ndim == 2 and uniform(x) is not None]
    if not const:
        return xs, None
    shape = const[0].shape  # only where it is every vector's shape: the answer keeps it
    if any(getattr(x, "ndim", 0) == 2 and x.shape != shape for x in xs):
        return xs, None
    for x in const:
        if bool(x.flat[0]) is decides:
            return xs, x
    rest = tuple(x for x in xs if not any(x is c for c in const))
    if any(getattr(x, "ndim", 0) == 2 for x in rest):
        return rest, None
    return xs, None


def _has_truth(xs: tuple[Any, ...]) -> bool:
    """Whether one of ``xs`` is a constant truth value (a loop: a generator costs more than
    the test on the few operands of a kernel's logic)."""
    for x in xs:
        t = type(x)
        if t is bool or t is np.bool_:
            return True
    return False


def _constant(value: bool, xs: tuple[Any, ...]) -> Any:
    """``value`` everywhere, shaped like the widest of ``xs`` (a vector, a truth value per
    row, or a constant where every one is a constant)."""
    shapes = [np.shape(x) for x in xs if type(x) not in _TRUTHS]
    if not shapes:
        return value
    return np.full(max(shapes, key=len), value, dtype=bool)


def _lift(fn: Callable[[Any, Any], Any],
          numbers: Callable[[Any, Any], Any] | None = None) -> Callable[["NumpyOps", Any, Any], Any]:
    """An operation of two values from ``fn`` on arrays (``numbers``: on two Python numbers,
    where NumPy's function would make a NumPy scalar at many times the cost)."""
    def op(self: "NumpyOps", a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if numbers is not None and ta in _NUMBERS and tb in _NUMBERS:
            return numbers(a, b)
        if ta is OneHot or tb is OneHot or (ta is np.ndarray and tb is np.ndarray
                                            and a.ndim != b.ndim):
            a, b = _pair(a, b)
        return fn(a, b)
    return op


def _all_true(n: int) -> Mask:
    """A fresh guard of ``n`` rows, every one holding (one row, the case of one operation
    per call: a copy of a template, a fraction of ``np.ones``)."""
    return _ONE_TRUE.copy() if n == 1 else np.ones(n, dtype=bool)


_ONE_TRUE = np.ones(1, dtype=bool)
_ONE_TRUE.flags.writeable = False


class NumpyOps(_NumpyMemory):
    """:class:`~ballast.model.ops.Ops` over a batch of rows; ``ok`` is the guard so far.

    ``scalars``: the rows are one row, and a VM's value (a field, an argument) is read as a
    Python number rather than an array of one entry. One operation per call (shrinking,
    replay) then computes its guard in Python numbers, a fraction of NumPy's cost on
    arrays of one entry; page vectors stay arrays, and a number stands for the one row's
    entry wherever an array would (the way a kernel's constants already do)."""

    def __init__(self, rows: Rows, args: Mapping[str, Any], scalars: bool = False) -> None:
        self.cfg = rows.cfg
        self.rows = rows
        self.args = args
        self._scalars = scalars and rows.n == 1
        self.ok: Mask = _all_true(rows.n)
        self._sets: dict[str, PageSets] = {}
        self._writing = False
        # The last mask whose first entries were found, and them: a kernel asks whether
        # a mask has an entry right beside asking for its first (one pass, not two).
        self._first: tuple[Any, OneHot] | None = None

    # -- reading -----------------------------------------------------------------------
    def vm(self, field: str) -> Value:
        return self._number(self.rows.read(field))

    def pages(self, field: str) -> Value:
        return self.rows.read(field)

    vcpus = vpns = pages

    def host(self, field: str) -> Value:
        return self.rows.host(field)

    def queued(self, field: str) -> Value:
        return self.rows.read(field)

    def queue_len(self, field: str) -> Value:
        return self._number(self.rows.queue_len(field))

    def _number(self, value: Any) -> Any:
        """A VM's value (one entry per row) as the kernel sees it: the one row's entry as a
        Python number where the rows are read as ``scalars``."""
        return value[0].item() if self._scalars else value

    def beyond(self, field: str) -> Value:
        return self.rows.beyond(field)

    # -- arguments -----------------------------------------------------------------------
    def arg(self, name: str) -> Value:
        if self._scalars:
            return int(self.args[name][0])
        return self._arg_rows(name)

    def _arg_rows(self, name: str) -> Ints:
        """A number argument, one entry per row."""
        return np.asarray(self.args[name], dtype=np.int64).reshape(-1)

    def _ppn_set(self, name: str) -> "PageSets":
        """A PPN-set argument (a boolean mask per row, a list of tuples or a
        :class:`PageSets`) as a :class:`PageSets`."""
        known = self._sets.get(name)
        if known is not None:
            return known
        raw = self.args[name]
        if isinstance(raw, PageSets):
            out = raw
        elif isinstance(raw, np.ndarray) and raw.dtype == bool:
            out = PageSets(raw, raw.sum(axis=1).astype(np.int64), np.ones(self.rows.n, dtype=bool),
                           np.zeros(self.rows.n, dtype=bool), None)
        else:
            out = page_sets(raw, np.ones(len(raw), dtype=np.int64), self.cfg.guest_pages)
        self._sets[name] = out
        return out

    def arg_pages(self, name: str) -> Value:
        return self._ppn_set(name).mask

    def arg_size(self, name: str) -> Value:
        return self._number(self._ppn_set(name).size)

    def arg_distinct(self, name: str) -> Value:
        return self._number(self._ppn_set(name).distinct)

    def arg_beyond(self, name: str) -> Value:
        return self._number(self._ppn_set(name).beyond)

    def arg_beyond_within(self, name: str, field: str) -> Value:
        sets = self._ppn_set(name)
        if sets.outside is None or not sets.beyond.any():
            return True
        have = self.rows.beyond_values(field)
        return np.array([set(x) <= h for x, h in zip(sets.outside, have)], dtype=bool)

    def arg_vcpu(self, name: str) -> Value:
        return self._arg_rows(name)[:, None] == np.arange(self.cfg.vcpus)

    # -- arithmetic and logic ------------------------------------------------------------
    def and_(self, *xs: Value) -> Value:
        if _has_truth(xs):
            # A constant: False decides, True drops out (a logical operation against a
            # scalar costs NumPy about twenty times one between two arrays).
            if any(type(x) in _TRUTHS and not x for x in xs):
                return _constant(False, xs)
            xs = tuple(x for x in xs if type(x) not in _TRUTHS)
            if not xs:
                return True
        if len(xs) > 1:
            xs, decided = _without_uniform(xs, False)
            if decided is not None:
                return decided
        hot = None
        for x in xs:
            if type(x) is OneHot:
                hot = x
                break
        if hot is not None:
            # One named entry per row stays one: keep the rows where the rest holds there.
            out: Any = hot
            for x in xs:
                if x is not hot:
                    out = _and_one(out, x)
            return out
        out = xs[0]
        for x in xs[1:]:
            out = np.logical_and(*_pair(out, x))
        return out

    def or_(self, *xs: Value) -> Value:
        if _has_truth(xs):
            if any(type(x) in _TRUTHS and x for x in xs):
                return _constant(True, xs)
            xs = tuple(x for x in xs if type(x) not in _TRUTHS)
            if not xs:
                return False
        if len(xs) > 1:
            xs, decided = _without_uniform(xs, True)
            if decided is not None:
                return decided
        out = xs[0]
        for x in xs[1:]:
            out = np.logical_or(*_pair(out, x))
        return out

    def not_(self, x: Value) -> Value:
        if type(x) is bool:
            return not x
        same = uniform(x)
        if same is not None:  # a constant vector stays one (see filled)
            return _constant_vector(x.shape, not same)
        return np.logical_not(dense(x))

    def implies(self, a: Value, b: Value) -> Value:
        return np.logical_or(*_pair(np.logical_not(dense(a)), b))

    eq = _lift(operator.eq)
    ne = _lift(operator.ne)
    lt = _lift(operator.lt)
    le = _lift(operator.le)
    add = _lift(operator.add)
    sub = _lift(operator.sub)
    minimum = _lift(np.minimum, min)
    maximum = _lift(np.maximum, max)

    def where(self, cond: Value, a: Value, b: Value) -> Value:
        if type(cond) is bool and type(a) in _NUMBERS and type(b) in _NUMBERS:
            return a if cond else b  # one row's numbers (see ``scalars``)
        if isinstance(a, OneHot) and isinstance(b, OneHot) and np.ndim(cond) <= 1:
            return OneHot(np.where(cond, a.index, b.index), a.width)
        cond, a = _pair(cond, a)
        cond, b = _pair(cond, b)
        same = uniform(cond)
        if same is not None:
            # One side everywhere (a reset): no selection, the other side unread.
            shape = np.broadcast_shapes(cond.shape, np.shape(a), np.shape(b))
            return np.broadcast_to(a if same else b, shape)
        return np.where(cond, a, b)

    # -- reductions and selections ----------------------------------------------------------
    def count(self, mask: Value) -> Value:
        if isinstance(mask, OneHot):
            return self._number(mask.present().astype(np.int64))
        if self._scalars:
            return int(np.count_nonzero(mask))
        return row_counts(mask)

    def any(self, mask: Value) -> Value:
        if type(mask) is OneHot:
            return mask.present()
        if self._first is not None and self._first[0] is mask:
            return self._first[1].present()
        return mask.any(axis=1)

    def all(self, mask: Value) -> Value:
        return dense(mask).all(axis=1)

    def lowest(self, mask: Value, k: Value) -> Value:
        if isinstance(k, int) and k == 1:
            if type(mask) is OneHot:
                return mask
            hot = one_hot(mask)  # the first entry that holds, as its index
            self._first = (mask, hot)
            return hot
        return first_k(dense(mask), k)

    def up_to_last(self, mask: Value) -> Value:
        return up_to_last(dense(mask))

    def unit_whole(self, mask: Value) -> Value:
        mask, u = dense(mask), self.cfg.balloon_unit_pages
        whole = mask.reshape(len(mask), -1, u).all(axis=2)
        return np.repeat(whole, u, axis=1)

    def filled(self, kind: str, value: Value) -> Value:
        return _constant_vector((self.rows.n, vector_width(self.cfg, kind)), value)

    def unit_first(self) -> Value:
        first = np.arange(self.cfg.guest_pages) % self.cfg.balloon_unit_pages == 0
        return np.tile(first, (self.rows.n, 1))

    # -- guard and effect -------------------------------------------------------------------
    def require(self, cond: Value) -> None:
        assert not self._writing, "a kernel requires nothing after its effect"
        if cond is not True:
            self.ok &= cond

    def set_vm(self, field: str, value: Value) -> None:
        self._writing = True
        self.rows.write(field, dense(value), self.ok)

    set_pages = set_vcpus = set_vm

    def set_at(self, field: str, at: Value, value: Value) -> None:
        write_at = getattr(self.rows, "write_at", None)
        if write_at is not None and isinstance(at, OneHot):
            self._writing = True
            write_at(field, at, value, self.ok)
            return
        self.set_vm(field, self.where(at, value, self.rows.read(field)))

    def holding(self, vpn: Value) -> Value:
        index = getattr(self.rows, "holding", None)
        held = index(vpn) if index is not None else None
        return self.eq(self.rows.read("guest.ppn_use"), vpn) if held is None else held

    def queue_add(self, field: str, mask: Value) -> None:
        self._writing = True
        self.rows.queue_add(field, dense(mask), self.ok)

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
        need = _per_row(n, self.rows.n, np.int64)
        self.ok = self.rows.claim(field, need, self.ok)
        self._writing = True

    def give(self, field: str, n: Value) -> None:
        self._writing = True
        self.rows.give(field, n, self.ok)

    def _mask(self, mask: Value) -> Value:
        """A mask for the store: a :class:`OneHot` as it is where the store takes one."""
        return mask if isinstance(self.rows, VmRows) else dense(mask)

    def unback(self, mask: Value, by_balloon: bool, scrub: bool = True) -> None:
        self._writing = True
        self.rows.unback(self._mask(mask), self.ok, by_balloon, scrub)

    def drop_swap(self, mask: Value) -> None:
        self._writing = True
        self.rows.drop_swap(self._mask(mask), self.ok)


_MEMORY_WRITES = frozenset({"p2m", "content", "mpn_flags", "page_flags", "swap", "refs"})
"""What the VMM's own operations (backing, copying, sharing, unmapping a page) may write."""


def _field_arrays(field: str) -> frozenset[str] | None:
    """The attributes of :class:`SystemArrays` a write of the model's ``field`` reaches
    (None: not known here)."""
    if field in FLAGS:
        return frozenset({"page_flags", EXTRAS.get(field, "page_flags")})
    known = {"guest.ppn_use": ("ppn_use", "vppn"), "guest.expected": ("expected",),
             "guest.disk": ("disk",), "host.swap": ("swap",), "host.free": ("mpn_flags",),
             "host.in_use": ("mpn_flags",), "host.reclaimed": ("mpn_flags",)}
    if field in known:
        return frozenset(known[field])
    if field in VM_ARRAYS:
        return frozenset({VM_ARRAYS[field]})
    return None


def _first_field(args: tuple[Any, ...]) -> frozenset[str] | None:
    return _field_arrays(args[0])


def _both_fields(args: tuple[Any, ...]) -> frozenset[str] | None:
    dst, src = _field_arrays(args[0]), _field_arrays(args[1])
    return None if dst is None or src is None else dst | src


_ROW_WRITES: dict[str, Callable[[tuple[Any, ...]], frozenset[str] | None]] = {
    **{name: _first_field for name in (
        "write", "write_at", "queue_add", "queue_clear", "queue_add_ppn", "set_add_ppn",
        "clear_beyond", "set_units", "set_tokens", "drop_tokens")},
    "queue_copy": _both_fields, "carry_beyond": _both_fields,
    "claim": lambda a: frozenset({a[0]}), "give": lambda a: frozenset({a[0]}),
    "claim_swap": lambda a: frozenset(),
    "drop_swap": lambda a: frozenset({"swap"}),
    "lru_use": lambda a: frozenset({"lru_stamp", "clock"}),
    "lru_remove": lambda a: frozenset({"lru_stamp", "clock"}),
    **{name: (lambda a: _MEMORY_WRITES) for name in (
        "touch", "write_pages", "share", "unback")},
}
"""Each writing operation of :class:`VmRows` -> the attributes of :class:`SystemArrays` it
may write, from its arguments."""

_ROW_READS = frozenset({
    "read", "read_memory", "read_tokens", "queue_len", "beyond", "beyond_values", "host",
    "vm_numbers", "at_mpn", "units", "lru_victim", "token_at", "other_mpn", "holding",
    "commit", "sync_vppn"})
"""The operations of :class:`VmRows` that write nothing of their own (``commit`` and
``sync_vppn`` write back what an operation of :data:`_ROW_WRITES` wrote)."""


class WriteLog(VmRows):
    """:class:`VmRows` that notes which attributes of the arrays its operations may write:
    ``writes`` (None once an operation it does not know of is called). A kernel calls the
    same operations on any rows of a configuration (it branches on the configuration only),
    so one run tells them for every run."""

    def __init__(self, arr: SystemArrays, vms: Ints, unback: Unback | None = None,
                 vmm: "Vmm | None" = None, name: str = "") -> None:
        super().__init__(arr, vms, unback, vmm, name)
        self.writes: set[str] | None = set()

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name.startswith("_") or name in _ROW_READS or not callable(value):
            return value
        written = _ROW_WRITES.get(name)

        def noted(*args: Any, **kw: Any) -> Any:
            some = None if written is None else written(args)
            have = object.__getattribute__(self, "writes")
            self.writes = None if have is None or some is None else have | some
            return value(*args, **kw)
        return noted


def run_kernel(kernel: Kernel, rows: Rows, args: Mapping[str, Any],
               scalars: bool = False) -> Mask:
    """Run ``kernel`` on every row; the mask of rows whose guard held (and took effect).
    ``scalars``: a VM's values as Python numbers where the rows are one row (see
    :class:`NumpyOps`)."""
    o = NumpyOps(rows, args, scalars)
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

    _holders: Ints | None = None
    """How many PPNs hold each (VM, VPN), once asked (a class default: a subclass reading
    other rows need not set it)."""

    _verified: Any = None
    """The VPNs held, as :meth:`_held_by_index` proved them (False: not proven), once asked
    (a class default, as above)."""

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
        return (a.mpn_flags & MPN_BITS[field]).astype(bool)[None, :]

    def pages(self, field: str) -> Value:
        rows = self.rows
        if not isinstance(rows, VmRows):  # rows of another store (frontier rows): its reads
            return super().pages(field)
        a = rows.arr
        # (The MPNs' type is looked at only for a read of them: the engine learns which
        # arrays a step form reads, and copies only those before a step it checks.)
        if field == "p2m" and a.p2m.dtype == np.uint32 and UNBACKED_MPN == 0xFFFFFFFF:
            # UNBACKED_MPN reads as -1, as the model's UNBACKED, not widened to 64 bits;
            # every VM in order is read in place rather than as a copy.
            return (a.p2m if self._every_vm else a.p2m[rows.vms]).view(np.int32)
        if not self._every_vm:
            return super().pages(field)
        # Every VM in order: read the system's arrays in place rather than a copy of them.
        if field in FLAGS:
            return (a.page_flags & flags_as(a.page_flags.dtype)[field]).astype(bool)
        if field == "guest.ppn_use":
            return a.ppn_use
        return super().pages(field)

    def _page_counts(self) -> Ints:
        """How many guest pages (of every VM) each MPN backs."""
        if self._by_page is None:
            p2m, M = self.arr.p2m, len(self.arr.mpn_flags)
            mpn = p2m[p2m != UNBACKED_MPN]
            self._by_page = np.bincount(mpn[mpn < M], minlength=M)
        return self._by_page

    def mapped(self) -> Value:
        if self._by_page is not None:
            return (self._by_page > 0)[None, :]
        # Marking each backed MPN is cheaper than counting its pages. UNBACKED_MPN is
        # above every MPN, so one comparison keeps the MPNs that exist.
        flat, M = self.arr.p2m.ravel(), len(self.arr.mpn_flags)
        out = np.zeros(M, dtype=bool)
        out[flat[flat < M]] = True
        return out[None, :]

    def shared(self, across_vms: bool) -> Value:
        twice = self._page_counts() > 1
        if not across_vms or not twice.any():
            return twice[None, :]
        # Only MPNs behind two or more pages can back pages of two or more VMs.
        p2m, M = self.arr.p2m, len(self.arr.mpn_flags)
        backed = (p2m != UNBACKED_MPN) & (p2m < M)
        backed[backed] = twice[p2m[backed]]
        vm, _ = entries(backed)
        mpn = p2m[backed].astype(np.int64)
        pairs = np.unique(vm * M + mpn)  # each (VM, MPN) once
        return (np.bincount(pairs % M, minlength=M) > 1)[None, :]

    def own_mpns(self) -> Value:
        G = self.cfg.guest_pages
        return self.vms[:, None] * G + np.arange(G)[None, :]

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

    def host_page_backs_two_vms(self) -> Value:
        # Each (VM, host page) pair once, then how many VMs each host page backs.
        p2m, M, u = self.arr.p2m, len(self.arr.mpn_flags), self.cfg.host_page_units
        H = M // u
        backed = p2m < M  # UNBACKED_MPN is above every MPN
        vm, _ = entries(backed)
        pairs = np.unique(vm * H + p2m[backed].astype(np.int64) // u)
        return (np.bincount(pairs % H, minlength=H) > 1)[None, :]

    def matches_vpn(self, x: Value, values: Value, vpn: Value) -> Value:
        vals, idx = np.asarray(values), np.asarray(vpn)
        D = vals.shape[1]
        inside = (idx >= 0) & (idx < D)
        if not inside.any():
            return np.ones(idx.shape, dtype=bool)
        if vals.ndim == idx.ndim == 2 and vals.shape[0] == idx.shape[0]:
            # One gather at flat indices (row * D + VPN), clipped to the array: cheaper than
            # take_along_axis's two index arrays. What an entry outside reads is not used.
            n = vals.shape[0]
            want = np.take(np.ravel(vals), np.arange(n)[:, None] * D + idx, mode="clip")
        else:
            want = np.take_along_axis(vals, np.where(inside, idx, 0).astype(np.int64), axis=1)
        return ~inside | (np.asarray(x) == want)

    def held(self, once: bool) -> Value:
        if self._holders is None and type(self.rows) is VmRows:
            if self._verified is None:
                self._verified = self._held_by_index()
            if self._verified is not False:
                return np.ones_like(self._verified) if once else self._verified
        counts = self._vpn_holders()
        return counts <= 1 if once else counts > 0

    def _held_by_index(self) -> Mask | bool:
        """The VPNs held, found through the engine's VPN -> PPN index (``vppn``) and proven
        from the page use alone, where that proves every VPN is held once; else False.

        A VPN counts as held where the PPN the index names holds it. Distinct VPNs so
        found are held by distinct PPNs, so when they are as many as the PPNs that hold
        any VPN, those PPNs hold no VPN twice and no other VPN: whatever the index says,
        the answer is the page use's own. Otherwise (False) the holders are counted."""
        a, D = self.arr, self.cfg.guest_data_pages
        use = np.asarray(self.pages("guest.ppn_use"))
        vppn = a.vppn if self._every_vm else a.vppn[self.vms]
        n, P = use.shape
        if vppn.shape != (n, D) or P >= 2**15:
            return False
        named = vppn >= 0
        flat = np.arange(n, dtype=np.int64)[:, None] * P + np.where(named, vppn, 0)
        verified = named & (np.take(use.ravel(), flat) == np.arange(D, dtype=use.dtype))
        # A VPN number is in 0..D-1: read as unsigned, a negative use (free, balloon) is
        # above D too, so one comparison counts the PPNs holding one.
        holding = row_counts(use.view(f"u{use.dtype.itemsize}") < D
                             if use.dtype.kind == "i" else (use >= 0) & (use < D))
        if not bool((row_counts(verified) == holding).all()):
            return False
        return verified

    def _vpn_holders(self) -> Ints:
        """How many PPNs hold each (VM, VPN): one bincount over flat indices, the PPNs that
        hold no VPN counted in a last bin (read once per state: every ask is for this one)."""
        if self._holders is None:
            use = np.asarray(self.pages("guest.ppn_use"))
            n, D = len(self.vms), self.cfg.guest_data_pages
            inside = (use >= 0) & (use < D)
            at = np.where(inside, np.arange(n)[:, None] * D + use, n * D)
            self._holders = np.bincount(at.ravel(), minlength=n * D + 1)[:n * D].reshape(n, D)
        return self._holders

    def unchanged(self, before: Any) -> Value:
        return np.array([before.arr.vm_record(int(v)) == self.arr.vm_record(int(v))
                         for v in self.vms.tolist()], dtype=bool)


def property_holds(check: StateCheck, arr: SystemArrays, vms: Ints | None = None) -> Mask:
    """Whether a part of a property kernel holds: per VM of ``vms`` (a mask over them) for a
    per-VM part, once for the system (a mask of one row) for a host part (``vms`` None)."""
    rows = np.zeros(1, dtype=np.int64) if vms is None else vms
    n = 1 if vms is None else len(vms)
    out = check(NumpyStateOps(arr, rows))
    return np.broadcast_to(np.asarray(out, dtype=bool), (n,))
