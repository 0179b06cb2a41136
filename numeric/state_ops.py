# mypy: disable-error-code="no-any-return"
"""The property kernels (:mod:`ballast.model.property_kernels`) over one system's arrays:
:class:`NumpyStateOps` reads a state a row per VM, :func:`property_holds` says which VMs
(or the system) break a state form.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ballast.model.ops import Value
from ballast.model.property_kernels import StateCheck
from ballast.numeric.arrays import UNBACKED_MPN, SystemArrays
from ballast.numeric.fields import FLAGS, MPN_BITS, VM_ARRAYS, flags_as
from ballast.numeric.interpret import NumpyOps
from ballast.numeric.rowscan import entries, row_counts
from ballast.numeric.vm_rows import VmRows

__all__ = ["NumpyStateOps", "property_holds"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


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
