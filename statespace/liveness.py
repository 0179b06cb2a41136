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

Fairness (what an infinite run must do to count), by **class** of action:

* a **weak** class (:func:`fairness_class`) is one action name of actor
  ``module`` or ``vmm`` for one VM (its ``vm`` argument). A run is weakly fair
  to it when, if the class stays enabled from some point on, it is taken
  infinitely often;
* a **strong** class is taken infinitely often whenever it is enabled
  infinitely often (even if it is disabled in between). The only one is the
  VMM accepting an inflate report of one VM as far as it may (:func:`accept_class`:
  a ``vmm_reclaim`` step that takes every valid page, or as many as the target
  leaves room for, refusing none of its own choosing); it matters only with the
  ``refusal`` feature, where the VMM may also refuse pages it has room for. Whether
  a step is in it depends on the state it is taken in (a report larger than the
  room can only be accepted with the excess refused), so classes belong to edges;
* the guest's own steps (processes touching memory, paging, rebooting) and the
  host's are not assumed fair: they may happen forever or never.

Two fairness choices name what ``balloon_eventually_at_target`` assumes
(:data:`FAIRNESS_TEXTS`): ``weak`` (the default) is weak fairness of every
weak class; ``strong-accept`` adds strong fairness of acceptance, i.e. the VMM
does not refuse forever. Under ``weak`` a VMM that refuses every report keeps
a balloon from its target (the refusing ``vmm_reclaim`` is as good as the
accepting one for the weak class ``("vmm_reclaim", vm)``); under
``strong-accept`` it does not, since the accepting step is enabled at every
report.

Properties:

``balloon_can_reach_target`` (AG EF)
    From every reachable state whose target is feasible, some run that keeps
    the targets fixed reaches the target. Checked by backward reachability.

Properties over runs the model defines (:data:`~ballast.model.recovery.REACH_PROPERTIES`,
such as ``host_recovers_to_target``) are checked the same way, by :func:`check_reach`: from
every reachable state that meets the property's assumption, a run of the steps it allows
(the host's and the VMM's, targets fixed) reaches its goal. The model says what the goal,
the steps and the assumption are; this module only searches the graph.

``balloon_eventually_at_target`` (under the chosen fairness)
    Every run that keeps the targets fixed from some point on and is fair
    reaches a feasible target. A counterexample is a lasso: a shortest prefix
    to a state of a strongly connected component of not-at-target states that
    has a fair cycle, then that cycle. Components are found by refinement
    (Emerson and Lei; :func:`fair_components`): a component in which some weak
    class is enabled in every state but taken on no inner edge has no fair
    cycle; a strong class enabled in some of its states but taken on no inner
    edge rules those states out, and what remains is split into components
    again. A component that passes both tests has a fair cycle; the lasso's
    cycle takes an edge of each class it must and visits a state where each
    weak class it does not take is disabled.

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> from ballast.statespace.explore import explore
>>> cfg = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1, host_use=False)
>>> ex = explore(BalloonModel(cfg), keep_edges=True)
>>> [r.holds for r in check_liveness(ex)]
[True, True]
>>> ex = explore(BalloonModel(cfg.replace(refusal=True)), keep_edges=True)
>>> [r.holds for r in check_liveness(ex, fairness="weak")]
[True, False]
>>> [r.holds for r in check_liveness(ex, fairness="strong-accept")]
[True, True]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
from typing import AbstractSet, Iterable, Mapping, Sequence

import networkx as nx

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS, Action, Actor, reclaim_takes_all_it_may
from ballast.model.config import Config, ModuleKind
from ballast.model.invariants import honest_vms
from ballast.model.recovery import REACH_PROPERTIES, TARGET_SETTERS, ReachProperty
from ballast.model.state import State
from ballast.statespace.explore import Exploration

__all__ = [
    "ACCEPTS",
    "CAN_REACH",
    "FAIRNESS",
    "FAIRNESS_CHOICES",
    "FAIRNESS_TEXTS",
    "REACHES",
    "SKIPPED",
    "STRONG_ACCEPT",
    "VACUOUS",
    "WEAK",
    "FairnessClass",
    "LivenessResult",
    "accept_class",
    "at_target",
    "check_fairness",
    "check_liveness",
    "check_reach",
    "check_reach_properties",
    "fair_components",
    "fairness_class",
    "feasible_target",
    "strong_fairness_class",
]

