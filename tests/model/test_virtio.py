"""The virtio profile agrees with the model: projection, events and rules."""

from __future__ import annotations

import doctest
import random

import pytest

import ballast.model.virtio as virtio
from ballast.model.actions import Action
from ballast.model.config import Config, preset
from ballast.model.state import initial_state
from ballast.model.system import BalloonModel
from ballast.model.virtio import (
    VIRTIO_RULES,
    Level,
    VirtioEvent,
    VirtioTracker,
    VirtioView,
    end_warnings,
    events_of,
    project,
)

CONFIGS = {
    "virtio": preset("virtio"),
    "virtio-tell": preset("virtio").replace(must_tell_host=True, deflate_on_oom=False),
    "core": preset("core"),
    "reset-refusal": Config(vms=1, guest_pages=4, machine_pages=4, reset=True, refusal=True,
                            batch=2),
    "hostile": preset("hostile"),
    "hinting": preset("hinting"),
}


def _walk(model: BalloonModel, seed: int, steps: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    s = model.init_states()[0]
    for _ in range(steps):
        succ = list(model.successors(s))
        if not succ:
            return
        act, post = rng.choice(succ)
        yield s, act, post
        s = post


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_profile_transitions_agree_with_model_and_rules_hold(name: str) -> None:
    cfg = CONFIGS[name]
    model = BalloonModel(cfg)
    honest = [v for v in range(cfg.vms) if v not in cfg.hostile_vms]
    events = 0
    for seed in range(12):
        trackers = {v: VirtioTracker(virtio.features_of(cfg)) for v in honest}
        for pre, act, post in _walk(model, seed, 60):
            for v in honest:
                t = trackers[v]
                assert t.view() == project(cfg, pre, v)
                for e in events_of(cfg, pre, act, post, v):
                    events += 1
                    assert t.violations(e) == [], (name, seed, str(act), e)
                    t.apply(e)
                assert t.view() == project(cfg, post, v), (name, seed, str(act))
    assert events > 100


def test_every_model_step_ten_levels_deep_keeps_the_virtio_rules() -> None:
    """Breadth-first over the states of a tiny config (10 levels deep): no rule ever breaks."""
    cfg = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=1, machine_pages=2,
                 host_swap_slots=0, tokens=1, batch=2, must_tell_host=False,
                 deflate_on_oom=True, host_use=False)
    model = BalloonModel(cfg)
    seen = set(model.init_states())
    frontier = list(seen)
    steps = 0
    for _depth in range(10):
        nxt = []
        for s in frontier:
            for act, post in model.successors(s):
                steps += 1
                t = VirtioTracker(virtio.features_of(cfg), project(cfg, s))
                for e in events_of(cfg, s, act, post):
                    assert t.violations(e) == [], (str(act), e)
                    t.apply(e)
                assert t.view() == project(cfg, post)
                if post not in seen:
                    seen.add(post)
                    nxt.append(post)
        frontier = nxt
    assert len(seen) > 20 and steps > 50


def _hostile_steps(cfg: Config, acts: list[Action]) -> list[list[str]]:
    model = BalloonModel(cfg)
    s = model.init_states()[0]
    t = VirtioTracker(virtio.features_of(cfg))
    out = []
    for act in acts:
        post = model.next_state(s, act)
        names = []
        for e in events_of(cfg, s, act, post, 1):
            names += [r.name for r, _ in t.violations(e)]
            t.apply(e)
        out.append(names)
        s = post
    return out


def test_a_hostile_guest_breaks_the_rules_it_should() -> None:
    cfg = preset("hostile")
    got = _hostile_steps(cfg, [
        Action.of("rogue_report", vm=1, queue="deflate", ppn=0),
        Action.of("rogue_set_actual", vm=1, actual=cfg.guest_pages + 1),
    ])
    assert "virtio_5_5_6_1_rule5_deflate_only_balloon_pages" in got[0]
    assert got[1] == ["virtio_5_5_6_1_rule9_actual_matches_balloon"]


