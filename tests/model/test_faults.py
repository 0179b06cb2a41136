"""Each invariant catches a seeded fault, and the counterexample replays the same way."""

import pytest

from ballast.model.faults import FAULTS, action_table
from ballast.model.invariants import INVARIANTS
from ballast.model.recovery import REACH_PROPERTIES
from ballast.model.config import preset
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run
from ballast.errors import InputError


SAFETY_FAULTS = sorted(n for n, f in FAULTS.items() if f.breaks in INVARIANTS)
"""The faults a run can show: those that break a safety property (the others break a
property over runs, which only the explorer's whole graph shows)."""


def test_every_invariant_has_a_seeded_fault() -> None:
    covered = {f.breaks for f in FAULTS.values()}
    assert covered == set(INVARIANTS) | set(REACH_PROPERTIES)


def test_a_fault_of_a_property_over_runs_says_why_runs_miss_it() -> None:
    over_runs = [f for f in FAULTS.values() if f.breaks in REACH_PROPERTIES]
    assert over_runs
    for f in over_runs:
        assert {"random", "hypothesis"} <= set(f.missed_by), f.name


def test_a_fault_is_caught_as_its_own_property_first_and_as_properties_only() -> None:
    for f in FAULTS.values():
        assert f.caught_as[0] == f.breaks and len(set(f.caught_as)) == len(f.caught_as)
        assert set(f.caught_as) <= set(INVARIANTS) | set(REACH_PROPERTIES), f.name


def test_what_a_fault_needs_fits_every_preset_and_never_shrinks_it() -> None:
    from ballast.model.config import PRESETS
    from ballast.model.faults import with_fault_needs

    for name, base in PRESETS.items():
        for f in FAULTS.values():
            cfg = with_fault_needs(base, [f.name])  # a valid Config, or it raises
            for key, need in f.config.items():
                have, had = getattr(cfg, key), getattr(base, key)
                if key == "machine_pages":  # rounded up: whole host pages, every guest's pages
                    assert have >= max(need, had), (name, f.name, key)
                elif type(need) is int:
                    assert have == max(need, had), (name, f.name, key)
                elif key == "hostile_vms":  # any hostile VM serves; the preset's are kept
                    assert have == (had or need), (name, f.name, key)
                else:
                    assert have == need, (name, f.name, key)
            assert cfg.hostile_vms == base.hostile_vms or not base.hostile_vms, (name, f.name)
    with pytest.raises(InputError, match="unknown fault 'no_such'"):
        with_fault_needs(preset("core"), ["no_such"])


def test_faults_replace_exactly_one_action() -> None:
    from ballast.model.actions import ACTIONS

    for f in FAULTS.values():
        table = action_table([f.name])
        changed = [n for n in ACTIONS if table[n].effect is not ACTIONS[n].effect]
        assert changed == [f.action]


def test_unknown_fault_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown fault"):
        action_table(["nope"])


@pytest.mark.parametrize("name", SAFETY_FAULTS)
def test_random_runs_catch_the_fault_and_replay_agrees(name: str) -> None:
    fault = FAULTS[name]
    model = BalloonModel(preset("default").replace(**fault.config), [name])
    for seed in range(300):
        run = random_run(model, seed, 200)
        # Every run that catches the fault names one of the properties the fault table
        # says it is caught as.
        assert run.violation is None or run.violation.property in fault.caught_as, \
            (seed, run.violation.property)
        # The first run that breaks the property the fault is named for (a fault may
        # break another property first on some runs).
        if run.violation is not None and fault.breaks in {
                v.property for v in replay(run.trace).violations}:
            break
    else:
        pytest.fail(f"{name} not caught in 300 random runs")
    result = replay(run.trace)
    assert result.outcome is ReplayOutcome.VIOLATION
    assert result.violations[0].property == run.violation.property
    assert fault.breaks in {v.property for v in result.violations}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_the_correct_model_passes_the_same_runs(name: str) -> None:
    model = BalloonModel(preset("default").replace(**FAULTS[name].config))
    for seed in range(40):
        assert random_run(model, seed, 150, record_states=False).violation is None
