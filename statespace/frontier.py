"""Level-synchronous breadth-first exploration over fixed-width rows (the frontier engine).

The same search as :func:`ballast.statespace.explore.explore` (the reference),
organised for whole-array work:

* a state is one row of small integers (:class:`~ballast.statespace.rowcodec.RowLayout`,
  derived from the state schema) and its visited-set key is that row packed into
  64-bit words; the visited set (:class:`~ballast.statespace.keyset.KeySet`) is
  sorted runs of keys, and the successors of a whole batch of states are
  deduplicated by sorting their keys. A batch holds each successor's key, not its
  row: the rows of the states it discovers are unpacked from their keys (with
  symmetry on, every successor's row is canonicalised, so there the rows are kept);
* the frontier is expanded a batch of states at a time. An action that has a
  kernel (:mod:`ballast.model.action_kernels`) runs through the kernels' NumPy
  interpreter on a :class:`~ballast.statespace.frontier_rows.FrontierRows`
  store: when the action's candidates do not depend on the state, each
  (action, argument) instance is its guard read over the whole batch
  (:func:`~ballast.numeric.interpret.guard_mask`), then one masked update of the
  rows it allows; where they
  do, the model's own candidate code is asked once per group of states that agree
  on what that code reads of the acting VM (noted as it runs:
  :class:`~ballast.statespace.frontier_candidates.CandidateGroups`). An action without a
  kernel yet (or replaced by a seeded fault that has none) falls back to the Python
  model's step on the decoded states: correct, slower;
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

This module holds the search itself (:class:`_FrontierSearch`, whose ``expand`` lists the
steps of one batch in order) and :func:`explore_frontier`; its parts live beside it:
``frontier_kernels`` (which actions and properties run by their kernels, what the model
answers without reading a state), ``frontier_parts`` (the rows' host and VM parts numbered
and grouped, and the answers remembered per part), ``frontier_candidates`` (the instances of
an action over a batch), ``frontier_batch`` (a batch's steps and their order),
``frontier_checks`` (the properties and scenarios checked over a batch),
``frontier_exploration`` (the result) and ``frontier_rows`` (the rows as the kernels' store).

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
from typing import Any, Callable, Collection, cast

import numpy as np
import numpy.typing as npt

from ballast import tally as work_done
from ballast.blas import one_blas_thread
from ballast.errors import GuardError
from ballast.model.actions import Action, ActionSpec, Partition, apply
from ballast.model.invariants import honest_vms
from ballast.model.ops import Kernel
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.numeric.interpret import guard_mask, run_kernel
from ballast.numeric.page_sets import page_sets
from ballast.statespace.deadlock import (
    DEADLOCK, protocol_vm, unsettled,
)
from ballast.statespace.explore import Budget, Exploration, Finding
from ballast.statespace.frontier_batch import Batch, Carried, Ordered
from ballast.statespace.frontier_candidates import VM_BITS, CandidateGroups, kernel_args, row_of
from ballast.statespace.frontier_checks import Broken, StateChecks, StepChecks
from ballast.statespace.frontier_exploration import FrontierExploration
from ballast.statespace.frontier_kernels import (Plan, kernel_of, property_kernel_of,
                                                 step_kernel_of, unsettled_kernel_of)
from ballast.statespace.frontier_parts import MISSING, READS_HOST, REAL, Memos, PartIds, groups
from ballast.statespace.frontier_rows import FrontierRows, RowsLack, property_holds_on_rows
from ballast.statespace.keyset import KeySet, Spill, distinct, key_hash, unique_rows
from ballast.statespace.parts import PartStore
from ballast.statespace.rowcodec import RowLayout
from ballast.statespace.symmetry_rows import RowSymmetry
from ballast.statespace.transitions import OtherVm, ReadElsewhere, WatchedHost

__all__ = ["BATCH", "FrontierExploration", "explore_frontier", "kernel_of", "property_kernel_of",
           "step_kernel_of"]

Ints = npt.NDArray[np.int64]
Keys = npt.NDArray[np.uint64]

BATCH = 16384
"""States expanded together (one batch of kernel updates, one sort of successor keys)."""

_ORDER_BITS = 24
"""Positions of the model's order: action index << this + candidate index."""

_INTERNED_LIMIT = 1 << 20
"""Interned parts kept before they (and every answer remembered by them) are dropped."""


