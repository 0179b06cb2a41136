"""The packed encoding gives back exactly the model's states."""

from __future__ import annotations

import random

import pytest

from ballast.model.config import PRESETS, Config
from ballast.model.system import BalloonModel
from ballast.statespace.codec import StateCodec
from ballast.statespace.configs import EXPLORE_CONFIGS, small_config
from ballast.statespace.explore import Budget, explore


@pytest.mark.parametrize("name", ["one-vm", "one-vm-refusal", "one-vm-application"])
def test_every_reachable_state_round_trips(name: str) -> None:
    cfg = EXPLORE_CONFIGS[name]
    ex = explore(BalloonModel(cfg))
    codec = StateCodec(cfg)
    for packed in ex.reps:
        s = codec.decode(packed)
        assert codec.encode(s) == packed
    # and the explorer's states are the model's: re-derive each from its path
    model = BalloonModel(cfg)
    for sid in range(0, ex.states, 97):
        s = model.init_states()[0]
        for act in ex.path(sid):
            s = model.next_state(s, act)
        assert ex.state(sid) == s


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_random_walks_round_trip_on_every_preset(preset: str) -> None:
    cfg = PRESETS[preset]
    model = BalloonModel(cfg)
    codec = StateCodec(cfg)
    rng = random.Random(preset)
    s = model.init_states()[0]
    seen = 0
    for _ in range(12 if preset == "large" else 150):  # "large" has thousands of moves a step
        succ = list(model.successors(s))
        if not succ:
            break
        _, s = rng.choice(succ)
        assert codec.decode(codec.encode(s)) == s
        seen += 1
    assert seen > 0


def test_distinct_states_have_distinct_encodings() -> None:
    cfg = small_config(PRESETS["hostile"])
    ex = explore(BalloonModel(cfg), budget=Budget(max_states=3000))
    codec = StateCodec(cfg)
    states = [codec.decode(k) for k in ex.keys]
    assert len(set(states)) == len(states) == ex.states


def test_wide_values_use_wider_integers() -> None:
    assert StateCodec(Config(vms=1, guest_pages=2, machine_pages=2)).width == 1
    assert StateCodec(PRESETS["large"]).width == 2
