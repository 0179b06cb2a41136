"""The instances of an action over a batch of the frontier engine's states.

The candidates of a VM-partitioned action are asked of the model once per group of states
that agree on what its code reads (:class:`CandidateGroups`), each instance ordered by its VM and
candidate (:data:`VM_BITS`); an instance's arguments are given to a kernel's store as its row
(:func:`row_of`) and one value per state of the batch (:func:`kernel_args`).
"""

from __future__ import annotations

from typing import Any, Callable, cast

import numpy as np
import numpy.typing as npt

from ballast.model.actions import ActionSpec
from ballast.model.schema import SCHEMA, Record
from ballast.model.state import State
from ballast.numeric.page_sets import page_sets
from ballast.statespace.frontier_parts import MISSING, READS_HOST
from ballast.statespace.keyset import unique_rows
from ballast.statespace.rowcodec import RowLayout
from ballast.statespace.transitions import ReadElsewhere, WatchedHost, WatchedVm

__all__ = ["VM_BITS", "CandidateGroups", "kernel_args", "part_groups", "row_of"]

Ints = npt.NDArray[np.int64]

VM_BITS = 16
"""Within one action chosen per VM: VM << this + candidate index for that VM."""


def row_of(args: dict[str, Any]) -> int:
    """The row number a kernel's store gives an instance: its VM, or its host page."""
    return int(args["vm"] if "vm" in args else args.get("host_page", 0))


def part_groups(ids: npt.NDArray[Any], rows: Ints) -> tuple[Any, Ints, Ints, Ints, Ints, Ints]:
    """The states ``rows`` grouped by ``ids`` (one row per state: its part ids, or cells):
    the distinct ids, a first state of each (its position in ``rows``), each state's group,
    the states group by group, and each group's size and start in that order."""
    uniq, first_i, inv = unique_rows(ids)
    members = rows[np.argsort(inv, kind="stable")]
    counts = np.bincount(inv, minlength=len(uniq))
    return uniq, first_i, inv, members, counts, np.cumsum(counts) - counts


_ANY_ATTRIBUTE = ""
"""Stands for an attribute of a VM record that is no field (a method): every column."""


def _vm_attribute_columns(lay: RowLayout, v: int) -> dict[str, Ints]:
    """Per attribute of VM ``v``'s record, the columns behind it: a field of the VM's own
    record its columns, ``guest`` and ``module`` their records' columns, and every column
    of the VM for anything else (:data:`_ANY_ATTRIBUTE`)."""
    out: dict[str, list[int]] = {}
    for f in SCHEMA:
        if f.record is Record.HOST:
            continue
        attr = {Record.GUEST: "guest", Record.MODULE: "module"}.get(f.record, f.name)
        out.setdefault(attr, []).extend(lay.cols(f.key, v))
    start = lay.host_end + v * lay.vm_width
    out[_ANY_ATTRIBUTE] = list(range(start, start + lay.vm_width))
    return {k: np.array(sorted(c), dtype=np.int64) for k, c in out.items()}


def _one_group(m: int) -> tuple[Any, Ints, Ints, Ints, Ints, Ints]:
    """:func:`part_groups` of ``m`` states that all agree."""
    return (np.zeros((1, 0), dtype=np.int64), np.zeros(1, dtype=np.int64),
            np.zeros(m, dtype=np.int64), np.arange(m), np.array([m]), np.zeros(1, dtype=np.int64))


