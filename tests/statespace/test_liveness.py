"""Liveness: AG EF and fair eventual reach, with lassos that replay."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import networkx as nx
import pytest

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS, Action
from ballast.model.config import Config
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.statespace.configs import EXPLORE_CONFIGS
from ballast.statespace.explore import Exploration, explore
from ballast.statespace.frontier import explore_frontier
from ballast.statespace.liveness import (
    CAN_REACH,
    FAIRNESS_TEXTS,
    REACHES,
    STRONG_ACCEPT,
    WEAK,
    FairnessClass,
    LivenessResult,
    accept_class,
    at_target,
    check_liveness,
    check_reach_properties,
    fair_components,
)
from ballast.statespace.suite import LIVENESS_MAX_STATES, feature_slices, liveness_fairness
from ballast.statespace.traces import check_end, verify_lasso, write_liveness

# The smallest configuration where the VMM may refuse pages of an inflate report.
REFUSAL = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=1,
                 host_swap_slots=0, tokens=1, batch=1, host_use=False, refusal=True)


def _liveness(model: BalloonModel) -> dict[str, object]:
    ex = explore(model, keep_edges=True)
    return {r.property: r for r in check_liveness(ex)}, ex  # type: ignore[return-value]


def test_both_hold_on_the_plain_protocol() -> None:
    results, _ = _liveness(BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"]))
    assert results[CAN_REACH].holds and results[REACHES].holds  # type: ignore[union-attr]


def test_refusal_starves_the_balloon_under_weak_fairness(tmp_path: Path) -> None:
    # The VMM may refuse every inflate forever: weak fairness of vmm_reclaim is met
    # by the refusing variant, so the balloon need not reach its target, though it can.
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"])
    results, ex = _liveness(model)
    assert results[CAN_REACH].holds  # type: ignore[union-attr]
    lasso = results[REACHES]
    assert not lasso.holds and lasso.cycle  # type: ignore[union-attr]
    assert any(a.name == "vmm_reclaim" and a.kwargs["refuse"] for a in lasso.cycle)  # type: ignore[union-attr]
    assert verify_lasso(model, 0, lasso.prefix, lasso.cycle) is None  # type: ignore[union-attr]
    path = write_liveness(ex, lasso, tmp_path, "lasso")  # type: ignore[arg-type]
    trace = read_trace(path)
    assert trace.header.expect is not None
    assert trace.header.expect["lasso_start"] == len(lasso.prefix) + 1  # type: ignore[union-attr]
    assert len(trace.steps) == len(lasso.prefix) + len(lasso.cycle)  # type: ignore[union-attr]
    assert (tmp_path / "lasso.md").read_text().startswith("#")
    from ballast.model.replay import replay
    states = replay(trace).states
    assert states[len(lasso.prefix)] == states[-1]  # type: ignore[union-attr]


def test_an_unfair_cycle_is_rejected() -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"])
    results, _ = _liveness(model)
    lasso = results[REACHES]
    # Drop the steps of the cycle: prefix + nothing is no lasso.
    assert verify_lasso(model, 0, lasso.prefix, []) is not None  # type: ignore[union-attr]


def test_a_module_that_never_completes_cannot_reach_its_target(tmp_path: Path) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != "balloon_complete"}
    results, ex = _liveness(model)
    stuck = results[CAN_REACH]
    assert not stuck.holds and stuck.prefix  # type: ignore[union-attr]
    path = write_liveness(ex, stuck, tmp_path, "stuck")  # type: ignore[arg-type]
    trace = read_trace(path)
    assert trace.header.expect["property"] == CAN_REACH  # type: ignore[index]
    # Replayed, the claim is decided again from the last state: on the model that lacks
    # the step, no run reaches the target; on the model the trace names, one does.
    again = check_end(trace, model=model)
    assert again is not None and again.confirmed is True
    assert "VM 0: no run of the allowed steps reaches its target" in again.detail
    whole = check_end(trace)
    assert whole is not None and whole.confirmed is False
    # A search cut short decides nothing.
    cut = check_end(trace, model=model, limit=2)
    assert cut is not None and cut.confirmed is None and "undecided" in cut.describe()


def test_a_claim_about_the_last_state_of_a_huge_guest_is_not_searched() -> None:
    """The same kind of claim on a guest of a million pages (a file of three lines) is left
    undecided at once: searching from its last state listed page sets until memory ran
    out."""
    from ballast.statespace.traces import SEARCHED_SIZE_LIMIT, make_trace

    cfg = EXPLORE_CONFIGS["one-vm-no-host-use"].replace(guest_pages=1_000_000,
                                                         machine_pages=1_000_000)
    model = BalloonModel(cfg)
    trace = make_trace(model, [Action.of("host_set_target", vm=0, pages=1)],
                       {"property": CAN_REACH, "step": 1, "vm": 0}, "EF")
    end = check_end(trace, model=model)
    assert end is not None and end.confirmed is None, end
    assert "too large to search" in end.detail and f"{SEARCHED_SIZE_LIMIT:,}" in end.detail


def test_liveness_refuses_a_reduced_graph() -> None:
    ex = explore(BalloonModel(EXPLORE_CONFIGS["one-vm"]), symmetry=True, keep_edges=True)
    with pytest.raises(UsageError):
        check_liveness(ex)


def test_an_unknown_fairness_is_a_usage_error() -> None:
    ex = explore(BalloonModel(REFUSAL), keep_edges=True)
    with pytest.raises(UsageError):
        check_liveness(ex, fairness="fair-enough")


# -- fairness of the VMM's acceptance ------------------------------------------

def _reaches(model: BalloonModel, fairness: str) -> tuple[LivenessResult, Exploration]:
    ex = explore(model, keep_edges=True)
    results = {r.property: r for r in check_liveness(ex, fairness=fairness)}
    return results[REACHES], ex


def _lasso_states(model: BalloonModel, prefix: Sequence[Action],
                  cycle: Sequence[Action]) -> list[State]:
    """The states the cycle passes, first and last included, by stepping the model."""
    s = model.init_states()[0]
    for act in prefix:
        s = model.next_state(s, act)
    loop = [s]
    for act in cycle:
        loop.append(model.next_state(loop[-1], act))
    return loop


def _refuses(act: Action) -> bool:
    return act.name == "vmm_reclaim" and bool(act.kwargs["refuse"])


def test_weak_fairness_lets_the_vmm_refuse_forever() -> None:
    model = BalloonModel(REFUSAL)
    lasso, _ = _reaches(model, WEAK)
    assert not lasso.holds and lasso.cycle and lasso.vm is not None
    assert lasso.fairness == WEAK and FAIRNESS_TEXTS[WEAK] in lasso.detail
    # The balloon starves because every report is refused, never accepted whole.
    assert any(_refuses(a) for a in lasso.cycle)
    loop = _lasso_states(model, lasso.prefix, lasso.cycle)
    assert not any(accept_class(model.cfg, s, a) for s, a in zip(loop, lasso.cycle))
    assert loop[0] == loop[-1]
    assert not any(at_target(s, lasso.vm) for s in loop)
    assert verify_lasso(model, lasso.vm, lasso.prefix, lasso.cycle, WEAK) is None
    # Accepting was possible on the way round, so the cycle is not strongly fair to it.
    assert verify_lasso(model, lasso.vm, lasso.prefix, lasso.cycle, STRONG_ACCEPT) is not None


def test_strong_fairness_of_acceptance_brings_the_balloon_to_its_target() -> None:
    reach, _ = _reaches(BalloonModel(REFUSAL), STRONG_ACCEPT)
    assert reach.holds and not reach.cycle
    assert reach.fairness == STRONG_ACCEPT and FAIRNESS_TEXTS[STRONG_ACCEPT] in reach.detail


def test_accepting_as_far_as_it_may_is_enabled_at_every_report() -> None:
    # Strong fairness of acceptance rests on this: wherever the VMM has a report to
    # process, some step of it accepts every valid page it has room for. A report with
    # more valid pages than the room (the target fell after the guest reported) can
    # only be taken with the excess refused, so no step there has ``refuse=()``; such a
    # step is accepting all the same, and a refusing one (with ``refusal``) is not.
    model = BalloonModel(REFUSAL)
    ex = explore(model, symmetry=False)
    over_room = 0
    for i in range(ex.states):
        s = ex.state(i)
        reclaims = [a for a, _ in model.successors(s) if a.name == "vmm_reclaim"]
        if not reclaims:
            continue
        accepting = [a for a in reclaims if accept_class(REFUSAL, s, a) is not None]
        assert accepting, s
        v = s.vms[0]
        room = max(0, v.target - len(v.ballooned))
        valid = set(v.inflate_queue) - v.ballooned
        if len(valid) > room:
            over_room += 1
            assert all(a.kwargs["refuse"] for a in reclaims)
            for a in accepting:  # exactly the excess beyond the room is refused
                assert len(valid & set(a.kwargs["refuse"])) == len(valid) - room
            if room > 0:  # refusing more than the excess is the VMM's own choice
                assert any(accept_class(REFUSAL, s, a) is None for a in reclaims)
    assert over_room > 0  # the case refuse=() misread is there to be checked


def _acceptance_refuses_everything(cfg: Config) -> BalloonModel:
    """A broken VMM: an accepting reclaim still refuses every page of the report."""
    spec = ACTIONS["vmm_reclaim"]
    reclaim = spec.effect

    def effect(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> State:
        return reclaim(cfg, s, vm, refuse or tuple(s.vms[vm].inflate_queue))

    model = BalloonModel(cfg)
    model.table = {**ACTIONS, "vmm_reclaim": dataclasses.replace(spec, effect=effect)}
    return model


def test_strong_fairness_still_catches_a_vmm_that_never_accepts(tmp_path: Path) -> None:
    model = _acceptance_refuses_everything(REFUSAL)
    lasso, ex = _reaches(model, STRONG_ACCEPT)
    assert not lasso.holds and lasso.cycle and lasso.vm is not None
    assert lasso.fairness == STRONG_ACCEPT
    # Acceptance is enabled on the cycle, so a strongly fair cycle must take it.
    loop = _lasso_states(model, lasso.prefix, lasso.cycle)
    assert any(accept_class(model.cfg, s, a) for s, a in zip(loop, lasso.cycle))
    assert loop[0] == loop[-1]
    assert verify_lasso(model, lasso.vm, lasso.prefix, lasso.cycle, STRONG_ACCEPT) is None
    path = write_liveness(ex, lasso, tmp_path, "never-accepts")
    header = read_trace(path).header
    assert header.expect is not None and header.expect["fairness"] == STRONG_ACCEPT
    assert FAIRNESS_TEXTS[STRONG_ACCEPT] in str(header.source)


# -- the refinement of components, on hand-made graphs --------------------------

W: FairnessClass = ("balloon_inflate", 0)
S: FairnessClass = ("vmm_accepts_report", 0)


def _components(edges: dict[tuple[int, int], set[FairnessClass]], weak: list[set[FairnessClass]],
                strong: list[set[FairnessClass]]) -> list[set[int]]:
    return fair_components(nx.DiGraph(list(edges)), edges, weak, strong)


def test_a_weak_class_enabled_throughout_and_never_taken_leaves_no_fair_cycle() -> None:
    ring = {(0, 1): set[FairnessClass](), (1, 0): set[FairnessClass]()}
    assert _components(ring, [{W}, {W}], [set(), set()]) == []
    assert _components({**ring, (1, 0): {W}}, [{W}, {W}], [set(), set()]) == [{0, 1}]
    # Disabled somewhere, the class need not be taken.
    assert _components(ring, [{W}, set()], [set(), set()]) == [{0, 1}]


def test_an_untaken_strong_class_rules_out_the_states_where_it_is_enabled() -> None:
    # Two loops share state 1: 0 <-> 1 and 1 <-> 2. Acceptance is enabled in 0, taken nowhere.
    edges: dict[tuple[int, int], set[FairnessClass]] = {
        (0, 1): set(), (1, 0): set(), (1, 2): set(), (2, 1): set()}
    weak: list[set[FairnessClass]] = [set(), set(), set()]
    assert _components(edges, weak, [{S}, set(), set()]) == [{1, 2}]
    # Taken on an inner edge, it keeps the whole component.
    assert _components({**edges, (0, 1): {S}}, weak, [{S}, set(), set()]) == [{0, 1, 2}]
    # Enabled everywhere and never taken: nothing is left.
    assert _components(edges, weak, [{S}, {S}, {S}]) == []


def test_the_weak_condition_is_checked_again_after_refinement() -> None:
    # The only edge taking W leaves state 0, which the untaken strong class rules out;
    # W stays enabled in what remains, so the remaining loop is not fair either.
    edges: dict[tuple[int, int], set[FairnessClass]] = {
        (0, 1): {W}, (1, 0): set(), (1, 2): set(), (2, 1): set()}
    assert _components(edges, [set(), {W}, {W}], [{S}, set(), set()]) == []
    # A self-loop is a cycle too.
    assert _components({(0, 0): set()}, [set()], [set()]) == [{0}]


# -- the frontier engine's graph -------------------------------------------------

def _never_completes() -> BalloonModel:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != "balloon_complete"}
    return model


GRAPHS = {
    "refusal": lambda: BalloonModel(REFUSAL),  # weak fairness: the VMM refuses forever
    "never-completes": _never_completes,  # no run reaches the target
    "refuses-everything": lambda: _acceptance_refuses_everything(REFUSAL),
    "two-vms-over-target": lambda: BalloonModel(EXPLORE_CONFIGS["two-vms-over-target"]),
    "seeded-fault": lambda: BalloonModel(EXPLORE_CONFIGS["one-vm"], ["release_keeps_balloon_set"]),
    "host-never-recovers": lambda: BalloonModel(EXPLORE_CONFIGS["two-vms-over-target"],
                                                ["vmm_stops_one_page_over"]),
}
"""Models whose graphs both engines must keep alike: lassos under each fairness, a target
no run reaches, a property over runs that holds (the VMM reclaiming over the target) and
one that breaks, a seeded fault that breaks safety properties on some states."""


def _graph(ex: Exploration) -> tuple[list[State], list[tuple[int, int, str]]]:
    """Every state by id, and every stored edge with its action's text."""
    return ex.all_states(), sorted((s, d, str(a)) for s, d, a in ex.edges())


