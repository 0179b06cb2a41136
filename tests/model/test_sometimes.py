"""Every scenario is reachable on the default configuration (no vacuous checks)."""

from ballast.model.config import preset
from ballast.model.system import BalloonModel
from ballast.model.sometimes import SOMETIMES
from ballast.simulation.randomwalk import random_run


def test_every_scenario_is_witnessed_by_random_runs() -> None:
    model = BalloonModel(preset("default"))
    seen: set[str] = set()
    for seed in range(300):
        seen |= random_run(model, seed, 200, record_states=False).witnessed
        if seen >= set(SOMETIMES):
            break
    assert set(SOMETIMES) - seen == set()


def test_scenarios_are_not_trivially_true() -> None:
    model = BalloonModel(preset("default"))
    s0 = model.init_states()[0]
    for act, post in model.successors(s0):
        assert model.witnessed(s0, act, post) == [], act
