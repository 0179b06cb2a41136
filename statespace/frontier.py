"""Level-synchronous breadth-first exploration over fixed-width rows (the frontier engine).

The same search as :func:`ballast.statespace.explore.explore` (the reference),
organised for whole-array work:

* a state is one row of small integers (:class:`~ballast.statespace.rowcodec.RowLayout`,
  derived from the state schema) and its visited-set key is that row packed into
  64-bit words; the visited set (:class:`~ballast.statespace.keyset.KeySet`) is
  sorted runs of keys, and the successors of a whole batch of states are
  deduplicated by sorting their keys;
* the frontier is expanded a batch of states at a time. An action that has a
  kernel (:mod:`ballast.model.action_kernels`) runs through the kernels' NumPy
  interpreter on a :class:`~ballast.statespace.frontier_rows.FrontierRows`
  store: when the action's candidates do not depend on the state, each
  (action, argument) instance is one masked update of the whole batch; where they
  do, the model's own candidate code is asked once per group of states that agree
  on what that code reads of the acting VM (noted as it runs:
  :class:`_VmCandidates`). An action without a kernel yet (or replaced by a seeded
  fault that has none) falls back to the Python model's step on the decoded states:
  correct, slower;
* successors are ordered as the reference orders them (state by state, then the
  model's order of actions and candidates), so the same states get the same
  parents and the first real state reaching a symmetry class is the one
  expanded;
* the properties are the model's own: a step property with a step kernel
  (:data:`~ballast.model.property_kernels.STEP_KERNELS`) is evaluated over the whole
  batch of steps through the rows (:func:`step_kernel_of`), the model's check running
  only on a step the kernel finds broken, for its words; the other step properties
  and the scenarios run on the decoded states of a transition unless the property (or
  scenario) answers for that action without reading either state; state invariants
  by their kernels on each batch of new states, the model's where a kernel lacks;
* every state keeps its parent and the action that reached it, so a shortest
  trace is rebuilt by following parents; the trace is replayed on the Python
  model before it is reported (:func:`ballast.statespace.traces.write_finding`);
* with symmetry on, the key is that of a canonical form of the whole batch of rows
  (:class:`~ballast.statespace.symmetry_rows.RowSymmetry`: the classes of
  :func:`~ballast.statespace.symmetry.canonical`, VMs configured alike sorted and MPNs
  renumbered) and the real state is expanded.

The result is an :class:`~ballast.statespace.explore.Exploration`, so the
verdicts, traces and reports of the reference serve both engines.

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
>>> ex = explore_frontier(BalloonModel(cfg))
>>> ex.complete, ex.states > 10, ex.violations
(True, True, {})
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, cast

import numpy as np
import numpy.typing as npt

from ballast import tally as work_done
from ballast.blas import one_blas_thread
from ballast.errors import GuardError
from ballast.model.action_kernels import FAULT_KERNELS, KERNELS, MEMORY_KERNELS
from ballast.model.actions import ACTIONS, Action, ActionSpec, Partition, apply
from ballast.model.encodings import declared_gaps_on
from ballast.model.faults import FAULTS
from ballast.model.invariants import Property, honest_vms
from ballast.model.ops import Kernel
from ballast.model.property_kernels import (PROPERTY_KERNELS, STEP_KERNELS, PropertyKernel,
                                             StepKernel)
from ballast.model.schema import SCHEMA, Record
from ballast.model.sometimes import Scenario
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.numeric.encodes import gaps_in
from ballast.numeric.invariants import NUMERIC_INVARIANTS
from ballast.numeric.interpret import run_kernel
from ballast.numeric.page_sets import page_sets
from ballast.statespace.deadlock import (
    DEADLOCK, protocol_vm, unsettled,
)
from ballast.statespace.explore import Budget, Exploration, Finding
from ballast.statespace.frontier_rows import (FrontierRows, RowsLack, own_columns_read,
                                              property_holds_on_rows, step_holds_on_rows)
from ballast.statespace.keyset import KeySet, Spill, distinct, key_hash, unique_rows
from ballast.statespace.parts import PartStore
from ballast.statespace.rowcodec import RowLayout
from ballast.statespace.symmetry_rows import RowSymmetry
from ballast.statespace.transitions import OtherVm, ReadElsewhere, WatchedHost, WatchedVm

__all__ = ["BATCH", "FrontierExploration", "explore_frontier", "kernel_of", "property_kernel_of",
           "step_kernel_of"]

Ints = npt.NDArray[np.int64]
Keys = npt.NDArray[np.uint64]

BATCH = 16384
"""States expanded together (one batch of kernel updates, one sort of successor keys)."""

_ORDER_BITS = 24
"""Positions of the model's order: action index << this + candidate index."""

_VM_BITS = 16
"""Within one action chosen per VM: VM << this + candidate index for that VM."""

_INTERNED_LIMIT = 1 << 20
"""Interned parts kept before they (and every answer remembered by them) are dropped."""

_MISSING = object()
_READS_HOST = object()
_REAL = object()
"""An answer that read another VM: ask again on the real states."""


class _Decoded:
    """The states of rows, each decoded when first asked for."""

    def __init__(self, layout: RowLayout, rows: npt.NDArray[np.int16]) -> None:
        self.layout = layout
        self.rows = rows
        self.done: list[State | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self.done)

    def __getitem__(self, i: int) -> State:
        got = self.done[i]
        if got is None:
            got = self.done[i] = self.layout.decode(self.rows[i])
        return got

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self.done)))


class _Blocks:
    """Rows kept as the blocks they were made in (``(n_i, width)`` each), read by their
    positions in all the blocks put end to end, without putting them together.

    >>> import numpy as np
    >>> b = _Blocks([np.array([[1], [2]], dtype=np.int16), np.array([[3]], dtype=np.int16)], 1)
    >>> b.take(np.array([2, 0])).tolist(), b.take(1).tolist()
    ([[3], [1]], [2])
    """

    def __init__(self, blocks: list[npt.NDArray[np.int16]], width: int) -> None:
        self.blocks = blocks
        self.width = width
        sizes = np.array([len(b) for b in blocks], dtype=np.int64)
        self.starts = np.cumsum(sizes) - sizes

    def take(self, at: Any) -> npt.NDArray[np.int16]:
        """The rows at positions ``at`` (a position: one row; an array: rows, in its order)."""
        if np.ndim(at) == 0:
            b = int(np.searchsorted(self.starts, at, side="right")) - 1
            row: npt.NDArray[np.int16] = self.blocks[b][int(at) - int(self.starts[b])]
            return row
        at = np.asarray(at, dtype=np.int64)
        out = np.empty((len(at), self.width), dtype=np.int16)
        if not len(at):
            return out
        which = np.searchsorted(self.starts, at, side="right") - 1
        order = np.argsort(which, kind="stable")
        cuts = np.searchsorted(which[order], np.arange(len(self.blocks) + 1))
        for b in np.flatnonzero(np.diff(cuts)).tolist():
            sel = order[cuts[b]:cuts[b + 1]]
            out[sel] = np.take(self.blocks[b], at[sel] - self.starts[b], axis=0)
        return out


def _radix(cells: npt.NDArray[np.int16], low: Ints, size: Ints) -> Ints:
    """Each row's cells as one number in mixed radix (the last column least significant;
    the columns' ranges, ``low`` and ``size``, multiply to less than 2**63)."""
    place = np.concatenate([np.cumprod(size[::-1])[::-1][1:], [1]]).astype(np.int64)
    if float(np.prod(size.astype(np.float64))) < 2.0 ** 53:
        # Every code is an integer a double holds exactly: the product runs in BLAS.
        code: Ints = ((cells.astype(np.float64) - low) @ place.astype(np.float64)
                      ).astype(np.int64)
        return code
    exact: Ints = (cells.astype(np.int64) - low) @ place
    return exact