CAN_REACH = "balloon_can_reach_target"
REACHES = "balloon_eventually_at_target"

WEAK = "weak"
"""Fairness choice: weak fairness of every module and VMM action (the default)."""
STRONG_ACCEPT = "strong-accept"
"""Fairness choice: ``weak``, plus strong fairness of the VMM accepting an inflate report as far
as it may."""
FAIRNESS_CHOICES = (WEAK, STRONG_ACCEPT)
"""The fairness choices ``balloon_eventually_at_target`` can be checked under."""

FAIRNESS = ("weak fairness of every module and VMM action, per action name and VM; "
            "host and guest steps unconstrained; targets held fixed")
"""What the default choice (``weak``) assumes, in words."""
FAIRNESS_TEXTS: dict[str, str] = {
    WEAK: FAIRNESS,
    STRONG_ACCEPT: ("weak fairness of every module and VMM action, per action name and VM, "
                    "and strong fairness of the VMM accepting an inflate report as far as "
                    "it may (vmm_reclaim refusing no page it has room for), per VM; host "
                    "and guest steps "
                    "unconstrained; targets held fixed"),
}
"""What each fairness choice assumes, in words (for verdicts and trace headers)."""

ACCEPTS = "vmm_accepts_report"
"""Name of the strong class of the VMM accepting an inflate report as far as it may."""

FairnessClass = tuple[str, object]
"""A fairness class: a name and the VM it is about."""

_TARGET_SETTERS = TARGET_SETTERS

SKIPPED = "skipped"
"""Outcome of a property over runs whose assumption the configuration cannot meet."""
VACUOUS = "vacuous"
"""Outcome of a property over runs that no reachable state gives anything to show."""


def check_fairness(fairness: str) -> str:
    """``fairness`` if it is one of :data:`FAIRNESS_CHOICES`; a usage error otherwise."""
    if fairness not in FAIRNESS_CHOICES:
        raise UsageError(f"unknown fairness {fairness!r}: choose one of "
                         f"{', '.join(FAIRNESS_CHOICES)}")
    return fairness


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


def fairness_class(act: Action) -> FairnessClass | None:
    """The weak-fairness class of an action: (name, vm) for module and VMM actions."""
    spec = ACTIONS.get(act.name)
    if spec is None or spec.actor not in (Actor.MODULE, Actor.VMM):
        return None
    return act.name, act.kwargs.get("vm")


def accept_class(cfg: Config, s: State, act: Action) -> FairnessClass | None:
    """The strong class of the VMM accepting VM ``vm``'s inflate report as far as it may,
    or None, for ``act`` taken in state ``s``.

    A ``vmm_reclaim`` step is in it when it takes every valid page of the report, or as
    many as the target leaves room for (:func:`~ballast.model.actions.reclaim_takes_all_it_may`):
    pages it must refuse anyway, such as those beyond the room, still come back refused,
    so ``refuse`` need not be empty. The steps that refuse a page of the VMM's own
    choosing are not in it.

    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=2, guest_pages=3, guest_data_pages=1, machine_pages=3, refusal=True)
    >>> s0 = initial_state(cfg)
    >>> s = s0.with_vm(1, s0.vms[1].replace(target=1, inflate_queue=(0, 2)))
    >>> accept_class(cfg, s, Action.of("vmm_reclaim", vm=1, refuse=[2]))
    ('vmm_accepts_report', 1)
    >>> accept_class(cfg, s, Action.of("vmm_reclaim", vm=1, refuse=[0, 2])) is None
    True
    """
    if act.name != "vmm_reclaim":
        return None
    vm, refuse = act.kwargs.get("vm"), act.kwargs.get("refuse")
    if not isinstance(vm, int) or not isinstance(refuse, tuple) \
            or not reclaim_takes_all_it_may(cfg, s, vm, refuse):
        return None
    return ACCEPTS, vm


