# mypy: disable-error-code="no-any-return"
"""The numeric engine's store: :class:`VmRows`, rows that are distinct VMs of one
:class:`~ballast.numeric.arrays.SystemArrays` (their shared host resources handed out in row
order), with its memory operations; and :class:`WriteLog`, the same store noting what a
kernel may write.

>>> from ballast.model.config import Config
>>> arr = SystemArrays.initial(Config(vms=2, guest_pages=2, machine_pages=4))
>>> VmRows(arr, np.array([1])).read("target").tolist()
[0]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.numeric.arrays import (
    COW_BIT, FREE_BIT, IN_USE_BIT, RECLAIMED_BIT, UNBACKED_MPN, SystemArrays,
)
from ballast.numeric.fields import EXTRAS, FLAGS, VM_ARRAYS, flags_as
from ballast.numeric.onehot import OneHot, one_hot
from ballast.numeric.rows import (
    Unback, Vmm, constant_of, entries_of, in_rows, mpn_index, one_entry, one_value, per_row,
    renumber_stamps, rows_of, uniform, whole_rows,
)
from ballast.numeric.rowscan import entries, row_counts

__all__ = ["VmRows", "WriteLog"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

_MEMORY_READS = frozenset({"host.swap", "guest.expected"})
_UNIT_BITS = {"host.free": FREE_BIT, "host.in_use": IN_USE_BIT, "host.reclaimed": RECLAIMED_BIT}


class _VmMemory:
    """The memory operations of :class:`VmRows`."""

    arr: SystemArrays
    cfg: Config
    vms: Ints
    n: int
    vmm: "Vmm | None"
    name: str
    _units_at: Ints | None
    _units_now: Any
    _units_dirty: bool
    _stamp_rows: Any

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        raise NotImplementedError

    def _vmm(self) -> Vmm:
        assert self.vmm is not None, "these rows have no VMM"
        self._flush_units()
        self._units_now = None  # the VMM may change them
        return self.vmm

    def _unit_flags(self) -> Any:
        """The flags of each row's host page (a copy, until written back)."""
        if self._units_now is None:
            self._units_now = self.arr.mpn_flags[self._unit_index()]
        return self._units_now

    def _flush_units(self) -> None:
        """Write back the flags of the rows' host pages that :meth:`set_units` changed."""
        if self._units_dirty:
            self.arr.mpn_flags[self._unit_index()] = self._units_now
            self._units_dirty = False

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

    def at_mpn(self, field: str, mpn: Ints | int) -> Any:
        # One gather from a table with an extra last entry for "no MPN" (negative, or beyond
        # the host's): no mask passes over the (VMs x pages) array. Building the table costs
        # a pass over the host's MPNs, so a few MPNs (one op per call) are read in place.
        a = self.arr
        self._flush_units()
        M = len(a.content)
        if type(mpn) is int:  # one row's MPN read as a number: its value, as one
            named = 0 <= mpn < M
            if field == "host.cow":
                return named and bool(a.mpn_flags[mpn] & COW_BIT)
            return int(a.content[mpn]) if named else 0
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
        return (self._unit_flags() & _UNIT_BITS[field]).astype(bool)

    def set_units(self, field: str, value: Mask, ok: Mask) -> None:
        bit, flags = _UNIT_BITS[field], self._unit_flags()
        idx, val = self._unit_index(), np.asarray(value)
        if val.shape != idx.shape:
            val = np.broadcast_to(val, idx.shape)
        every = np.count_nonzero(ok) == self.n
        if not every:
            idx, val = idx[ok], val[ok]
        # Into the copy of the rows' units, written back once (a kernel sets several flags
        # of the same units): where every unit gets the same value (taking or returning a
        # whole host page), set or cleared without a selection.
        same = uniform(val)
        some = np.count_nonzero(val) if same is None else (val.size if same else 0)
        now = flags if every else flags[ok]
        if some == val.size:
            now |= bit
        elif not some:
            now &= ~bit
        else:
            now = np.where(val, now | bit, now & ~bit)
        if not every or some not in (0, val.size):
            flags[ok] = now
        self._units_dirty = True
        if field == "host.free" and self.vmm is not None and some:
            self.vmm.vmm_mark_free(idx[val])

    def lru_victim(self) -> OneHot:
        if self.n == 1:
            row = self.arr.lru_stamp[int(self.vms[0])]
            vic = int(np.argmin(row - row.dtype.type(1)))  # as below, for one row
            return OneHot(np.array([vic if row[vic] else -1], dtype=np.int64), len(row))
        st = self._stamps()
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
        if field == "guest.disk" and at.index.min() >= 0:  # an entry in every row
            d = self.arr.disk[self.vms, at.index].astype(np.int64)
            return np.where(d > 0, d - 1, 0)
        r = rows_of(at.present())
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
            col = one_entry(mask, ok)
            if col >= 0:
                vm, x = int(self.vms[0]), one_value(token)
                if field == "guest.disk":
                    a.disk[vm, col] = x + 1
                else:
                    a.swap[(vm, col)] = x
            return
        tok = np.asarray(token, dtype=np.int64)
        r, c = entries_of(mask, ok)
        t = per_row(tok, self.n)[r] if tok.ndim <= 1 else tok[r, c]
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
            c = one_entry(mask, ok)
            if c >= 0:
                self.arr.disk[int(self.vms[0]), c] = 0
            return
        self._clear_entries(self.arr.disk, mask, ok)

    def _clear_entries(self, table: Any, mask: Mask, ok: Mask) -> None:
        """Zero the entries of ``mask`` in a per-row ``table`` (rows of ``ok``): whole rows
        at once where the mask covers them."""
        whole = whole_rows(mask, ok)
        if whole is not None:
            table[self.vms[whole]] = 0
            return
        r, c = entries_of(mask, ok)
        table[self.vms[r], c] = 0

    def queue_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        a, P, bit = self.arr, self.cfg.guest_pages, FLAGS[field]
        rows = self._flags()  # type: ignore[attr-defined]
        self._flags_changed()  # type: ignore[attr-defined]
        for k in rows_of(ok).tolist():
            p = int(ppn[k])
            if 0 <= p < P and not rows[k, p] & bit:
                rows[k, p] |= bit
            else:
                getattr(a, EXTRAS[field]).setdefault(int(self.vms[k]), []).append(p)

    def set_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        a, P, bit = self.arr, self.cfg.guest_pages, FLAGS[field]
        rows = self._flags()  # type: ignore[attr-defined]
        self._flags_changed()  # type: ignore[attr-defined]
        for k in rows_of(ok).tolist():
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

    def _stamps(self) -> Any:
        """The rows' LRU stamps (read once: the guard reads them twice, the order and the
        victim), until the rows' LRU order changes."""
        if self._stamp_rows is None:
            self._stamp_rows = self.arr.lru_stamp[self.vms]
        return self._stamp_rows

    def lru_use(self, vpn: Mask, resident: Mask, ok: Mask) -> None:
        a = self.arr
        self._stamp_rows = None
        if self.n == 1:
            c = one_entry(one_hot(vpn), ok)
            if c >= 0:
                a.clock += 1
                a.lru_stamp[int(self.vms[0]), c] = a.clock
                if a.clock > 2**31:
                    renumber_stamps(a)
            return
        live, vs = entries_of(one_hot(vpn), ok)
        a.lru_stamp[self.vms[live], vs] = a.clock + 1 + np.arange(len(live))
        a.clock += len(live)
        if a.clock > 2**31:
            renumber_stamps(a)

    def lru_remove(self, mask: Mask, ok: Mask) -> None:
        self._stamp_rows = None
        self._clear_entries(self.arr.lru_stamp, mask, ok)

    def touch(self, at: Mask, token: Ints, write: Mask | bool, cow: bool, ok: Mask,
              lowest: bool = False) -> tuple[Mask, Ints]:
        if self.n == 1:
            return self._touch_row(at, token, write, cow, bool(ok[0]), lowest)
        idx = rows_of(ok)
        tok = in_rows(per_row(token, self.n, np.int64), idx)
        # Every op writes (a batch of writes): no mask of them, to the VMM's None.
        wr = None if write is True else in_rows(per_row(write, self.n, np.bool_), idx)
        page = (np.maximum(in_rows(at.index, idx), 0) if isinstance(at, OneHot)
                else np.argmax(at[idx], axis=1))
        # The VMM reads the tokens and write marks, never writes them.
        done, new = self._vmm().vmm_touch(in_rows(self.vms, idx), page, tok, wr, cow,
                                          self.name, lowest)
        self._forget_flags()
        new = np.asarray(new, dtype=np.int64)
        backed = np.where(new == int(UNBACKED_MPN), -1, new)
        if len(idx) == self.n:  # every row passed its guard (a batch nearly always)
            return np.asarray(done, dtype=bool), backed
        granted = np.zeros(self.n, dtype=bool)
        granted[idx[done]] = True
        mpn = np.full(self.n, -1, dtype=np.int64)
        mpn[idx] = backed
        return granted, mpn

    def _touch_row(self, at: Mask, token: Ints, write: Mask | bool, cow: bool, ok: bool,
                   lowest: bool) -> tuple[Mask, Ints]:
        """:meth:`touch` of rows of one row, its values taken as Python numbers."""
        self._forget_flags()
        if not ok:
            return np.zeros(1, dtype=bool), np.full(1, -1, dtype=np.int64)
        page = (max(int(at.index[0]), 0) if isinstance(at, OneHot)
                else int(np.argmax(np.asarray(at)[0])))
        done, new = self._vmm().vmm_touch(
            self.vms, np.array([page]), np.array([one_value(token)]),
            np.array([bool(one_value(write))]), cow, self.name, lowest)
        m = int(new[0])
        return (np.array([bool(done[0])]),
                np.array([-1 if m == int(UNBACKED_MPN) else m], dtype=np.int64))

    def share(self, at: Mask, other_vm: Ints, other_at: Mask, cow: bool, ok: Mask) -> None:
        for k in rows_of(ok).tolist():
            self._vmm().vmm_share_pages(int(self.vms[k]), int(np.argmax(at[k])),
                                        int(other_vm[k]), int(np.argmax(other_at[k])), cow)

    def swap_out_oldest(self, ok: Mask) -> None:
        for k in rows_of(ok).tolist():
            self._vmm().vmm_swap_out_oldest(int(self.vms[k]))
        self._forget_flags()

    def claim_swap(self, need: Ints, ok: Mask) -> Mask:
        room = self.cfg.host_swap_slots - len(self.arr.swap)
        if self.n == 1:  # one op: its one number looked at in Python
            return np.array([bool(ok[0]) and int(need[0]) <= room])
        return ok & (np.cumsum(np.where(ok, need, 0)) <= room)

    def write_pages(self, mask: Mask, token: Ints, ok: Mask) -> Mask:
        a, out = self.arr, ok.copy()
        tok = per_row(token, self.n, np.int64)
        for k in rows_of(ok).tolist():
            v = int(self.vms[k])
            held = [p for p in rows_of(mask[k]).tolist()
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


_FIRST_WINDOW = 32
"""The PPNs :meth:`VmRows.lowest_holding` reads first in each row (then four times as
many, and so on, in the rows not yet answered)."""


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
        self._units_now = None
        self._units_dirty = False
        self._stamp_rows = None
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

    def _used_bits(self) -> int:
        """The flag bits the configuration's features use."""
        used = 0
        for bit in self._bits.values():
            used |= int(bit)
        return used

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
        number = _VM_NUMBERS.get(field)
        if number is not None:  # a number per VM (the most read)
            return getattr(a, number)[self.vms]
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
            m = a.p2m[self.vms]
            if m.dtype == np.uint32 and UNBACKED_MPN == 0xFFFFFFFF:
                return m.view(np.int32)  # UNBACKED_MPN reads as -1 (the model's UNBACKED)
            m = m.astype(np.int64)
            return np.where(m == int(UNBACKED_MPN), -1, m)
        if field in ("guest.vcpus", "parked_vcpus"):
            bits = getattr(a, VM_ARRAYS[field])[self.vms]
            return ((bits[:, None] >> np.arange(self.cfg.vcpus)) & 1) == 1
        if field == "guest.lru":
            return self._stamps() != 0  # (cheaper than astype for 32-bit stamps)
        if field == "guest.disk":
            return a.disk[self.vms].astype(bool)
        return getattr(a, VM_ARRAYS[field])[self.vms]

    def write(self, field: str, value: Any, ok: Mask) -> None:
        a = self.arr
        every = np.count_nonzero(ok) == self.n  # a count, cheaper than ok.all()
        number = _VM_NUMBERS.get(field)
        if number is not None:  # a number per VM
            self._write_per_vm(getattr(a, number), value, ok, every)
        elif field == "guest.expected":
            shape = (self.n, a.expected.shape[1])
            same = constant_of(value)
            if every and same is not None:  # one token everywhere
                a.expected[self.vms] = same
            elif every:  # assigned as it is: a constant is not spread over the rows first
                a.expected[self.vms] = np.broadcast_to(value, shape)
            else:
                a.expected[self.vms[ok]] = np.broadcast_to(value, shape)[ok]
        elif field in FLAGS:
            self._write_flag(field, value, ok, every)
        elif field == "guest.ppn_use":
            self._write_page_table(value, ok, every)
        elif field in ("guest.vcpus", "parked_vcpus"):
            packed = (np.asarray(value, dtype=np.int64) << np.arange(self.cfg.vcpus)).sum(axis=1)
            getattr(a, VM_ARRAYS[field])[self.vms[ok]] = packed[ok]
        else:
            self._write_per_vm(getattr(a, VM_ARRAYS[field]), value, ok, every)

    def _write_per_vm(self, target: Any, value: Any, ok: Mask, every: bool) -> None:
        """:meth:`write` of an array with one entry (or row) per VM, ``target``."""
        if every:  # no selection of the rows, and a constant assigned as it is
            target[self.vms] = value if np.ndim(value) == 0 else per_row(value, self.n)
        else:
            target[self.vms[ok]] = per_row(value, self.n)[ok]

    def _write_flag(self, field: str, value: Any, ok: Mask, every: bool) -> None:
        """:meth:`write` of a per-page flag (``every``: ``ok`` holds in every row)."""
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

    def _write_page_table(self, value: Any, ok: Mask, every: bool) -> None:
        """:meth:`write` of the guest's page table (``every``: ``ok`` holds in every row):
        kept aside until commit, with the rows' VPN index."""
        a = self.arr
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

    def write_at(self, field: str, at: OneHot | Mask, value: Any, ok: Mask) -> None:
        a = self.arr
        if not isinstance(at, OneHot):
            self._write_mask(field, at, value, ok)
            return
        if self.n == 1 and (field == "guest.expected"
                            or field == "guest.ppn_use" and not self._use_dirty):
            col = one_entry(at, ok)
            if col < 0:
                return
            vm, x = int(self.vms[0]), one_value(value)
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
        if field not in _ENTRY_FIELDS and field not in FLAGS:
            now = self.read(field)
            new = np.asarray(value)
            self.write(field, np.where(at.dense(), new[:, None] if new.ndim == 1 else new, now),
                       ok)
            return
        r = rows_of(ok & at.present())
        self._write_entries_of(field, in_rows(self.vms, r), r, in_rows(at.index, r),
                               in_rows(per_row(value, self.n), r))

    def _write_mask(self, field: str, mask: Mask, value: Any, ok: Mask) -> None:
        """:meth:`write_at` of any set of entries per row: the page table entry by entry
        (the few pages an inflate takes of a guest's many), other fields as a whole."""
        if field in FLAGS and type(value) is bool:
            # A set gains (or loses) the PPNs of the mask: its bit set (or cleared) there,
            # by arithmetic on the flag words, the set's other PPNs unread.
            bit = self._bits[field]
            on = np.broadcast_to(mask, (self.n, self.cfg.guest_pages)) & ok[:, None]
            if not bit:
                self._no_such_flag(field, on if value else False, ok)
                return
            if not on.any():
                return
            bits = on.view(np.uint8).astype(self._flags().dtype, copy=False) << _bit_shift(bit)
            rows = self._flags()
            if value:
                rows |= bits
            else:
                rows &= ~bits
            self._flags_changed()
            return
        if field != "guest.ppn_use" or self._use_dirty:
            now = self.read(field)
            new = np.asarray(value)
            self.write(field, np.where(mask, new[:, None] if new.ndim == 1 else new, now), ok)
            return
        r, c = entries(mask & ok[:, None])
        val = np.broadcast_to(value if np.ndim(value) == 0 else per_row(value, self.n)[r],
                              r.shape)
        self._write_entries_of(field, self.vms[r], r, c, val)

    def _write_entries_of(self, field: str, v: Ints, r: Ints, c: Ints, val: Any) -> None:
        """Set entry ``c`` of row ``r`` (VM ``v``) of ``field`` to ``val``, for each of them."""
        a = self.arr
        if field == "guest.ppn_use" and not self._use_dirty:
            # Straight into the arrays, the VPN -> PPN index with them (a whole-row write
            # pending in the copy is joined instead, and synced by commit).
            old = a.ppn_use[v, c]  # (a gather: a copy, in the table's own type)
            a.ppn_use[v, c] = val
            self._use = None  # (read again if asked: a kernel seldom reads what it wrote)
            if not len(r):
                return
            if old.max() >= 0:  # a VPN left its PPN (a page fresh from the free list: none)
                gone = old >= 0
                a.vppn[v[gone], old[gone]] = -1
            val = np.asarray(val)
            if val.min() >= 0:  # each entry now holds a VPN (a page faulted in)
                a.vppn[v, val] = c
            else:
                came = val >= 0
                a.vppn[v[came], val[came]] = c[came]
        elif field == "guest.ppn_use":
            self._use[r, c] = val
        elif field == "guest.expected":
            a.expected[v, c] = val
        else:
            rows, bit = self._flags(), self._bits[field]
            if not bit:
                self._no_such_flag(field, np.any(val), np.ones(self.n, dtype=bool))
                return
            rows[r, c] = np.where(val != 0, rows[r, c] | bit, rows[r, c] & ~bit)
            self._flags_changed()

    def lowest_holding(self, value: int) -> OneHot | None:
        if self._use_dirty or self._use is not None:
            return None  # the rows' page table is at hand (or pending): read as it is
        table, n = self.arr.ppn_use, self.n
        width = table.shape[1]
        if n == 1:  # one row (one op per call): its entries searched in place
            hits = (table[int(self.vms[0])] == value).nonzero()[0]
            return OneHot(np.array([hits[0] if len(hits) else -1], dtype=np.int64), width)
        found = np.full(n, -1, dtype=np.int64)
        todo = np.arange(n)
        # A window of the lowest PPNs first, widened for the rows it leaves unanswered: the
        # allocator's lowest free page is usually near the bottom, so most rows read a
        # fraction of their page table.
        low, span = 0, _FIRST_WINDOW
        while len(todo) and low < width:
            high = min(width, low + span)
            window = table[self.vms[todo], low:high] == value
            first = window.argmax(axis=1)
            hit = window[np.arange(len(todo)), first]
            found[todo[hit]] = first[hit] + low
            todo = todo[~hit]
            low, span = high, span * 4
        return OneHot(found, width)

    def holding(self, vpn: Ints) -> OneHot | None:
        if self._use_dirty:
            return None
        if self.n == 1:
            d = one_value(vpn)
            held = (int(self.arr.vppn[int(self.vms[0]), d])
                    if 0 <= d < self.cfg.guest_data_pages else -1)
            return OneHot(np.array([held], dtype=np.int64), self.cfg.guest_pages)
        v = per_row(vpn, self.n, np.int64)
        if v.min() >= 0 and v.max() < self.cfg.guest_data_pages:  # every VPN one of the VM's
            return OneHot(self.arr.vppn[self.vms, v].astype(np.int64), self.cfg.guest_pages)
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
                + int(per_row(n, self.n)[ok].sum()))

    def unback(self, mask: Mask, ok: Mask, by_balloon: bool, scrub: bool) -> None:
        assert self._unback is not None, "these rows cannot unmap pages"
        self._flush_units()
        self._units_now = None  # unmapping frees MPNs
        r, c = entries_of(mask, ok)
        self._unback(self.vms[r], c.astype(np.int64), by_balloon, scrub)

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        a = self.arr
        if not a.swap:
            return
        if isinstance(mask, OneHot):
            r, c = entries_of(mask, ok)
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
        self._flush_units()
        if self._pf_dirty:
            if self._pf is None and not self._used_bits() & ~self._pf_clear:
                # Every flag given one value everywhere (a reset): no row read first.
                self.arr.page_flags[self.vms] = self._pf_set
            else:
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


_VM_NUMBERS = {field: name for field, name in VM_ARRAYS.items()
               if field not in ("guest.vcpus", "parked_vcpus")}
"""The per-VM numbers held as they are (a vCPU set is held as a bit mask)."""

_ENTRY_FIELDS = frozenset({"guest.ppn_use", "guest.expected"})
"""The vector fields :meth:`VmRows.write_at` writes entry by entry (as the flags)."""


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
