"""Breadth-first exploration of every reachable state of a :class:`BalloonModel`.

The explorer drives the model only through its own interface
(``init_states``, ``successors``, the properties' state and step checks and the
scenarios' witnesses) and keeps each state packed by :class:`StateCodec`:

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

from ballast.model.actions import Action
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.codec import StateCodec
from ballast.statespace.deadlock import is_total_deadlock, stalled_vms
from ballast.statespace.symmetry import canonical

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


# Rough cost of one visited-set entry beyond the key itself: the dict slot and
# hash, the list slots and the parent / action / depth arrays.
_ENTRY_OVERHEAD = 8 * 3 + 8 + 4 * 3


@dataclass
class Exploration:
    """What one exploration found, and the packed states it visited."""

    model: BalloonModel
    codec: StateCodec
    symmetry: bool
    keys: list[bytes] = field(default_factory=list)
    """Per state id: the visited-set key (canonical form when symmetry is on)."""
    reps: list[bytes] = field(default_factory=list)
    """Per state id: the packed real state that was expanded."""
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
    complete_depth: int = -1
    """Every state at this depth or less was reached and checked (all of them when complete)."""

    @property
    def states(self) -> int:
        """Distinct states visited (symmetry classes when symmetry is on)."""
        return len(self.keys)

    @property
    def max_depth(self) -> int:
        return max(self.depth) if len(self.depth) else 0

    def bytes_estimate(self) -> int:
        """Estimated bytes held by the visited states (keys, expanded states, arrays)."""
        per_key = sys.getsizeof(b"") 
        extra = self.key_bytes + per_key * len(self.keys)
        if self.symmetry:
            extra *= 2
        edges = 12 * len(self.edge_src)
        return extra + _ENTRY_OVERHEAD * len(self.keys) + edges

    def state(self, sid: int) -> State:
        """The real state with id ``sid``."""
        return self.codec.decode(self.reps[sid])

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


def explore(model: BalloonModel, *, symmetry: bool = False, budget: Budget = Budget(),
            keep_edges: bool = False, stop_on: bool | Collection[str] = False,
            progress: Callable[[Exploration], None] | None = None) -> Exploration:
    """Explore every reachable state of ``model`` breadth-first (see the module text).

    ``stop_on``: stop at the first violation (True) or at the first violation of
    one of the named properties; the trace found is still a shortest one.
    """
    cfg = model.cfg
    codec = StateCodec(cfg)
    ex = Exploration(model, codec, symmetry, keep_edges=keep_edges)
    encode = codec.encode
    index: dict[bytes, int] = {}
    action_ids: dict[Action, int] = {}
    props = model.properties()
    state_props = [p for p in props if p.state is not None]
    step_props = [p for p in props if p.step is not None]
    open_scenarios = list(model.scenarios())
    keys, reps, parent, via, depth = ex.keys, ex.reps, ex.parent, ex.via, ex.depth
    start = time.perf_counter()
    frontier: deque[int] = deque()

    def key_of(s: State, packed: bytes) -> bytes:
        return encode(canonical(cfg, s)) if symmetry else packed

    def add(s: State, packed: bytes, src: int, act: int) -> tuple[int, bool]:
        key = key_of(s, packed)
        sid = index.get(key)
        if sid is not None:
            return sid, False
        sid = len(keys)
        index[key] = sid
        keys.append(key)
        reps.append(packed)
        ex.key_bytes += len(key)
        parent.append(src)
        via.append(act)
        depth.append(depth[src] + 1 if src >= 0 else 0)
        return sid, True

    def check_state(s: State, sid: int) -> bool:
        bad = False
        for p in state_props:
            msg = p.check_state(cfg, s)
            if msg is not None:
                bad = True
                if p.name not in ex.violations:
                    ex.violations[p.name] = Finding(p.name, msg, "state", sid, None)
        if bad:
            ex.violating.add(sid)
        return bad

    for s0 in model.init_states():
        sid, new = add(s0, encode(s0), -1, -1)
        if new and not check_state(s0, sid):
            frontier.append(sid)

    def out_of_budget() -> str | None:
        if budget.max_states is not None and len(keys) >= budget.max_states:
            return "max_states"
        if budget.max_seconds is not None and time.perf_counter() - start > budget.max_seconds:
            return "max_seconds"
        if budget.max_bytes is not None and ex.bytes_estimate() > budget.max_bytes:
            return "max_bytes"
        return None

    def stop_now() -> bool:
        if stop_on is True:
            return bool(ex.violations)
        if stop_on is False:
            return False
        return any(p in ex.violations for p in stop_on)

    stop = "violation" if stop_now() else None
    while frontier and stop is None:
        if ex.expanded % 256 == 0:
            stop = out_of_budget()
            if stop is not None:
                break
            if progress is not None and ex.expanded % 8192 == 0:
                progress(ex)
        sid = frontier.popleft()
        s = codec.decode(reps[sid])
        ex.expanded += 1
        enabled: list[Action] = []
        for act, t in model.successors(s):
            enabled.append(act)
            ex.transitions += 1
            aid = action_ids.get(act)
            if aid is None:
                aid = action_ids[act] = len(ex.actions)
                ex.actions.append(act)
            ex.fired[act.name] = ex.fired.get(act.name, 0) + 1
            if open_scenarios:
                hits = [sc for sc in open_scenarios if sc.witness(cfg, s, act, t)]
                if hits:
                    ex.witnessed.update(sc.name for sc in hits)
                    open_scenarios = [sc for sc in open_scenarios if sc not in hits]
            step_bad = False
            for p in step_props:
                msg = p.check_step(cfg, s, act, t)
                if msg is not None:
                    step_bad = True
                    if p.name not in ex.violations:
                        ex.violations[p.name] = Finding(p.name, msg, "step", sid, act)
            tid, new = add(t, encode(t), sid, aid)
            if keep_edges:
                ex.edge_src.append(sid)
                ex.edge_dst.append(tid)
                ex.edge_act.append(aid)
            if step_bad:
                ex.violating.add(tid)
            if new and not check_state(t, tid) and not step_bad:
                frontier.append(tid)
            if stop_now():
                stop = "violation"
                break
        if stop is not None:
            break
        stalled = stalled_vms(cfg, s, enabled)
        if stalled or is_total_deadlock(enabled):
            ex.deadlocks += 1
            if ex.deadlock is None:
                what = (f"VM {stalled[0]}'s balloon has work to do but no module or VMM "
                        f"action for it is enabled" if stalled else "no action is enabled")
                ex.deadlock = Finding("deadlock_free", what, "deadlock", sid, None)
    if stop is None and frontier:
        stop = out_of_budget() or "max_states"
    ex.complete = stop is None
    # Breadth-first: states at depths below the next one to expand were all expanded,
    # so every state up to that depth was reached.
    ex.complete_depth = ex.max_depth if ex.complete else (
        depth[frontier[0]] if frontier else ex.max_depth)
    ex.stop_reason = stop or "complete"
    ex.seconds = time.perf_counter() - start
    return ex
