"""Packed keys give back exactly the model's states."""

from __future__ import annotations

import random

import pytest

from ballast.model.config import PRESETS
from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS, small_config
from ballast.statespace.explore import Budget, explore
from ballast.statespace.parts import PartStore


@pytest.mark.parametrize("name", ["one-vm", "one-vm-refusal", "two-vms"])
def test_every_explored_key_is_the_state_its_path_reaches(name: str) -> None:
    cfg = EXPLORE_CONFIGS[name]
    model = BalloonModel(cfg)
    ex = explore(model)
    for sid in range(0, ex.states, 53):
        s = model.init_states()[0]
        for act in ex.path(sid):
            s = model.next_state(s, act)
        assert ex.state(sid) == s
        assert ex.parts.key(s) == ex.keys[sid]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_random_walks_round_trip_on_every_preset(preset: str) -> None:
    cfg = PRESETS[preset]
    model = BalloonModel(cfg)
    store = PartStore(cfg.vms)
    rng = random.Random(preset)
    s = model.init_states()[0]
    keys: dict[int, object] = {}
    for _ in range(12 if preset == "large" else 150):  # "large" has thousands of moves a step
        succ = list(model.successors(s))
        if not succ:
            break
        _, s = rng.choice(succ)
        key = store.key(s)
        assert store.state(key) == s
        assert keys.setdefault(key, s) == s  # one key, one state
    assert len(keys) > 1


def test_distinct_states_have_distinct_keys() -> None:
    cfg = small_config(PRESETS["hostile"])
    ex = explore(BalloonModel(cfg), budget=Budget(max_states=3000))
    states = [ex.state(i) for i in range(ex.states)]
    assert len(set(states)) == len(states) == len(set(ex.keys)) == ex.states


def test_replacing_one_part_changes_only_that_part() -> None:
    store = PartStore(3)
    key = store.pack(5, [7, 8, 9])
    assert store.ids(store.replace_vm(key, 1, 42)) == [5, 7, 42, 9]
    assert store.ids(store.replace_host(key, 0)) == [0, 7, 8, 9]