def _keeps_others(pre: State, post: State, v: int | None) -> bool:
    """Whether ``post`` holds every VM but ``v`` as ``pre`` does (the same objects)."""
    return all(a is b for w, (a, b) in enumerate(zip(pre.vms, post.vms)) if w != v)


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
        self.plan = Plan(model)
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
        memo = self.memo = Memos()
        self.part_ids = PartIds(lay)
        props = model.properties()
        self.steps = StepChecks(model, lay, props, ex, self.act_vm, self.local, memo,
                                 self.part_ids)
        self.checks = StateChecks(model, lay, props, memo, self.local)
        self.vm_candidates = CandidateGroups(lay, memo.part_candidates, self.local)
        self.honest = list(honest_vms(cfg))
        self.unsettled_kernel = unsettled_kernel_of(model)
        """Whether a VM is unsettled, over a whole batch's rows at once (None: per state,
        by the model's reading)."""
        host_end, vm_width = lay.host_end, lay.vm_width
        self.vm_span = [(host_end + v * vm_width, host_end + (v + 1) * vm_width)
                        for v in range(n_vms)]
        self.fired = np.zeros(0, dtype=np.int64)
        """Per action id: the steps it made."""
        self.allowed: dict[str, list[int]] = {}
        """Per action whose candidates read the state: [rows asked, rows its guard allowed]
        so far (:meth:`fire` reads its guard first while it refuses most)."""
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
        real0 = lay.pack(rows0)
        keys0 = self.key_of(real0, lambda: rows0)
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
        carried: Carried | None = None
        while level:
            nxt: list[int] = []
            made: list[Carried] = []
            for at in range(0, len(level), batch):
                stop = stopping.out_of_budget()
                if stop is not None:
                    return stop, level[at:] + nxt
                ids, parts = self.expand(level[at:at + batch],
                                         None if carried is None else carried.part(at, batch))
                nxt += ids
                if parts is not None:
                    made.append(parts)
                if progress is not None:
                    self.tally()
                    progress(ex)
                if stopping.stop_on is not False and stopping.on_violation():
                    return "violation", level[at + batch:] + nxt
            level = nxt
            # Each batch kept its new states' part ids, or none did (states spill to disk).
            carried = (Carried.joined(made) if made and sum(len(c) for c in made) == len(nxt)
                       else None)
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

    def key_of(self, real: Keys, rows: Callable[[], npt.NDArray[np.int16]]) -> Keys:
        """The visited-set keys of states whose real keys are ``real``: those keys, or with
        symmetry on the keys of their canonical forms (``rows``: their rows, read only then)."""
        if not self.symmetry:
            return real
        return self.lay.pack(self.row_symmetry.canonical(rows()))

    # -- expanding a batch --------------------------------------------------------

    def expand(self, sids: list[int], carried: Carried | None = None
               ) -> tuple[list[int], Carried | None]:
        """Expand the states ``sids`` (one batch of a level; ``carried``: their part ids,
        where the batches that found them kept them): the new states to expand, and their
        part ids (none where states spill to disk: the memory budget is for states alone)."""
        lay = self.lay
        if lay.interned() > _INTERNED_LIMIT:
            lay.forget()
            self.memo.clear()
        # The successors' rows are kept only where every one is read (symmetry
        # canonicalises them all); else a batch holds their keys alone.
        batch = Batch(lay, sids, self.ex.rep_keys, self.part_ids, self.steps.flagged,
                      keep_rows=self.symmetry, carried=carried)
        for si, spec in enumerate(self.plan.specs):
            self.step_action(batch, si, spec)
        steps = Ordered(batch)
        self.count_steps(batch, steps)
        fk, tids, discovered = self.discover(batch, steps)
        step_broken = self.steps.check(batch, steps)
        # State invariants of the new states, then the findings in the reference's order.
        new_broken, keep, new = self.check_new_states(steps, fk, discovered)
        if step_broken:
            keep &= ~np.isin(fk, np.array(sorted(step_broken), dtype=np.int64))
        expand_next: list[int] = discovered[fk[keep]].tolist()
        self.record_findings(batch, steps, step_broken, new_broken, tids, discovered)
        if self.keep_edges:
            self.record_edges(batch, steps, tids)
        self.count_deadlocks(batch, steps)
        # The new states' part ids, read for their checks, are what the batch that expands
        # them reads first: kept for it rather than read off the keys and numbered again.
        kept = new.taken(keep) if new is not None and self.ex.spill is None else None
        return expand_next, kept

    def step_action(self, batch: Batch, si: int, spec: ActionSpec) -> None:
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

    def by_kernel(self, batch: Batch, si: int, spec: ActionSpec, kernel: Kernel,
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
        acting = [row_of(b[2]) for b in blocks]
        cuts = [0] + [k for k in range(1, len(blocks)) if acting[k] != acting[k - 1]]
        if len(cuts) > self.n_vms:
            cuts = [0]
        for lo, hi in zip(cuts, cuts[1:] + [len(blocks)]):
            self.fire(batch, spec, kernel, base, blocks[lo:hi], acting[lo:hi])

    def by_kernel_fixed(self, batch: Batch, spec: ActionSpec, kernel: Kernel,
                        fixed: list[dict[str, Any]], base: int) -> None:
        """Emit the steps of action ``spec`` whose candidates ``fixed`` do not depend on the
        state: each candidate's guard read over the whole batch, then one masked update of
        the rows it allows."""
        lay, rows, m, pages = self.lay, batch.rows, batch.m, self.cfg.guest_pages
        frozen = _read_only(rows)
        for j, args in enumerate(fixed):
            vms = np.full(m, row_of(args))
            # The guard read over the batch as it is, then the whole kernel on the rows it
            # allows alone (about half the batch or less): no copy of the rows it refuses.
            idx = np.flatnonzero(guard_mask(kernel, FrontierRows(lay, frozen, vms),
                                            kernel_args(args, m, pages)))
            if not len(idx):
                continue
            n = len(idx)
            # The parents' rows are gathered once: the kernel changes a copy of them.
            before = np.take(rows, idx, axis=0)
            copy = before.copy()
            ok = run_kernel(kernel, FrontierRows(lay, copy, vms[:n]), kernel_args(args, n, pages))
            if not ok.all():
                kept = np.flatnonzero(ok)
                idx, before, copy = idx[kept], before[kept], np.take(copy, kept, axis=0)
            if len(idx):
                aid = self.intern(Action.of(spec.name, **args))
                batch.emit(idx, np.full(len(idx), base + j), np.full(len(idx), aid), copy,
                           before=before)

    def kernel_blocks(self, batch: Batch, si: int, spec: ActionSpec,
                      by_vm: bool) -> list[tuple[Ints, int, dict[str, Any]]]:
        """The instances of action ``si`` whose candidates read the state: (the states, the
        instance's order, its arguments) per candidate of a state or group of states."""
        # For a VM-partitioned action, ask the model once per group of states that agree
        # on what they read (CandidateGroups), then spread them over the group (the order
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

    def fire(self, batch: Batch, spec: ActionSpec, kernel: Kernel, base: int,
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
        # A candidate the state offers may still be refused by the guard (a victim with no
        # disk slot to go to): while an action's guard refuses most of its rows, the guard
        # is read first, and a batch it refuses whole costs no effect.
        seen = self.allowed.setdefault(spec.name, [0, 0])
        if 2 * seen[1] < seen[0] or not seen[0]:
            allowed = int(np.count_nonzero(
                guard_mask(kernel, FrontierRows(self.lay, _read_only(copy), vms), kargs)))
            seen[0] += len(who)
            seen[1] += allowed
            if not allowed:
                return
        ok = run_kernel(kernel, FrontierRows(self.lay, copy, vms), kargs)
        idx = np.nonzero(ok)[0]
        if len(idx):
            fired_blocks, back = np.unique(block_of[idx], return_inverse=True)
            intern = self.intern
            aid_of = np.array([intern(Action.of(spec.name, **blocks[b][2]))
                               for b in fired_blocks.tolist()], dtype=np.int64)
            batch.emit(who[idx], base + ords[idx], aid_of[back.reshape(-1)],
                       np.take(copy, idx, axis=0))

    def by_model(self, batch: Batch, si: int, spec: ActionSpec, base: int,
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

    def by_part(self, batch: Batch, si: int, spec: ActionSpec, base: int, pv: int | None,
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

    def part_tables(self, batch: Batch, si: int, spec: ActionSpec,
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
            got = READS_HOST
            if pv is not None:
                akey = (si, pv, -1, vid)
                got = memo.get(akey, MISSING)
                if got is MISSING:
                    got = memo[akey] = step_table(si, spec, states[i0], pv, watch=True)
            if got is READS_HOST:
                tkey = (si, pv, hid, vid)
                got = memo.get(tkey, MISSING)
                if got is MISSING:
                    got = memo[tkey] = step_table(si, spec, states[i0], pv)
            tables.append(got)
        return tables, inv

    def spread(self, batch: Batch, base: int, pv: int | None, tables: list[Any],
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
        batch.emit(par_t, base + ((pv or 0) << VM_BITS) + t_ord[off], t_aid[off], out)

    def by_state(self, batch: Batch, spec: ActionSpec, base: int,
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
            os_.append(base + ((rv or 0) << VM_BITS) + j)
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
        READS_HOST when a step reads it (else every step leaves the host as it is)."""
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
                    return READS_HOST
                out.append((j, intern(act), None if watch else lay.intern_host(post.host),
                            None if v is None else lay.intern_vm(post.vms[v])))
        except ReadElsewhere:
            return None
        if watch and cast(WatchedHost, host).read:
            return READS_HOST
        return out

    def step_table(self, si: int, spec: ActionSpec, s: State, v: int | None,
                   watch: bool = False) -> Any:
        """:meth:`part_steps` as arrays: (orders, action ids, host cells, VM cells, whether
        the host stays as it is)."""
        got = self.part_steps(si, spec, s, v, watch)
        if got is None or got is READS_HOST:
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

    def count_steps(self, batch: Batch, steps: Ordered) -> None:
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

    def discover(self, batch: Batch, steps: Ordered) -> tuple[Ints, Ints, Ints]:
        """Add the states the steps reach first: (the steps that reach each new state first,
        every step's target id, per step the id of the state it discovered or -1)."""
        real_keys = steps.keys
        keys = self.key_of(real_keys, lambda: steps.rows_at(slice(None)))
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

    def check_new_states(self, steps: Ordered, fk: Ints, discovered: Ints
                         ) -> tuple[dict[int, Broken], npt.NDArray[np.bool_], Carried | None]:
        """The state properties the new states (reached first by the steps ``fk``) break:
        (the findings by step, whether each new state is to be expanded, their part ids)."""
        new_broken: dict[int, Broken] = {}
        new: Carried | None = None
        if len(fk):
            new_rows = steps.rows_at(fk)
            new_h, new_v = self.part_ids.of_keys(steps.keys[fk], lambda: new_rows)
            new = Carried(new_h, new_v)
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
        return new_broken, keep, new

    def record_findings(self, batch: Batch, steps: Ordered, step_broken: dict[int, Broken],
                        new_broken: dict[int, Broken], tids: Ints, discovered: Ints) -> None:
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

    def record_edges(self, batch: Batch, steps: Ordered, tids: Ints) -> None:
        """Keep every step of the batch as an edge (source, target, action)."""
        ex = self.ex
        ex.edge_src.frombytes(batch.src[steps.par].astype(np.int32).tobytes())
        ex.edge_dst.frombytes(tids.astype(np.int32).tobytes())
        ex.edge_act.frombytes(steps.aid.astype(np.int32).tobytes())

    def count_deadlocks(self, batch: Batch, steps: Ordered) -> None:
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
            idle = np.flatnonzero(~moving[:, v + 1])  # a VM that can move is not stalled
            if len(idle):
                stalled[idle, v] = self.unsettled_of(batch, v, idle)
        dead = stalled.any(axis=1) | (n_steps == 0)
        ex.deadlocks += int(dead.sum())
        if ex.deadlock is None and dead.any():
            i = int(np.argmax(dead))
            vs = np.nonzero(stalled[i])[0]
            what = (f"VM {int(vs[0])}'s balloon has work to do but no module or VMM "
                    f"action for it is enabled" if len(vs) else "no action is enabled")
            ex.deadlock = Finding(DEADLOCK, what, "deadlock", batch.sids[i], None)

    def unsettled_of(self, batch: Batch, v: int, at: Ints) -> npt.NDArray[np.bool_]:
        """Whether VM ``v`` is unsettled, per state of the batch at positions ``at``: by its
        kernel over those rows where it has one, else answered per distinct VM part where
        the answer read no host, else per distinct (host, VM) part."""
        if self.unsettled_kernel is not None:
            return property_holds_on_rows(self.unsettled_kernel, self.lay,
                                          np.take(batch.rows, at, axis=0), v)
        cfg, memo, local = self.cfg, self.memo.unsettled_ids, self.local
        states, hid, vid = batch.states, batch.pre_h, batch.pre_v
        ids, firsts, inv = groups([vid[:, v]])
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
                    got = REAL
                if host.read:
                    got = READS_HOST
                memo[key] = got
            if got is READS_HOST or got is REAL:
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
                    got = REAL
                memo[key] = got
            out[i] = unsettled(cfg, states[i], v) if got is REAL else bool(got)
        return out[at]


def _read_only(rows: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """A view of ``rows`` that cannot be written: a guard read alone (:func:`guard_mask`)
    that wrote would be an error, never a changed batch."""
    view = rows.view()
    view.flags.writeable = False
    return view


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
