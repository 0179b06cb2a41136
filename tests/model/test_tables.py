"""A state held in tables is the frozen model's state, step by step: on random walks of every
preset and of the QEMU trace configuration (guards refused alike, every state equal, the
same violations), on the real QEMU capture, and after a step is rolled back."""

from __future__ import annotations

import doctest
import random

import pytest

import ballast.model.tables as tables
from ballast.errors import GuardError
from ballast.model.actions import Action
from ballast.model.config import PRESETS, Config, GuestPolicyName
from ballast.model.faults import FAULTS, with_fault_needs
from ballast.model.incremental import StepChecker
from ballast.model.state import BALLOON, FREE, State
from ballast.model.system import BalloonModel
from ballast.model.tables import PageSet, PageVector, StateTables, frozen_copy
from ballast.validate.suite import sample_dir

# The QEMU trace configuration (validate.qemu.steps.trace_config), small.
TRACE_LIKE = Config(vms=1, guest_pages=12, machine_pages=12, guest_data_pages=0, guest_disk_slots=0,
                    host_swap_slots=0, batch=4, tokens=1, guest_policy=GuestPolicyName.ANY,
                    host_use=False, reset=True, deflate_on_oom=True, reread_target=True,
                    migration=True, oom_notifier=True)

STEPS = 150
CONFIGS = {**{name: cfg for name, cfg in PRESETS.items() if name != "large"},
           "trace-like": TRACE_LIKE}


def _outcome(model: BalloonModel, s: State, act: Action) -> State | str:
    try:
        return model.next_state(s, act)
    except GuardError as exc:
        return exc.reason


def _both_paths(model: BalloonModel, seed: int, steps: int = STEPS,
                broken: list[str] | None = None) -> int:
    """Walk the frozen model and the tabled one side by side; every state compared whole.
    Besides the step taken, each state also tries a step of another state (most refused):
    the guards refuse alike, with the same reason."""
    rng = random.Random(seed)
    frozen = model.init_states()[0]
    held = StateTables(frozen)
    checker_f, checker_t = StepChecker(model), StepChecker(model)
    tried: list[Action] = []
    taken = 0
    for _ in range(steps):
        succ = list(model.successors(frozen))
        tried.extend(a for a, _ in succ[:4])
        if not succ:
            break
        for other in rng.sample(tried, min(3, len(tried))):
            want = _outcome(model, frozen, other)
            got = _outcome(model, held.state, other)
            if isinstance(want, str):
                assert got == want, (other, want, got)
            else:
                assert isinstance(got, State) and frozen_copy(got) == want, other
        act, post = rng.choice(succ)
        tabled = model.next_state(held.state, act)
        pre_t = held.state
        before, after = held.commit(tabled)
        checker_t.same_state(pre_t, before)
        assert frozen_copy(before) == frozen, act
        assert frozen_copy(after) == post, act
        found = checker_f.check(frozen, act, post)
        assert checker_t.check(before, act, after) == found, act
        if broken is not None:
            broken.extend(v.property for v in found)
        frozen = post
        taken += 1
    return taken


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tabled_steps_are_the_frozen_models(name: str) -> None:
    model = BalloonModel(CONFIGS[name])
    assert sum(_both_paths(model, seed) for seed in range(2)) > 50


FAULTS_SHOWN = {"vmm_reclaims_host_choice": "default", "release_keeps_balloon_set": "core",
                "reclaim_keeps_mapping": "default", "oom_deflate_without_report": "trace-like"}
"""Seeded faults of actions a QEMU trace stands for, each with a configuration whose random
walks show it."""


@pytest.mark.parametrize("fault", sorted(FAULTS_SHOWN))
def test_a_seeded_fault_breaks_the_same_properties_on_tables(fault: str) -> None:
    model = BalloonModel(with_fault_needs(CONFIGS[FAULTS_SHOWN[fault]], [fault]), [fault])
    broken: list[str] = []
    for seed in range(3):
        _both_paths(model, seed, 100, broken)
    assert FAULTS[fault].breaks in broken


