"""Breadth-first exploration of every reachable state of a :class:`BalloonModel`.

The explorer drives the model only through its own interface (initial states,
actions with their candidates, the properties' state and step checks and the
scenarios' witnesses):

* states are stored packed, as one integer of part ids
  (:class:`~ballast.statespace.parts.PartStore`), and their steps come from
  :class:`~ballast.statespace.transitions.Transitions`, which computes the steps
  of each VM's part once and reuses them (``cache=False`` takes every step from
  ``BalloonModel.successors`` instead; both give the same exploration, step for
  step, which the tests check);
* every state invariant is checked on every newly reached state, every step
  property on every transition (as ``BalloonModel.step_violations`` does, with
  the state forms checked once per state rather than once per incoming edge);
* states are visited in breadth-first order, so the first violation found of a
  property is one at the smallest depth: its trace is a shortest one;
* a state that breaks a property is recorded and not expanded further;
* each state remembers its parent and the action that reached it, so a trace is
  rebuilt by following parents back to the initial state;
* with symmetry reduction on, the visited set holds canonical forms
  (:func:`~ballast.statespace.symmetry.canonical`) but the explorer expands the
  real state that first reached each class, so every trace it rebuilds is a real
  run of the model;
* a budget on states, seconds or bytes stops the search early; the result then
  says so and no property can pass.

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
>>> ex = explore(BalloonModel(cfg))
>>> ex.complete, ex.states > 10, ex.violations
(True, True, {})
"""

from __future__ import annotations

import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Collection

from ballast import tally as work_done
from ballast.model.actions import Action
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.deadlock import (
    is_total_deadlock, protocol_vm, stalled_among, unsettled,
)
from ballast.statespace.parts import PartStore
from ballast.statespace.state_checks import StateChecks
from ballast.statespace.symmetry import canonical
from ballast.statespace.transitions import (
    CachedSteps, ReadElsewhere, Step, Transitions, WatchedHost,
)

__all__ = ["Budget", "Exploration", "Finding", "explore"]


@dataclass(frozen=True)
class Budget:
    """Limits on one exploration; ``None`` means no limit."""

    max_states: int | None = None
    max_seconds: float | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class Finding:
    """The first (shallowest) place a property breaks, or a deadlock is found."""

    property: str
    message: str
    form: str
    """``state``, ``step`` or ``deadlock``."""
    state: int
    """Id of the state the trace leads to (for a step form: the state before the step)."""
    action: Action | None
    """For a step form: the breaking step taken from ``state``."""

    def steps(self, ex: "Exploration") -> int:
        """Length of the shortest trace."""
        return int(ex.depth[self.state]) + (1 if self.action is not None else 0)


# Cost of one visited state beyond its key: the dict slot and its share of the
# hash table, the list slots and the parent / action / depth arrays.
_ENTRY_OVERHEAD = 8 * 3 + 8 + 8 + 4 * 3


@dataclass
class Exploration:
    """What one exploration found, and the packed states it visited."""

    model: BalloonModel
    parts: PartStore
    """The distinct host and VM parts; a state key packs their ids."""
    symmetry: bool
    keys: list[int] = field(default_factory=list)
    """Per state id: the visited-set key (of the canonical form when symmetry is on)."""
    reps: list[int] = field(default_factory=list)
    """Per state id: the key of the real state that was expanded (``keys`` itself
    when symmetry is off)."""
    parent: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]
    via: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]
    depth: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]
    actions: list[Action] = field(default_factory=list)
    """Interned actions; ``via`` and the edge arrays hold indices into it."""
    edge_src: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]
    edge_dst: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]
    edge_act: array = field(default_factory=lambda: array("i"))  # type: ignore[type-arg]
    keep_edges: bool = False
    transitions: int = 0
    """Transitions examined (edges, including those to states already seen)."""
    expanded: int = 0
    complete: bool = False
    stop_reason: str = ""
    """``complete``, ``violation``, ``max_states``, ``max_seconds`` or ``max_bytes``."""
    seconds: float = 0.0
    violations: dict[str, Finding] = field(default_factory=dict)
    """Per property name: its shallowest violation."""
    violating: set[int] = field(default_factory=set)
    """Ids of states that break a state invariant or end a breaking step."""
    deadlocks: int = 0
    """States where some honest VM's protocol is stalled (or nothing is enabled)."""
    deadlock: Finding | None = None
    fired: dict[str, int] = field(default_factory=dict)
    """Action name -> transitions that took it."""
    witnessed: set[str] = field(default_factory=set)
    key_bytes: int = 0
    """Bytes of the key objects of the visited states."""
    complete_depth: int = -1
    """Every state at this depth or less was reached and checked (all of them when complete)."""
    cache_hits: int = 0
    """Parts whose steps came from the transition cache."""
    cache_misses: int = 0
    """Parts whose steps were computed from the model."""
    recomputed: int = 0
    """Steps computed on the real state because they read another VM's part."""
    cache_bytes: int = 0
    """Estimated bytes held by the transition cache and the cached state checks
    (working memory of the search, freed when it ends)."""

    @property
    def states(self) -> int:
        """Distinct states visited (symmetry classes when symmetry is on)."""
        return len(self.keys)

    @property
    def max_depth(self) -> int:
        return max(self.depth) if len(self.depth) else 0

    def bytes_estimate(self) -> int:
        """Estimated bytes held by the search: visited states (keys, parts, arrays,
        edges) and the caches it works with."""
        keys = self.key_bytes * (2 if self.symmetry else 1)
        edges = 12 * len(self.edge_src)
        return (keys + _ENTRY_OVERHEAD * len(self.keys) + self.parts.part_bytes() + edges
                + self.cache_bytes)

    def state(self, sid: int) -> State:
        """The real state with id ``sid``."""
        return self.parts.state(self.reps[sid])

    def all_states(self) -> list[State]:
        """Every real state, by id (what the liveness checks read)."""
        return [self.state(i) for i in range(self.states)]

    def path(self, sid: int) -> list[Action]:
        """The actions of a shortest run from the initial state to state ``sid``."""
        out: list[Action] = []
        while self.parent[sid] >= 0:
            out.append(self.actions[self.via[sid]])
            sid = self.parent[sid]
        out.reverse()
        return out

    def edges(self) -> list[tuple[int, int, Action]]:
        """Every stored transition as (source id, target id, action)."""
        acts = self.actions
        return [(s, d, acts[a]) for s, d, a in zip(self.edge_src, self.edge_dst, self.edge_act)]


