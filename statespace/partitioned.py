"""Breadth-first exploration partitioned by state hash across the workers of a Dask cluster.

The same search as the reference explorer (:func:`ballast.statespace.explore.explore`),
level by level: every worker holds one :class:`Partition`, the states whose key (the
canonical form's, with symmetry on) hashes to it. Per level, each partition expands
its share of the frontier with the reference explorer's own parts (the transition
cache, the cached state checks, symmetry's canonical form, the deadlock test) and
sends each successor to the partition that owns it; each owner keeps the states it
has not seen and checks them. States cross machines as the model's frozen values; the
owner of a state is a hash of its plain form (:func:`owner_of`), the same in every
process and on every machine. A partition sends each successor once (a later step to
it cannot be the first), batched per owner and pickled; the process that drives the
levels hands each batch on unopened, and a partition keeps what it owns itself.

What makes the result the reference's, state for state: every state gets the id the
reference explorer gives it. The reference numbers states in the order it reaches
them, which is the order of (id of the state expanded, place of the step among that
state's steps) of the first step that reaches each; the owner keeps, of all the
steps reaching a new state in a level, the first in that order (its parent and
action, whether that step broke a step property), and the coordinator sorts the
level's new states by it and numbers them. So parents, depths, which real state
represents a symmetry class, which states are not expanded (they break a property),
and the first violation of each property (the smallest of the same key over the
level's steps and new states) are the reference's; shortest traces are rebuilt by
asking each state's owner for its parent, and replayed through the model before they
are written (:mod:`ballast.statespace.traces`).

Budgets are work: ``max_states`` is checked after each level (the search stops
before expanding the next one, so it may pass the budget by up to a level); a limit
in seconds or bytes is not offered, and neither is stopping at the first violation,
the state graph or liveness (they run on one machine).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ballast import tally as work_done
from ballast.errors import UsageError
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.state import HostState, State, VmState, plain_value
from ballast.model.system import BalloonModel
from ballast.statespace.deadlock import (
    DEADLOCK, is_total_deadlock, protocol_vm, stalled_among, unsettled,
)
from ballast.statespace.explore import Budget, Exploration, Finding
from ballast.statespace.parts import PartStore
from ballast.statespace.state_checks import StateChecks
from ballast.statespace.symmetry import canonical
from ballast.statespace.transitions import Transitions

__all__ = ["Partition", "PartitionedExploration", "explore_here", "explore_partitioned",
           "owner_from", "owner_of", "part_digest"]

Arrival = tuple[State, "State | None", int, int, "Action | None", bool]
"""A successor sent to its owner: (real state, canonical form or None without symmetry,
id of the state it was reached from (-1: an initial state), place of the step among
that state's steps, the step's action, whether the step breaks a step property)."""

Position = tuple[int, int]
"""(id of the state a step leaves, place of the step among its steps): the reference
explorer meets steps in this order."""

_STEP, _STATE = 0, 1
"""At one step, the reference records a step's violations before the new state's."""


def part_digest(part: HostState | VmState) -> bytes:
    """A digest of one part of a state (the host's, or a VM's) from its plain form: the same
    in every process (Python's own ``hash`` of strings is not)."""
    return hashlib.blake2b(repr(plain_value(part)).encode(), digest_size=16).digest()


def owner_from(digests: Sequence[bytes], parts: int) -> int:
    """The partition that owns the state whose parts have these digests (host first)."""
    whole = hashlib.blake2b(b"".join(digests), digest_size=8).digest()
    return int.from_bytes(whole, "big") % parts


def owner_of(s: State, parts: int) -> int:
    """The partition (of ``parts``) that owns state ``s``.

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> s = initial_state(Config(vms=2, guest_pages=1, machine_pages=2))
    >>> owner_of(s, 4) == owner_of(initial_state(Config(vms=2, guest_pages=1,
    ...                                                 machine_pages=2)), 4)
    True
    """
    return owner_from([part_digest(s.host), *map(part_digest, s.vms)], parts)


@dataclass
class LevelReport:
    """What one partition found while expanding its share of a level, or admitting the
    new states of one."""

    found: dict[str, tuple[Position, int, str, int, "Action | None"]] = field(
        default_factory=dict)
    """Per property: its first violation here as (position, kind, message, id of the state
    the trace leads to, the breaking step's action for a step form)."""
    deadlock: tuple[int, str] | None = None
    """The first stalled state expanded (its id) and what is stalled."""
    frontier: int = 0
    """States waiting to be expanded."""


class Partition:
    """The states one worker owns, and the parts of the reference explorer that expand
    and check them. Runs on a worker as a Dask actor; every method is one step of the
    level-by-level protocol :func:`explore_partitioned` drives."""

    def __init__(self, cfg: Config, faults: tuple[str, ...], symmetry: bool, cache: bool,
                 part: int, parts: int, model: BalloonModel | None = None) -> None:
        """Partition ``part`` of ``parts`` of the model of ``cfg`` with seeded ``faults``
        (in this process, ``model`` itself may be given: a model does not pickle)."""
        self.cfg, self.symmetry, self.part, self.parts = cfg, symmetry, part, parts
        self.model = model if model is not None else BalloonModel(cfg, faults)
        self.store = PartStore(cfg.vms)
        self.steps = Transitions(self.model, self.store, cache=cache)
        self.checks = StateChecks(self.model, self.store, cache=cache)
        self.index: dict[int, int] = {}
        """Visited-set key (the canonical form's with symmetry) -> the state's id."""
        self.origin: dict[int, tuple[int, int]] = {}
        """State id -> (parent's id, action id); (-1, -1) for an initial state."""
        self.frontier: list[tuple[int, int]] = []
        """(id, key of the real state) of the states to expand next, by id."""
        self.fresh: list[tuple[int, int, int, int, int, bool]] = []
        """New states waiting for their ids: (parent, place, visited key, real key,
        action id, reached by a breaking step), in position order."""
        self.kept: list[Arrival] = []
        """Successors this partition owns itself, kept here instead of sent."""
        self.transitions = self.expanded = self.deadlocks = self.key_bytes = 0
        self.witnessed: set[str] = set()
        self.moves_for: list[int | None] = []
        self.sent: set[int] = set()
        """Keys of the real successors sent (or kept) so far."""
        self.host_digests: list[bytes] = []
        """Per host part id: :func:`part_digest` of it."""
        self.vm_digests: list[bytes] = []
        """Per VM part id: :func:`part_digest` of it."""
        self._expanded = LevelReport()

    def expand(self) -> list[bytes | None]:
        """Expand the frontier; returns per partition the successors it owns (pickled;
        None for this one, which keeps its own) and keeps this level's findings for
        :meth:`report`."""
        cfg, store, steps = self.cfg, self.store, self.steps
        out: list[list[Arrival]] = [[] for _ in range(self.parts)]
        report = LevelReport()
        actions, moves_for, sent = steps.actions, self.moves_for, self.sent
        for sid, rkey in self.frontier:
            ids = store.ids(rkey)
            s = store.state_of(ids)
            pending = steps.of(rkey, ids, s)
            self.expanded += 1
            self.transitions += len(pending)
            while len(moves_for) < len(actions):
                moves_for.append(protocol_vm(actions[len(moves_for)]))
            for place, (_, aid, tkey, violations, witnessed) in enumerate(pending):
                if witnessed:
                    new = [name for name in witnessed if name not in self.witnessed]
                    if new:
                        self.witnessed.update(new)
                        steps.close(new)
                act = actions[aid]
                for name, msg in violations:
                    if name not in report.found:
                        report.found[name] = ((sid, place), _STEP, msg, sid, act)
                # A state sent before is known to its owner by the end of the level it was
                # sent in, and this one's first step to it (the one the reference takes)
                # was sent then: no later step to it can be first.
                if tkey in sent:
                    continue
                sent.add(tkey)
                t = store.state(tkey)
                c = canonical(cfg, t) if self.symmetry else None
                out[self._owner(store.key(c) if c is not None else tkey)].append(
                    (t, c, sid, place, act, bool(violations)))
            moving = {moves_for[step[1]] for step in pending}
            stalled = stalled_among(cfg, moving, lambda v: unsettled(cfg, s, v))
            if stalled or is_total_deadlock(len(pending)):
                self.deadlocks += 1
                if report.deadlock is None:
                    what = (f"VM {stalled[0]}'s balloon has work to do but no module or VMM "
                            f"action for it is enabled" if stalled else "no action is enabled")
                    report.deadlock = (sid, what)
        self.frontier = []
        self._expanded = report
        self.kept = out[self.part]
        return [None if p == self.part else pickle.dumps(box, pickle.HIGHEST_PROTOCOL)
                for p, box in enumerate(out)]

    def _owner(self, key: int) -> int:
        """:func:`owner_of` the state of ``key``, from the digests of its parts (each part's
        worked out once)."""
        ids = self.store.ids(key)
        hosts, vms = self.host_digests, self.vm_digests
        while len(hosts) <= ids[0]:
            hosts.append(part_digest(self.store.hosts[len(hosts)]))
        top = max(ids[1:], default=-1)
        while len(vms) <= top:
            vms.append(part_digest(self.store.vm_parts[len(vms)]))
        return owner_from([hosts[ids[0]], *[vms[v] for v in ids[1:]]], self.parts)

    def report(self) -> LevelReport:
        """The findings of the last :meth:`expand`."""
        return self._expanded

    def receive(self, boxes: list[bytes]) -> list[Position]:
        """Take the successors sent here (and those kept); returns the positions of the
        states new to this partition, in position order (each state at its first)."""
        store = self.store
        best: dict[int, tuple[int, int, int, int, bool]] = {}
        arrivals: list[Arrival] = list(self.kept)
        self.kept = []
        for box in boxes:
            arrivals += pickle.loads(box)
        for t, c, parent, place, act, bad in arrivals:
            vkey = store.key(c if c is not None else t)
            if vkey in self.index:
                continue
            old = best.get(vkey)
            if old is None or (parent, place) < old[:2]:
                aid = -1 if act is None else self.steps.action_id(act)
                best[vkey] = (parent, place, store.key(t) if c is not None else vkey, aid, bad)
        self.fresh = sorted((p, o, vkey, rkey, aid, bad)
                            for vkey, (p, o, rkey, aid, bad) in best.items())
        return [(p, o) for p, o, *_ in self.fresh]

    def admit(self, ids: list[int]) -> LevelReport:
        """Number the new states ``ids`` (in :meth:`receive`'s order), check them, and
        keep those that break nothing for the next expansion."""
        store, report = self.store, LevelReport()
        for (p, o, vkey, rkey, aid, bad), sid in zip(self.fresh, ids):
            self.index[vkey] = sid
            self.origin[sid] = (p, aid)
            self.key_bytes += sys.getsizeof(vkey)
            tids = store.ids(rkey)
            broken = self.checks.violations(tids, store.state_of(tids))
            for name, msg in broken:
                if name not in report.found:
                    report.found[name] = ((p, o), _STATE, msg, sid, None)
            if not broken and not bad:
                self.frontier.append((sid, rkey))
        self.fresh = []
        report.frontier = len(self.frontier)
        return report

    def parent_of(self, sid: int) -> tuple[int, Action | None]:
        """The parent of state ``sid`` and the action that first reached it."""
        parent, aid = self.origin[sid]
        return parent, (self.steps.actions[aid] if aid >= 0 else None)

    def summary(self) -> dict[str, Any]:
        """The partition's counts: transitions, expansions, deadlocks, actions fired,
        scenarios witnessed, the transition cache's figures and bytes held."""
        fired: dict[str, int] = {}
        for aid, n in enumerate(self.steps.count_fired()):
            if n:
                name = self.steps.actions[aid].name
                fired[name] = fired.get(name, 0) + n
        cache = self.steps.cache_bytes() + self.checks.cache_bytes()
        visited = (self.key_bytes * (2 if self.symmetry else 1)
                   + (8 * 3 + 8 + 8 + 4 * 3) * len(self.index) + self.store.part_bytes())
        return {"transitions": self.transitions, "expanded": self.expanded,
                "deadlocks": self.deadlocks, "fired": fired, "witnessed": set(self.witnessed),
                "hits": self.steps.hits, "misses": self.steps.misses,
                "recomputed": self.steps.recomputed, "bytes": visited + cache}


@dataclass
class PartitionedExploration(Exploration):
    """What a partitioned exploration found: the figures of the whole search, and of its
    states only those on the traces of its findings (ids local to this object)."""

    total_states: int = 0
    deepest: int = 0
    held_bytes: int = 0
    """Bytes the partitions held together (visited states and caches)."""
    partitions: int = 0
    owner: bytearray = field(default_factory=bytearray)
    """Per state id (the reference explorer's): the partition that owns it."""

    @property
    def states(self) -> int:
        """Distinct states visited (symmetry classes when symmetry is on)."""
        return self.total_states

    @property
    def max_depth(self) -> int:
        return self.deepest

    def bytes_estimate(self) -> int:
        return self.held_bytes


def _results(futures: list[Any]) -> list[Any]:
    return [f.result() for f in futures]


def explore_partitioned(model: BalloonModel, client: Any, *, symmetry: bool = False,
                        budget: Budget = Budget(), cache: bool = True,
                        progress: Callable[[Exploration], None] | None = None
                        ) -> PartitionedExploration:
    """Explore every reachable state of ``model`` on the workers of ``client`` (a Dask
    client), one partition per worker (see the module text)."""
    from ballast.cluster import worker_count

    _check_budget(budget)
    cfg = model.cfg
    parts = worker_count(client)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])[:parts]
    handles = [client.submit(Partition, cfg, tuple(model.faults), symmetry, cache, p, parts,
                             actor=True, workers=[w], allow_other_workers=False, pure=False)
               for p, w in enumerate(workers)]
    try:
        return _explore_on(model, _results(handles), symmetry, budget, progress)
    finally:
        client.cancel(handles)


