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


def test_replace_fields_copies_as_dataclasses_replace_does() -> None:
    from ballast.model.state import replace_fields

    for name in ("default", "hostile", "qemu"):
        run = random_run(BalloonModel(preset(name)), seed=4, steps=60, record_states=False)
        assert run.final is not None
        vm = run.final.vms[0]
        for record, change in ((vm, {"target": vm.target + 1, "inflate_queue": (0,)}),
                               (vm.module, {"actual": 7}), (vm.guest, {"lru": (1, 2)}),
                               (run.final.host, {"idle_pcpus": 3})):
            copy = replace_fields(record, **change)
            assert copy == dataclasses.replace(record, **change)
            assert hash(copy) == hash(dataclasses.replace(record, **change))
            assert copy is not record and record != copy
        assert replace_fields(vm) == vm
        with pytest.raises(TypeError, match="no field bogus"):
            replace_fields(vm, bogus=1)


def test_replace_fields_keeps_post_init_and_init_false_fields() -> None:
    from ballast.model.state import replace_fields

    @dataclasses.dataclass(frozen=True)
    class Checked:
        x: int
        doubled: int = dataclasses.field(init=False, default=0)

        def __post_init__(self) -> None:
            object.__setattr__(self, "doubled", 2 * self.x)

    assert replace_fields(Checked(1), x=5).doubled == 10