class _Moving:
    """Whether some protocol actor can move for a VM in a state, worked out when asked."""

    __slots__ = ("groups", "steps", "moves_for")

    def __init__(self, groups: list[tuple[CachedSteps, int]], steps: list[Step],
                 moves_for: list[int | None]) -> None:
        self.groups = groups
        self.steps = steps
        self.moves_for = moves_for

    def __contains__(self, vm: object) -> bool:
        moves_for = self.moves_for
        for entry, _ in self.groups:
            if entry.moving is None:
                entry.moving = frozenset(moves_for[a] for a in entry.plain_actions)
            if vm in entry.moving:
                return True
        return any(moves_for[step[1]] == vm for step in self.steps)


def _order(step: Step) -> int:
    return step[0]


_Groups = list[tuple[CachedSteps, int]]
"""Steps of a state held by the transition cache: (entry, bits of the rest of the key)."""


class _Search:
    """The working state of one exploration: the visited set, the frontier and the checks."""

    __slots__ = ("model", "cfg", "symmetry", "budget", "keep_edges", "stop_on", "progress",
                 "store", "steps", "ex", "checks", "index", "moves_for", "settled_cache",
                 "start", "frontier")

    def __init__(self, model: BalloonModel, symmetry: bool, budget: Budget, keep_edges: bool,
                 stop_on: bool | Collection[str],
                 progress: Callable[[Exploration], None] | None, cache: bool) -> None:
        """Set up an empty search of ``model``; nothing is visited yet."""
        self.model, self.cfg = model, model.cfg
        self.symmetry, self.budget, self.keep_edges = symmetry, budget, keep_edges
        self.stop_on, self.progress = stop_on, progress
        self.store = store = PartStore(self.cfg.vms)
        self.steps = steps = Transitions(model, store, cache=cache)
        self.ex = ex = Exploration(model, store, symmetry, keep_edges=keep_edges,
                                   actions=steps.actions)
        work_done.note("explore", lambda: f"{len(ex.keys):,} states explored")
        if not symmetry:
            ex.reps = ex.keys
        self.checks = StateChecks(model, store, cache=cache)
        self.index: dict[int, int] = {}
        self.moves_for: list[int | None] = []
        """Per action id: the VM a protocol actor moves for in it (deadlock detection)."""
        self.settled_cache: list[dict[int, bool]] = [{} for _ in range(self.cfg.vms)]
        self.start = time.perf_counter()
        self.frontier: deque[int] = deque()

    def canonical_key(self, key: int) -> int:
        """The key of the canonical form of the state packed in ``key``."""
        store = self.store
        return store.key(canonical(self.cfg, store.state(key)))

    def add(self, key: int, src: int, act: int, known_new: bool = False) -> tuple[int, bool]:
        """The id of the state packed in ``key``, reached from ``src`` by action ``act``,
        and whether it is new (then it is recorded)."""
        index, ex = self.index, self.ex
        if not known_new:
            sid = index.get(key)
            if sid is not None:
                return sid, False
        real = key
        if self.symmetry:
            key = self.canonical_key(key)
            sid = index.get(key)
            if sid is not None:
                return sid, False
        keys, depth = ex.keys, ex.depth
        sid = len(keys)
        index[key] = sid
        keys.append(key)
        if self.symmetry:
            ex.reps.append(real)
        ex.key_bytes += sys.getsizeof(key)
        ex.parent.append(src)
        ex.via.append(act)
        depth.append(depth[src] + 1 if src >= 0 else 0)
        return sid, True

    def check_state(self, ids: list[int], s: State, sid: int) -> bool:
        """Check the state invariants on state ``sid``, recording what breaks; whether any did."""
        ex = self.ex
        broken = self.checks.violations(ids, s)
        for name, msg in broken:
            if name not in ex.violations:
                ex.violations[name] = Finding(name, msg, "state", sid, None)
        if broken:
            ex.violating.add(sid)
        return bool(broken)

    def is_unsettled(self, s: State, ids: list[int], v: int) -> bool:
        """Whether VM ``v``'s balloon has work left in ``s`` (remembered per VM part)."""
        # Whether a VM is unsettled depends on its own part alone (checked: the host is
        # watched and the other VMs are stood in for); else ask the real state.
        cfg, settled = self.cfg, self.settled_cache[v]
        vid = ids[v + 1]
        known = settled.get(vid)
        if known is None:
            host = WatchedHost.of(s.host)
            local = State(host, tuple(vm if w == v else other
                                      for w, (vm, other) in enumerate(
                                          zip(s.vms, self.steps.stand_ins))))
            try:
                answer = unsettled(cfg, local, v)
            except ReadElsewhere:
                return unsettled(cfg, s, v)
            if host.read:
                return unsettled(cfg, s, v)
            known = settled[vid] = answer
        return known

    def seed(self) -> None:
        """Visit the initial states; those that break no invariant join the frontier."""
        store = self.store
        for s0 in self.model.init_states():
            key0 = store.key(s0)
            sid, new = self.add(key0, -1, -1)
            if new and not self.check_state(store.ids(key0), s0, sid):
                self.frontier.append(sid)

    def out_of_budget(self) -> str | None:
        """The budget that has run out, if any."""
        ex, budget = self.ex, self.budget
        ex.cache_bytes = self.steps.cache_bytes() + self.checks.cache_bytes()
        if budget.max_states is not None and len(ex.keys) >= budget.max_states:
            return "max_states"
        if (budget.max_seconds is not None
                and time.perf_counter() - self.start > budget.max_seconds):
            return "max_seconds"
        if budget.max_bytes is not None and ex.bytes_estimate() > budget.max_bytes:
            return "max_bytes"
        return None

    def stop_now(self) -> bool:
        """Whether a violation found so far is one to stop at."""
        stop_on, found = self.stop_on, self.ex.violations
        if stop_on is True:
            return bool(found)
        if stop_on is False:
            return False
        return any(p in found for p in stop_on)

    def tally(self) -> None:
        """Copy the transition cache's counts (actions fired, hits, bytes) into the result."""
        ex, steps, actions = self.ex, self.steps, self.ex.actions
        ex.fired = {}
        for aid, n in enumerate(steps.count_fired()):
            if n:
                name = actions[aid].name
                ex.fired[name] = ex.fired.get(name, 0) + n
        ex.cache_hits, ex.cache_misses = steps.hits, steps.misses
        ex.cache_bytes = steps.cache_bytes() + self.checks.cache_bytes()
        ex.recomputed = steps.recomputed

    def checkpoint(self) -> str | None:
        """The budget that has run out, if any; else report progress when it is due."""
        stop = self.out_of_budget()
        if stop is None and self.progress is not None and self.ex.expanded % 8192 == 0:
            self.tally()
            self.progress(self.ex)
        return stop

    def steps_from(self, rkey: int, ids: list[int], s: State) -> tuple[_Groups, list[Step], int]:
        """The steps of state ``s`` to take one by one (in the model's order), the cached
        groups holding the others, and how many transitions leave ``s``."""
        steps = self.steps
        if self.keep_edges:
            pending = steps.of(rkey, ids, s)
            return [], pending, len(pending)
        # Steps to states already seen need nothing more than the lookup; only the
        # others, and the steps that carry findings, are taken one by one, in order.
        groups, pending = steps.grouped(rkey, ids, s)
        n_steps = len(pending) + sum(len(entry.plain_bits) for entry, _ in groups)
        index_get = self.index.get
        fresh_steps: list[Step] = []
        for entry, rest in groups:
            tkeys = [rest | bits for bits in entry.plain_bits]
            tids = list(map(index_get, tkeys))
            if None in tids:
                orders, acts = entry.plain_orders, entry.plain_actions
                fresh_steps += [(orders[i], acts[i], tkeys[i], (), ())
                                for i, tid in enumerate(tids) if tid is None]
        if fresh_steps:
            pending += fresh_steps
        if len(pending) > 1:  # into the model's order (stable: cache=False has no order)
            pending.sort(key=_order)
        return groups, pending, n_steps

    def note_deadlock(self, sid: int, s: State, ids: list[int], groups: _Groups,
                      pending: list[Step], n_steps: int) -> None:
        """Count state ``sid`` if some honest VM's protocol is stalled in it (or nothing is
        enabled), and keep the first such state as the deadlock finding."""
        ex, moves_for, actions = self.ex, self.moves_for, self.ex.actions
        while len(moves_for) < len(actions):
            moves_for.append(protocol_vm(actions[len(moves_for)]))
        stalled = stalled_among(self.cfg, _Moving(groups, pending, moves_for),
                                lambda v: self.is_unsettled(s, ids, v))
        if stalled or is_total_deadlock(n_steps):
            ex.deadlocks += 1
            if ex.deadlock is None:
                what = (f"VM {stalled[0]}'s balloon has work to do but no module or VMM "
                        f"action for it is enabled" if stalled else "no action is enabled")
                ex.deadlock = Finding("deadlock_free", what, "deadlock", sid, None)

    def run(self) -> str | None:
        """Expand the frontier breadth-first until it is empty or the search must stop;
        why it stopped (None: it ran out of states to expand)."""
        # Bound once: the inner loop runs once per transition.
        ex, store, frontier = self.ex, self.store, self.frontier
        reps, actions, found = ex.reps, ex.actions, ex.violations
        witnessed, violating = ex.witnessed, ex.violating
        edge_src, edge_dst, edge_act = ex.edge_src, ex.edge_dst, ex.edge_act
        index_get, add, check_state = self.index.get, self.add, self.check_state
        stop_now, steps_from, close = self.stop_now, self.steps_from, self.steps.close
        symmetry, keep_edges, watch_stop = self.symmetry, self.keep_edges, self.stop_on is not False
        slow = keep_edges or watch_stop
        stop = "violation" if stop_now() else None
        while frontier and stop is None:
            if ex.expanded % 256 == 0:
                stop = self.checkpoint()
                if stop is not None:
                    break
            sid = frontier.popleft()
            rkey = reps[sid]
            ids = store.ids(rkey)
            s = store.state_of(ids)
            ex.expanded += 1
            groups, pending, n_steps = steps_from(rkey, ids, s)
            ex.transitions += n_steps
            for _, aid, tkey, violations, seen in pending:
                if seen:
                    fresh = [name for name in seen if name not in witnessed]
                    if fresh:
                        witnessed.update(fresh)
                        close(fresh)
                if violations:  # recorded before the successor's own state checks, as found
                    for name, msg in violations:
                        if name not in found:
                            found[name] = Finding(name, msg, "step", sid, actions[aid])
                tid = index_get(tkey)
                if tid is None:
                    tid, new = add(tkey, sid, aid, known_new=not symmetry)
                    if new:
                        tids_ = store.ids(tkey)
                        if not check_state(tids_, store.state_of(tids_), tid) and not violations:
                            frontier.append(tid)
                if violations:
                    violating.add(tid)
                if slow:
                    if keep_edges:
                        edge_src.append(sid)
                        edge_dst.append(tid)
                        edge_act.append(aid)
                    if watch_stop and stop_now():
                        stop = "violation"
                        break
            if stop is None:
                self.note_deadlock(sid, s, ids, groups, pending, n_steps)
        return stop

    def finish(self, stop: str | None) -> Exploration:
        """Record in the result how the search ended (``stop``: why it stopped, if early)."""
        ex, frontier = self.ex, self.frontier
        if stop is None and frontier:
            stop = self.out_of_budget() or "max_states"
        self.tally()
        ex.complete = stop is None
        # Breadth-first: states at depths below the next one to expand were all expanded,
        # so every state up to that depth was reached.
        ex.complete_depth = ex.max_depth if ex.complete else (
            ex.depth[frontier[0]] if frontier else ex.max_depth)
        ex.stop_reason = stop or "complete"
        ex.seconds = time.perf_counter() - self.start
        return ex


def explore(model: BalloonModel, *, symmetry: bool = False, budget: Budget = Budget(),
            keep_edges: bool = False, stop_on: bool | Collection[str] = False,
            progress: Callable[[Exploration], None] | None = None,
            cache: bool = True) -> Exploration:
    """Explore every reachable state of ``model`` breadth-first (see the module text).

    ``stop_on``: stop at the first violation (True) or at the first violation of
    one of the named properties; the trace found is still a shortest one.
    ``cache``: take the steps of each part from the transition cache (False:
    every step straight from the model, the reference the cache is tested against).
    """
    search = _Search(model, symmetry, budget, keep_edges, stop_on, progress, cache)
    search.seed()
    return search.finish(search.run())