def _outcome(ex: Exploration, fairness: str) -> list[tuple[object, ...]]:
    """Every liveness and reach verdict with its evidence, in the checkers' order."""
    return [(r.property, r.holds, r.vm, r.detail, [str(a) for a in r.prefix],
             [str(a) for a in r.cycle])
            for r in [*check_liveness(ex, fairness), *check_reach_properties(ex)]]


@pytest.mark.parametrize("fairness", [WEAK, STRONG_ACCEPT])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_the_frontier_engine_keeps_the_reference_graph_and_its_verdicts(name: str,
                                                                       fairness: str) -> None:
    """Liveness runs on the frontier engine's graph (``ballast explore --liveness``, the
    liveness slices of ``ballast check``): state for state in the same order, edge for edge
    with the same actions, and the same verdicts, lassos and reach traces as on the
    reference engine's."""
    ref = explore(GRAPHS[name](), keep_edges=True)
    fx = explore_frontier(GRAPHS[name](), keep_edges=True)
    assert (fx.states, fx.complete, sorted(fx.violations)) == \
        (ref.states, ref.complete, sorted(ref.violations))
    assert _graph(fx) == _graph(ref)
    assert _outcome(fx, fairness) == _outcome(ref, fairness)


@pytest.mark.slow
def test_every_liveness_slice_of_every_preset_has_the_same_graph_on_both_engines() -> None:
    """What ``ballast check`` checks liveness on (every preset's liveness slices no larger
    than it allows), under its own fairness and the other: the same graph and verdicts."""
    from ballast.model.config import PRESETS

    checked = []
    for preset_name, cfg in PRESETS.items():
        for slice_name, small in feature_slices(cfg).items():
            fairness = liveness_fairness(slice_name, small)
            if fairness is None:
                continue
            # The check's own limit, on the slice's states with symmetry.
            if explore_frontier(BalloonModel(small), symmetry=True).states > LIVENESS_MAX_STATES:
                continue
            ref = explore(BalloonModel(small), keep_edges=True)
            fx = explore_frontier(BalloonModel(small), keep_edges=True)
            assert _graph(fx) == _graph(ref)
            for f in (WEAK, STRONG_ACCEPT):
                assert _outcome(fx, f) == _outcome(ref, f), (slice_name, f)
            checked.append(f"{preset_name}/{slice_name}")
    assert {"default/protocol", "default/refusal"} <= set(checked), checked