def strong_fairness_class(cfg: Config, s: State, act: Action, fairness: str = WEAK
                          ) -> FairnessClass | None:
    """The strong class of ``act`` taken in ``s`` under a fairness choice (None for every
    step under ``weak``)."""
    return accept_class(cfg, s, act) if check_fairness(fairness) == STRONG_ACCEPT else None


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
    fairness: str = WEAK
    """The fairness choice the verdict assumed (``balloon_eventually_at_target``)."""
    outcome: str = ""
    """For a property over runs: :data:`SKIPPED` or :data:`VACUOUS` when it was not shown
    either way (``detail`` says why), else empty."""


def _require_full(ex: Exploration) -> None:
    if not ex.keep_edges or ex.symmetry or not ex.complete:
        raise UsageError("liveness needs a complete exploration with edges kept and "
                         "symmetry reduction off")


def check_liveness(ex: Exploration, fairness: str = WEAK) -> list[LivenessResult]:
    """Both liveness properties over a complete exploration (see the module text);
    ``balloon_eventually_at_target`` under the fairness choice ``fairness``."""
    check_fairness(fairness)
    _require_full(ex)
    cfg = ex.model.cfg
    n = ex.states
    states = ex.all_states()
    src, act = ex.edge_src, ex.edge_act
    actions = ex.actions
    keep = [a.name not in _TARGET_SETTERS for a in actions]
    weak_cls = [fairness_class(a) for a in actions]
    maybe_strong = [fairness == STRONG_ACCEPT and a.name == "vmm_reclaim" for a in actions]
    strong_at: dict[tuple[int, int], FairnessClass] = {}
    weak_on: list[set[FairnessClass]] = [set() for _ in range(n)]
    strong_on: list[set[FairnessClass]] = [set() for _ in range(n)]
    for s, a in zip(src, act):
        c = weak_cls[a]
        if c is not None:
            weak_on[s].add(c)
        if maybe_strong[a]:  # a step's strong class depends on the state it leaves
            c = strong_fairness_class(cfg, states[s], actions[a], fairness)
            if c is not None:
                strong_at[(s, a)] = c
                strong_on[s].add(c)
    out_can: LivenessResult | None = None
    out_fair: LivenessResult | None = None
    for v in honest_vms(cfg):
        goal = [at_target(st, v) for st in states]
        live = [feasible_target(cfg, st.vms[v].target) for st in states]
        if out_can is None:
            out_can = _can_reach(ex, v, goal, live, keep)
        if out_fair is None:
            out_fair = _fair_lasso(ex, v, goal, live, keep, _Fairness(
                fairness, weak_on, strong_on, weak_cls, strong_at))
    n_vms = sum(1 for _ in honest_vms(cfg))
    ok_can = LivenessResult(CAN_REACH, True, f"every one of {n} states can reach a feasible "
                            f"target ({n_vms} VM(s), targets fixed)", fairness=fairness)
    ok_fair = LivenessResult(REACHES, True, f"no fair run avoids a feasible target "
                             f"({n} states; fairness '{fairness}': {FAIRNESS_TEXTS[fairness]})",
                             fairness=fairness)
    return [out_can or ok_can, out_fair or ok_fair]


def _reaching(ex: Exploration, goal: list[bool], keep: list[bool]) -> list[bool]:
    """Which states reach a goal state by the kept actions (backward reachability)."""
    back: list[list[int]] = [[] for _ in range(ex.states)]
    for s, d, a in zip(ex.edge_src, ex.edge_dst, ex.edge_act):
        if keep[a]:
            back[d].append(s)
    seen = list(goal)
    todo = deque(i for i, g in enumerate(goal) if g)
    while todo:
        d = todo.popleft()
        for s in back[d]:
            if not seen[s]:
                seen[s] = True
                todo.append(s)
    return seen


