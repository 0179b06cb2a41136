"""State values: frozen, hashable, round-trip through plain data."""

import dataclasses

import pytest

from ballast.model.config import preset
from ballast.model.state import initial_state, state_from_dict
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run


def test_states_are_frozen_and_hashable() -> None:
    s = initial_state(preset("default"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.host = s.host  # type: ignore[misc]
    assert hash(s) == hash(initial_state(preset("default")))


def test_to_dict_round_trip_on_reachable_states() -> None:
    run = random_run(BalloonModel(preset("default")), seed=9, steps=120, record_states=False)
    assert run.final is not None
    assert state_from_dict(run.final.to_dict()) == run.final


def test_initial_state_satisfies_every_property() -> None:
    for name in ("default", "core", "hugepages", "processors", "hostile"):
        model = BalloonModel(preset(name))
        assert model.violations(model.init_states()[0]) == []