class CandidateGroups:
    """The candidates of VM-partitioned actions for a batch of states, asked of the model
    once per group of states that agree on what they read.

    An action's candidates for VM ``v`` are asked on the VM's part alone (the other VMs
    stood in for by ``local``; None where they read one). The model's code is noted as it
    runs: the VM attributes it read (the columns behind them, :func:`_vm_attribute_columns`)
    and whether it read the host. Two states that agree on those columns get the same
    candidates (the same reads give the same values, so the same path through the code),
    so the states are grouped by those columns and the model asked once per group. What an
    action has read only grows; when a group's answer reads more than its group tells
    apart, the states are grouped again by the larger set (answers remembered under the
    smaller one are not used again). Candidates that read the host are asked once per
    (host part, VM part); those that read another VM, state by state.
    """

    def __init__(self, lay: RowLayout, memo: dict[tuple[int, ...], Any],
                 local: Callable[[State, int | None], State]) -> None:
        self.cfg = lay.cfg
        self.memo = memo
        """Answers by (action, VM, host part id, VM part id), or by (action, VM, minus one
        minus the read set's version, the cells read)."""
        self.local = local
        self.columns_of = [_vm_attribute_columns(lay, v) for v in range(lay.cfg.vms)]
        self.reads: dict[tuple[int, int], tuple[frozenset[str], Ints, int]] = {}
        """By (action, VM): the attributes read so far, their columns, the version."""

    def read_so_far(self, si: int, v: int) -> tuple[frozenset[str], Ints, int]:
        """(attributes read, their columns, version) of action ``si``'s candidates on VM
        ``v``."""
        return self.reads.get((si, v), (frozenset(), np.zeros(0, dtype=np.int64), 0))

    def note(self, si: int, v: int, read: set[str]) -> bool:
        """Note that action ``si``'s candidates on VM ``v`` read ``read``: whether that is
        more than before."""
        names, _, version = self.read_so_far(si, v)
        if read <= names:
            return False
        names = names | read
        every = self.columns_of[v]
        cols = sorted({c for name in names
                       for c in every.get(name, every[_ANY_ATTRIBUTE]).tolist()})
        self.reads[(si, v)] = (names, np.array(cols, dtype=np.int64), version + 1)
        return True

    def ask(self, spec: ActionSpec, s: State, v: int, watch: bool = False,
            read: set[str] | None = None) -> list[dict[str, Any]] | None | object:
        """The candidates of ``spec`` for VM ``v`` computed on its part alone (None when they
        read another VM); ``watch``: with the host watched, READS_HOST when they read it;
        ``read``: gets the names of VM ``v``'s attributes they read."""
        loc = self.local(s, v)
        host = WatchedHost.of(s.host) if watch else s.host
        if read is not None:
            watched = WatchedVm.of(s.vms[v])
            loc = State(loc.host, loc.vms[:v] + (watched,) + loc.vms[v + 1:])
        try:
            assert spec.vm_candidates is not None
            got = list(spec.vm_candidates(self.cfg, State(host, loc.vms) if watch else loc, v))
        except ReadElsewhere:
            return None
        finally:
            if read is not None:
                read |= watched.fields_read
        if watch and cast(WatchedHost, host).read:
            return READS_HOST
        return got

    def blocks(self, si: int, spec: ActionSpec, v: int, rows: npt.NDArray[np.int16],
               states: Any, pre_h: Ints, pre_v: Ints) -> list[tuple[Ints, int, dict[str, Any]]]:
        """The instances of action ``si`` (``spec``) on VM ``v`` from the states ``rows``
        (``states[i]``: the state of row ``i``; ``pre_h``, ``pre_v``: their part ids):
        (the states, the instance's order, its arguments) per candidate of a group."""
        out: list[tuple[Ints, int, dict[str, Any]]] = []
        m = len(rows)
        pending = np.arange(m)
        with_host = False
        while len(pending):
            if with_host:
                uniq, first_i, inv, members, counts, starts = part_groups(
                    np.stack([pre_h[pending], pre_v[pending, v]], axis=1), pending)
            else:
                _, cols, version = self.read_so_far(si, v)
                uniq, first_i, inv, members, counts, starts = part_groups(
                    rows[:, cols], pending) if len(cols) else _one_group(m)
            again: list[int] = []
            regroup = False
            for g, (ids_g, i0) in enumerate(zip(uniq.tolist(), pending[first_i].tolist())):
                if with_host:
                    ckey = (si, v, ids_g[0], ids_g[1])
                    cands = self.memo.get(ckey, MISSING)
                    if cands is MISSING:
                        cands = self.memo[ckey] = self.ask(spec, states[i0], v)
                else:
                    ckey = (si, v, -1 - version, *ids_g)
                    cands = self.memo.get(ckey, MISSING)
                    if cands is MISSING:
                        read: set[str] = set()
                        cands = self.ask(spec, states[i0], v, watch=True, read=read)
                        if self.note(si, v, read):
                            regroup = True  # read more than the groups tell apart
                            break
                        self.memo[ckey] = cands
                    if cands is READS_HOST:
                        again.append(g)
                        continue
                mem = members[starts[g]:starts[g] + counts[g]]
                if cands is None:  # they read another VM: state by state
                    assert spec.vm_candidates is not None
                    for i in mem.tolist():
                        out += [(np.array([i]), (v << VM_BITS) + j, a) for j, a in
                                enumerate(spec.vm_candidates(self.cfg, states[i], v))]
                    continue
                out += [(mem, (v << VM_BITS) + j, a) for j, a in
                        enumerate(cast("list[dict[str, Any]]", cands))]
            if regroup:  # the instances of this VM are made again
                out = []
                continue
            if with_host:
                break
            pending = pending[np.isin(inv, again)] if again else pending[:0]
            with_host = True
        return out


def kernel_args(args: dict[str, Any], rows: int, pages: int) -> dict[str, Any]:
    """Kernel arguments (everything but the VM) of one instance, one value per row of a
    batch of ``rows`` (a set of PPNs made into masks once, not once a row)."""
    out: dict[str, Any] = {}
    for k, v in args.items():
        if k == "vm":
            continue
        if isinstance(v, int):
            out[k] = np.full(rows, v, dtype=np.int64)
        elif isinstance(v, tuple):  # a set of PPNs
            out[k] = page_sets([v], np.array([rows]), pages)
        else:
            out[k] = [v] * rows
    return out
