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


def _keeps_others(pre: State, post: State, v: int | None) -> bool:
    """Whether ``post`` holds every VM but ``v`` as ``pre`` does (the same objects)."""
    return all(a is b for w, (a, b) in enumerate(zip(pre.vms, post.vms)) if w != v)


def _groups(cols: list[Ints]) -> tuple[list[list[int]], list[int], Ints]:
    """The distinct rows of the id columns ``cols``: (their ids, a first row each, the
    group of every row)."""
    uniq, first_i, inv = unique_rows(np.stack(cols, axis=1))
    return uniq.tolist(), first_i.tolist(), inv


_Answers = tuple[list[Any], dict[str, Any]]
"""Per step property of an action's plan its answer, per open scenario whether witnessed."""

_Broken = list[tuple[str, str]]
"""(property, message) of each property broken."""


class _Stopping:
    """When a search stops early: on a violation it was told to stop on, or out of budget."""

    def __init__(self, ex: FrontierExploration, stop_on: bool | Collection[str], budget: Budget,
                 start: float) -> None:
        self.ex = ex
        self.stop_on = stop_on
        self.budget = budget
        self.start = start

    def on_violation(self) -> bool:
        """Whether a violation the search stops on has been found."""
        stop_on = self.stop_on
        if stop_on is True:
            return bool(self.ex.violations)
        if stop_on is False:
            return False
        return any(p in self.ex.violations for p in stop_on)

    def out_of_budget(self) -> str | None:
        """The limit of the budget the search has reached, or None."""
        budget, ex = self.budget, self.ex
        if budget.max_states is not None and ex.count >= budget.max_states:
            return "max_states"
        if (budget.max_seconds is not None
                and time.perf_counter() - self.start > budget.max_seconds):
            return "max_seconds"
        if budget.max_bytes is not None and ex.bytes_estimate() > budget.max_bytes:
            return "max_bytes"
        return None


class _Batch:
    """A batch of states of one level and the steps made from them, in the order made."""

    def __init__(self, lay: RowLayout, sids: list[int], rep_keys: Keys, part_ids: _PartIds,
                 flag: Callable[[npt.NDArray[np.int16], npt.NDArray[np.int16], Ints,
                                 npt.NDArray[np.bool_]], list[tuple[Ints, Property]]]) -> None:
        self.lay = lay
        self.sids = sids
        self.m = len(sids)
        self.src = np.array(sids, dtype=np.int64)
        self.row_keys: Keys = rep_keys[self.src]
        rows = self.rows = lay.unpack(self.row_keys)
        self.states = _Decoded(lay, rows)
        self.pre_h, self.pre_v = part_ids.of_keys(self.row_keys, lambda: rows)
        self.flag = flag
        """The steps a step property's kernel finds broken (:meth:`_StepChecks.flagged`)."""
        self.par: list[Any] = []
        self.order: list[Any] = []
        self.aids: list[Any] = []
        self.out_rows: list[Any] = []
        self.out_keys: list[Keys] = []
        self.posts: dict[int, State] = {}
        self.flagged: list[tuple[Ints, Property]] = []
        self.produced = 0

    def emit(self, p: Any, o: Any, a: Any, r: Any, post: list[State] | None = None) -> None:
        """Add the steps from the states ``p`` (positions in the batch) at the model's order
        ``o`` by the actions ``a`` to the rows ``r`` (``post``: their states, if made)."""
        lay = self.lay
        produced = self.produced
        self.par.append(p)
        self.order.append(o)
        self.aids.append(a)
        self.out_rows.append(r)
        before = np.take(self.rows, p, axis=0)  # take: a fraction of the time of indexing
        changed = lay.changed_columns(before, r)
        # The successors' keys from their parents': one action's steps change a few
        # columns, which alone are packed again.
        self.out_keys.append(lay.repack(self.row_keys[p], before, r, changed))
        # Step properties with a kernel: over these steps at once, as they are made.
        touched = np.zeros(lay.width, dtype=bool)
        touched[changed] = True
        flagged = self.flagged
        for at, prop in self.flag(before, r, np.asarray(a), touched):
            flagged.append((at + produced, prop))
        if post is not None:
            posts = self.posts
            for k, s in enumerate(post):
                posts[produced + k] = s
        self.produced = produced + len(p)

    def mark(self) -> tuple[int, int, int]:
        """Where the steps made so far end (for :meth:`drop_since`)."""
        return len(self.par), self.produced, len(self.flagged)

    def drop_since(self, mark: tuple[int, int, int]) -> None:
        """Drop the steps made since :meth:`mark` gave ``mark``."""
        n, produced, n_flagged = mark
        del self.par[n:], self.order[n:], self.aids[n:]
        del self.out_rows[n:], self.out_keys[n:], self.flagged[n_flagged:]
        self.produced = produced


class _Ordered:
    """The steps of a batch in the reference's order (state by state, then the model's order
    of actions and candidates): parents, actions and keys; rows and states where read."""

    def __init__(self, batch: _Batch) -> None:
        lay = self.lay = batch.lay
        produced = self.count = batch.produced
        if produced:
            par = np.concatenate(batch.par).astype(np.int64)
            order = np.concatenate(batch.order).astype(np.int64)
            aid = np.concatenate(batch.aids).astype(np.int64)
            keys = np.concatenate(batch.out_keys)
        else:
            par = order = aid = np.zeros(0, dtype=np.int64)
            keys = np.zeros((0, lay.words), dtype=np.uint64)
        perm = self.perm = np.lexsort((order, par))
        self.par: Ints = par[perm]
        self.aid: Ints = aid[perm]
        self.keys: Keys = keys[perm]
        self.made = _Blocks(batch.out_rows, lay.width)
        self.post_of: list[State | None] = [None] * produced
        self.where: Ints | None = None
        """Per step in the order made, its position in this order (where needed)."""
        if batch.posts or batch.flagged:
            where = self.where = np.empty(produced, dtype=np.int64)
            where[perm] = np.arange(produced)
            post_of = self.post_of
            for k, s in batch.posts.items():
                post_of[int(where[k])] = s

    def rows_at(self, ks: Any) -> npt.NDArray[np.int16]:
        """Successor rows in the reference's order (``ks``: positions in that order).
        The rows stay where they were made, block by block: most are read only through
        their keys, so they are gathered where read rather than all put together."""
        return self.made.take(self.perm[ks])

    def post_state(self, k: int) -> State:
        """The state the step at ``k`` leads to, decoded when first asked for."""
        got = self.post_of[k]
        if got is None:
            got = self.post_of[k] = self.lay.decode(self.rows_at(k))
        return got


class _Chosen:
    """The steps of a batch whose step properties or scenarios the model answers: their
    positions among the ordered steps, their parents and actions."""

    def __init__(self, batch: _Batch, steps: _Ordered, at: Ints) -> None:
        self.batch = batch
        self.steps = steps
        self.at = at
        self.aid: Ints = steps.aid[at]
        self.par: Ints = steps.par[at]
        self.aids: list[int] = self.aid.tolist()
        self.pars: list[int] = self.par.tolist()

    def __len__(self) -> int:
        return len(self.at)

    def post(self, k: int) -> State:
        """The state the ``k``-th chosen step leads to."""
        return self.steps.post_state(int(self.at[k]))