def test_a_rolled_back_step_leaves_the_tables_as_they_were() -> None:
    model = BalloonModel(TRACE_LIKE)
    held = StateTables(model.init_states()[0])
    s = held.state
    for act in (Action.of("host_set_target", vm=0, pages=4), Action.of("balloon_poll", vm=0),
                Action.of("balloon_inflate", vm=0, ppns=(1, 2, 5))):
        s = held.commit(model.next_state(s, act))[1]
    want = frozen_copy(s)
    reclaimed = model.next_state(s, Action.of("vmm_reclaim", vm=0, refuse=()))
    after = held.commit(reclaimed)[1]
    assert frozen_copy(after).vms[0].ballooned == {1, 2, 5}
    held.roll_back(s)
    assert held.state is s and frozen_copy(s) == want
    reset = held.commit(model.next_state(s, Action.of("guest_reset", vm=0)))[1]
    assert frozen_copy(reset).vms[0].guest.ppn_use == (FREE,) * TRACE_LIKE.guest_pages
    held.roll_back(s)
    assert frozen_copy(s) == want and s.vms[0].guest.ppn_use[5] == BALLOON


def test_the_views_read_as_the_records_they_stand_for() -> None:
    rng = random.Random(3)
    table = [rng.choice([FREE, BALLOON, 3]) for _ in range(40)]
    v = PageVector(table, {}).with_values(rng.sample(range(40), 9), FREE)
    plain = tuple(v)
    assert len(v) == len(plain) and v == plain and list(v) == list(plain)
    assert [v[p] for p in range(-40, 40)] == [plain[p] for p in range(-40, 40)]
    for value in (FREE, BALLOON, 3, 7):
        assert v.count(value) == plain.count(value)
        assert (value in v) == (value in plain)
        for start in range(0, 41, 5):
            want = plain.index(value, start) if value in plain[start:] else None
            if want is None:
                with pytest.raises(ValueError):
                    v.index(value, start)
            else:
                assert v.index(value, start) == want
    base = set(rng.sample(range(60), 30))
    s = (PageSet(base, frozenset(), frozenset()) - set(rng.sample(range(60), 10))) | {61, 3}
    plain_set = frozenset(s)
    assert len(s) == len(plain_set) and s == plain_set and bool(s)
    for other in (set(rng.sample(range(64), 12)), frozenset(), set(plain_set), {61}):
        assert s & other == plain_set & other and other & s == plain_set & other  # type: ignore[operator]
        assert other - s == other - plain_set  # type: ignore[operator]
        assert (frozenset(s | other) == plain_set | other
                and frozenset(s - other) == plain_set - other)
        assert (other <= s) == (other <= plain_set) and s.issuperset(other) == (other <= plain_set)
        assert s.isdisjoint(other) == plain_set.isdisjoint(other)


@pytest.mark.skipif(sample_dir() is None, reason="the QEMU sample is not beside the repository")
def test_the_real_capture_steps_are_the_frozen_models() -> None:
    """Every step of the shipped capture through both paths: the records the step can change
    and every size compared at each step, the whole state every 64 steps and at the end."""
    from ballast.model.incremental import footprint
    from ballast.validate.qemu.steps import GuestSize, StepConverter, profile_events, trace_config
    from ballast.validate.qemu.trace_reader import read_trace
    where = sample_dir()
    assert where is not None
    size = GuestSize()
    conv = StepConverter(features=frozenset())
    steps = [st for item in profile_events(read_trace(where / "trace.log.xz"), frozenset(), size)
             for st in conv.feed(*item)]
    assert size.pages is not None and len(steps) > 1000
    model = BalloonModel(trace_config(size.pages, frozenset()))
    frozen = model.init_states()[0]
    held = StateTables(frozen)
    for n, st in enumerate(steps):
        post = model.next_state(frozen, st.action)
        before, after = held.commit(model.next_state(held.state, st.action))
        v, w = after.vms[0], post.vms[0]
        pages = footprint(frozen, st.action, post, 0)
        assert [v.guest.ppn_use[p] for p in pages] == [w.guest.ppn_use[p] for p in pages]
        assert {p for p in pages if p in v.ballooned} == w.ballooned & pages
        assert {p for p in pages if p in v.module.balloon} == w.module.balloon & pages
        assert (len(v.ballooned), len(v.module.balloon)) == (len(w.ballooned),
                                                             len(w.module.balloon))
        assert v.guest.ppn_use.count(BALLOON) == w.guest.ppn_use.count(BALLOON)
        assert (v.inflate_queue, v.deflate_queue, v.module.actual, v.module.target) == (
            w.inflate_queue, w.deflate_queue, w.module.actual, w.module.target)
        if n % 64 == 0 or n == len(steps) - 1:
            assert frozen_copy(after) == post and frozen_copy(before) == frozen, n
        frozen = post


def test_doctests() -> None:
    assert doctest.testmod(tables).failed == 0
