"""The canonical form of :mod:`ballast.statespace.symmetry`, for a whole batch of rows at once.

:func:`~ballast.statespace.symmetry.canonical` renumbers the MPNs of one
:class:`~ballast.model.state.State`: first the MPNs guest pages map, in the
order the VMs' PPNs first mention them; then the host's MPNs in use, then its
free ones, each group by (contents, reclaimed) and then by number; then any MPN
in no place. :class:`RowSymmetry` computes the same renumbering for every row
of a frontier batch with a few whole-array operations (one sort per batch
instead of a decode, a renumbering and an encode per state), so the frontier
engine's symmetry reduction costs about what packing the keys costs.

Which columns name MPNs is read from the state schema, never listed here: a
field indexed by MPN (the host's sets and contents) has its columns permuted,
a field whose values are MPNs (the VMM's ``p2m``) has its values renamed. The
order of the renumbering is the reference's own rule, above. The two are shown
equal on every reachable state of small configurations
(``tests/statespace/test_symmetry_rows.py``).

VMs configured alike are sorted first, by the reference's signature, which names no MPN:
the VM's own cells but its map of MPNs, its host swap entries, and for each of its PPNs the
contents and copy-on-write mark of the MPN behind it (or "unbacked"). The reference orders
equal signatures by VM number and others by the text of the signature; the rows order
others by the signature's cells, read left to right. Two orders of the same signatures with
the same ties give the same classes of states (sorting by either puts VMs with equal
signatures in the same relative order, and the MPNs are then renumbered by first mention,
whatever their numbers were): the canonical rows are another representative of each class,
not the reference's, and the classes are shown equal on every reachable state of small
configurations (``tests/statespace/test_symmetry_rows.py``).

>>> import numpy as np
>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> from ballast.statespace.rowcodec import RowLayout
>>> from ballast.statespace.symmetry import canonical
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=3)
>>> model = BalloonModel(cfg)
>>> states = model.init_states()
>>> for _ in range(3):  # every state within three steps
...     states = list({t for s in states for _, t in model.successors(s)} | set(states))
>>> lay = RowLayout(cfg)
>>> rows = np.stack([lay.encode(s) for s in states])
>>> want = np.stack([lay.encode(canonical(cfg, s)) for s in states])
>>> bool((RowSymmetry(lay).canonical(rows) == want).all()), bool((rows != want).any())
(True, True)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ballast.model.schema import BACKING, MPN, SCHEMA, Kind, Record
from ballast.statespace.rowcodec import RowLayout
from ballast.statespace.symmetry import mpn_symmetry, vm_groups

__all__ = ["RowSymmetry"]

Rows = npt.NDArray[np.int16]
Ints = npt.NDArray[np.int64]


class RowSymmetry:
    """The canonical rows of a configuration's states (see the module text)."""

    def __init__(self, layout: RowLayout) -> None:
        cfg = layout.cfg
        self.layout = layout
        self.renumbers = mpn_symmetry(cfg)
        """Whether MPNs are renumbered at all (else rows are their own canonical form)."""
        m = cfg.machine_pages
        self.groups = vm_groups(cfg)
        """The classes of interchangeable VMs, sorted within each row."""
        self._vm_cols: list[npt.NDArray[np.intp]] = []
        """Per VM, every column that moves with it: its own record's, then its part of the
        host's fields indexed by VM (host swap)."""
        self._sig_cols: list[npt.NDArray[np.intp]] = []
        """Per VM, the columns of its signature read as they are (its map of MPNs left out)."""
        self._map_cols: list[npt.NDArray[np.intp]] = []
        """Per VM, the columns of its map of MPNs (values: an MPN, negative: unbacked)."""
        if self.groups:
            for v in range(cfg.vms):
                own: list[int] = []
                sig: list[int] = []
                maps: list[int] = []
                for f in SCHEMA:
                    if f.record is Record.HOST:
                        if not f.per_vm:
                            continue
                        every = list(layout.cols(f.key, None))
                        step = len(every) // cfg.vms
                        mine = every[v * step:(v + 1) * step]
                    else:
                        mine = list(layout.cols(f.key, v))
                    own += mine
                    if f.values in (MPN, BACKING) and f.kind is Kind.MAP:
                        maps += mine
                    else:
                        sig += mine
                self._vm_cols.append(np.array(own, dtype=np.intp))
                self._sig_cols.append(np.array(sig, dtype=np.intp))
                self._map_cols.append(np.array(maps, dtype=np.intp))
        self._indexed: list[npt.NDArray[np.intp]] = []
        """Per field indexed by MPN, its columns (one per MPN, in MPN order)."""
        valued: list[int] = []
        for f in SCHEMA:
            owners = [None] if f.record is Record.HOST else list(range(cfg.vms))
            for vm in owners:
                cols = layout.cols(f.key, vm)
                if f.elements == (MPN,) and f.kind is not Kind.COUNTER:
                    assert len(cols) == m, f"{f.key}: one column per MPN"
                    self._indexed.append(np.array(cols, dtype=np.intp))
                if f.values in (MPN, BACKING) and f.kind is Kind.MAP:
                    valued += list(cols)
        self._valued_cols = np.array(sorted(valued), dtype=np.intp)
        """Every column whose value is an MPN (or UNBACKED), in the VMs' then PPNs' order."""
        self._in_use = np.array(layout.cols("in_use"), dtype=np.intp)
        self._free = np.array(layout.cols("free"), dtype=np.intp)
        self._content = np.array(layout.cols("content"), dtype=np.intp)
        self._reclaimed = np.array(layout.cols("reclaimed"), dtype=np.intp)
        self._cow = np.array(layout.cols("cow"), dtype=np.intp)

    def canonical(self, rows: Rows) -> Rows:
        """A canonical row of each row's class: VMs configured alike sorted (see the module
        text), then MPNs renumbered as the reference renumbers them (rows that already are
        canonical come back equal)."""
        if self.groups and len(rows):
            rows = self.sort_vms(rows)
        return self.renumber_mpns(rows)

    def _signature(self, rows: Rows, v: int) -> npt.NDArray[np.int64]:
        """Per row, VM ``v``'s signature as cells (equal cells: equal signatures)."""
        backing = rows[:, self._map_cols[v]].astype(np.int64)
        unbacked = backing < 0
        at = np.where(unbacked, 0, backing)
        contents = np.take_along_axis(rows[:, self._content].astype(np.int64), at, axis=1)
        cow = np.take_along_axis(rows[:, self._cow].astype(np.int64), at, axis=1)
        return np.concatenate([rows[:, self._sig_cols[v]].astype(np.int64),
                               np.where(unbacked, -1, contents), np.where(unbacked, 0, cow),
                               (~unbacked).astype(np.int64)], axis=1)

    def sort_vms(self, rows: Rows) -> Rows:
        """``rows`` with the VMs of each class of interchangeable VMs in signature order,
        VMs with equal signatures in the order of their numbers (a stable sort)."""
        out = rows.copy()
        for group in self.groups:
            sig = {v: self._signature(rows, v) for v in group}
            # Where VM a goes: the number of VMs of the group ordered before it.
            rank = {a: np.zeros(len(rows), dtype=np.int64) for a in group}
            for i, a in enumerate(group):
                for b in group[i + 1:]:
                    differ = sig[a] != sig[b]
                    first = np.argmax(differ, axis=1)
                    r = np.arange(len(rows))
                    b_first = differ.any(axis=1) & (sig[b][r, first] < sig[a][r, first])
                    rank[a] += b_first  # b is before a only where its signature is less
                    rank[b] += ~b_first
            for a in group:
                for slot, v in enumerate(group):
                    moved = rank[a] == slot
                    if v != a and moved.any():
                        out[np.ix_(moved, self._vm_cols[v])] = \
                            rows[np.ix_(moved, self._vm_cols[a])]
        return out

    def renumber_mpns(self, rows: Rows) -> Rows:
        """``rows`` with their MPNs renumbered as the reference renumbers them."""
        if not self.renumbers or not len(rows):
            return rows
        n, m = rows.shape[0], self.layout.cfg.machine_pages
        r = np.arange(n)[:, None]
        # Where guest pages first mention each MPN (k = mentions: none; column m = UNBACKED).
        backing = rows[:, self._valued_cols].astype(np.intp)
        k = backing.shape[1]
        first = np.full((n, m + 1), k, dtype=np.int64)
        for at in reversed(range(k)):
            first[np.arange(n), np.where(backing[:, at] < 0, m, backing[:, at])] = at
        first = first[:, :m]
        # The reference's order: mapped MPNs by first mention, then in use, then free (each
        # by contents, then reclaimed, then number), then MPNs in no place by number.
        by_flags = (rows[:, self._content].astype(np.int64) * 2
                    + rows[:, self._reclaimed]) * m + np.arange(m)
        span = (int(self.layout.high[self._content].max(initial=0)) + 1) * 2 * m
        key = np.where(first < k, first,
                       np.where(rows[:, self._in_use] != 0, k + by_flags,
                                np.where(rows[:, self._free] != 0, k + span + by_flags,
                                         k + 2 * span + np.arange(m))))
        order = np.argsort(key, axis=1, kind="stable")  # new MPN j is old MPN order[:, j]
        new_of = np.empty_like(order)
        new_of[r, order] = np.arange(m)
        out = rows.copy()
        for cols in self._indexed:
            out[:, cols] = np.take_along_axis(rows[:, cols], order, axis=1)
        renamed = np.take_along_axis(new_of, np.maximum(backing, 0), axis=1)
        out[:, self._valued_cols] = np.where(backing < 0, backing, renamed)
        return out