def _can_reach(ex: Exploration, v: int, goal: list[bool], live: list[bool],
               keep: list[bool]) -> LivenessResult | None:
    n = ex.states
    seen = _reaching(ex, goal, keep)
    stuck = [i for i in range(n) if live[i] and not seen[i] and i not in ex.violating]
    if not stuck:
        return None
    worst = min(stuck, key=lambda i: ex.depth[i])
    return LivenessResult(CAN_REACH, False,
                          f"VM {v}: {len(stuck)} reachable state(s) from which the balloon can "
                          f"never reach its feasible target (target "
                          f"{ex.state(worst).vms[v].target}) while the targets stay fixed",
                          vm=v, prefix=ex.path(worst))


def check_reach(ex: Exploration, prop: ReachProperty) -> LivenessResult:
    """Property over runs ``prop`` (AG EF) over a complete exploration: from every reachable
    state that meets its assumption and breaks no safety property, some run of the steps it
    allows reaches its goal. Skipped, naming why, where the configuration cannot meet the
    assumption; vacuous where no such state is off the goal.

    >>> from ballast.model.config import Config
    >>> from ballast.model.recovery import RECOVERY
    >>> from ballast.model.system import BalloonModel
    >>> from ballast.statespace.explore import explore
    >>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
    ...              machine_pages=1, host_swap_slots=1, tokens=1, batch=1, host_use=False,
    ...              vmm_reclaims_over_target=True)
    >>> r = check_reach(explore(BalloonModel(cfg), keep_edges=True, symmetry=False),
    ...                 REACH_PROPERTIES[RECOVERY])
    >>> r.holds, r.outcome
    (True, '')
    >>> ex = explore(BalloonModel(cfg, ["vmm_stops_one_page_over"]), keep_edges=True,
    ...              symmetry=False)
    >>> r = check_reach(ex, REACH_PROPERTIES[RECOVERY])
    >>> r.holds, r.vm, [a.name for a in r.prefix]
    (False, 0, ['host_set_target', 'guest_read'])
    """
    _require_full(ex)
    cfg = ex.model.cfg
    why = prop.unmet(cfg)
    if why is not None:
        return LivenessResult(prop.name, True, f"not checked: {why}", outcome=SKIPPED)
    n = ex.states
    states = ex.all_states()
    goal = [prop.goal(cfg, st) for st in states]
    live = [prop.assumed(cfg, st) and i not in ex.violating for i, st in enumerate(states)]
    seen = _reaching(ex, goal, [prop.moves(a) for a in ex.actions])
    stuck = [i for i in range(n) if live[i] and not seen[i]]
    claimed = sum(1 for i in range(n) if live[i] and not goal[i])
    outside = n - sum(live)
    if stuck:
        worst = min(stuck, key=lambda i: (ex.depth[i], i))
        vm = prop.off_goal(cfg, states[worst])
        return LivenessResult(prop.name, False,
                              f"VM {vm}: {len(stuck)} reachable state(s) meeting the assumption "
                              f"from which no run of the allowed steps reaches the goal "
                              f"({prop.summary[0].lower()}{prop.summary[1:]})", vm=vm,
                              prefix=ex.path(worst))
    if claimed == 0:
        return LivenessResult(prop.name, True, f"no reachable state meeting the assumption "
                              f"is off the goal ({n} states, {outside} outside the assumption)",
                              outcome=VACUOUS)
    return LivenessResult(prop.name, True,
                          f"every one of {claimed} reachable state(s) off the goal reaches it "
                          f"by the allowed steps alone ({n} states, {outside} outside the "
                          f"assumption)")


def check_reach_properties(ex: Exploration) -> list[LivenessResult]:
    """:func:`check_reach` of every property over runs the explored configuration has."""
    cfg = ex.model.cfg
    return [check_reach(ex, p) for p in REACH_PROPERTIES.values() if p.feature(cfg)]


@dataclass
class _Fairness:
    """The classes enabled in each state and the classes of each step, for one choice."""

    choice: str
    weak_on: list[set[FairnessClass]]
    strong_on: list[set[FairnessClass]]
    weak_cls: list[FairnessClass | None]
    """The weak class of each action id (it does not depend on the state)."""
    strong_at: dict[tuple[int, int], FairnessClass]
    """(state, action id) -> the strong class of that step, for the steps that have one."""

    def classes(self, steps: Iterable[tuple[int, int]]) -> set[FairnessClass]:
        """Every class, weak or strong, that one of ``steps`` ((state, action id) pairs)
        belongs to."""
        out: set[FairnessClass] = set()
        for s, a in steps:
            for c in (self.weak_cls[a], self.strong_at.get((s, a))):
                if c is not None:
                    out.add(c)
        return out