def test_rules_are_named_after_the_spec_with_levels_and_docs() -> None:
    assert len(VIRTIO_RULES) >= 8
    for rule in VIRTIO_RULES.values():
        assert rule.name.startswith("virtio_5_5_")
        assert rule.doc and rule.cites.startswith("5.5")
    levels = {r.level for r in VIRTIO_RULES.values()}
    assert levels == {Level.MUST, Level.SHOULD}


def _view(**kw: object) -> VirtioView:
    base: dict[str, object] = dict(num_pages=0, polled=0, actual=0, balloon=frozenset(),
                                   inflating=frozenset(), deflating=frozenset(),
                                   features=frozenset())
    base.update(kw)
    return VirtioView(**base)


@pytest.mark.parametrize("view, event, rule", [
    (_view(balloon=frozenset({1})), VirtioEvent("inflate", (1,)),
     "virtio_5_5_6_no_page_inflated_twice"),
    (_view(), VirtioEvent("inflate", (2, 2)), "virtio_5_5_6_no_page_inflated_twice"),
    (_view(inflating=frozenset({3})), VirtioEvent("deflate", (3,)),
     "virtio_5_5_6_1_rule8_no_deflate_before_inflate_ack"),
    (_view(), VirtioEvent("deflate", (4,)), "virtio_5_5_6_1_rule5_deflate_only_balloon_pages"),
    (_view(balloon=frozenset({1, 2}), polled=2), VirtioEvent("deflate", (1,)),
     "virtio_5_5_6_1_rule3_deflate_only_when_asked"),
    (_view(balloon=frozenset({1})), VirtioEvent("write_actual", value=2),
     "virtio_5_5_6_1_rule9_actual_matches_balloon"),
    (_view(inflating=frozenset({5})), VirtioEvent("use", (5,)),
     "virtio_5_5_6_1_rule7_no_use_before_inflate_ack"),
    (_view(balloon=frozenset({6})), VirtioEvent("use", (6,)),
     "virtio_5_5_6_1_rule5_tell_before_use"),
    (_view(deflating=frozenset({7}), features=frozenset({"MUST_TELL_HOST"})),
     VirtioEvent("use", (7,)), "virtio_5_5_6_1_rule6_must_tell_host_wait"),
])
def test_each_rule_fires_on_its_case(view: VirtioView, event: VirtioEvent, rule: str) -> None:
    t = VirtioTracker(view.features, view)
    assert rule in [r.name for r, _ in t.violations(event)]


def test_deflate_on_oom_and_migration_are_allowed() -> None:
    oom = VirtioTracker(frozenset({"DEFLATE_ON_OOM"}), _view(balloon=frozenset({1, 2}), polled=2))
    assert oom.violations(VirtioEvent("deflate", (1,))) == []
    # Page migration: the balloon holds the target, a new page comes in, the old goes out.
    t = VirtioTracker(frozenset(), _view(balloon=frozenset({1, 2}), polled=2, actual=2,
                                         num_pages=2))
    for e in [VirtioEvent("inflate", (9,)), VirtioEvent("inflate_ack", (9,)),
              VirtioEvent("deflate", (1,)), VirtioEvent("deflate_ack", (1,)),
              VirtioEvent("write_actual", value=2)]:
        assert t.violations(e) == []
        t.apply(e)


def test_should_reach_target_is_a_warning_only_when_the_guest_could_give() -> None:
    short = _view(num_pages=4, balloon=frozenset({1}))
    assert [r.level for r, _ in end_warnings(short)] == [Level.SHOULD]
    assert end_warnings(short, guest_can_give=False) == []
    assert end_warnings(_view(num_pages=1, balloon=frozenset({1}))) == []


def test_reset_clears_the_driver_side() -> None:
    cfg = Config(vms=1, guest_pages=2, machine_pages=2, reset=True)
    s = initial_state(cfg)
    t = VirtioTracker(frozenset(), _view(balloon=frozenset({1}), actual=1, polled=1))
    t.apply(VirtioEvent("reset"))
    assert t.view() == project(cfg, s).__class__(0, 0, 0, frozenset(), frozenset(), frozenset(),
                                                 frozenset())


def test_doctests() -> None:
    assert doctest.testmod(virtio).failed == 0