class _PartIds:
    """A number for every distinct host part and VM part met, found by sorting rows.

    Where a part's columns fit in 62 bits, its cells are one number (each column's value
    above its low end, in the layout's fixed ranges) and the numbers seen are kept sorted
    with their ids, so a batch of parts is numbered by one sort and one binary search;
    wider parts alike, by their cells' bytes as one value.
    """

    def __init__(self, layout: RowLayout, columns: list[list[int]] | None = None) -> None:
        self.layout = layout
        self.count = 0
        h = layout.host_end
        w = layout.vm_width
        self.spans = [(0, h)] + [(h + v * w, h + (v + 1) * w) for v in range(layout.cfg.vms)]
        self.columns = columns or []
        self.known: dict[tuple[Any, ...], tuple[Any, Ints]] = {}
        """By the columns' ranges: (the numbers seen, or the cells' bytes, sorted; their
        ids)."""

    def of_columns(self, rows: npt.NDArray[np.int16]) -> Ints:
        """``(n, len(columns))``: the id of each row's cells in each column set."""
        return np.stack([self._ids(rows[:, c], c) for c in self.columns], axis=1)

    def _ids(self, cells: npt.NDArray[np.int16], cols: Any) -> Ints:
        if not len(cells):
            return np.zeros(0, dtype=np.int64)
        low = self.layout.low[cols]
        size = self.layout.high[cols] - low + 1
        if float(np.prod(size.astype(np.float64))) < 2.0 ** 62:
            return self._ids_by_number(cells, low, size)
        # Wider parts: a number per run of columns that a double holds exactly, the runs'
        # numbers together as one value (their bytes), sorted and searched alike.
        runs, start, span = [], 0, 1.0
        for c, k in enumerate(size.tolist()):
            if span * k >= 2.0 ** 53:
                runs.append((start, c))
                start, span = c, 1.0
            span *= k
        runs.append((start, len(size)))
        words = np.stack([_radix(cells[:, a:b], low[a:b], size[a:b]) for a, b in runs], axis=1)
        flat = words.view(np.dtype((np.void, 8 * len(runs)))).ravel()
        return self._number(flat, ("runs",) + tuple(size.tolist()) + tuple(low.tolist()))

    def _ids_by_number(self, cells: npt.NDArray[np.int16], low: Ints, size: Ints) -> Ints:
        return self._number(_radix(cells, low, size), tuple(size.tolist()) + tuple(low.tolist()))

    def _number(self, code: npt.NDArray[Any], sig: tuple[Any, ...]) -> Ints:
        """The id of each part by its number ``code`` (numbers of one kind ``sig``; or
        values of several numbers each, as bytes)."""
        uniq, inv = np.unique(code, return_inverse=True)
        seen, ids = self.known.get(sig, (code[:0], np.zeros(0, dtype=np.int64)))
        at: Ints = np.searchsorted(seen, uniq)
        hit: npt.NDArray[np.bool_] = at < len(seen)
        hit[hit] = seen[at[hit]] == uniq[hit]
        out = np.empty(len(uniq), dtype=np.int64)
        out[hit] = ids[at[hit]]
        new = np.nonzero(~hit)[0]
        if len(new):
            out[new] = np.arange(self.count, self.count + len(new))
            self.count += len(new)
            # Both sorted: the new numbers go in where the search put them.
            self.known[sig] = (np.insert(seen, at[new], uniq[new]),
                               np.insert(ids, at[new], out[new]))
        found: Ints = out[inv.reshape(-1)]
        return found

    def of_keys(self, keys: Keys, rows: Callable[[], npt.NDArray[np.int16]]
                ) -> tuple[Ints, Ints]:
        """:meth:`of` the rows whose packed keys are ``keys``: a part's number is its bits
        read off the key (:meth:`~ballast.statespace.rowcodec.RowLayout.span_code`), where
        they fit in 63 bits; ``rows()`` gives the rows where they do not."""
        codes = [self._span_codes(keys, a, b) for a, b in self.spans]
        if any(c is None for c in codes):
            return self.of(rows())
        lay = self.layout
        sigs = [("bits",) + tuple(lay.high[a:b].tolist()) + tuple(lay.low[a:b].tolist())
                for a, b in self.spans]
        host = self._number(cast(Ints, codes[0]), sigs[0])
        vms = np.stack([self._number(cast(Ints, c), g) for c, g in zip(codes[1:], sigs[1:])],
                       axis=1) if len(codes) > 1 else np.zeros((len(keys), 0), dtype=np.int64)
        return host, vms

    def _span_codes(self, keys: Keys, a: int, b: int) -> Any:
        """Per key, the cells of columns ``a``..``b`` as one value read off the key: a
        number where they take at most 63 bits, else the numbers of runs of columns of at
        most 63 bits each, together as one value (their bytes); None where a column alone
        is wider."""
        lay = self.layout
        code = lay.span_code(keys, a, b)
        if code is not None:
            return code
        runs, start, bits = [], a, 0
        for c in range(a, b):
            width = lay.columns[c].bits
            if bits + width > 63:
                runs.append((start, c))
                start, bits = c, 0
            bits += width
        runs.append((start, b))
        words = [lay.span_code(keys, x, y) for x, y in runs]
        if any(w is None for w in words):
            return None
        values = np.stack(cast("list[Ints]", words), axis=1)
        return values.view(np.dtype((np.void, 8 * len(runs)))).ravel()

    def of(self, rows: npt.NDArray[np.int16]) -> tuple[Ints, Ints]:
        """(host part id per row, ``(n, vms)`` VM part ids)."""
        a, b = self.spans[0]
        host = self._ids(rows[:, a:b], slice(a, b))
        vms = np.stack([self._ids(rows[:, a:b], slice(a, b)) for a, b in self.spans[1:]],
                       axis=1) if len(self.spans) > 1 else np.zeros((len(rows), 0),
                                                                      dtype=np.int64)
        return host, vms


class _Memos:
    """Answers remembered by the identities of interned parts (see
    :meth:`~ballast.statespace.rowcodec.RowLayout.decode`): valid until they are dropped."""

    def __init__(self) -> None:
        self.steps: dict[tuple[Any, ...], Any] = {}
        self.candidates: dict[tuple[Any, ...], Any] = {}
        self.checks: dict[tuple[Any, ...], Any] = {}
        self.state: dict[tuple[Any, ...], Any] = {}
        self.unsettled: dict[tuple[Any, ...], Any] = {}
        self.part_candidates: dict[tuple[int, ...], Any] = {}
        """The candidates of VM-partitioned actions (:class:`_VmCandidates`; kept across
        forgetting: part ids are never reused, cells mean the same)."""
        self.by_ids: dict[tuple[int, ...], Any] = {}
        self.tables: dict[tuple[Any, ...], Any] = {}
        self.vm_checks: dict[tuple[int, ...], bool] = {}
        """By (VM, host part id, VM part id): whether a per-VM invariant may break."""
        self.whole_checks: dict[tuple[int, ...], bool] = {}
        """By (host part id, each VM's map id): whether a whole-state invariant may break."""
        self.unsettled_ids: dict[tuple[int, ...], Any] = {}
        """By (action, VM or None, part ids): the steps of that part as arrays."""
        """By (action, part ids before and after): step answers (kept across forgetting:
        part ids are never reused)."""

    def clear(self) -> None:
        for d in (self.steps, self.candidates, self.checks, self.state, self.unsettled):
            d.clear()


class _NotRead(ReadElsewhere, AttributeError):
    """A check read the stand-in of a state (an AttributeError too, so ``hasattr`` is False)."""


class _Unread:
    """Stands in for a state that a check must not read: any attribute read raises."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        raise _NotRead(name)


_UNREAD = cast(State, object.__new__(_Unread))

def _without_state(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, answer) when ``fn`` answers without reading a state, else (False, None)."""
    try:
        return True, fn()
    except Exception:  # noqa: BLE001 - any failure on a stand-in means "it reads the state"
        return False, None


def kernel_of(model: BalloonModel, spec: ActionSpec) -> Kernel | None:
    """The kernel of ``spec`` in ``model`` (with its seeded faults), or None when the action
    has no kernel yet or a fault replaces it by a step that has none.

    A kernel that uses the memory operations runs only where the NumPy encoding covers
    everything the configuration switches on: the state of the features it lacks
    (:func:`ballast.numeric.encodes.gaps_in`) changes what those steps do, so there the
    model's step is taken. A kernel that needs an operation the frontier's rows lack (page
    poisoning's writes, the VMM's flood bound, a reset that copies the queues in flight,
    the dirty log of free page hinting, the VMM's choice of an MPN in a host page of the
    same VM) is found when it first runs (:class:`~ballast.statespace.frontier_rows.RowsLack`),
    and its action's steps are the model's from then on.

    >>> from ballast.model.config import Config
    >>> m = BalloonModel(Config(), ["release_keeps_balloon_set"])
    >>> kernel_of(m, m.table["vmm_release"]) is FAULT_KERNELS["release_keeps_balloon_set"][1]
    True
    >>> kernel_of(m, m.table["guest_read"]) is KERNELS["guest_read"]
    True
    """
    name = spec.name
    if declared_gaps_on(model.cfg):
        # A feature the kernels do not know yet may change an encoded action's guard too
        # (a frozen guest takes no step; the VMM grants vCPUs against the host's target).
        return None
    memory_ok = not gaps_in(model.cfg, model.faults)
    if spec.effect is ACTIONS[name].effect:
        return KERNELS.get(name) if memory_ok or name not in MEMORY_KERNELS else None
    for fault in reversed(model.faults):
        if FAULTS[fault].action == name and spec.effect is FAULTS[fault].effect:
            got = FAULT_KERNELS.get(fault)
            if fault in MEMORY_KERNELS and not memory_ok:
                return None
            return got[1] if got is not None and got[0] == name else None
    return None