def explore_here(model: BalloonModel, parts: int, *, symmetry: bool = False,
                 budget: Budget = Budget(), cache: bool = True,
                 progress: Callable[[Exploration], None] | None = None
                 ) -> PartitionedExploration:
    """The same search with ``parts`` partitions in this process, successors pickled
    between them as between workers: the protocol without a cluster.

    >>> from ballast.model.config import Config
    >>> from ballast.statespace.explore import explore
    >>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
    ...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
    >>> ex = explore_here(BalloonModel(cfg), 3)
    >>> ref = explore(BalloonModel(cfg))
    >>> (ex.states, ex.transitions, ex.max_depth) == (ref.states, ref.transitions, ref.max_depth)
    True
    """
    _check_budget(budget)
    actors = [_Here(Partition(model.cfg, tuple(model.faults), symmetry, cache, p, parts,
                              model=model)) for p in range(parts)]
    return _explore_on(model, actors, symmetry, budget, progress)


def _check_budget(budget: Budget) -> None:
    if budget.max_seconds is not None or budget.max_bytes is not None:
        raise UsageError("a partitioned exploration takes a budget of states alone")


class _Ready:
    """A result already there, read as a Dask future is read."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class _Here:
    """A partition in this process, called as a Dask actor is called."""

    def __init__(self, target: Partition) -> None:
        self.target = target

    def __getattr__(self, name: str) -> Callable[..., _Ready]:
        method = getattr(self.target, name)
        return lambda *args: _Ready(method(*args))


def _explore_on(model: BalloonModel, actors: list[Any], symmetry: bool, budget: Budget,
                progress: Callable[[Exploration], None] | None) -> PartitionedExploration:
    start = time.perf_counter()
    ex = PartitionedExploration(model, PartStore(model.cfg.vms), symmetry,
                                partitions=len(actors))
    work_done.note("explore", lambda: f"{ex.total_states:,} states explored")
    _search(ex, actors, budget, progress)
    summaries = _results([a.summary() for a in actors])
    _traces(ex, actors)
    for sm in summaries:
        ex.transitions += sm["transitions"]
        ex.expanded += sm["expanded"]
        ex.deadlocks += sm["deadlocks"]
        ex.witnessed |= sm["witnessed"]
        for name, n in sm["fired"].items():
            ex.fired[name] = ex.fired.get(name, 0) + n
        ex.cache_hits += sm["hits"]
        ex.cache_misses += sm["misses"]
        ex.recomputed += sm["recomputed"]
        ex.held_bytes += sm["bytes"]
    ex.seconds = time.perf_counter() - start
    return ex


_Candidate = tuple[Position, int, str, int, "Action | None"]


def _search(ex: PartitionedExploration, actors: list[Any], budget: Budget,
            progress: Callable[[Exploration], None] | None) -> None:
    """Level by level until no partition has a frontier (or the budget of states ran out);
    findings are kept in ``ex`` with global state ids (renumbered by :func:`_traces`)."""
    cfg, parts = ex.model.cfg, len(actors)
    owner = ex.owner
    boxes: list[list[bytes]] = [[] for _ in range(parts)]
    first: list[list[Arrival]] = [[] for _ in range(parts)]
    for place, s0 in enumerate(ex.model.init_states()):
        c0 = canonical(cfg, s0) if ex.symmetry else None
        first[owner_of(c0 if c0 is not None else s0, parts)].append(
            (s0, c0, -1, place, None, False))
    for p, arrivals in enumerate(first):
        boxes[p].append(pickle.dumps(arrivals, pickle.HIGHEST_PROTOCOL))
    found: dict[str, _Candidate] = {}
    level = 0
    expanded: list[LevelReport] = []
    while True:
        positions: list[list[Position]] = _results(
            [a.receive(box) for a, box in zip(actors, boxes)])
        order = sorted((pos, p, j) for p, plist in enumerate(positions)
                       for j, pos in enumerate(plist))
        ids: list[list[int]] = [[0] * len(plist) for plist in positions]
        for rank, (_, p, j) in enumerate(order):
            ids[p][j] = ex.total_states + rank
            owner.append(p)
        admitted: list[LevelReport] = _results([a.admit(i) for a, i in zip(actors, ids)])
        _first_findings(ex, found, expanded + admitted)
        if order:
            ex.total_states += len(order)
            ex.deepest = level
        if progress is not None:
            progress(ex)
        waiting = sum(r.frontier for r in admitted)
        if not waiting:
            ex.stop_reason, ex.complete, ex.complete_depth = "complete", True, ex.deepest
            break
        if budget.max_states is not None and ex.total_states >= budget.max_states:
            ex.stop_reason, ex.complete, ex.complete_depth = "max_states", False, level
            break
        sent: list[list[bytes | None]] = _results([a.expand() for a in actors])
        expanded = _results([a.report() for a in actors])
        for r in expanded:
            if r.deadlock is not None and (ex.deadlock is None
                                           or r.deadlock[0] < ex.deadlock.state):
                ex.deadlock = Finding(DEADLOCK, r.deadlock[1], "deadlock",
                                      r.deadlock[0], None)
        boxes = [[box for out in sent if (box := out[p]) is not None] for p in range(parts)]
        level += 1
    for name, (_, _, msg, sid, act) in found.items():
        ex.violations[name] = Finding(name, msg, "step" if act is not None else "state",
                                      sid, act)


def _first_findings(ex: PartitionedExploration, found: dict[str, _Candidate],
                    reports: list[LevelReport]) -> None:
    """Keep, for each property not broken at a shallower level, the first violation the
    reference explorer would meet among this level's."""
    level: dict[str, _Candidate] = {}
    for r in reports:
        for name, cand in r.found.items():
            if name in found:
                continue
            old = level.get(name)
            if old is None or cand[:2] < old[:2]:
                level[name] = cand
    found.update(level)


