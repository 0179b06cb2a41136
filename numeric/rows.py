# mypy: disable-error-code="no-any-return"
"""Where a batch's rows live, as the NumPy interpreter sees them: the :class:`Rows` store a
kernel reads and writes through, its memory operations (:class:`MemoryRows`), the VMM under
a store (:class:`Vmm`), and the small helpers every store uses on masks and row indices.
:class:`~ballast.numeric.vm_rows.VmRows` is the numeric engine's store;
:class:`~ballast.statespace.frontier_rows.FrontierRows` the frontier explorer's.

>>> rows_of(np.array([False, True, True])).tolist()
[1, 2]
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.onehot import OneHot
from ballast.numeric.rowscan import entries

__all__ = ["MemoryRows", "Rows", "Unback", "Vmm", "constant_of", "entries_of", "in_rows",
           "int_vector", "mpn_index", "one_entry", "one_value", "per_row", "renumber_stamps",
           "rows_of", "uniform", "whole_rows"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


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

class Vmm(Protocol):
    """The VMM of one system: how it backs, copies and shares machine pages."""

    def vmm_touch(self, vms: Ints, ppns: Ints, tokens: Ints, write: Mask | None, cow: bool,
                  name: str, lowest: bool = False) -> tuple[Mask, Ints]:
        """``fault_in`` (and ``write_page`` where ``write``; None: every op) per (VM, PPN), in
        order: which succeeded and the MPN each ends on (``lowest``: see
        ``MemoryOps.touch``)."""

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

    def touch(self, at: Mask, token: Ints, write: Mask | bool, cow: bool, ok: Mask,
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

    def lowest_holding(self, value: int) -> OneHot | None:
        """Each row's lowest PPN whose page-table entry is ``value`` (-1: none), found from
        the lowest PPNs up (None: these rows do not scan)."""

    def write_at(self, field: str, at: OneHot | Mask, value: Any, ok: Mask) -> None:
        """Set the entries ``at`` (one per row, or a mask of any) of a page or VPN vector,
        in the rows of ``ok``."""

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


def int_vector(x: Any) -> Ints:
    """``x`` (VM numbers, a number argument) as a one-dimensional int64 array: itself where
    it is one already, as the workload draws them.

    >>> int_vector([3, 1]).tolist(), int_vector(np.int64(2)).tolist()
    ([3, 1], [2])
    """
    if type(x) is np.ndarray and x.dtype == np.int64 and x.ndim == 1:
        return x
    return np.asarray(x, dtype=np.int64).reshape(-1)


def per_row(x: Any, n: int, dtype: Any = None) -> Any:
    """``x`` (one value per row, or one for every row) as an ``(n,)`` array: itself where it
    is one already (the kernels' values mostly are)."""
    if type(x) is np.ndarray and x.shape == (n,) and (dtype is None or x.dtype == dtype):
        return x
    if np.ndim(x) == 0:
        return np.full(n, x, dtype=dtype)
    return np.broadcast_to(np.asarray(x, dtype=dtype), (n,))


def rows_of(mask: Any) -> Ints:
    """The positions where a one-dimensional mask holds (``np.flatnonzero`` without its
    reshaping, which the interpreter pays on every row set)."""
    return np.asarray(mask).nonzero()[0]


def one_entry(at: Any, ok: Mask) -> int:
    """For rows of one row: the column the one-hot ``at`` names there, -1 where it names
    none or the row's guard failed. One operation at a time (shrinking, replay) then goes
    in Python numbers rather than arrays of one entry, a fraction of the cost.

    >>> one_entry(OneHot(np.array([2]), 4), np.array([True]))
    2
    >>> one_entry(OneHot(np.array([2]), 4), np.array([False]))
    -1
    """
    return int(at.index[0]) if ok[0] else -1


def one_value(value: Any) -> int:
    """The one row's entry of a value given per row or for every row."""
    t = type(value)
    if t is int or t is bool:
        return int(value)
    if t is np.ndarray:
        return int(value.reshape(-1)[0] if value.ndim else value)
    return int(value if np.ndim(value) == 0 else np.asarray(value).reshape(-1)[0])


def entries_of(mask: Any, ok: Mask) -> tuple[Ints, Ints]:
    """(row, column) of every entry of ``mask`` in the rows of ``ok``, row by row."""
    if isinstance(mask, OneHot):
        r = rows_of(ok & mask.present())
        return r, in_rows(mask.index, r)
    return entries(mask & ok[:, None])


def in_rows(values: Any, rows: Ints) -> Any:
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


def whole_rows(mask: Any, ok: Mask) -> Ints | None:
    """The rows of ``ok`` when ``mask`` holds everywhere in them (a reset), else None."""
    if isinstance(mask, OneHot) or not ok.any():
        return None
    same = uniform(mask)
    whole = bool(mask[ok].all()) if same is None else bool(same)
    return rows_of(ok) if whole else None


def renumber_stamps(a: SystemArrays) -> None:
    """Compact the LRU stamps to ``1..resident`` (same order) when the clock runs high."""
    flat = a.lru_stamp.ravel()
    live = rows_of(flat)
    order = np.argsort(flat[live], kind="stable")
    flat[live[order]] = np.arange(1, len(live) + 1, dtype=np.uint32)
    a.clock = len(live)