def property_kernel_of(model: BalloonModel, prop: Property) -> PropertyKernel | None:
    """The kernel that checks state property ``prop`` on whole batches of rows, or None
    where the model's check runs: the property has no kernel (or no vector form in the
    NumPy backend), or the configuration switches on a feature the kernels lack (the
    same conditions as the actions' memory kernels in :func:`kernel_of`).

    >>> from ballast.model.config import Config
    >>> from ballast.model.invariants import INVARIANTS
    >>> m = BalloonModel(Config())
    >>> property_kernel_of(m, INVARIANTS["memory_conservation"]).name
    'memory_conservation'
    """
    cfg = model.cfg
    if declared_gaps_on(cfg) or gaps_in(cfg, model.faults) or prop.name not in NUMERIC_INVARIANTS:
        return None
    return PROPERTY_KERNELS.get(prop.name)


def step_kernel_of(model: BalloonModel, prop: Property) -> StepKernel | None:
    """The step form of ``prop`` that checks whole batches of steps over rows, or None where
    the model's step check runs on the states: the property has no step kernel, or the
    configuration switches on a feature the kernels lack (as for
    :func:`property_kernel_of`).

    >>> from ballast.model.config import Config
    >>> from ballast.model.invariants import INVARIANTS
    >>> step_kernel_of(BalloonModel(Config()), INVARIANTS["isolation"]).covers
    'others'
    """
    cfg = model.cfg
    if declared_gaps_on(cfg) or gaps_in(cfg, model.faults) or prop.step is None:
        return None
    return STEP_KERNELS.get(prop.name)


@dataclass
class FrontierExploration(Exploration):
    """What the frontier engine found: an :class:`Exploration` whose states are packed keys."""

    layout: RowLayout | None = None
    engine: str = "frontier"
    kernel_actions: tuple[str, ...] = ()
    """Actions stepped by their kernel over whole batches."""
    model_actions: tuple[str, ...] = ()
    """Actions stepped by the Python model (no kernel yet)."""
    count: int = 0
    rep_keys: Keys = field(default_factory=lambda: np.zeros((0, 1), dtype=np.uint64))
    visited: KeySet | None = None
    deepest: int = 0
    spill: Spill | None = None
    """Where the visited keys and the states go beyond the memory budget (None: no budget)."""
    _rep_file: tuple[str, ...] = ()

    @property
    def spilled_bytes(self) -> int:
        """Bytes of visited keys and states written to disk (0 without a memory budget)."""
        return 0 if self.spill is None else self.spill.written

    @property
    def states(self) -> int:
        return self.count

    @property
    def max_depth(self) -> int:
        return self.deepest

    def bytes_estimate(self) -> int:
        on_disk = isinstance(self.rep_keys, np.memmap)
        held = ((0 if on_disk else self.rep_keys[:self.count].nbytes) + 12 * self.count
                + 12 * len(self.edge_src))
        return held + (self.visited.nbytes() if self.visited is not None else 0)

    def state(self, sid: int) -> State:
        assert self.layout is not None
        return self.layout.decode(self.layout.unpack(self.rep_keys[sid:sid + 1])[0])

    def all_states(self) -> list[State]:
        """Every real state, by id: the keys unpacked a block at a time, not one by one."""
        assert self.layout is not None
        out: list[State] = []
        for lo in range(0, self.count, 65536):
            rows = self.layout.unpack(self.rep_keys[lo:min(self.count, lo + 65536)])
            out += [self.layout.decode(r) for r in rows]
        return out

    def _grow(self, n: int) -> None:
        need = self.count + n
        if need > len(self.rep_keys):
            cap = max(need, 2 * len(self.rep_keys), 1024)
            shape = (cap, self.rep_keys.shape[1])
            sp = self.spill
            if sp is not None and cap * shape[1] * 8 > sp.budget:
                # Beyond the budget the states live in a file, memory-mapped.
                files, (grown,) = sp.create(((shape, np.uint64),))
                grown[:self.count] = self.rep_keys[:self.count]
                if self._rep_file:
                    sp.discard(self._rep_file[0], self.rep_keys.nbytes)
                self._rep_file = files
            else:
                grown = np.zeros(shape, dtype=np.uint64)
                grown[:self.count] = self.rep_keys[:self.count]
            self.rep_keys = grown


def _ints(values: Iterable[int]) -> Any:
    return array("i", values)


class _Plan:
    """How each action of the model is stepped: kernel or model, fixed candidates or not."""

    def __init__(self, model: BalloonModel) -> None:
        cfg = model.cfg
        self.specs = model.action_specs()
        self.kernels = [kernel_of(model, spec) for spec in self.specs]
        self.fixed: list[list[dict[str, Any]] | None] = []
        for spec in self.specs:
            ok, cands = _without_state(lambda: list(spec.candidates(cfg, _UNREAD)))
            self.fixed.append(cands if ok else None)


def _row_of(args: dict[str, Any]) -> int:
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


class _VmCandidates:
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
        read another VM); ``watch``: with the host watched, _READS_HOST when they read it;
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
            return _READS_HOST
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
                    cands = self.memo.get(ckey, _MISSING)
                    if cands is _MISSING:
                        cands = self.memo[ckey] = self.ask(spec, states[i0], v)
                else:
                    ckey = (si, v, -1 - version, *ids_g)
                    cands = self.memo.get(ckey, _MISSING)
                    if cands is _MISSING:
                        read: set[str] = set()
                        cands = self.ask(spec, states[i0], v, watch=True, read=read)
                        if self.note(si, v, read):
                            regroup = True  # read more than the groups tell apart
                            break
                        self.memo[ckey] = cands
                    if cands is _READS_HOST:
                        again.append(g)
                        continue
                mem = members[starts[g]:starts[g] + counts[g]]
                if cands is None:  # they read another VM: state by state
                    assert spec.vm_candidates is not None
                    for i in mem.tolist():
                        out += [(np.array([i]), (v << _VM_BITS) + j, a) for j, a in
                                enumerate(spec.vm_candidates(self.cfg, states[i], v))]
                    continue
                out += [(mem, (v << _VM_BITS) + j, a) for j, a in
                        enumerate(cast("list[dict[str, Any]]", cands))]
            if regroup:  # the instances of this VM are made again
                out = []
                continue
            if with_host:
                break
            pending = pending[np.isin(inv, again)] if again else pending[:0]
            with_host = True
        return out


def _args(args: dict[str, Any], rows: int, pages: int) -> dict[str, Any]:
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


