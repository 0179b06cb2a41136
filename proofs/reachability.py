"""Which states are reachable, exactly, for configurations small enough to enumerate.

The explorer (:mod:`ballast.statespace.explore`) visits every reachable state
of a configuration; it stops expanding a state that breaks a property, so
here it runs on a model that watches only the properties asked about (none:
every reachable state is expanded). Two uses:

* :func:`reachable` lists every reachable state with its enabled steps, for the
  exhaustive agreement checks of the encodings;
* :func:`decide_cti` decides whether a counterexample to induction (CTI) is
  reachable: against the complete reachable set when it has at most
  ``max_states`` states (exact: ``reachable`` with the shortest trace, or
  ``unreachable``), otherwise it says only what bounded model checking showed
  (``not reached within depth K``), never ``unreachable``.

>>> from ballast.model.config import Config
>>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
>>> r = reachable(cfg)
>>> r.complete, len(r.states) > 10, r.index(r.states[0])
(True, True, 0)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Collection, Sequence

from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.invariants import Property
from ballast.model.sometimes import Scenario
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.proofs.encoding import OutOfDomain, concrete_values
from ballast.statespace.explore import Budget, Exploration, explore

__all__ = ["EXACT_MAX_STATES", "CtiReach", "ReachableSet", "decide_cti", "reachable"]

EXACT_MAX_STATES = 50_000
"""Reachability is decided exactly when the configuration has at most this many
reachable states (a count of work, not seconds: about 10 s on one core here)."""


class _Watching(BalloonModel):
    """The model, with only some properties checked (the explorer expands the rest)."""

    def __init__(self, cfg: Config, faults: Sequence[str], watch: Collection[str]) -> None:
        super().__init__(cfg, faults)
        self.watch = frozenset(watch)

    def properties(self) -> list[Property]:
        return [p for p in super().properties() if p.name in self.watch]

    def scenarios(self) -> list[Scenario]:
        return []


@dataclass
class ReachableSet:
    """Every reachable state (``complete``) or those found within the state bound."""

    cfg: Config
    exploration: Exploration
    states: list[State]
    steps: list[list[tuple[Action, int]]]
    """Per state: every enabled step, as (action, index of the successor)."""

    @property
    def complete(self) -> bool:
        """Whether every reachable state is listed."""
        return self.exploration.complete

    def index(self, s: State) -> int | None:
        """Position of ``s`` in :attr:`states`, or None when it is not listed."""
        if not hasattr(self, "_where"):
            self._where = {x: i for i, x in enumerate(self.states)}
        return self._where.get(s)

    def path(self, i: int) -> list[Action]:
        """A shortest run from the initial state to state ``i``."""
        return self.exploration.path(i)


def reachable(cfg: Config, faults: Sequence[str] = (), *, max_states: int | None = None,
              watch: Collection[str] = ()) -> ReachableSet:
    """Explore ``cfg`` breadth-first, expanding every state that breaks none of ``watch``."""
    ex = explore(_Watching(cfg, faults, watch), keep_edges=True,
                 budget=Budget(max_states=max_states))
    states = [ex.state(i) for i in range(ex.states)]
    steps: list[list[tuple[Action, int]]] = [[] for _ in states]
    for src, dst, act in ex.edges():
        steps[src].append((act, dst))
    return ReachableSet(cfg, ex, states, steps)


@functools.lru_cache(maxsize=2)
def _watching_every_property(cfg: Config, faults: tuple[str, ...], max_states: int
                             ) -> ReachableSet:
    """The same exploration serves every CTI of one proof run (kept for the next one)."""
    watch = [p.name for p in BalloonModel(cfg).properties()]
    return reachable(cfg, faults, max_states=max_states, watch=watch)


@dataclass(frozen=True)
class CtiReach:
    """Whether a CTI (or any violation of its conjunct) is reachable."""

    verdict: str
    """``reachable`` (the conjunct breaks in a reachable state), ``unreachable``
    (proved against the complete reachable set) or ``undecided`` (the set has more
    than the bound's states, or a state outside the encoding)."""
    states: int
    """Reachable states enumerated."""
    detail: str
    trace: Trace | None = None
    """For ``reachable``: a shortest run to the violation."""


def _same_encoding(cfg: Config, rs: ReachableSet, target: State) -> int | None:
    """A reachable state with ``target``'s encoding (the encoding is exact up to the
    order of duplicate LRU entries and saturated queue counts)."""
    i = rs.index(target)
    if i is not None or not cfg.hostile_vms:
        return i
    try:
        want = concrete_values(cfg, target)
    except OutOfDomain:
        return None
    for j, s in enumerate(rs.states):
        try:
            if concrete_values(cfg, s) == want:
                return j
        except OutOfDomain:
            continue
    return None


def decide_cti(cfg: Config, faults: Sequence[str], conjunct: str, action: Action,
               pre: State, *, max_states: int = EXACT_MAX_STATES,
               query: str | None = None) -> CtiReach:
    """Decide whether the CTI (``pre``, ``action``) of ``conjunct`` is reachable.

    A model property broken in a reachable state is a real bug, whether or not it
    is this CTI's (the trace's ``expect`` names the property); otherwise the CTI's
    pre-state is looked up in the reachable set.
    """
    rs = _watching_every_property(cfg, tuple(faults), max_states + 1)
    ex = rs.exploration
    n = len(rs.states)

    def trace(actions: list[Action], prop: str) -> Trace:
        header = TraceHeader(cfg, tuple(faults),
                             source={"checker": "prove", "seed": None,
                                     "query": query or f"reach {conjunct}"},
                             expect={"property": prop, "step": len(actions)})
        return Trace(header, tuple(TraceStep(k + 1, a) for k, a in enumerate(actions)))

    # A model property broken anywhere reachable is a real bug, this CTI's or not (the
    # exploration stops expanding there, so it decides nothing else).
    broken = sorted(ex.violations, key=lambda p: (p != conjunct, p))
    if broken:
        found = ex.violations[broken[0]]
        acts = rs.path(found.state) + ([found.action] if found.action is not None else [])
        return CtiReach("reachable", n, f"{broken[0]} breaks after {len(acts)} steps "
                                        f"(breadth-first: a shortest run)",
                        trace(acts, broken[0]))
    i = _same_encoding(cfg, rs, pre)
    if i is not None:
        acts = rs.path(i) + [action]
        return CtiReach("reachable", n, f"the CTI's pre-state is reachable in {len(acts) - 1} "
                                        f"steps", trace(acts, conjunct))
    if not ex.complete:
        return CtiReach("undecided", n, f"more than {max_states:,} reachable states "
                                        f"(the bound for deciding reachability exactly)")
    return CtiReach("unreachable", n, f"not among the {n:,} reachable states (all of them), "
                                      f"and no reachable state breaks {conjunct}")
