"""``ballast check --fault NAME`` end to end, for every seeded fault the model defines.

Each checker's own tests show it catching the faults (on the configurations those tests
choose); here the whole command runs as a user runs it, on the default preset with what
the fault needs, and for every fault: exit 1, a property the fault is known to break,
a counterexample written with the seed that found it, which ``ballast replay`` re-runs
to the same violation, which is shrunk (no single step can be dropped and still break
the property there) and which the correct model does not break. The random checker
catches every fault but one within its default budget, in a second or two; the fault of
the property over runs is the explorer's (on the hostile preset's over-target slice).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ballast.cli import main
from ballast.errors import GuardError
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.replay import ReplayOutcome, model_for, replay
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.simulation.shrink import fails_with
from ballast.suites.catchers import catchers

OVER_TARGET_SLICE = [arg for key, value in (
    ("vms", 2), ("guest_pages", 1), ("guest_data_pages", 1), ("guest_disk_slots", 0),
    ("machine_pages", 2), ("host_swap_slots", 1), ("host_use", "false"),
    ("vmm_reclaims_over_target", "true")) for arg in ("--set", f"{key}={value}")]
"""Two VMs of one page each, one host swap slot, the VMM paging a VM out over its target."""


def _command(fault: str) -> tuple[str, list[str]]:
    """The checker that runs, and the rest of the command line."""
    if "random" in catchers(fault):
        return "random", []
    return "explore", ["--preset", "core", *OVER_TARGET_SLICE]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_check_catches_the_fault_with_a_replayable_shrunk_trace(
        fault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = FAULTS[fault]
    checker, extra = _command(fault)
    out = tmp_path / "check.json"
    code = main(["check", "--fault", fault, "--checkers", checker, *extra,
                 "--report-dir", str(tmp_path), "--json", str(out), "-q"])
    capsys.readouterr()
    assert code == 1, fault
    results = [r for c in json.loads(out.read_text())["checkers"] for r in c["results"]]
    broken = [r for r in results if r["verdict"] == "violation"]
    assert broken and {r["property"] for r in broken} <= set(f.caught_as), broken
    [first] = [r for r in broken if r["counterexample"]][:1]
    path = Path(first["counterexample"])
    prop = first["property"]

    # The trace names the fault and where it came from, and replays to the same verdict.
    trace = read_trace(path)
    assert trace.header.faults == (fault,)
    assert trace.header.source["checker"] == checker
    if checker == "random":
        assert isinstance(trace.header.source["seed"], int)
    assert main(["replay", str(path)]) == 1
    assert prop in capsys.readouterr().out

    model = model_for(trace.header)
    actions = [st.action for st in trace.steps]
    if checker == "random":
        # The last step breaks it first; every shorter run dropping one step does not.
        assert replay(trace).outcome is ReplayOutcome.VIOLATION
        assert fails_with(model, actions, prop)
        for i in range(len(actions) - 1):
            assert not fails_with(model, actions[:i] + actions[i + 1:], prop), (fault, i)
    else:
        # A property over runs: the claim is about the last state; the shortest prefix.
        assert len(actions) == trace.header.expect["step"]  # type: ignore[index]
        assert replay(trace).outcome is ReplayOutcome.OK

    # The correct model breaks the property nowhere on these steps (as far as it allows
    # them): the fault is what breaks it.
    assert prop not in _broken_without_faults(trace.header.config, actions), fault


def _broken_without_faults(cfg: Config, actions: list[Action]) -> set[str]:
    """The properties the correct model's steps break along ``actions``, up to the first
    step it does not allow."""
    model = BalloonModel(cfg)
    s = model.init_states()[0]
    broken: set[str] = set()
    for act in actions:
        try:
            post = model.next_state(s, act)
        except GuardError:
            break
        broken |= {v.property for v in model.step_violations(s, act, post)}
        s = post
    return broken