def explore_frontier(model: BalloonModel, *, symmetry: bool = False, budget: Budget = Budget(),
                     keep_edges: bool = False, stop_on: bool | Collection[str] = False,
                     progress: Callable[[Exploration], None] | None = None,
                     batch: int = BATCH, memory_budget: int | None = None,
                     spill_dir: str | None = None) -> FrontierExploration:
    """Explore every reachable state of ``model`` level by level (see the module text).

    The arguments mean what they mean for :func:`~ballast.statespace.explore.explore`.
    With ``stop_on``, the search stops after the batch in which the violation was found
    (the trace is still a shortest one; the counts may exceed the reference's).
    ``memory_budget`` (bytes): beyond half of it the visited keys go to sorted runs on
    disk, beyond the other half the states (the frontier and the parents' keys) to a
    memory-mapped file, in a temporary folder under ``spill_dir``; the result counts the
    bytes written (:attr:`FrontierExploration.spilled_bytes`). Same states, same results.
    """
    cfg = model.cfg
    lay = RowLayout(cfg)
    row_symmetry = RowSymmetry(lay)
    plan = _Plan(model)
    ex = FrontierExploration(model, PartStore(cfg.vms), symmetry, keep_edges=keep_edges,
                             layout=lay, rep_keys=np.zeros((0, lay.words), dtype=np.uint64))
    if memory_budget is not None:
        ex.spill = Spill(max(1, memory_budget // 2), spill_dir)
    ex.visited = KeySet(lay.words, ex.spill)
    ex.kernel_actions = tuple(s.name for s, k in zip(plan.specs, plan.kernels) if k is not None)
    ex.model_actions = tuple(s.name for s, k in zip(plan.specs, plan.kernels) if k is None)
    work_done.note("explore", lambda: f"{ex.count:,} states explored")
    visited = ex.visited
    assert visited is not None
    actions = ex.actions
    action_ids: dict[Action, int] = {}
    props = model.properties()
    state_props = [p for p in props if p.state is not None]
    step_props = [p for p in props if p.step is not None]
    open_scenarios: list[Scenario] = model.scenarios()
    scenarios = list(open_scenarios)
    may_witness: list[set[str]] = []
    """Per action id: the scenarios its steps may witness (the others it rules out by its
    name and arguments alone)."""
    step_plan: list[list[tuple[Property, str | None, bool]]] = []
    """Per action id: (property, constant answer, must run on the states)."""
    step_kernels = {p.name: k for p in step_props if (k := step_kernel_of(model, p)) is not None}
    step_reads = {name: [None if k.covers == "actor" else own_columns_read(k.check, lay, v)
                         for v in range(cfg.vms)] for name, k in step_kernels.items()}
    """Per step form and VM: the VM's own columns the form reads, where it covers VMs
    besides the actor and reads nothing else (None: always run)."""
    step_order = {p.name: i for i, p in enumerate(step_props)}
    rows_plan: list[list[tuple[Property, StepKernel]]] = []
    """Per action id: the step properties checked by their kernels over whole batches of
    steps (the model's check runs only on the steps a kernel finds broken, for its words)."""
    moves_for: list[int | None] = []
    act_vm: list[int] = []
    """Per action id: the VM its ``vm`` argument names (-1: none)."""
    fired = np.zeros(0, dtype=np.int64)
    start = time.perf_counter()

    def intern(act: Action) -> int:
        aid = action_ids.get(act)
        if aid is None:
            aid = action_ids[act] = len(actions)
            actions.append(act)
            plan_row = []
            by_rows = []
            spec_ = ACTIONS.get(act.name)
            for p in step_props:
                def answer(p: Property = p) -> str | None:
                    return p.check_step(cfg, _UNREAD, act, _UNREAD)
                known, msg = _without_state(answer)
                sk = step_kernels.get(p.name)
                if not known and sk is not None and spec_ is not None and sk.constrains(spec_):
                    by_rows.append((p, sk))
                elif not known or msg is not None:
                    plan_row.append((p, msg if known else None, not known))
            step_plan.append(plan_row)
            rows_plan.append(by_rows)
            may = set()
            for sc in scenarios:
                def witness(sc: Scenario = sc) -> bool:
                    return sc.witness(cfg, _UNREAD, act, _UNREAD)
                known, seen = _without_state(witness)
                if not known or seen:
                    may.add(sc.name)
            may_witness.append(may)
            moves_for.append(protocol_vm(act))
            v_ = act.kwargs.get("vm")
            act_vm.append(v_ if isinstance(v_, int) and not isinstance(v_, bool)
                          and 0 <= v_ < n_vms else -1)
        return aid

    def state_violations(s: State) -> list[tuple[str, str]]:
        return [(p.name, msg) for p in state_props if (msg := p.check_state(cfg, s)) is not None]

    def add_states(keys: Keys, reps: Keys, parents: Ints, via: Ints, depth: int,
                   hashes: Keys | None = None) -> Ints:
        n = len(keys)
        sids = np.arange(ex.count, ex.count + n, dtype=np.int64)
        ex._grow(n)
        ex.rep_keys[ex.count:ex.count + n] = reps
        ex.count += n
        visited.add(keys, sids, hashes)
        ex.parent.frombytes(parents.astype(np.int32).tobytes())
        ex.via.frombytes(via.astype(np.int32).tobytes())
        ex.depth.frombytes(np.full(n, depth, dtype=np.int32).tobytes())
        if n:
            ex.deepest = max(ex.deepest, depth)
        return sids

    def key_of(rows: npt.NDArray[np.int16], states: list[State | None],
               real: Keys | None = None) -> tuple[Keys, Keys]:
        """(visited-set keys, real keys) of successor rows (``real``: already packed)."""
        if real is None:
            real = lay.pack(rows)
        if not symmetry:
            return real, real
        return lay.pack(row_symmetry.canonical(rows)), real

    # -- the initial states ---------------------------------------------------------
    inits = model.init_states()
    rows0 = np.array([lay.encode_list(s) for s in inits], dtype=np.int16)
    keys0, real0 = key_of(rows0, list(inits))
    first0, _ = distinct(keys0)
    sids0 = add_states(keys0[first0], real0[first0], np.full(len(first0), -1), np.full(
        len(first0), -1), 0)
    level: list[int] = []
    for sid, i in zip(sids0.tolist(), first0.tolist()):
        broken = state_violations(inits[i])
        for name, msg in broken:
            ex.violations.setdefault(name, Finding(name, msg, "state", sid, None))
        if broken:
            ex.violating.add(sid)
        else:
            level.append(sid)

    def stop_now() -> bool:
        if stop_on is True:
            return bool(ex.violations)
        if stop_on is False:
            return False
        return any(p in ex.violations for p in stop_on)

    def out_of_budget() -> str | None:
        if budget.max_states is not None and ex.count >= budget.max_states:
            return "max_states"
        if budget.max_seconds is not None and time.perf_counter() - start > budget.max_seconds:
            return "max_seconds"
        if budget.max_bytes is not None and ex.bytes_estimate() > budget.max_bytes:
            return "max_bytes"
        return None

    n_vms = cfg.vms
    stand = tuple(object.__new__(OtherVm) for _ in range(n_vms))
    memo = _Memos()

    def local(s: State, v: int | None) -> State:
        """``s`` with every VM but ``v`` stood in for (reading one raises)."""
        return State(s.host, tuple(vm if w == v else stand[w] for w, vm in enumerate(s.vms)))

    local_state = local
    part_ids = _PartIds(lay)
    host_end, vm_width = lay.host_end, lay.vm_width
    vm_span = [(host_end + v * vm_width, host_end + (v + 1) * vm_width) for v in range(n_vms)]

    def keeps_others(pre: State, post: State, v: int | None) -> bool:
        return all(a is b for w, (a, b) in enumerate(zip(pre.vms, post.vms)) if w != v)

    def part_steps(si: int, spec: ActionSpec, s: State, v: int | None,
                   watch: bool = False) -> Any:
        """The steps of action ``si`` for VM ``v`` (None: for the host) computed on its part
        alone, or None when they read another VM. ``watch``: with the host watched, and
        _READS_HOST when a step reads it (else every step leaves the host as it is)."""
        loc = local(s, v)
        host = WatchedHost.of(s.host) if watch else s.host
        if watch:
            loc = State(host, loc.vms)
        out = []
        try:
            cands = list(spec.vm_candidates(cfg, loc, v) if v is not None and
                         spec.vm_candidates is not None else spec.candidates(cfg, loc))
            for j, args in enumerate(cands):
                act = Action.of(spec.name, **args)
                try:
                    post = apply(cfg, loc, act, model.table)
                except GuardError:
                    continue
                if not keeps_others(loc, post, v):
                    return None
                if watch and post.host is not host:
                    return _READS_HOST
                out.append((j, intern(act), None if watch else lay.intern_host(post.host),
                            None if v is None else lay.intern_vm(post.vms[v])))
        except ReadElsewhere:
            return None
        if watch and cast(WatchedHost, host).read:
            return _READS_HOST
        return out

    def step_table(si: int, spec: ActionSpec, s: State, v: int | None,
                   watch: bool = False) -> Any:
        """:func:`part_steps` as arrays: (orders, action ids, host cells, VM cells, whether
        the host stays as it is)."""
        got = part_steps(si, spec, s, v, watch)
        if got is None or got is _READS_HOST:
            return got
        e = len(got)
        host = np.array([lay.cells(h) if h is not None else [0] * host_end
                         for _, _, h, _ in got], dtype=np.int16).reshape(e, host_end)
        keep = np.array([h is None for _, _, h, _ in got], dtype=bool)
        if v is not None:
            vm = np.array([lay.cells(x) for _, _, _, x in got], dtype=np.int16).reshape(
                e, vm_width)
        else:
            vm = np.zeros((e, 0), dtype=np.int16)
        return (np.array([j for j, _, _, _ in got], dtype=np.int64),
                np.array([aid for _, aid, _, _ in got], dtype=np.int64), host, vm, keep)

    vm_candidates = _VmCandidates(lay, memo.part_candidates, local)

    def acting_vm(act: Action, pre: State, post: State) -> tuple[bool, int | None]:
        """(whether the step changed at most the host and one VM, that VM)."""
        v = act.kwargs.get("vm")
        v = v if isinstance(v, int) and 0 <= v < n_vms else None
        return keeps_others(pre, post, v), v

    def step_answers_watched(aid: int, pre: State, post: State) -> tuple[
            tuple[list[Any], dict[str, Any]], bool]:
        """:func:`step_answers` of a step that changed the host and at most its own VM,
        and whether the answers read either host."""
        act = actions[aid]
        v = act_vm[aid]
        vv = v if v >= 0 else None
        lpre, lpost = local_state(pre, vv), local_state(post, vv)
        wpre = WatchedHost.of(pre.host)
        wpost = wpre if post.host is pre.host else WatchedHost.of(post.host)
        got = step_answers_on(aid, act, State(wpre, lpre.vms), State(wpost, lpost.vms))
        return got, wpre.read or wpost.read

    def step_answers(aid: int, pre: State, post: State, *,
                     local: bool = True) -> tuple[list[Any], dict[str, Any]]:
        """Per step property of the action's plan, its answer (or _REAL: it read another
        VM); per open scenario, whether the step witnesses it (or _REAL). ``local``: the
        step changed the host and at most its own VM, so the other VMs are stood in for."""
        act = actions[aid]
        v = act_vm[aid]
        vv = v if v >= 0 else None
        lpre, lpost = (local_state(pre, vv), local_state(post, vv)) if local else (pre, post)
        return step_answers_on(aid, act, lpre, lpost)

    def step_answers_on(aid: int, act: Action, lpre: State,
                        lpost: State) -> tuple[list[Any], dict[str, Any]]:
        props: list[Any] = []
        for p, const, run in step_plan[aid]:
            ans: object = const
            if run:
                try:
                    ans = p.check_step(cfg, lpre, act, lpost)
                except ReadElsewhere:
                    ans = _REAL
            props.append(ans)
        scen: dict[str, Any] = {}
        for sc in open_scenarios:
            try:
                scen[sc.name] = sc.witness(cfg, lpre, act, lpost)
            except ReadElsewhere:
                scen[sc.name] = _REAL
        return props, scen

    def vm_check(pi: int, p: Property, s: State, v: int) -> str | None:
        assert p.per_vm is not None
        key = (pi, v, id(s.host), id(s.vms[v]))
        got = memo.state.get(key, _MISSING)
        if got is _MISSING:
            try:
                got = p.per_vm(cfg, local(s, v), v)
            except ReadElsewhere:
                got = _REAL
            memo.state[key] = got
        if got is _REAL:
            return p.per_vm(cfg, s, v)
        return cast("str | None", got)

    def state_violations_fast(s: State) -> list[tuple[str, str]]:
        out = []
        for pi, p in enumerate(state_props):
            if p.per_vm is not None:
                msg = next((m for v in p.checked_vms(cfg)
                            if (m := vm_check(pi, p, s, v)) is not None), None)
            else:
                msg = global_check(pi, p, s)
            if msg is not None:
                out.append((p.name, msg))
        return out

    def global_check(pi: int, p: Property, s: State) -> str | None:
        """A whole-state check, remembered by the host part and every VM's map when that is
        all it read (as the reference's state checks do)."""
        key = (pi, id(s.host), tuple(vm.p2m for vm in s.vms))
        got = memo.state.get(key, _MISSING)
        if got is not _MISSING:
            return cast("str | None", got)
        watched = tuple(WatchedVm.of(vm) for vm in s.vms)
        msg = p.check_state(cfg, State(s.host, watched))
        if all(vm.fields_read <= {"p2m"} for vm in watched):
            memo.state[key] = msg
        return msg

    honest = list(honest_vms(cfg))
    p2m_ids = _PartIds(lay, [list(lay.cols("p2m", v)) for v in range(n_vms)])
    by_kernel = [p for p in state_props if property_kernel_of(model, p) is not None]
    rest = [(pi, p) for pi, p in enumerate(state_props) if p not in by_kernel]
    vm_props = [(pi, p) for pi, p in rest if p.per_vm is not None]
    whole_props = [(pi, p) for pi, p in rest if p.per_vm is None]

    def kernels_broken(new_rows: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a property checked by its kernel breaks: every kernel on
        the whole batch of rows at once."""
        broken = np.zeros(len(new_rows), dtype=bool)
        for p in by_kernel:
            kernel = PROPERTY_KERNELS[p.name]
            if kernel.host is not None:
                broken |= ~property_holds_on_rows(kernel.host, lay, new_rows)
            if kernel.each_vm is not None:
                for v in p.checked_vms(cfg):
                    broken |= ~property_holds_on_rows(kernel.each_vm, lay, new_rows, v)
        return broken

    def groups(cols: list[Ints]) -> tuple[list[list[int]], list[int], Ints]:
        """The distinct rows of the id columns ``cols``: (their ids, a first row each, the
        group of every row)."""
        uniq, first_i, inv = unique_rows(np.stack(cols, axis=1))
        return uniq.tolist(), first_i.tolist(), inv

    def states_dirty(new_rows: npt.NDArray[np.int16], hid: Ints, vid: Ints, ks: Ints,
                     state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether some state invariant may break (then it is checked on the
        state itself): answers per distinct (host, VM) part and per distinct (host, maps)."""
        dirty = kernels_broken(new_rows) if by_kernel else np.zeros(len(ks), dtype=bool)
        for v in range(n_vms) if vm_props else ():
            ids, firsts, inv = groups([hid, vid[:, v]])
            bad = []
            for g, ((h, x), i0) in enumerate(zip(ids, firsts)):
                key = (v, h, x)
                got = memo.vm_checks.get(key)
                if got is None:
                    s_ = state_of(int(ks[i0]))
                    loc = local(s_, v)
                    got = False
                    for _, p in vm_props:
                        if v not in p.checked_vms(cfg):
                            continue
                        assert p.per_vm is not None
                        try:
                            got = p.per_vm(cfg, loc, v) is not None
                        except ReadElsewhere:
                            got = True
                        if got:
                            break
                    memo.vm_checks[key] = got
                if got:
                    bad.append(g)
            if bad:
                dirty |= np.isin(inv, bad)
        if whole_props:
            maps = p2m_ids.of_columns(new_rows)
            ids, firsts, inv = groups([hid] + [maps[:, v] for v in range(n_vms)])
            bad = []
            for g, (key_ids, i0) in enumerate(zip(ids, firsts)):
                wkey = tuple(key_ids)
                got = memo.whole_checks.get(wkey)
                if got is None:
                    s_ = state_of(int(ks[i0]))
                    watched = tuple(WatchedVm.of(vm) for vm in s_.vms)
                    local_s = State(s_.host, watched)
                    broken = any(p.check_state(cfg, local_s) is not None for _, p in whole_props)
                    got = broken or not all(vm.fields_read <= {"p2m"} for vm in watched)
                    memo.whole_checks[wkey] = got
                if got:
                    bad.append(g)
            if bad:
                dirty |= np.isin(inv, bad)
        return dirty

    def unsettled_of(states: "_Decoded", hid: Ints, vid: Ints,
                     v: int) -> npt.NDArray[np.bool_]:
        """Whether VM ``v`` is unsettled, per state: answered per distinct VM part where the
        answer read no host, else per distinct (host, VM) part."""
        ids, firsts, inv = groups([vid[:, v]])
        ans = np.zeros(len(ids), dtype=bool)
        again: list[int] = []
        for g, ((x,), i0) in enumerate(zip(ids, firsts)):
            key = (v, -1, x)
            got = memo.unsettled_ids.get(key)
            if got is None:
                loc = local(states[i0], v)
                host = WatchedHost.of(loc.host)
                try:
                    got = unsettled(cfg, State(host, loc.vms), v)
                except ReadElsewhere:
                    got = _REAL
                if host.read:
                    got = _READS_HOST
                memo.unsettled_ids[key] = got
            if got is _READS_HOST or got is _REAL:
                again.append(g)
            else:
                ans[g] = bool(got)
        out = ans[inv]
        if again:
            for i in np.nonzero(np.isin(inv, again))[0].tolist():
                key = (v, int(hid[i]), int(vid[i, v]))
                got = memo.unsettled_ids.get(key)
                if got is None:
                    try:
                        got = unsettled(cfg, local(states[i], v), v)
                    except ReadElsewhere:
                        got = _REAL
                    memo.unsettled_ids[key] = got
                out[i] = unsettled(cfg, states[i], v) if got is _REAL else bool(got)
        return out

    def is_unsettled(s: State, v: int) -> bool:
        key = (v, id(s.host), id(s.vms[v]))
        got = memo.unsettled.get(key)
        if got is None:
            try:
                got = unsettled(cfg, local(s, v), v)
            except ReadElsewhere:
                got = _REAL
            memo.unsettled[key] = got
        return unsettled(cfg, s, v) if got is _REAL else bool(got)

    def steps_flagged(pre: npt.NDArray[np.int16], post: npt.NDArray[np.int16],
                      aid: Ints, touched: npt.NDArray[np.bool_]) -> list[tuple[Ints, Property]]:
        """The steps (``pre[i]`` to ``post[i]`` by action ``aid[i]``; ``touched``: the
        columns some of them change) that a step property's kernel finds broken, with that
        property: each kernel runs once per (property, acting VM) over every such step, on
        the rows as they were made (one action's steps usually all need it and have one
        acting VM: then nothing is gathered). A form that covers VMs besides the actor
        holds on a step that changes nothing, so it is not run for a VM none of whose
        columns it reads changed (:func:`own_columns_read`)."""
        out: list[tuple[Ints, Property]] = []
        if not len(aid) or not step_kernels:
            return out
        kinds = np.unique(aid).tolist()
        for sk in step_kernels.values():
            plan_of = {a: next((p for p, k_ in rows_plan[a] if k_ is sk), None) for a in kinds}
            checked = [a for a in kinds if plan_of[a] is not None]
            if not checked:
                continue
            # The VMs a step form covers depend on the acting VM only: group by it.
            who = {a: act_vm[a] for a in checked}
            for w in sorted(set(who.values())):
                ours = [a for a in checked if who[a] == w]
                if len(ours) == len(kinds):
                    kw: Any = slice(None)
                    rows_pre, rows_post = pre, post
                else:
                    kw = np.nonzero(np.isin(aid, ours))[0]
                    rows_pre, rows_post = pre[kw], post[kw]
                flagged = np.zeros(len(rows_pre), dtype=bool)
                for v in sk.vms(cfg, w if w >= 0 else None):
                    reads = step_reads[sk.name][v]
                    if reads is not None and not touched[reads].any():
                        continue
                    flagged |= ~step_holds_on_rows(sk.check, lay, rows_pre, rows_post, v)
                if flagged.any():
                    at = np.arange(len(aid))[kw][flagged]
                    for a in ours:
                        prop = plan_of[a]
                        assert prop is not None
                        out.append((at[aid[at] == a], prop))
        return out

    def expand(sids: list[int]) -> list[int]:
        """Expand the states ``sids`` (one batch of a level); the new states to expand."""
        nonlocal fired, open_scenarios
        if lay.interned() > _INTERNED_LIMIT:
            lay.forget()
            memo.clear()
        m = len(sids)
        src = np.array(sids, dtype=np.int64)
        row_keys = ex.rep_keys[src]
        rows = lay.unpack(row_keys)
        states = _Decoded(lay, rows)
        pre_h, pre_v = part_ids.of_keys(row_keys, lambda: rows)
        par: list[Any] = []
        order: list[Any] = []
        aids: list[Any] = []
        out_rows: list[Any] = []
        out_keys: list[Keys] = []
        posts: dict[int, State] = {}
        flagged: list[tuple[Ints, Property]] = []
        produced = 0

        def emit(p: Any, o: Any, a: Any, r: Any, post: list[State] | None = None) -> None:
            nonlocal produced
            par.append(p)
            order.append(o)
            aids.append(a)
            out_rows.append(r)
            before = np.take(rows, p, axis=0)  # take: a fraction of the time of indexing
            changed = lay.changed_columns(before, r)
            # The successors' keys from their parents': one action's steps change a few
            # columns, which alone are packed again.
            out_keys.append(lay.repack(row_keys[p], before, r, changed))
            # Step properties with a kernel: over these steps at once, as they are made.
            touched = np.zeros(lay.width, dtype=bool)
            touched[changed] = True
            for at, prop in steps_flagged(before, r, np.asarray(a), touched):
                flagged.append((at + produced, prop))
            if post is not None:
                for k, s in enumerate(post):
                    posts[produced + k] = s
            produced += len(p)

        def fire(spec: ActionSpec, kernel: Kernel, base: int,
                 blocks: list[tuple[Ints, int, dict[str, Any]]], acting: list[int]) -> None:
            """Run ``kernel`` on the states of ``blocks`` (state indices, order, arguments;
            ``acting``: each block's acting VM) and emit the steps whose guard held."""
            sizes = np.array([len(b[0]) for b in blocks], dtype=np.int64)
            who = np.concatenate([b[0] for b in blocks]).astype(np.int64)
            block_of = np.repeat(np.arange(len(blocks)), sizes)
            ords = np.repeat(np.array([b[1] for b in blocks], dtype=np.int64), sizes)
            copy = np.take(rows, who, axis=0)
            kargs: dict[str, Any] = {}
            for name in blocks[0][2]:
                if name != "vm":
                    vals = [b[2][name] for b in blocks]
                    if isinstance(vals[0], int):
                        kargs[name] = np.repeat(np.array(vals, dtype=np.int64), sizes)
                    elif isinstance(vals[0], tuple):  # sets of PPNs: masks made once a block
                        kargs[name] = page_sets(vals, sizes, cfg.guest_pages)
                    else:
                        kargs[name] = [x for x, k in zip(vals, sizes.tolist())
                                       for _ in range(k)]
            vms = np.repeat(np.array(acting, dtype=np.int64), sizes)
            ok = run_kernel(kernel, FrontierRows(lay, copy, vms), kargs)
            idx = np.nonzero(ok)[0]
            if len(idx):
                fired_blocks, back = np.unique(block_of[idx], return_inverse=True)
                aid_of = np.array([intern(Action.of(spec.name, **blocks[b][2]))
                                   for b in fired_blocks.tolist()], dtype=np.int64)
                emit(who[idx], base + ords[idx], aid_of[back.reshape(-1)],
                     np.take(copy, idx, axis=0))

        def by_kernel(si: int, spec: ActionSpec, kernel: Kernel,
                      fixed: list[dict[str, Any]] | None, base: int, by_vm: bool) -> None:
            """Emit the steps of action ``spec`` by its kernel over the whole batch (raises
            :class:`RowsLack` where the rows lack an operation the kernel needs)."""
            if fixed is not None:
                # One scratch copy of the rows for every instance in turn: the steps are
                # taken out of it (emit gathers them) before the next instance writes it.
                copy = np.empty_like(rows)
                for j, args in enumerate(fixed):
                    np.copyto(copy, rows)
                    store = FrontierRows(lay, copy, np.full(m, _row_of(args)))
                    ok = run_kernel(kernel, store, _args(args, m, cfg.guest_pages))
                    idx = np.nonzero(ok)[0]
                    if len(idx):
                        aid = intern(Action.of(spec.name, **args))
                        emit(idx, np.full(len(idx), base + j), np.full(len(idx), aid),
                             np.take(copy, idx, axis=0))
                return
            # Candidates read the state: for a VM-partitioned action, ask the model once
            # per group of states that agree on what they read (_VmCandidates), then
            # spread them over the group (the order of the instances is given by ``ords``).
            blocks: list[tuple[Ints, int, dict[str, Any]]] = []
            if not by_vm:
                for i, s in enumerate(states):
                    blocks += [(np.array([i]), j, a)
                               for j, a in enumerate(spec.candidates(cfg, s))]
            for v in range(n_vms if by_vm else 0):
                blocks += vm_candidates.blocks(si, spec, v, rows, states, pre_h, pre_v)
            if not blocks:
                return
            # A run of blocks whose steps act on one VM reads that VM's columns as one
            # slice of every row (FrontierRows), rather than gathered row by row.
            acting = [_row_of(b[2]) for b in blocks]
            cuts = [0] + [k for k in range(1, len(blocks))
                          if acting[k] != acting[k - 1]]
            if len(cuts) > n_vms:
                cuts = [0]
            for lo, hi in zip(cuts, cuts[1:] + [len(blocks)]):
                fire(spec, kernel, base, blocks[lo:hi], acting[lo:hi])

        for si, spec in enumerate(plan.specs):
            kernel, fixed = plan.kernels[si], plan.fixed[si]
            base = si << _ORDER_BITS
            by_vm = spec.partition is Partition.VM and spec.vm_candidates is not None
            if kernel is not None:
                mark = (len(par), produced, len(flagged))
                try:
                    by_kernel(si, spec, kernel, fixed, base, by_vm)
                    continue
                except RowsLack:
                    # The rows lack an operation the kernel needs: nothing it made is
                    # kept, and the model steps this action from now on.
                    del par[mark[0]:], order[mark[0]:], aids[mark[0]:]
                    del out_rows[mark[0]:], out_keys[mark[0]:], flagged[mark[2]:]
                    produced = mark[1]
                    plan.kernels[si] = kernel = None

            # No kernel: the model's step, computed once per part where it reads one part.
            ps: list[int] = []
            os_: list[int] = []
            as_: list[int] = []
            ss: list[State] = []
            part_of: list[int | None] | None = (
                list(range(n_vms)) if by_vm else [None] if spec.partition is Partition.HOST
                else None)
            real: list[tuple[int, int, dict[str, Any], int | None]] = []
            if part_of is None:
                for i in range(m):
                    real += [(i, j, a, None)
                             for j, a in enumerate(spec.candidates(cfg, states[i]))]
            for pv in part_of or ():
                # One table of steps per distinct (host part, VM part), spread over the
                # states that hold that pair by sorting, never state by state.
                vcol = pre_v[:, pv] if pv is not None else np.zeros(m, dtype=np.int64)
                uniq, first_i, inv = unique_rows(np.stack([pre_h, vcol], axis=1))
                tables: list[Any] = []
                for (hid, vid), i0 in zip(uniq.tolist(), first_i.tolist()):
                    # Steps that leave the host unread are kept by the VM part alone.
                    got = _READS_HOST
                    if pv is not None:
                        akey = (si, pv, -1, vid)
                        got = memo.tables.get(akey, _MISSING)
                        if got is _MISSING:
                            got = memo.tables[akey] = step_table(si, spec, states[i0], pv,
                                                                 watch=True)
                    if got is _READS_HOST:
                        tkey = (si, pv, hid, vid)
                        got = memo.tables.get(tkey, _MISSING)
                        if got is _MISSING:
                            got = memo.tables[tkey] = step_table(si, spec, states[i0], pv)
                    tables.append(got)
                counts = np.array([0 if tb is None else len(tb[0]) for tb in tables],
                                  dtype=np.int64)
                nonlocal_groups = [g for g, tb in enumerate(tables) if tb is None]
                if nonlocal_groups:
                    for i in np.nonzero(np.isin(inv, nonlocal_groups))[0].tolist():
                        s_ = states[i]
                        whole = (spec.vm_candidates(cfg, s_, pv) if pv is not None and
                                 spec.vm_candidates is not None else spec.candidates(cfg, s_))
                        real += [(i, j, a, pv) for j, a in enumerate(whole)]
                cnt = counts[inv]
                total = int(cnt.sum())
                if not total:
                    continue
                live = [tb for tb in tables if tb is not None]
                t_ord = np.concatenate([tb[0] for tb in live])
                t_aid = np.concatenate([tb[1] for tb in live])
                t_host = np.concatenate([tb[2] for tb in live])
                t_vm = np.concatenate([tb[3] for tb in live])
                t_keep = np.concatenate([tb[4] for tb in live])
                starts = np.cumsum(counts) - counts
                par_t = np.repeat(np.arange(m), cnt)
                off = np.repeat(starts[inv] - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
                out = np.take(rows, par_t, axis=0)
                out[:, :host_end] = np.where(t_keep[off][:, None], out[:, :host_end],
                                             t_host[off])
                if pv is not None:
                    a_, b_ = vm_span[pv]
                    out[:, a_:b_] = t_vm[off]
                emit(par_t, base + ((pv or 0) << _VM_BITS) + t_ord[off], t_aid[off], out)
            for i, j, a, rv in real:
                act = Action.of(spec.name, **a)
                try:
                    post = apply(cfg, states[i], act, model.table)
                except GuardError:
                    continue
                ps.append(i)
                os_.append(base + ((rv or 0) << _VM_BITS) + j)
                as_.append(intern(act))
                ss.append(post)
            if ps:
                rs = [lay.encode_list(x) for x in ss]
                emit(np.array(ps), np.array(os_), np.array(as_),
                     np.array(rs, dtype=np.int16).reshape(len(rs), lay.width), ss)

        if produced:
            par_a = np.concatenate(par).astype(np.int64)
            ord_a = np.concatenate(order).astype(np.int64)
            aid_a = np.concatenate(aids).astype(np.int64)
            keys_a = np.concatenate(out_keys)
        else:
            par_a = ord_a = aid_a = np.zeros(0, dtype=np.int64)
            keys_a = np.zeros((0, lay.words), dtype=np.uint64)
        perm = np.lexsort((ord_a, par_a))
        par_a, aid_a, keys_a = par_a[perm], aid_a[perm], keys_a[perm]
        made = _Blocks(out_rows, lay.width)

        def rows_at(ks: Any) -> npt.NDArray[np.int16]:
            """Successor rows in the reference's order (``ks``: positions in that order).
            The rows stay where they were made, block by block: most are read only through
            their keys, so they are gathered where read rather than all put together."""
            return made.take(perm[ks])
        post_of: list[State | None] = [None] * produced
        if posts or flagged:
            where = np.empty(produced, dtype=np.int64)
            where[perm] = np.arange(produced)
            for k, s in posts.items():
                post_of[int(where[k])] = s
        t = produced
        ex.transitions += t
        ex.expanded += m
        if len(actions) > len(fired):
            fired = np.concatenate([fired, np.zeros(len(actions) - len(fired), dtype=np.int64)])
        fired += np.bincount(aid_a, minlength=len(actions))[:len(fired)]

        keys, real_keys = key_of(rows_at(slice(None)) if symmetry else made.take([]),
                                 post_of, keys_a)
        hashes = key_hash(keys)  # once, for the sort, the lookups and the set
        first, inverse = distinct(keys, hashes)
        found = visited.lookup(keys[first], hashes[first])
        fresh = np.nonzero(found < 0)[0]
        depth = ex.depth[sids[0]] + 1 if m else 0
        new_sids = add_states(keys[first[fresh]], real_keys[first[fresh]],
                              src[par_a[first[fresh]]], aid_a[first[fresh]], depth,
                              hashes[first[fresh]])
        found[fresh] = new_sids
        tids = found[inverse]
        discovered = np.full(t, -1, dtype=np.int64)
        discovered[first[fresh]] = new_sids

        def post_state(k: int) -> State:
            got = post_of[k]
            if got is None:
                got = post_of[k] = lay.decode(rows_at(k))
            return got

        # Steps a step property's kernel flagged: the model's check words each finding.
        step_broken: dict[int, list[tuple[str, str]]] = {}
        for at_made, prop in flagged:
            for k in where[at_made].tolist():
                msg = prop.check_step(cfg, states[int(par_a[k])], actions[int(aid_a[k])],
                                      post_state(k))
                if msg is not None:
                    step_broken.setdefault(k, []).append((prop.name, msg))
        # The others and the scenarios: answered once per (action, parts before, parts
        # after) where the step changed the host and at most its own VM, else per step.
        # Only the steps of actions with a step property the kernels leave to the model, or
        # with an open scenario that the action's name alone does not rule out.
        open_names = {sc.name for sc in open_scenarios}
        need = np.array([bool(step_plan[a]) or bool(may_witness[a] & open_names)
                         for a in range(len(actions))], dtype=bool)
        ksel = np.nonzero(need[aid_a])[0] if t else np.zeros(0, dtype=np.int64)
        ts = len(ksel)
        if ts:
            s_aid, s_par = aid_a[ksel], par_a[ksel]
            aid_list = s_aid.tolist()
            par_list = s_par.tolist()
            s_post_h, s_post_v = part_ids.of_keys(keys_a[ksel], lambda: rows_at(ksel))

            def sub_post(k: int) -> State:
                return post_state(int(ksel[k]))

            vm_of = np.array(act_vm, dtype=np.int64)[s_aid]
            same = pre_v[s_par] == s_post_v
            others_kept = np.ones(ts, dtype=bool)
            for w in range(n_vms):
                others_kept &= same[:, w] | (vm_of == w)
            rng = np.arange(ts)
            vcol = np.maximum(vm_of, 0)
            combo = np.stack([s_aid, pre_h[s_par], s_post_h,
                              np.where(vm_of >= 0, pre_v[s_par, vcol], -1),
                              np.where(vm_of >= 0, s_post_v[rng, vcol], -1)], axis=1)
            local_k = np.nonzero(others_kept)[0]
            real_k = np.nonzero(~others_kept)[0].tolist()
            # First by (action, whether the host changed, the acting VM's parts): answers
            # that read neither host hold for every host. (The open scenarios only shrink,
            # so a remembered answer covers every scenario still open.)
            answers: list[tuple[list[Any], dict[str, Any]]] = []
            inv = np.empty(len(local_k), dtype=np.int64)
            vm_combo = combo[local_k][:, [0, 3, 4]]
            vm_combo[:, 0] = vm_combo[:, 0] * 2 + (combo[local_k, 1] == combo[local_k, 2])
            uniq, first_k, inv_v = unique_rows(vm_combo)
            host_read: list[int] = []
            for g, (c, k0) in enumerate(zip(uniq.tolist(), local_k[first_k].tolist())):
                ckey = (-1, *c)
                got = memo.by_ids.get(ckey)
                if got is None:
                    got = memo.by_ids[ckey] = step_answers_watched(
                        c[0] >> 1, states[par_list[k0]], sub_post(k0))
                if got[1]:
                    host_read.append(g)
                answers.append(got[0])
            inv[:] = inv_v
            fallback = np.isin(inv_v, host_read)
            if fallback.any():
                # Else by (action, host parts before and after, the acting VM's parts).
                rest = np.nonzero(fallback)[0]
                uniq, first_k, inv_r = unique_rows(combo[local_k[rest]])
                inv[rest] = inv_r + len(answers)
                for c, k0 in zip(uniq.tolist(), local_k[rest[first_k]].tolist()):
                    ckey = tuple(c)
                    got = memo.by_ids.get(ckey)
                    if got is None:
                        got = memo.by_ids[ckey] = step_answers(
                            c[0], states[par_list[k0]], sub_post(k0), local=True)
                    answers.append(got)
            # Combos with a finding, or a property that read another VM: their steps one by
            # one; combos where only a scenario read another VM: that scenario, step by step.
            busy = [ci for ci, (pa, _) in enumerate(answers) if any(x is not None for x in pa)]
            if busy:
                real_k += local_k[np.isin(inv, busy)].tolist()
            busy_set = set(busy)
            for ci, (pa, sa) in enumerate(answers):
                for name, seen in sa.items():
                    if seen is True:
                        ex.witnessed.add(name)
            scen_real: dict[str, list[int]] = {}
            for ci, (pa, sa) in enumerate(answers):
                if ci in busy_set:
                    continue
                for name, seen in sa.items():
                    if seen is _REAL and name not in ex.witnessed:
                        scen_real.setdefault(name, []).append(ci)
            for sc in open_scenarios:
                cis = scen_real.get(sc.name)
                if not cis or sc.name in ex.witnessed:
                    continue
                for k in local_k[np.isin(inv, cis)].tolist():
                    if sc.witness(cfg, states[par_list[k]], actions[aid_list[k]], sub_post(k)):
                        ex.witnessed.add(sc.name)
                        break
            open_scenarios = [sc for sc in open_scenarios if sc.name not in ex.witnessed]
            for k in sorted(real_k):
                aid = aid_list[k]
                if not step_plan[aid] and not open_scenarios:
                    continue
                pre, act = states[par_list[k]], actions[aid]
                post = sub_post(k)
                props_ans, scen_ans = step_answers(aid, pre, post, local=bool(others_kept[k]))
                broken = []
                for (p, _, _), msg in zip(step_plan[aid], props_ans):
                    if msg is _REAL:
                        msg = p.check_step(cfg, pre, act, post)
                    if msg is not None:
                        broken.append((p.name, msg))
                if broken:
                    step_broken.setdefault(int(ksel[k]), []).extend(broken)
                if open_scenarios:
                    still = []
                    for sc in open_scenarios:
                        seen = scen_ans.get(sc.name, _REAL)
                        if seen is _REAL:
                            seen = sc.witness(cfg, pre, act, post)
                        if seen:
                            ex.witnessed.add(sc.name)
                        else:
                            still.append(sc)
                    open_scenarios = still
        # State invariants of the new states, then the findings in the reference's order.
        new_broken: dict[int, list[tuple[str, str]]] = {}
        fk = first[fresh]
        if len(fk):
            new_rows = rows_at(fk)
            new_h, new_v = part_ids.of_keys(keys_a[fk], lambda: new_rows)
            dirty = states_dirty(new_rows, new_h, new_v, fk, post_state)
        else:
            dirty = np.zeros(0, dtype=bool)
        keep = np.ones(len(fk), dtype=bool)
        for at in np.nonzero(dirty)[0].tolist() if len(fk) else []:
            k = int(fk[at])
            broken = state_violations_fast(post_state(k))
            if broken:
                new_broken[k] = broken
                ex.violating.add(int(discovered[k]))
                keep[at] = False
        if step_broken:
            keep &= ~np.isin(fk, np.array(sorted(step_broken), dtype=np.int64))
        expand_next: list[int] = discovered[fk[keep]].tolist()
        for k in sorted(set(step_broken) | set(new_broken)):
            # In the model's order of properties, as the reference meets them.
            for name, msg in sorted(step_broken.get(k, ()), key=lambda x: step_order[x[0]]):
                ex.violations.setdefault(name, Finding(
                    name, msg, "step", sids[int(par_a[k])], actions[int(aid_a[k])]))
            if k in step_broken:
                ex.violating.add(int(tids[k]))
            for name, msg in new_broken.get(k, ()):
                ex.violations.setdefault(name, Finding(name, msg, "state", int(discovered[k]),
                                                       None))
        if keep_edges:
            ex.edge_src.frombytes(src[par_a].astype(np.int32).tobytes())
            ex.edge_dst.frombytes(tids.astype(np.int32).tobytes())
            ex.edge_act.frombytes(aid_a.astype(np.int32).tobytes())
        # Deadlocks: per expanded state, whether an honest VM's protocol is stalled.
        n_steps = np.bincount(par_a, minlength=m)
        pvm = np.array([-1 if v is None else v for v in moves_for], dtype=np.int64)
        moving = np.zeros((m, n_vms + 1), dtype=bool)
        if t:
            moving[par_a, pvm[aid_a] + 1] = True
        stalled = np.zeros((m, n_vms), dtype=bool)
        for v in honest:
            stalled[:, v] = unsettled_of(states, pre_h, pre_v, v) & ~moving[:, v + 1]
        dead = stalled.any(axis=1) | (n_steps == 0)
        ex.deadlocks += int(dead.sum())
        if ex.deadlock is None and dead.any():
            i = int(np.argmax(dead))
            vs = np.nonzero(stalled[i])[0]
            what = (f"VM {int(vs[0])}'s balloon has work to do but no module or VMM "
                    f"action for it is enabled" if len(vs) else "no action is enabled")
            ex.deadlock = Finding(DEADLOCK, what, "deadlock", sids[i], None)
        return expand_next

    def tally() -> None:
        ex.kernel_actions = tuple(s.name for s, k in zip(plan.specs, plan.kernels)
                                  if k is not None)
        ex.model_actions = tuple(s.name for s, k in zip(plan.specs, plan.kernels) if k is None)
        ex.fired = {}
        for aid, n in enumerate(fired.tolist()):
            if n:
                name = actions[aid].name
                ex.fired[name] = ex.fired.get(name, 0) + n
        ex.seconds = time.perf_counter() - start

    stop: str | None = "violation" if stop_now() else None
    pending: list[int] = []
    # The row products are narrow: more BLAS threads cost CPU time and add no speed.
    with one_blas_thread():
        while level and stop is None:
            nxt: list[int] = []
            for at in range(0, len(level), batch):
                stop = out_of_budget()
                if stop is not None:
                    pending = level[at:] + nxt
                    break
                nxt += expand(level[at:at + batch])
                if progress is not None:
                    tally()
                    progress(ex)
                if stop_on is not False and stop_now():
                    stop = "violation"
                    pending = level[at + batch:] + nxt
                    break
            else:
                level = nxt
                continue
            break
    if stop is None:
        level = []
    tally()
    ex.complete = stop is None
    ex.stop_reason = stop or "complete"
    ex.complete_depth = ex.max_depth if ex.complete else (
        ex.depth[pending[0]] if pending else ex.max_depth)
    ex.seconds = time.perf_counter() - start
    lay.forget()  # the interned parts were working memory of the search
    return ex
