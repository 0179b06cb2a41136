"""The Hypothesis state machine: rules from the model, invariants from the model."""

from ballast.model.config import preset
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.stateful import machine_for, run_machine


def test_rules_and_invariants_come_from_the_model() -> None:
    model = BalloonModel(preset("default"))
    machine = machine_for(model)
    for spec in model.action_specs():
        assert callable(getattr(machine, spec.name))
    for prop in model.properties():
        if prop.state is not None:
            assert callable(getattr(machine, f"invariant_{prop.name}"))


def test_machine_catches_a_fault_and_the_shrunk_run_replays() -> None:
    model = BalloonModel(preset("hostile"), ["share_without_cow"])
    out = run_machine(model, seed=0, examples=200, steps=40)
    assert out.violation is not None and out.trace is not None
    assert out.violation.property == "no_double_mapping"
    result = replay(out.trace)
    assert result.outcome is ReplayOutcome.VIOLATION
    assert result.violations[0].property == "no_double_mapping"
    assert len(out.trace.steps) <= 6
