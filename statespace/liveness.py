"""Liveness of the balloon: can it, and does it, reach its target?

Both checks work on the full graph of reachable states kept by
:func:`~ballast.statespace.explore.explore` (``keep_edges=True``, symmetry off)
and are exact for that graph. Definitions, for each VM that follows the
protocol (hostile VMs owe nothing):

* the balloon is **at target** when the VMM holds exactly ``target`` pages as
  ballooned, the module reports ``actual = target`` and has read that target;
* a target is **feasible** when the guest can give that many pages even with
  every one of its processes' pages resident: ``target <= guest_pages -
  guest_data_pages - kernel_reserve`` for a driver (and ``<= pin_limit`` for an
  application). Larger targets may be legitimately unreachable (partial fill);
* **targets held fixed**: the host's ``host_set_target`` and
  ``host_set_cpu_target`` steps are left out of the infinite part of a run (they
  may happen before it). Every other host step (taking or returning free host
  pages, host swap) stays in: the environment may do it or not.

Properties:

``balloon_can_reach_target`` (AG EF)
    From every reachable state whose target is feasible, some run that keeps
    the targets fixed reaches the target. Checked by backward reachability.

``balloon_eventually_at_target`` (under weak fairness)
    Every run that keeps the targets fixed from some point on and is **weakly
    fair to the balloon module and the VMM** reaches a feasible target. Weak
    fairness is per action and VM: an action of actor ``module`` or ``vmm``
    (same name, same ``vm`` argument) that stays enabled forever is taken
    infinitely often. The guest's own steps (processes touching memory,
    paging, rebooting) and the host's are not assumed fair: they may happen
    forever or never. A counterexample is a lasso: a shortest prefix to a state
    of a strongly connected component of not-at-target states that has a
    weakly fair cycle, then that cycle. For weak fairness the maximal
    components suffice: if an action is enabled in every state of a component
    and taken on none of its inner edges, no cycle inside it can be fair.

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> from ballast.statespace.explore import explore
>>> cfg = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1, host_use=False)
>>> ex = explore(BalloonModel(cfg), keep_edges=True)
>>> [r.holds for r in check_liveness(ex)]
[True, True]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import networkx as nx

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS, Action, Actor
from ballast.model.config import Config, ModuleKind
from ballast.model.invariants import honest_vms
from ballast.model.state import State
from ballast.statespace.explore import Exploration

__all__ = [
    "CAN_REACH",
    "FAIRNESS",
    "REACHES",
    "LivenessResult",
    "at_target",
    "check_liveness",
    "fairness_class",
    "feasible_target",
]

CAN_REACH = "balloon_can_reach_target"
REACHES = "balloon_eventually_at_target"
FAIRNESS = ("weak fairness of every module and VMM action, per action name and VM; "
            "host and guest steps unconstrained; targets held fixed")

_TARGET_SETTERS = ("host_set_target", "host_set_cpu_target")


def at_target(s: State, vm: int) -> bool:
    """The VMM holds ``target`` pages as ballooned and the module reports and knows it."""
    v = s.vms[vm]
    return bool(len(v.ballooned) == v.target == v.module.actual == v.module.target)


def feasible_target(cfg: Config, target: int) -> bool:
    """Whether the guest can give ``target`` pages with all its process pages resident.

    >>> feasible_target(Config(guest_pages=4, guest_data_pages=3), 1)
    True
    >>> feasible_target(Config(guest_pages=4, guest_data_pages=3), 2)
    False
    """
    room = cfg.guest_pages - cfg.guest_data_pages
    if cfg.module is ModuleKind.DRIVER:
        room -= cfg.kernel_reserve
    else:
        room = min(room, cfg.pin_limit)
    return bool(target <= room)


def fairness_class(act: Action) -> tuple[str, object] | None:
    """The weak-fairness class of an action: (name, vm) for module and VMM actions."""
    spec = ACTIONS.get(act.name)
    if spec is None or spec.actor not in (Actor.MODULE, Actor.VMM):
        return None
    return act.name, act.kwargs.get("vm")


@dataclass
class LivenessResult:
    """The verdict of one liveness property for one VM (the first VM that fails, if any)."""

    property: str
    holds: bool
    detail: str
    vm: int | None = None
    prefix: list[Action] = field(default_factory=list)
    """Actions from the initial state to the start of the cycle (or to the stuck state)."""
    cycle: list[Action] = field(default_factory=list)
    """For a lasso: actions that lead from the cycle's first state back to it."""


def _require_full(ex: Exploration) -> None:
    if not ex.keep_edges or ex.symmetry or not ex.complete:
        raise UsageError("liveness needs a complete exploration with edges kept and "
                         "symmetry reduction off")


