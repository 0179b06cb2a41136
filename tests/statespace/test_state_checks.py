"""Cached state-invariant answers are exactly the model's own, state by state."""

from __future__ import annotations

import pytest

from ballast.model.config import PRESETS
from ballast.model.faults import FAULTS
from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS, fault_config, small_config
from ballast.statespace.explore import Budget, explore
from ballast.statespace.parts import PartStore
from ballast.statespace.state_checks import StateChecks


def _agree(model: BalloonModel, budget: Budget) -> int:
    """Check every state an exploration of ``model`` reached; return how many broke something."""
    ex = explore(model, budget=budget, cache=False)
    store = PartStore(model.cfg.vms)
    checks = StateChecks(model, store)
    broken = 0
    for sid in range(ex.states):
        s = ex.state(sid)
        got = checks.violations(store.ids(store.key(s)), s)
        want = [(v.property, v.message) for v in model.violations(s)]
        assert got == want
        broken += bool(want)
    return broken


@pytest.mark.parametrize("name", ["two-vms", "one-vm-refusal"])
def test_answers_agree_on_every_reachable_state(name: str) -> None:
    assert _agree(BalloonModel(EXPLORE_CONFIGS[name]), Budget()) == 0


@pytest.mark.parametrize("preset", ["default", "hostile", "processors", "hugepages"])
def test_answers_agree_on_preset_slices(preset: str) -> None:
    _agree(BalloonModel(small_config(PRESETS[preset])), Budget(max_states=2000))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_broken_states_of_every_fault_get_the_models_messages(fault: str) -> None:
    """The cache proves only that a state breaks nothing; broken states are told apart."""
    model = BalloonModel(fault_config(fault), [fault])
    ex = explore(model, budget=Budget(max_states=3000))
    store = ex.parts
    checks = StateChecks(model, store)
    for sid in sorted(ex.violating):
        s = ex.state(sid)
        got = checks.violations(store.ids(ex.reps[sid]), s)
        assert got == [(v.property, v.message) for v in model.violations(s)]


def test_clean_states_are_mostly_answered_from_the_cache() -> None:
    model = BalloonModel(EXPLORE_CONFIGS["two-vms-three-mpns"])
    ex = explore(model, budget=Budget(max_states=5000), cache=False)
    store = PartStore(model.cfg.vms)
    checks = StateChecks(model, store)
    for sid in range(ex.states):
        s = ex.state(sid)
        assert checks.violations(store.ids(store.key(s)), s) == []
    assert checks.quick == ex.states