def _traces(ex: PartitionedExploration, actors: list[Any]) -> None:
    """Fetch the parents of every finding's state from their owners and renumber the
    findings onto this object's own ids, so that ``ex.path`` rebuilds their traces."""
    owner = ex.owner
    local: dict[int, int] = {}

    def localise(sid: int) -> int:
        chain: list[tuple[int, int, Action | None]] = []
        while sid >= 0 and sid not in local:
            parent, act = actors[owner[sid]].parent_of(sid).result()
            chain.append((sid, parent, act))
            sid = parent
        for gid, parent, act in reversed(chain):
            local[gid] = len(ex.keys)
            ex.keys.append(gid)
            ex.reps.append(gid)
            ex.parent.append(local[parent] if parent >= 0 else -1)
            if act is None:
                ex.via.append(-1)
            else:
                ex.via.append(len(ex.actions))
                ex.actions.append(act)
            ex.depth.append(ex.depth[local[parent]] + 1 if parent >= 0 else 0)
        return local[chain[0][0]] if chain else local[sid]

    for name, f in list(ex.violations.items()):
        ex.violations[name] = Finding(f.property, f.message, f.form, localise(f.state), f.action)
    if ex.deadlock is not None:
        d = ex.deadlock
        ex.deadlock = Finding(d.property, d.message, d.form, localise(d.state), None)