def _meet(sets: Iterable[AbstractSet[FairnessClass]]) -> set[FairnessClass]:
    it = iter(sets)
    out = set(next(it))
    for s in it:
        out &= s
    return out


def _join(sets: Iterable[AbstractSet[FairnessClass]]) -> set[FairnessClass]:
    out: set[FairnessClass] = set()
    for s in sets:
        out |= s
    return out


def fair_components(graph: nx.DiGraph,
                    taken: Mapping[tuple[int, int], AbstractSet[FairnessClass]],
                    weak: Sequence[AbstractSet[FairnessClass]],
                    strong: Sequence[AbstractSet[FairnessClass]]) -> list[set[int]]:
    """The strongly connected parts of ``graph`` that hold a fair cycle.

    ``taken[(s, d)]`` holds the classes of the actions on the edge ``s -> d``;
    ``weak[s]`` and ``strong[s]`` the weak and strong classes enabled in state
    ``s`` (on any of its edges, inside ``graph`` or not). Every fair cycle of
    ``graph`` lies inside one returned component, and each returned component
    has one: a cycle through all its states and an edge of every class taken
    inside it is fair, because every weak class enabled in all its states and
    every strong class enabled in any of them is taken on an inner edge.

    >>> g = nx.DiGraph([(0, 1), (1, 0)])
    >>> refuse, accept = ("refuse", 0), ("accept", 0)
    >>> fair_components(g, {(0, 1): {refuse}, (1, 0): set()}, [set(), set()],
    ...                 [{accept}, set()])
    []
    >>> fair_components(g, {(0, 1): {accept}, (1, 0): set()}, [set(), set()],
    ...                 [{accept}, set()])
    [{0, 1}]
    """
    out: list[set[int]] = []
    # None: the whole graph, searched as it is (a view of all of it filters every lookup).
    todo: list[set[int] | None] = [None]
    while todo:
        nodes = todo.pop()
        sub = graph if nodes is None else graph.subgraph(nodes)
        for comp in nx.strongly_connected_components(sub):
            one = next(iter(comp))
            if len(comp) == 1 and not sub.has_edge(one, one):
                continue  # a state on no cycle
            inside: set[FairnessClass] = set()
            for s in comp:
                for d in sub.successors(s):
                    if d in comp:
                        inside |= taken[(s, d)]
            # A weak class enabled throughout yet never taken starves on every cycle here.
            if not _meet(weak[x] for x in comp) <= inside:
                continue
            unmet = _join(strong[x] for x in comp) - inside
            if not unmet:
                out.append(comp)
                continue
            # A fair cycle may not pass where an untaken strong class is enabled: drop
            # those states and look for cycles among the rest.
            rest = {x for x in comp if not strong[x] & unmet}
            if rest:
                todo.append(rest)
    return out


def _fair_lasso(ex: Exploration, v: int, goal: list[bool], live: list[bool], keep: list[bool],
                fair: _Fairness) -> LivenessResult | None:
    bad = [live[i] and not goal[i] and i not in ex.violating for i in range(ex.states)]
    # Several actions may join the same pair of states: remember them all.
    labels: dict[tuple[int, int], list[int]] = {}
    for s, d, a in zip(ex.edge_src, ex.edge_dst, ex.edge_act):
        if keep[a] and bad[s] and bad[d]:
            labels.setdefault((s, d), []).append(a)
    g: nx.DiGraph = nx.DiGraph(list(labels))
    if fair.strong_at:
        taken = {pair: fair.classes((pair[0], a) for a in acts) for pair, acts in labels.items()}
    else:  # without strong classes an edge's classes are those of its actions alone
        by_acts: dict[tuple[int, ...], set[FairnessClass]] = {}
        taken = {}
        for pair, acts in labels.items():
            key = tuple(acts)
            got = by_acts.get(key)
            if got is None:
                got = by_acts[key] = fair.classes((pair[0], a) for a in acts)
            taken[pair] = got
    comps = fair_components(g, taken, fair.weak_on, fair.strong_on)
    if not comps:
        return None
    depth = ex.depth
    # The shortest prefix: the component holding the shallowest state, entered there.
    comp = min(comps, key=lambda c: min((depth[x], x) for x in c))
    entry = min(comp, key=lambda x: (depth[x], x))
    cycle = [ex.actions[a] for a in _fair_cycle(g.subgraph(comp), labels, entry, fair)]
    target = ex.state(entry).vms[v].target
    return LivenessResult(
        REACHES, False,
        f"VM {v}: a fair run never brings the balloon to its feasible target {target} "
        f"(cycle of {len(cycle)} steps in a component of {len(comp)} states; fairness "
        f"'{fair.choice}': {FAIRNESS_TEXTS[fair.choice]})",
        vm=v, prefix=ex.path(entry), cycle=cycle, fairness=fair.choice)