def check_liveness(ex: Exploration) -> list[LivenessResult]:
    """Both liveness properties over a complete exploration (see the module text)."""
    _require_full(ex)
    cfg = ex.model.cfg
    n = ex.states
    states = [ex.state(i) for i in range(n)]
    src, dst, act = ex.edge_src, ex.edge_dst, ex.edge_act
    actions = ex.actions
    keep = [a.name not in _TARGET_SETTERS for a in actions]
    enabled: list[set[tuple[str, object]]] = [set() for _ in range(n)]
    cls = [fairness_class(a) for a in actions]
    for s, a in zip(src, act):
        c = cls[a]
        if c is not None:
            enabled[s].add(c)
    out_can: LivenessResult | None = None
    out_fair: LivenessResult | None = None
    for v in honest_vms(cfg):
        goal = [at_target(st, v) for st in states]
        live = [feasible_target(cfg, st.vms[v].target) for st in states]
        if out_can is None:
            out_can = _can_reach(ex, v, goal, live, keep)
        if out_fair is None:
            out_fair = _fair_lasso(ex, v, goal, live, keep, enabled, cls)
    n_vms = sum(1 for _ in honest_vms(cfg))
    ok_can = LivenessResult(CAN_REACH, True, f"every one of {n} states can reach a feasible "
                            f"target ({n_vms} VM(s), targets fixed)")
    ok_fair = LivenessResult(REACHES, True, f"no weakly fair run avoids a feasible target "
                             f"({n} states; {FAIRNESS})")
    return [out_can or ok_can, out_fair or ok_fair]


def _can_reach(ex: Exploration, v: int, goal: list[bool], live: list[bool],
               keep: list[bool]) -> LivenessResult | None:
    n = ex.states
    back: list[list[int]] = [[] for _ in range(n)]
    for s, d, a in zip(ex.edge_src, ex.edge_dst, ex.edge_act):
        if keep[a]:
            back[d].append(s)
    seen = [g for g in goal]
    todo = deque(i for i in range(n) if goal[i])
    while todo:
        d = todo.popleft()
        for s in back[d]:
            if not seen[s]:
                seen[s] = True
                todo.append(s)
    stuck = [i for i in range(n) if live[i] and not seen[i] and i not in ex.violating]
    if not stuck:
        return None
    worst = min(stuck, key=lambda i: ex.depth[i])
    return LivenessResult(CAN_REACH, False,
                          f"VM {v}: {len(stuck)} reachable state(s) from which the balloon can "
                          f"never reach its feasible target (target "
                          f"{ex.state(worst).vms[v].target}) while the targets stay fixed",
                          vm=v, prefix=ex.path(worst))


def _fair_lasso(ex: Exploration, v: int, goal: list[bool], live: list[bool], keep: list[bool],
                enabled: list[set[tuple[str, object]]],
                cls: list[tuple[str, object] | None]) -> LivenessResult | None:
    bad = [live[i] and not goal[i] and i not in ex.violating for i in range(ex.states)]
    g: nx.DiGraph = nx.DiGraph()
    inner: dict[tuple[int, int], int] = {}
    for s, d, a in zip(ex.edge_src, ex.edge_dst, ex.edge_act):
        if keep[a] and bad[s] and bad[d]:
            g.add_edge(s, d)
            inner.setdefault((s, d), a)
    # Several actions may join the same pair of states: remember them all per class.
    labels: dict[tuple[int, int], list[int]] = {}
    for s, d, a in zip(ex.edge_src, ex.edge_dst, ex.edge_act):
        if (s, d) in inner:
            labels.setdefault((s, d), []).append(a)
    comps = sorted((c for c in nx.strongly_connected_components(g)
                    if len(c) > 1 or any(g.has_edge(x, x) for x in c)),
                   key=lambda c: min(ex.depth[x] for x in c))
    for comp in comps:
        always = set.intersection(*(enabled[x] for x in comp))
        taken: dict[tuple[str, object], tuple[int, int, int]] = {}
        for (s, d), acts in labels.items():
            if s in comp and d in comp:
                for a in acts:
                    c = cls[a]
                    if c is not None and c not in taken:
                        taken[c] = (s, d, a)
        if not always <= set(taken):
            continue
        entry = min(comp, key=lambda x: ex.depth[x])
        sub = g.subgraph(comp)
        needed = [taken[c] for c in sorted(always, key=str)]
        if not needed:  # any cycle through the entry state will do
            succ = next(iter(sub.successors(entry)))
            needed = [(entry, succ, labels[(entry, succ)][0])]
        cycle: list[Action] = []
        here = entry
        for s, d, a in needed:
            cycle += _walk(ex, sub, labels, here, s)
            cycle.append(ex.actions[a])
            here = d
        cycle += _walk(ex, sub, labels, here, entry)
        st = ex.state(entry)
        return LivenessResult(
            REACHES, False,
            f"VM {v}: a weakly fair run never brings the balloon to its feasible target "
            f"{st.vms[v].target} (cycle of {len(cycle)} steps through {len(comp)} states)",
            vm=v, prefix=ex.path(entry), cycle=cycle)
    return None


def _walk(ex: Exploration, sub: nx.DiGraph, labels: dict[tuple[int, int], list[int]],
          a: int, b: int) -> list[Action]:
    if a == b:
        return []
    nodes = nx.shortest_path(sub, a, b)
    return [ex.actions[labels[(x, y)][0]] for x, y in zip(nodes, nodes[1:])]
