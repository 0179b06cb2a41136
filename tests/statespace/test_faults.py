"""Every seeded fault is found, with a shortest trace that replays and breaks its property."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from ballast.model.faults import FAULTS
from ballast.model.replay import ReplayOutcome
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.model.replay import replay
from ballast.statespace.configs import fault_config
from ballast.statespace.explore import Budget, explore
from ballast.statespace.traces import write_finding


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


@pytest.mark.parametrize("name", sorted(FAULTS))
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