_Stop = tuple[int, int, int | None]
"""A point the cycle must pass: an edge ``(s, d, action)``, or a state ``(x, x, None)``."""


def _fair_cycle(sub: nx.DiGraph, labels: dict[tuple[int, int], list[int]], entry: int,
                fair: _Fairness) -> list[int]:
    """Action ids of a fair cycle from ``entry`` back to it inside ``sub``, a component
    :func:`fair_components` returned.

    It starts with an edge of every weak class enabled in all of ``sub``'s states
    and adds stops until the cycle is fair: a state where a weak class it never
    takes is disabled, an edge of a strong class enabled on it. Each stop settles
    one class for good, so this ends.
    """
    dist = nx.single_source_shortest_path_length(sub, entry)
    best: dict[FairnessClass, tuple[int, int, int]] = {}
    for s, d in sub.edges:
        for a in labels[(s, d)]:
            for c in fair.classes(((s, a),)):
                if c not in best or (dist[s], s, d, a) < (dist[best[c][0]],) + best[c]:
                    best[c] = (s, d, a)
    nodes = list(sub.nodes)
    stops: list[_Stop] = [best[c] for c in sorted(_meet(fair.weak_on[x] for x in nodes), key=str)]
    if not stops:  # no class has to be taken: close the shortest cycle through the entry
        back = nx.single_source_shortest_path_length(sub.reverse(copy=False), entry)
        succ = min(sub.successors(entry), key=lambda d: (back[d], d))
        stops = [(entry, succ, labels[(entry, succ)][0])]
    while True:
        steps = _route(sub, labels, entry, stops)
        seen = [s for s, _, _ in steps]
        acts = [a for _, _, a in steps]
        done = fair.classes((s, a) for s, _, a in steps)
        starved = _meet(fair.weak_on[x] for x in seen) - done
        if starved:
            c = min(starved, key=str)
            off = [x for x in nodes if c not in fair.weak_on[x]]
            if off:
                near = min(off, key=lambda x: (dist[x], x))
                stops.append((near, near, None))
            else:
                stops.append(best[c])
            continue
        unmet = _join(fair.strong_on[x] for x in seen) - done
        if unmet:
            stops.append(best[min(unmet, key=str)])
            continue
        return acts


def _route(sub: nx.DiGraph, labels: dict[tuple[int, int], list[int]], entry: int,
           stops: list[_Stop]) -> list[tuple[int, int, int]]:
    """Shortest paths from ``entry`` through ``stops`` in order and back to ``entry``."""
    steps: list[tuple[int, int, int]] = []
    here = entry
    for s, d, a in stops:
        steps += _path(sub, labels, here, s)
        if a is not None:
            steps.append((s, d, a))
        here = d
    return steps + _path(sub, labels, here, entry)


def _path(sub: nx.DiGraph, labels: dict[tuple[int, int], list[int]],
          a: int, b: int) -> list[tuple[int, int, int]]:
    if a == b:
        return []
    nodes = nx.shortest_path(sub, a, b)
    return [(x, y, labels[(x, y)][0]) for x, y in pairwise(nodes)]