class _StateChecks:
    """The state properties: on the initial states, and on batches of new states by their
    kernels or answered per part where that is all they read."""

    def __init__(self, model: BalloonModel, lay: RowLayout, props: list[Property], memo: _Memos,
                 local: Callable[[State, int | None], State]) -> None:
        cfg = self.cfg = model.cfg
        self.lay = lay
        self.memo = memo
        self.local = local
        self.props = [p for p in props if p.state is not None]
        self.p2m_ids = _PartIds(lay, [list(lay.cols("p2m", v)) for v in range(cfg.vms)])
        self.by_kernel = [p for p in self.props if property_kernel_of(model, p) is not None]
        rest = [(pi, p) for pi, p in enumerate(self.props) if p not in self.by_kernel]
        self.vm_props = [(pi, p) for pi, p in rest if p.per_vm is not None]
        self.whole_props = [(pi, p) for pi, p in rest if p.per_vm is None]

    def of_initial(self, s: State) -> _Broken:
        """The state properties ``s`` breaks, each checked on the whole state."""
        cfg = self.cfg
        return [(p.name, msg) for p in self.props if (msg := p.check_state(cfg, s)) is not None]

    def broken(self, s: State) -> _Broken:
        """The state properties ``s`` breaks, answered per part where remembered."""
        cfg = self.cfg
        out = []
        for pi, p in enumerate(self.props):
            if p.per_vm is not None:
                msg = next((m for v in p.checked_vms(cfg)
                            if (m := self.vm_check(pi, p, s, v)) is not None), None)
            else:
                msg = self.global_check(pi, p, s)
            if msg is not None:
                out.append((p.name, msg))
        return out

    def vm_check(self, pi: int, p: Property, s: State, v: int) -> str | None:
        """Per-VM property ``p`` on VM ``v`` of ``s``, remembered by the host and VM parts."""
        assert p.per_vm is not None
        cfg, memo = self.cfg, self.memo.state
        key = (pi, v, id(s.host), id(s.vms[v]))
        got = memo.get(key, _MISSING)
        if got is _MISSING:
            try:
                got = p.per_vm(cfg, self.local(s, v), v)
            except ReadElsewhere:
                got = _REAL
            memo[key] = got
        if got is _REAL:
            return p.per_vm(cfg, s, v)
        return cast("str | None", got)

    def global_check(self, pi: int, p: Property, s: State) -> str | None:
        """A whole-state check, remembered by the host part and every VM's map when that is
        all it read (as the reference's state checks do)."""
        memo = self.memo.state
        key = (pi, id(s.host), tuple(vm.p2m for vm in s.vms))
        got = memo.get(key, _MISSING)
        if got is not _MISSING:
            return cast("str | None", got)
        watched = tuple(WatchedVm.of(vm) for vm in s.vms)
        msg = p.check_state(self.cfg, State(s.host, watched))
        if all(vm.fields_read <= {"p2m"} for vm in watched):
            memo[key] = msg
        return msg

    def kernels_broken(self, new_rows: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a property checked by its kernel breaks: every kernel on
        the whole batch of rows at once."""
        cfg, lay = self.cfg, self.lay
        broken = np.zeros(len(new_rows), dtype=bool)
        for p in self.by_kernel:
            kernel = PROPERTY_KERNELS[p.name]
            if kernel.host is not None:
                broken |= ~property_holds_on_rows(kernel.host, lay, new_rows)
            if kernel.each_vm is not None:
                for v in p.checked_vms(cfg):
                    broken |= ~property_holds_on_rows(kernel.each_vm, lay, new_rows, v)
        return broken

    def dirty(self, new_rows: npt.NDArray[np.int16], hid: Ints, vid: Ints, ks: Ints,
              state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether some state invariant may break (then it is checked on the
        state itself): answers per distinct (host, VM) part and per distinct (host, maps)."""
        dirty = (self.kernels_broken(new_rows) if self.by_kernel
                 else np.zeros(len(ks), dtype=bool))
        for v in range(self.cfg.vms) if self.vm_props else ():
            dirty |= self.vm_dirty(v, hid, vid, ks, state_of)
        if self.whole_props:
            dirty |= self.whole_dirty(new_rows, hid, ks, state_of)
        return dirty

    def vm_dirty(self, v: int, hid: Ints, vid: Ints, ks: Ints,
                 state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a per-VM property may break on VM ``v``: answered once per
        distinct (host part, VM part) on the VM's part alone."""
        cfg, memo, vm_props = self.cfg, self.memo.vm_checks, self.vm_props
        ids, firsts, inv = _groups([hid, vid[:, v]])
        bad = []
        for g, ((h, x), i0) in enumerate(zip(ids, firsts)):
            key = (v, h, x)
            got = memo.get(key)
            if got is None:
                loc = self.local(state_of(int(ks[i0])), v)
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
                memo[key] = got
            if got:
                bad.append(g)
        return np.isin(inv, bad) if bad else np.zeros(len(inv), dtype=bool)

    def whole_dirty(self, new_rows: npt.NDArray[np.int16], hid: Ints, ks: Ints,
                    state_of: Callable[[int], State]) -> npt.NDArray[np.bool_]:
        """Per new state, whether a whole-state property may break: answered once per
        distinct (host part, every VM's map) where the properties read no more."""
        cfg, memo, whole_props = self.cfg, self.memo.whole_checks, self.whole_props
        maps = self.p2m_ids.of_columns(new_rows)
        ids, firsts, inv = _groups([hid] + [maps[:, v] for v in range(cfg.vms)])
        bad = []
        for g, (key_ids, i0) in enumerate(zip(ids, firsts)):
            wkey = tuple(key_ids)
            got = memo.get(wkey)
            if got is None:
                s_ = state_of(int(ks[i0]))
                watched = tuple(WatchedVm.of(vm) for vm in s_.vms)
                local_s = State(s_.host, watched)
                broken = any(p.check_state(cfg, local_s) is not None for _, p in whole_props)
                got = broken or not all(vm.fields_read <= {"p2m"} for vm in watched)
                memo[wkey] = got
            if got:
                bad.append(g)
        return np.isin(inv, bad) if bad else np.zeros(len(inv), dtype=bool)


class _StepChecks:
    """The step properties and the scenarios: planned per action when it is first met, and
    answered over the steps of each batch."""

    def __init__(self, model: BalloonModel, lay: RowLayout, props: list[Property],
                 ex: FrontierExploration, act_vm: list[int],
                 local: Callable[[State, int | None], State], memo: _Memos,
                 part_ids: _PartIds) -> None:
        cfg = self.cfg = model.cfg
        self.lay = lay
        self.ex = ex
        self.actions = ex.actions
        self.act_vm = act_vm
        """Per action id: the VM its ``vm`` argument names (-1: none)."""
        self.local = local
        self.memo = memo
        self.part_ids = part_ids
        self.props = [p for p in props if p.step is not None]
        self.open: list[Scenario] = model.scenarios()
        """The scenarios not witnessed yet."""
        self.scenarios = list(self.open)
        self.may_witness: list[set[str]] = []
        """Per action id: the scenarios its steps may witness (the others it rules out by its
        name and arguments alone)."""
        self.plans: list[list[tuple[Property, str | None, bool]]] = []
        """Per action id: (property, constant answer, must run on the states)."""
        self.kernels = {p.name: k for p in self.props
                        if (k := step_kernel_of(model, p)) is not None}
        self.reads = {name: [None if k.covers == "actor" else own_columns_read(k.check, lay, v)
                             for v in range(cfg.vms)] for name, k in self.kernels.items()}
        """Per step form and VM: the VM's own columns the form reads, where it covers VMs
        besides the actor and reads nothing else (None: always run)."""
        self.order = {p.name: i for i, p in enumerate(self.props)}
        self.rows_plan: list[list[tuple[Property, StepKernel]]] = []
        """Per action id: the step properties checked by their kernels over whole batches of
        steps (the model's check runs only on the steps a kernel finds broken, for its
        words)."""

    def plan(self, act: Action) -> None:
        """Plan the checks of the steps of ``act``, the action just given the next id."""
        cfg = self.cfg
        plan_row = []
        by_rows = []
        spec = ACTIONS.get(act.name)
        for p in self.props:
            def answer(p: Property = p) -> str | None:
                return p.check_step(cfg, _UNREAD, act, _UNREAD)
            known, msg = _without_state(answer)
            sk = self.kernels.get(p.name)
            if not known and sk is not None and spec is not None and sk.constrains(spec):
                by_rows.append((p, sk))
            elif not known or msg is not None:
                plan_row.append((p, msg if known else None, not known))
        self.plans.append(plan_row)
        self.rows_plan.append(by_rows)
        may = set()
        for sc in self.scenarios:
            def witness(sc: Scenario = sc) -> bool:
                return sc.witness(cfg, _UNREAD, act, _UNREAD)
            known, seen = _without_state(witness)
            if not known or seen:
                may.add(sc.name)
        self.may_witness.append(may)

    def flagged(self, pre: npt.NDArray[np.int16], post: npt.NDArray[np.int16],
                aid: Ints, touched: npt.NDArray[np.bool_]) -> list[tuple[Ints, Property]]:
        """The steps (``pre[i]`` to ``post[i]`` by action ``aid[i]``; ``touched``: the
        columns some of them change) that a step property's kernel finds broken, with that
        property: each kernel runs once per (property, acting VM) over every such step, on
        the rows as they were made (one action's steps usually all need it and have one
        acting VM: then nothing is gathered). A form that covers VMs besides the actor
        holds on a step that changes nothing, so it is not run for a VM none of whose
        columns it reads changed (:func:`own_columns_read`)."""
        out: list[tuple[Ints, Property]] = []
        step_kernels = self.kernels
        if not len(aid) or not step_kernels:
            return out
        cfg, lay, rows_plan, act_vm, step_reads = (self.cfg, self.lay, self.rows_plan,
                                                   self.act_vm, self.reads)
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

    def step_answers_watched(self, aid: int, pre: State, post: State) -> tuple[_Answers, bool]:
        """:meth:`step_answers` of a step that changed the host and at most its own VM,
        and whether the answers read either host."""
        act = self.actions[aid]
        v = self.act_vm[aid]
        vv = v if v >= 0 else None
        local = self.local
        lpre, lpost = local(pre, vv), local(post, vv)
        wpre = WatchedHost.of(pre.host)
        wpost = wpre if post.host is pre.host else WatchedHost.of(post.host)
        got = self.step_answers_on(aid, act, State(wpre, lpre.vms), State(wpost, lpost.vms))
        return got, wpre.read or wpost.read

    def step_answers(self, aid: int, pre: State, post: State, *, local: bool = True) -> _Answers:
        """Per step property of the action's plan, its answer (or _REAL: it read another
        VM); per open scenario, whether the step witnesses it (or _REAL). ``local``: the
        step changed the host and at most its own VM, so the other VMs are stood in for."""
        act = self.actions[aid]
        v = self.act_vm[aid]
        vv = v if v >= 0 else None
        lpre, lpost = (self.local(pre, vv), self.local(post, vv)) if local else (pre, post)
        return self.step_answers_on(aid, act, lpre, lpost)

    def step_answers_on(self, aid: int, act: Action, lpre: State, lpost: State) -> _Answers:
        """:meth:`step_answers` on the states as given (parts stood in for or watched)."""
        cfg = self.cfg
        props: list[Any] = []
        for p, const, run in self.plans[aid]:
            ans: object = const
            if run:
                try:
                    ans = p.check_step(cfg, lpre, act, lpost)
                except ReadElsewhere:
                    ans = _REAL
            props.append(ans)
        scen: dict[str, Any] = {}
        for sc in self.open:
            try:
                scen[sc.name] = sc.witness(cfg, lpre, act, lpost)
            except ReadElsewhere:
                scen[sc.name] = _REAL
        return props, scen

    def check(self, batch: _Batch, steps: _Ordered) -> dict[int, _Broken]:
        """The step properties broken by the steps of a batch, by their positions in
        ``steps``; the scenarios they witness are noted in the result."""
        broken: dict[int, _Broken] = {}
        self.check_flagged(batch, steps, broken)
        self.check_planned(batch, steps, broken)
        return broken

    def check_flagged(self, batch: _Batch, steps: _Ordered, broken: dict[int, _Broken]) -> None:
        """Into ``broken``: the model's check's words on each step a property's kernel
        flagged."""
        cfg, actions, states = self.cfg, self.actions, batch.states
        par, aid = steps.par, steps.aid
        for at_made, prop in batch.flagged:
            assert steps.where is not None
            for k in steps.where[at_made].tolist():
                msg = prop.check_step(cfg, states[int(par[k])], actions[int(aid[k])],
                                      steps.post_state(k))
                if msg is not None:
                    broken.setdefault(k, []).append((prop.name, msg))

    def check_planned(self, batch: _Batch, steps: _Ordered, broken: dict[int, _Broken]) -> None:
        """Into ``broken``: the step properties the kernels leave to the model, and the
        scenarios still open, on the steps of actions that have some."""
        # Only the steps of actions with a step property the kernels leave to the model, or
        # with an open scenario that the action's name alone does not rule out.
        open_names = {sc.name for sc in self.open}
        plans, may_witness = self.plans, self.may_witness
        need = np.array([bool(plans[a]) or bool(may_witness[a] & open_names)
                         for a in range(len(self.actions))], dtype=bool)
        ksel = np.nonzero(need[steps.aid])[0] if steps.count else np.zeros(0, dtype=np.int64)
        if not len(ksel):
            return
        ch = _Chosen(batch, steps, ksel)
        # Answered once per (action, parts before, parts after) where the step changed the
        # host and at most its own VM, else per step.
        others_kept, combo = self.combos(ch)
        local_k = np.nonzero(others_kept)[0]
        real_k = np.nonzero(~others_kept)[0].tolist()
        answers, inv = self.combo_answers(ch, combo, local_k)
        # Combos with a finding, or a property that read another VM: their steps one by
        # one; combos where only a scenario read another VM: that scenario, step by step.
        busy = [ci for ci, (pa, _) in enumerate(answers) if any(x is not None for x in pa)]
        if busy:
            real_k += local_k[np.isin(inv, busy)].tolist()
        self.witness_by_combos(ch, answers, inv, local_k, set(busy))
        witnessed = self.ex.witnessed
        self.open = [sc for sc in self.open if sc.name not in witnessed]
        self.check_each(ch, sorted(real_k), others_kept, broken)

    def combos(self, ch: _Chosen) -> tuple[npt.NDArray[np.bool_], Ints]:
        """Per chosen step: whether it kept every VM but its own, and its combo (action, host
        part before and after, the acting VM's part before and after, -1 for none)."""
        batch, steps = ch.batch, ch.steps
        pre_h, pre_v = batch.pre_h, batch.pre_v
        ts = len(ch)
        s_aid, s_par = ch.aid, ch.par
        s_post_h, s_post_v = self.part_ids.of_keys(steps.keys[ch.at],
                                                   lambda: steps.rows_at(ch.at))
        vm_of = np.array(self.act_vm, dtype=np.int64)[s_aid]
        same = pre_v[s_par] == s_post_v
        others_kept = np.ones(ts, dtype=bool)
        for w in range(self.cfg.vms):
            others_kept &= same[:, w] | (vm_of == w)
        rng = np.arange(ts)
        vcol = np.maximum(vm_of, 0)
        combo = np.stack([s_aid, pre_h[s_par], s_post_h,
                          np.where(vm_of >= 0, pre_v[s_par, vcol], -1),
                          np.where(vm_of >= 0, s_post_v[rng, vcol], -1)], axis=1)
        return others_kept, combo

    def combo_answers(self, ch: _Chosen, combo: Ints,
                      local_k: Ints) -> tuple[list[_Answers], Ints]:
        """The answers of the chosen steps ``local_k`` (those that kept the other VMs), once
        per combo: (the answers, each step's answer)."""
        by_ids = self.memo.by_ids
        states, pars, post = ch.batch.states, ch.pars, ch.post
        # First by (action, whether the host changed, the acting VM's parts): answers
        # that read neither host hold for every host. (The open scenarios only shrink,
        # so a remembered answer covers every scenario still open.)
        answers: list[_Answers] = []
        inv = np.empty(len(local_k), dtype=np.int64)
        vm_combo = combo[local_k][:, [0, 3, 4]]
        vm_combo[:, 0] = vm_combo[:, 0] * 2 + (combo[local_k, 1] == combo[local_k, 2])
        uniq, first_k, inv_v = unique_rows(vm_combo)
        host_read: list[int] = []
        for g, (c, k0) in enumerate(zip(uniq.tolist(), local_k[first_k].tolist())):
            ckey = (-1, *c)
            got = by_ids.get(ckey)
            if got is None:
                got = by_ids[ckey] = self.step_answers_watched(c[0] >> 1, states[pars[k0]],
                                                               post(k0))
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
                got = by_ids.get(ckey)
                if got is None:
                    got = by_ids[ckey] = self.step_answers(c[0], states[pars[k0]], post(k0),
                                                           local=True)
                answers.append(got)
        return answers, inv

    def witness_by_combos(self, ch: _Chosen, answers: list[_Answers], inv: Ints, local_k: Ints,
                          busy: set[int]) -> None:
        """Note the scenarios the combos' answers witness; a scenario that read another VM
        (in a combo not ``busy``: those go step by step anyway) is asked step by step."""
        witnessed = self.ex.witnessed
        for _, sa in answers:
            for name, seen in sa.items():
                if seen is True:
                    witnessed.add(name)
        scen_real: dict[str, list[int]] = {}
        for ci, (_, sa) in enumerate(answers):
            if ci in busy:
                continue
            for name, seen in sa.items():
                if seen is _REAL and name not in witnessed:
                    scen_real.setdefault(name, []).append(ci)
        cfg, actions, states = self.cfg, self.actions, ch.batch.states
        for sc in self.open:
            cis = scen_real.get(sc.name)
            if not cis or sc.name in witnessed:
                continue
            for k in local_k[np.isin(inv, cis)].tolist():
                if sc.witness(cfg, states[ch.pars[k]], actions[ch.aids[k]], ch.post(k)):
                    witnessed.add(sc.name)
                    break

    def check_each(self, ch: _Chosen, real_k: list[int], others_kept: npt.NDArray[np.bool_],
                   broken: dict[int, _Broken]) -> None:
        """Into ``broken``: the chosen steps ``real_k`` checked one by one (and the open
        scenarios they witness noted)."""
        cfg, actions, plans, states = self.cfg, self.actions, self.plans, ch.batch.states
        for k in real_k:
            aid = ch.aids[k]
            if not plans[aid] and not self.open:
                continue
            pre, act = states[ch.pars[k]], actions[aid]
            post = ch.post(k)
            props_ans, scen_ans = self.step_answers(aid, pre, post, local=bool(others_kept[k]))
            found = []
            for (p, _, _), msg in zip(plans[aid], props_ans):
                if msg is _REAL:
                    msg = p.check_step(cfg, pre, act, post)
                if msg is not None:
                    found.append((p.name, msg))
            if found:
                broken.setdefault(int(ch.at[k]), []).extend(found)
            if self.open:
                self.witness_step(scen_ans, pre, act, post)

    def witness_step(self, scen_ans: dict[str, Any], pre: State, act: Action,
                     post: State) -> None:
        """Note the open scenarios one step witnesses (``scen_ans``: its answers so far)."""
        witnessed = self.ex.witnessed
        still = []
        for sc in self.open:
            seen = scen_ans.get(sc.name, _REAL)
            if seen is _REAL:
                seen = sc.witness(self.cfg, pre, act, post)
            if seen:
                witnessed.add(sc.name)
            else:
                still.append(sc)
        self.open = still


class _FrontierSearch:
    """One frontier search of a model: its rows and visited set, how each action is stepped,
    the checks, and the result they fill in."""

    def __init__(self, model: BalloonModel, *, symmetry: bool, budget: Budget, keep_edges: bool,
                 stop_on: bool | Collection[str], memory_budget: int | None,
                 spill_dir: str | None) -> None:
        cfg = self.cfg = model.cfg
        self.model = model
        self.symmetry = symmetry
        self.keep_edges = keep_edges
        lay = self.lay = RowLayout(cfg)
        self.row_symmetry = RowSymmetry(lay)
        self.plan = _Plan(model)
        ex = self.ex = FrontierExploration(model, PartStore(cfg.vms), symmetry,
                                           keep_edges=keep_edges, layout=lay,
                                           rep_keys=np.zeros((0, lay.words), dtype=np.uint64))
        if memory_budget is not None:
            ex.spill = Spill(max(1, memory_budget // 2), spill_dir)
        self.visited = ex.visited = KeySet(lay.words, ex.spill)
        self.note_engines()
        work_done.note("explore", lambda: f"{ex.count:,} states explored")
        n_vms = self.n_vms = cfg.vms
        self.actions = ex.actions
        self.action_ids: dict[Action, int] = {}
        self.moves_for: list[int | None] = []
        """Per action id: the VM whose protocol its steps move (None: none)."""
        self.act_vm: list[int] = []
        """Per action id: the VM its ``vm`` argument names (-1: none)."""
        self.stand = tuple(object.__new__(OtherVm) for _ in range(n_vms))
        memo = self.memo = _Memos()
        self.part_ids = _PartIds(lay)
        props = model.properties()
        self.steps = _StepChecks(model, lay, props, ex, self.act_vm, self.local, memo,
                                 self.part_ids)
        self.checks = _StateChecks(model, lay, props, memo, self.local)
        self.vm_candidates = _VmCandidates(lay, memo.part_candidates, self.local)
        self.honest = list(honest_vms(cfg))
        host_end, vm_width = lay.host_end, lay.vm_width
        self.vm_span = [(host_end + v * vm_width, host_end + (v + 1) * vm_width)
                        for v in range(n_vms)]
        self.fired = np.zeros(0, dtype=np.int64)
        """Per action id: the steps it made."""
        self.start = time.perf_counter()
        self.stopping = _Stopping(ex, stop_on, budget, self.start)

    # -- the search ---------------------------------------------------------------

    def run(self, progress: Callable[[Exploration], None] | None,
            batch: int) -> FrontierExploration:
        """Search from the initial states until done or stopped; the result."""
        level = self.seed()
        stop: str | None = "violation" if self.stopping.on_violation() else None
        pending: list[int] = []
        # The row products are narrow: more BLAS threads cost CPU time and add no speed.
        with one_blas_thread():
            if stop is None:
                stop, pending = self.levels(level, progress, batch)
        self.finish(stop, pending)
        return self.ex

    def seed(self) -> list[int]:
        """Add the initial states; those to expand (the ones that break no property)."""
        ex, lay = self.ex, self.lay
        inits = self.model.init_states()
        rows0 = np.array([lay.encode_list(s) for s in inits], dtype=np.int16)
        keys0, real0 = self.key_of(rows0, list(inits))
        first0, _ = distinct(keys0)
        sids0 = self.add_states(keys0[first0], real0[first0], np.full(len(first0), -1),
                                np.full(len(first0), -1), 0)
        level: list[int] = []
        for sid, i in zip(sids0.tolist(), first0.tolist()):
            broken = self.checks.of_initial(inits[i])
            for name, msg in broken:
                ex.violations.setdefault(name, Finding(name, msg, "state", sid, None))
            if broken:
                ex.violating.add(sid)
            else:
                level.append(sid)
        return level

    def levels(self, level: list[int], progress: Callable[[Exploration], None] | None,
               batch: int) -> tuple[str | None, list[int]]:
        """Expand level after level, ``batch`` states at a time, until none is left or the
        search stops: (why it stopped, or None; the states it left unexpanded)."""
        ex, stopping = self.ex, self.stopping
        while level:
            nxt: list[int] = []
            for at in range(0, len(level), batch):
                stop = stopping.out_of_budget()
                if stop is not None:
                    return stop, level[at:] + nxt
                nxt += self.expand(level[at:at + batch])
                if progress is not None:
                    self.tally()
                    progress(ex)
                if stopping.stop_on is not False and stopping.on_violation():
                    return "violation", level[at + batch:] + nxt
            level = nxt
        return None, []

    def finish(self, stop: str | None, pending: list[int]) -> None:
        """Note in the result how the search ended (``pending``: the states left)."""
        ex = self.ex
        self.tally()
        ex.complete = stop is None
        ex.stop_reason = stop or "complete"
        ex.complete_depth = ex.max_depth if ex.complete else (
            ex.depth[pending[0]] if pending else ex.max_depth)
        ex.seconds = time.perf_counter() - self.start
        self.lay.forget()  # the interned parts were working memory of the search

    def note_engines(self) -> None:
        """Note in the result which actions are stepped by kernels and which by the model."""
        plan = self.plan
        self.ex.kernel_actions = tuple(s.name for s, k in zip(plan.specs, plan.kernels)
                                       if k is not None)
        self.ex.model_actions = tuple(s.name for s, k in zip(plan.specs, plan.kernels)
                                      if k is None)

    def tally(self) -> None:
        """Note in the result what the search has done so far."""
        ex = self.ex
        self.note_engines()
        ex.fired = {}
        actions = self.actions
        for aid, n in enumerate(self.fired.tolist()):
            if n:
                name = actions[aid].name
                ex.fired[name] = ex.fired.get(name, 0) + n
        ex.seconds = time.perf_counter() - self.start

    # -- states and actions -------------------------------------------------------

    def local(self, s: State, v: int | None) -> State:
        """``s`` with every VM but ``v`` stood in for (reading one raises)."""
        stand = self.stand
        return State(s.host, tuple(vm if w == v else stand[w] for w, vm in enumerate(s.vms)))

    def intern(self, act: Action) -> int:
        """The id of action ``act``, given (and its checks planned) when first met."""
        aid = self.action_ids.get(act)
        if aid is None:
            aid = self.action_ids[act] = len(self.actions)
            self.actions.append(act)
            self.steps.plan(act)
            self.moves_for.append(protocol_vm(act))
            v = act.kwargs.get("vm")
            self.act_vm.append(v if isinstance(v, int) and not isinstance(v, bool)
                               and 0 <= v < self.n_vms else -1)
        return aid

    def add_states(self, keys: Keys, reps: Keys, parents: Ints, via: Ints, depth: int,
                   hashes: Keys | None = None) -> Ints:
        """Add new states (visited-set keys, real keys, parents, actions): their ids."""
        ex = self.ex
        n = len(keys)
        sids = np.arange(ex.count, ex.count + n, dtype=np.int64)
        ex._grow(n)
        ex.rep_keys[ex.count:ex.count + n] = reps
        ex.count += n
        self.visited.add(keys, sids, hashes)
        ex.parent.frombytes(parents.astype(np.int32).tobytes())
        ex.via.frombytes(via.astype(np.int32).tobytes())
        ex.depth.frombytes(np.full(n, depth, dtype=np.int32).tobytes())
        if n:
            ex.deepest = max(ex.deepest, depth)
        return sids

    def key_of(self, rows: npt.NDArray[np.int16], states: list[State | None],
               real: Keys | None = None) -> tuple[Keys, Keys]:
        """(visited-set keys, real keys) of successor rows (``real``: already packed)."""
        if real is None:
            real = self.lay.pack(rows)
        if not self.symmetry:
            return real, real
        return self.lay.pack(self.row_symmetry.canonical(rows)), real

    # -- expanding a batch --------------------------------------------------------

    def expand(self, sids: list[int]) -> list[int]:
        """Expand the states ``sids`` (one batch of a level); the new states to expand."""
        lay = self.lay
        if lay.interned() > _INTERNED_LIMIT:
            lay.forget()
            self.memo.clear()
        batch = _Batch(lay, sids, self.ex.rep_keys, self.part_ids, self.steps.flagged)
        for si, spec in enumerate(self.plan.specs):
            self.step_action(batch, si, spec)
        steps = _Ordered(batch)
        self.count_steps(batch, steps)
        fk, tids, discovered = self.discover(batch, steps)
        step_broken = self.steps.check(batch, steps)
        # State invariants of the new states, then the findings in the reference's order.
        new_broken, keep = self.check_new_states(steps, fk, discovered)
        if step_broken:
            keep &= ~np.isin(fk, np.array(sorted(step_broken), dtype=np.int64))
        expand_next: list[int] = discovered[fk[keep]].tolist()
        self.record_findings(batch, steps, step_broken, new_broken, tids, discovered)
        if self.keep_edges:
            self.record_edges(batch, steps, tids)
        self.count_deadlocks(batch, steps)
        return expand_next

    def step_action(self, batch: _Batch, si: int, spec: ActionSpec) -> None:
        """Make the steps of action ``si`` (``spec``) from the batch: by its kernel where it
        has one the rows serve, else by the model."""
        plan = self.plan
        kernel, fixed = plan.kernels[si], plan.fixed[si]
        base = si << _ORDER_BITS
        by_vm = spec.partition is Partition.VM and spec.vm_candidates is not None
        if kernel is not None:
            mark = batch.mark()
            try:
                self.by_kernel(batch, si, spec, kernel, fixed, base, by_vm)
                return
            except RowsLack:
                # The rows lack an operation the kernel needs: nothing it made is
                # kept, and the model steps this action from now on.
                batch.drop_since(mark)
                plan.kernels[si] = None
        self.by_model(batch, si, spec, base, by_vm)

    def by_kernel(self, batch: _Batch, si: int, spec: ActionSpec, kernel: Kernel,
                  fixed: list[dict[str, Any]] | None, base: int, by_vm: bool) -> None:
        """Emit the steps of action ``spec`` by its kernel over the whole batch (raises
        :class:`RowsLack` where the rows lack an operation the kernel needs)."""
        if fixed is not None:
            self.by_kernel_fixed(batch, spec, kernel, fixed, base)
            return
        blocks = self.kernel_blocks(batch, si, spec, by_vm)
        if not blocks:
            return
        # A run of blocks whose steps act on one VM reads that VM's columns as one
        # slice of every row (FrontierRows), rather than gathered row by row.
        acting = [_row_of(b[2]) for b in blocks]
        cuts = [0] + [k for k in range(1, len(blocks)) if acting[k] != acting[k - 1]]
        if len(cuts) > self.n_vms:
            cuts = [0]
        for lo, hi in zip(cuts, cuts[1:] + [len(blocks)]):
            self.fire(batch, spec, kernel, base, blocks[lo:hi], acting[lo:hi])

    def by_kernel_fixed(self, batch: _Batch, spec: ActionSpec, kernel: Kernel,
                        fixed: list[dict[str, Any]], base: int) -> None:
        """Emit the steps of action ``spec`` whose candidates ``fixed`` do not depend on the
        state: each candidate one masked update of the whole batch."""
        lay, rows, m, pages = self.lay, batch.rows, batch.m, self.cfg.guest_pages
        # One scratch copy of the rows for every instance in turn: the steps are
        # taken out of it (emit gathers them) before the next instance writes it.
        copy = np.empty_like(rows)
        for j, args in enumerate(fixed):
            np.copyto(copy, rows)
            store = FrontierRows(lay, copy, np.full(m, _row_of(args)))
            ok = run_kernel(kernel, store, _args(args, m, pages))
            idx = np.nonzero(ok)[0]
            if len(idx):
                aid = self.intern(Action.of(spec.name, **args))
                batch.emit(idx, np.full(len(idx), base + j), np.full(len(idx), aid),
                           np.take(copy, idx, axis=0))

    def kernel_blocks(self, batch: _Batch, si: int, spec: ActionSpec,
                      by_vm: bool) -> list[tuple[Ints, int, dict[str, Any]]]:
        """The instances of action ``si`` whose candidates read the state: (the states, the
        instance's order, its arguments) per candidate of a state or group of states."""
        # For a VM-partitioned action, ask the model once per group of states that agree
        # on what they read (_VmCandidates), then spread them over the group (the order
        # of the instances is given by ``ords``).
        blocks: list[tuple[Ints, int, dict[str, Any]]] = []
        cfg, states = self.cfg, batch.states
        if not by_vm:
            for i, s in enumerate(states):
                blocks += [(np.array([i]), j, a) for j, a in enumerate(spec.candidates(cfg, s))]
        for v in range(self.n_vms if by_vm else 0):
            blocks += self.vm_candidates.blocks(si, spec, v, batch.rows, states, batch.pre_h,
                                                batch.pre_v)
        return blocks

    def fire(self, batch: _Batch, spec: ActionSpec, kernel: Kernel, base: int,
             blocks: list[tuple[Ints, int, dict[str, Any]]], acting: list[int]) -> None:
        """Run ``kernel`` on the states of ``blocks`` (state indices, order, arguments;
        ``acting``: each block's acting VM) and emit the steps whose guard held."""
        sizes = np.array([len(b[0]) for b in blocks], dtype=np.int64)
        who = np.concatenate([b[0] for b in blocks]).astype(np.int64)
        block_of = np.repeat(np.arange(len(blocks)), sizes)
        ords = np.repeat(np.array([b[1] for b in blocks], dtype=np.int64), sizes)
        copy = np.take(batch.rows, who, axis=0)
        kargs: dict[str, Any] = {}
        for name in blocks[0][2]:
            if name != "vm":
                vals = [b[2][name] for b in blocks]
                if isinstance(vals[0], int):
                    kargs[name] = np.repeat(np.array(vals, dtype=np.int64), sizes)
                elif isinstance(vals[0], tuple):  # sets of PPNs: masks made once a block
                    kargs[name] = page_sets(vals, sizes, self.cfg.guest_pages)
                else:
                    kargs[name] = [x for x, k in zip(vals, sizes.tolist()) for _ in range(k)]
        vms = np.repeat(np.array(acting, dtype=np.int64), sizes)
        ok = run_kernel(kernel, FrontierRows(self.lay, copy, vms), kargs)
        idx = np.nonzero(ok)[0]
        if len(idx):
            fired_blocks, back = np.unique(block_of[idx], return_inverse=True)
            intern = self.intern
            aid_of = np.array([intern(Action.of(spec.name, **blocks[b][2]))
                               for b in fired_blocks.tolist()], dtype=np.int64)
            batch.emit(who[idx], base + ords[idx], aid_of[back.reshape(-1)],
                       np.take(copy, idx, axis=0))

    def by_model(self, batch: _Batch, si: int, spec: ActionSpec, base: int,
                 by_vm: bool) -> None:
        """Emit the steps of action ``si`` (``spec``) by the model's step, computed once per
        part where it reads one part."""
        part_of: list[int | None] | None = (
            list(range(self.n_vms)) if by_vm else [None] if spec.partition is Partition.HOST
            else None)
        real: list[tuple[int, int, dict[str, Any], int | None]] = []
        if part_of is None:
            cfg, states = self.cfg, batch.states
            for i in range(batch.m):
                real += [(i, j, a, None) for j, a in enumerate(spec.candidates(cfg, states[i]))]
        for pv in part_of or ():
            self.by_part(batch, si, spec, base, pv, real)
        self.by_state(batch, spec, base, real)

    def by_part(self, batch: _Batch, si: int, spec: ActionSpec, base: int, pv: int | None,
                real: list[tuple[int, int, dict[str, Any], int | None]]) -> None:
        """Emit the steps of action ``si`` on part ``pv`` (a VM; None: the host) from one
        table of steps per distinct (host part, VM part); into ``real``: the instances of
        the states whose steps read another VM."""
        tables, inv = self.part_tables(batch, si, spec, pv)
        counts = np.array([0 if tb is None else len(tb[0]) for tb in tables], dtype=np.int64)
        nonlocal_groups = [g for g, tb in enumerate(tables) if tb is None]
        if nonlocal_groups:
            cfg, states = self.cfg, batch.states
            for i in np.nonzero(np.isin(inv, nonlocal_groups))[0].tolist():
                s_ = states[i]
                whole = (spec.vm_candidates(cfg, s_, pv) if pv is not None and
                         spec.vm_candidates is not None else spec.candidates(cfg, s_))
                real += [(i, j, a, pv) for j, a in enumerate(whole)]
        self.spread(batch, base, pv, tables, counts, inv)

    def part_tables(self, batch: _Batch, si: int, spec: ActionSpec,
                    pv: int | None) -> tuple[list[Any], Ints]:
        """The step table (:meth:`step_table`) of each distinct (host part, VM part ``pv``)
        of the batch, and the group of every state."""
        memo, states, m = self.memo.tables, batch.states, batch.m
        step_table = self.step_table
        vcol = batch.pre_v[:, pv] if pv is not None else np.zeros(m, dtype=np.int64)
        uniq, first_i, inv = unique_rows(np.stack([batch.pre_h, vcol], axis=1))
        tables: list[Any] = []
        for (hid, vid), i0 in zip(uniq.tolist(), first_i.tolist()):
            # Steps that leave the host unread are kept by the VM part alone.
            got = _READS_HOST
            if pv is not None:
                akey = (si, pv, -1, vid)
                got = memo.get(akey, _MISSING)
                if got is _MISSING:
                    got = memo[akey] = step_table(si, spec, states[i0], pv, watch=True)
            if got is _READS_HOST:
                tkey = (si, pv, hid, vid)
                got = memo.get(tkey, _MISSING)
                if got is _MISSING:
                    got = memo[tkey] = step_table(si, spec, states[i0], pv)
            tables.append(got)
        return tables, inv

    def spread(self, batch: _Batch, base: int, pv: int | None, tables: list[Any],
               counts: Ints, inv: Ints) -> None:
        """Emit the steps of the ``tables`` of groups over the states of each group (``inv``)
        by sorting, never state by state."""
        cnt = counts[inv]
        total = int(cnt.sum())
        if not total:
            return
        live = [tb for tb in tables if tb is not None]
        t_ord = np.concatenate([tb[0] for tb in live])
        t_aid = np.concatenate([tb[1] for tb in live])
        t_host = np.concatenate([tb[2] for tb in live])
        t_vm = np.concatenate([tb[3] for tb in live])
        t_keep = np.concatenate([tb[4] for tb in live])
        starts = np.cumsum(counts) - counts
        par_t = np.repeat(np.arange(batch.m), cnt)
        off = np.repeat(starts[inv] - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        out = np.take(batch.rows, par_t, axis=0)
        host_end = self.lay.host_end
        out[:, :host_end] = np.where(t_keep[off][:, None], out[:, :host_end], t_host[off])
        if pv is not None:
            a_, b_ = self.vm_span[pv]
            out[:, a_:b_] = t_vm[off]
        batch.emit(par_t, base + ((pv or 0) << _VM_BITS) + t_ord[off], t_aid[off], out)

    def by_state(self, batch: _Batch, spec: ActionSpec, base: int,
                 real: list[tuple[int, int, dict[str, Any], int | None]]) -> None:
        """Emit the steps of the instances ``real`` (state, order, arguments, VM part) by the
        model's step on each whole state."""
        cfg, states, table, intern, lay = (self.cfg, batch.states, self.model.table,
                                           self.intern, self.lay)
        ps: list[int] = []
        os_: list[int] = []
        as_: list[int] = []
        ss: list[State] = []
        for i, j, a, rv in real:
            act = Action.of(spec.name, **a)
            try:
                post = apply(cfg, states[i], act, table)
            except GuardError:
                continue
            ps.append(i)
            os_.append(base + ((rv or 0) << _VM_BITS) + j)
            as_.append(intern(act))
            ss.append(post)
        if ps:
            rs = [lay.encode_list(x) for x in ss]
            batch.emit(np.array(ps), np.array(os_), np.array(as_),
                       np.array(rs, dtype=np.int16).reshape(len(rs), lay.width), ss)

    def part_steps(self, si: int, spec: ActionSpec, s: State, v: int | None,
                   watch: bool = False) -> Any:
        """The steps of action ``si`` for VM ``v`` (None: for the host) computed on its part
        alone, or None when they read another VM. ``watch``: with the host watched, and
        _READS_HOST when a step reads it (else every step leaves the host as it is)."""
        cfg, lay, table, intern = self.cfg, self.lay, self.model.table, self.intern
        loc = self.local(s, v)
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
                    post = apply(cfg, loc, act, table)
                except GuardError:
                    continue
                if not _keeps_others(loc, post, v):
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

    def step_table(self, si: int, spec: ActionSpec, s: State, v: int | None,
                   watch: bool = False) -> Any:
        """:meth:`part_steps` as arrays: (orders, action ids, host cells, VM cells, whether
        the host stays as it is)."""
        got = self.part_steps(si, spec, s, v, watch)
        if got is None or got is _READS_HOST:
            return got
        lay = self.lay
        host_end = lay.host_end
        e = len(got)
        host = np.array([lay.cells(h) if h is not None else [0] * host_end
                         for _, _, h, _ in got], dtype=np.int16).reshape(e, host_end)
        keep = np.array([h is None for _, _, h, _ in got], dtype=bool)
        if v is not None:
            vm = np.array([lay.cells(x) for _, _, _, x in got], dtype=np.int16).reshape(
                e, lay.vm_width)
        else:
            vm = np.zeros((e, 0), dtype=np.int16)
        return (np.array([j for j, _, _, _ in got], dtype=np.int64),
                np.array([aid for _, aid, _, _ in got], dtype=np.int64), host, vm, keep)

    # -- after the steps of a batch are made ---------------------------------------

    def count_steps(self, batch: _Batch, steps: _Ordered) -> None:
        """Count the batch's expanded states, its steps and the steps of each action."""
        ex = self.ex
        ex.transitions += steps.count
        ex.expanded += batch.m
        n = len(self.actions)
        fired = self.fired
        if n > len(fired):
            fired = np.concatenate([fired, np.zeros(n - len(fired), dtype=np.int64)])
        fired += np.bincount(steps.aid, minlength=n)[:len(fired)]
        self.fired = fired

    def discover(self, batch: _Batch, steps: _Ordered) -> tuple[Ints, Ints, Ints]:
        """Add the states the steps reach first: (the steps that reach each new state first,
        every step's target id, per step the id of the state it discovered or -1)."""
        keys, real_keys = self.key_of(
            steps.rows_at(slice(None)) if self.symmetry else steps.made.take([]),
            steps.post_of, steps.keys)
        hashes = key_hash(keys)  # once, for the sort, the lookups and the set
        first, inverse = distinct(keys, hashes)
        found = self.visited.lookup(keys[first], hashes[first])
        fresh = np.nonzero(found < 0)[0]
        fk = first[fresh]
        depth = self.ex.depth[batch.sids[0]] + 1 if batch.m else 0
        new_sids = self.add_states(keys[fk], real_keys[fk], batch.src[steps.par[fk]],
                                   steps.aid[fk], depth, hashes[fk])
        found[fresh] = new_sids
        tids = found[inverse]
        discovered = np.full(steps.count, -1, dtype=np.int64)
        discovered[fk] = new_sids
        return fk, tids, discovered

    def check_new_states(self, steps: _Ordered, fk: Ints,
                         discovered: Ints) -> tuple[dict[int, _Broken], npt.NDArray[np.bool_]]:
        """The state properties the new states (reached first by the steps ``fk``) break:
        (the findings by step, whether each new state is to be expanded)."""
        new_broken: dict[int, _Broken] = {}
        if len(fk):
            new_rows = steps.rows_at(fk)
            new_h, new_v = self.part_ids.of_keys(steps.keys[fk], lambda: new_rows)
            dirty = self.checks.dirty(new_rows, new_h, new_v, fk, steps.post_state)
        else:
            dirty = np.zeros(0, dtype=bool)
        keep = np.ones(len(fk), dtype=bool)
        for at in np.nonzero(dirty)[0].tolist() if len(fk) else []:
            k = int(fk[at])
            broken = self.checks.broken(steps.post_state(k))
            if broken:
                new_broken[k] = broken
                self.ex.violating.add(int(discovered[k]))
                keep[at] = False
        return new_broken, keep

    def record_findings(self, batch: _Batch, steps: _Ordered, step_broken: dict[int, _Broken],
                        new_broken: dict[int, _Broken], tids: Ints, discovered: Ints) -> None:
        """Note the batch's findings in the reference's order: step by step, and at each
        step the step properties in the model's order, then the state properties."""
        ex, sids, actions, step_order = self.ex, batch.sids, self.actions, self.steps.order
        for k in sorted(set(step_broken) | set(new_broken)):
            for name, msg in sorted(step_broken.get(k, ()), key=lambda x: step_order[x[0]]):
                ex.violations.setdefault(name, Finding(
                    name, msg, "step", sids[int(steps.par[k])], actions[int(steps.aid[k])]))
            if k in step_broken:
                ex.violating.add(int(tids[k]))
            for name, msg in new_broken.get(k, ()):
                ex.violations.setdefault(name, Finding(name, msg, "state", int(discovered[k]),
                                                       None))

    def record_edges(self, batch: _Batch, steps: _Ordered, tids: Ints) -> None:
        """Keep every step of the batch as an edge (source, target, action)."""
        ex = self.ex
        ex.edge_src.frombytes(batch.src[steps.par].astype(np.int32).tobytes())
        ex.edge_dst.frombytes(tids.astype(np.int32).tobytes())
        ex.edge_act.frombytes(steps.aid.astype(np.int32).tobytes())

    def count_deadlocks(self, batch: _Batch, steps: _Ordered) -> None:
        """Count the expanded states where no step is enabled or an honest VM's protocol is
        stalled, and note the first."""
        ex, m, n_vms = self.ex, batch.m, self.n_vms
        par_a, aid_a = steps.par, steps.aid
        n_steps = np.bincount(par_a, minlength=m)
        pvm = np.array([-1 if v is None else v for v in self.moves_for], dtype=np.int64)
        moving = np.zeros((m, n_vms + 1), dtype=bool)
        if steps.count:
            moving[par_a, pvm[aid_a] + 1] = True
        stalled = np.zeros((m, n_vms), dtype=bool)
        for v in self.honest:
            stalled[:, v] = self.unsettled_of(batch, v) & ~moving[:, v + 1]
        dead = stalled.any(axis=1) | (n_steps == 0)
        ex.deadlocks += int(dead.sum())
        if ex.deadlock is None and dead.any():
            i = int(np.argmax(dead))
            vs = np.nonzero(stalled[i])[0]
            what = (f"VM {int(vs[0])}'s balloon has work to do but no module or VMM "
                    f"action for it is enabled" if len(vs) else "no action is enabled")
            ex.deadlock = Finding(DEADLOCK, what, "deadlock", batch.sids[i], None)

    def unsettled_of(self, batch: _Batch, v: int) -> npt.NDArray[np.bool_]:
        """Whether VM ``v`` is unsettled, per state of the batch: answered per distinct VM
        part where the answer read no host, else per distinct (host, VM) part."""
        cfg, memo, local = self.cfg, self.memo.unsettled_ids, self.local
        states, hid, vid = batch.states, batch.pre_h, batch.pre_v
        ids, firsts, inv = _groups([vid[:, v]])
        ans = np.zeros(len(ids), dtype=bool)
        again: list[int] = []
        for g, ((x,), i0) in enumerate(zip(ids, firsts)):
            key = (v, -1, x)
            got = memo.get(key)
            if got is None:
                loc = local(states[i0], v)
                host = WatchedHost.of(loc.host)
                try:
                    got = unsettled(cfg, State(host, loc.vms), v)
                except ReadElsewhere:
                    got = _REAL
                if host.read:
                    got = _READS_HOST
                memo[key] = got
            if got is _READS_HOST or got is _REAL:
                again.append(g)
            else:
                ans[g] = bool(got)
        out = ans[inv]
        for i in np.nonzero(np.isin(inv, again))[0].tolist() if again else ():
            key = (v, int(hid[i]), int(vid[i, v]))
            got = memo.get(key)
            if got is None:
                try:
                    got = unsettled(cfg, local(states[i], v), v)
                except ReadElsewhere:
                    got = _REAL
                memo[key] = got
            out[i] = unsettled(cfg, states[i], v) if got is _REAL else bool(got)
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
    search = _FrontierSearch(model, symmetry=symmetry, budget=budget, keep_edges=keep_edges,
                             stop_on=stop_on, memory_budget=memory_budget, spill_dir=spill_dir)
    return search.run(progress, batch)
