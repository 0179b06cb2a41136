"""Every seeded fault is found, with a shortest trace that replays and breaks its property."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.replay import ReplayOutcome
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.model.replay import replay
from ballast.model.recovery import REACH_PROPERTIES
from ballast.statespace.configs import fault_config
from ballast.statespace.explore import Budget, explore
from ballast.statespace.liveness import check_reach_properties
from ballast.statespace.traces import goal_unreachable, run_actions, write_finding, write_liveness


def _plain_shortest(model: BalloonModel, prop: str, limit: int) -> int | None:
    """Depth of the shallowest step breaking ``prop`` by a plain BFS over State objects,
    following BalloonModel.step_violations and stopping runs at the first violation."""
    s0 = model.init_states()[0]
    seen = {s0}
    todo = deque([(s0, 0)])
    while todo:
        s, d = todo.popleft()
        if d >= limit:
            continue
        for act, t in model.successors(s):
            bad = model.step_violations(s, act, t)
            if any(v.property == prop for v in bad):
                return d + 1
            if t not in seen and not bad:
                seen.add(t)
                todo.append((t, d + 1))
    return None


@pytest.mark.parametrize("name", sorted(n for n, f in FAULTS.items()
                                         if f.breaks not in REACH_PROPERTIES))
def test_fault_is_found_with_a_shortest_trace(name: str, tmp_path: Path) -> None:
    fault = FAULTS[name]
    model = BalloonModel(fault_config(name), [name])
    ex = explore(model, stop_on=[fault.breaks], budget=Budget(max_seconds=60))
    found = ex.violations.get(fault.breaks)
    assert found is not None, f"{name}: {fault.breaks} not found in {ex.states} states"
    # What the explorer reports on the way is what the fault table says it is caught as.
    assert set(ex.violations) <= set(fault.caught_as), (name, sorted(ex.violations))
    path = write_finding(ex, found, tmp_path, name)
    result = replay(read_trace(path))
    assert result.outcome is ReplayOutcome.VIOLATION
    assert fault.breaks in {v.property for v in result.violations}
    assert result.step == found.steps(ex)
    header = read_trace(path).header
    assert header.expect is not None and header.expect["property"] == fault.breaks
    assert header.source["checker"] == "explore"
    # no shorter run of the broken model breaks the property
    assert _plain_shortest(model, fault.breaks, found.steps(ex)) == found.steps(ex)


OVER_RUNS_BASE = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                        machine_pages=1, host_swap_slots=1, tokens=1, batch=1, host_use=False)
"""A base small enough for the whole graph without symmetry (a property over runs needs it)."""


@pytest.mark.parametrize("name", sorted(n for n, f in FAULTS.items()
                                         if f.breaks in REACH_PROPERTIES))
def test_fault_of_a_property_over_runs_is_found_with_a_replayable_prefix(
        name: str, tmp_path: Path) -> None:
    """The explorer's whole graph shows a state from which the allowed steps never reach the
    goal; the shortest prefix to it replays through the model, breaking no safety property,
    and the model's own steps confirm the goal unreachable from where it ends."""
    fault = FAULTS[name]
    prop = REACH_PROPERTIES[fault.breaks]
    model = BalloonModel(fault_config(name, OVER_RUNS_BASE), [name])
    ex = explore(model, symmetry=False, keep_edges=True)
    assert ex.complete and not ex.violations
    [result] = [r for r in check_reach_properties(ex) if r.property == fault.breaks]
    assert not result.holds and result.vm is not None
    path = write_liveness(ex, result, tmp_path, name)
    trace = read_trace(path)
    assert trace.header.expect is not None and trace.header.expect["property"] == fault.breaks
    replayed = replay(trace, keep_states=True)
    assert replayed.outcome is ReplayOutcome.OK and replayed.steps_run == len(result.prefix)
    end = run_actions(model, result.prefix)[-1]
    assert prop.assumed(model.cfg, end) and not prop.goal(model.cfg, end)
    assert goal_unreachable(model, prop, end)
    # No shorter prefix ends where the goal is out of reach: every state nearer the start
    # that meets the assumption reaches the goal by the allowed steps.
    for i in range(ex.states):
        if ex.depth[i] < len(result.prefix) and prop.assumed(model.cfg, ex.state(i)):
            assert not goal_unreachable(model, prop, ex.state(i))
    # The correct model passes the same configuration.
    good = explore(BalloonModel(fault_config(name, OVER_RUNS_BASE)), symmetry=False,
                   keep_edges=True)
    [ok] = [r for r in check_reach_properties(good) if r.property == fault.breaks]
    assert ok.holds and ok.outcome == ""
