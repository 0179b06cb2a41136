"""The transition cache gives exactly the model's steps, and notices reads of other VMs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ballast.model.actions import ACTIONS, require
from ballast.model.config import PRESETS, Config
from ballast.model.faults import FAULTS
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.configs import fault_config, small_config
from ballast.statespace.explore import Budget, Exploration, explore
from ballast.statespace.transitions import OtherVm, ReadElsewhere, WatchedHost
from ballast.model.state import initial_state


def _same(a: Exploration, b: Exploration) -> None:
    """Two explorations that agree state for state, edge for edge, finding for finding."""
    assert a.states == b.states
    assert [a.state(i) for i in range(a.states)] == [b.state(i) for i in range(b.states)]
    assert list(a.parent) == list(b.parent)
    assert [a.actions[i] for i in a.via if i >= 0] == [b.actions[i] for i in b.via if i >= 0]
    assert a.edges() == b.edges()  # empty unless edges were kept
    assert a.violations == b.violations
    assert a.violating == b.violating
    assert (a.deadlocks, a.deadlock) == (b.deadlocks, b.deadlock)
    assert a.fired == b.fired
    assert a.witnessed == b.witnessed
    assert a.transitions == b.transitions


PREFIX = 2000
"""States each comparison explores, the cached and the reference exploration alike: a
breadth-first prefix large enough that the cache answers most steps."""

TWO = Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0, machine_pages=3,
             host_swap_slots=0, tokens=1, batch=1)
CONFIGS = {
    "two-vms": TWO,
    "two-vms-disk": TWO.replace(guest_pages=2, guest_disk_slots=1, tokens=2),
    "sharing-and-host-swap": TWO.replace(guest_pages=2, sharing=True, host_swap=True,
                                          host_swap_slots=1),
    "hostile-refusal": TWO.replace(hostile_vms=frozenset({1}), refusal=True),
    "processors-reset": TWO.replace(processors=True, vcpus=2, pcpus=5, reset=True),
    "no-tell-oom": TWO.replace(must_tell_host=False, deflate_on_oom=True),
    "three-vms": TWO.replace(vms=3, machine_pages=2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("symmetry", [False, True])
def test_cached_exploration_is_the_reference_exploration(name: str, symmetry: bool) -> None:
    model = BalloonModel(CONFIGS[name])
    budget = Budget(max_states=PREFIX)
    cached = explore(model, symmetry=symmetry, budget=budget, keep_edges=True)
    reference = explore(model, symmetry=symmetry, budget=budget, keep_edges=True, cache=False)
    _same(cached, reference)
    assert cached.cache_hits > cached.cache_misses  # the cache is actually used


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_without_edges_steps_to_seen_states_are_skipped_in_bulk_with_the_same_result(
        name: str) -> None:
    """Without edges kept, the explorer looks up the plain steps of a cached part in bulk
    and takes one by one only those to new states: still the reference exploration."""
    model = BalloonModel(CONFIGS[name])
    budget = Budget(max_states=PREFIX)
    _same(explore(model, budget=budget), explore(model, budget=budget, cache=False))


def test_stopping_at_the_first_violation_stops_at_the_same_step() -> None:
    model = BalloonModel(fault_config("free_without_scrub"), ["free_without_scrub"])
    cached = explore(model, stop_on=True)
    reference = explore(model, stop_on=True, cache=False)
    assert cached.stop_reason == reference.stop_reason == "violation"
    _same(cached, reference)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_cached_exploration_agrees_under_every_seeded_fault(fault: str) -> None:
    cfg = fault_config(fault)
    if cfg.vms == 1:
        # One page per VM, or one balloon unit where units are larger.
        unit = cfg.balloon_unit_pages
        cfg = cfg.replace(vms=2, guest_pages=unit, guest_disk_slots=0,
                          machine_pages=max(2 * unit, cfg.host_page_units * 2))
    model = BalloonModel(cfg, [fault])
    budget = Budget(max_states=PREFIX)
    cached = explore(model, budget=budget, keep_edges=True)
    reference = explore(model, budget=budget, keep_edges=True, cache=False)
    _same(cached, reference)


@pytest.mark.parametrize("preset", ["default", "virtio", "vmware", "application"])
def test_cached_exploration_agrees_on_preset_slices(preset: str) -> None:
    model = BalloonModel(small_config(PRESETS[preset]))
    budget = Budget(max_states=PREFIX)
    _same(explore(model, budget=budget, keep_edges=True),
          explore(model, budget=budget, keep_edges=True, cache=False))


def test_a_step_that_secretly_reads_another_vm_is_recomputed() -> None:
    """A (broken) action whose guard looks at another VM: caching it by its own VM's part
    would be wrong; the stand-ins notice the read and the step is computed every time."""
    spec = ACTIONS["balloon_poll"]

    def poll_if_other_idle(cfg: Config, s: State, vm: int) -> State:
        other = s.vms[(vm + 1) % cfg.vms]
        require(other.target == 0, "balloon_poll", "only while the other VM's target is 0")
        return spec.effect(cfg, s, vm=vm)

    model = BalloonModel(TWO)
    model.table = {**ACTIONS, "balloon_poll": replace(spec, effect=poll_if_other_idle)}
    budget = Budget(max_states=PREFIX)
    cached = explore(model, budget=budget, keep_edges=True)
    reference = explore(model, budget=budget, keep_edges=True, cache=False)
    _same(cached, reference)
    assert cached.recomputed > 0


def test_stand_ins_refuse_every_read_but_identity() -> None:
    other, another = object.__new__(OtherVm), object.__new__(OtherVm)
    with pytest.raises(ReadElsewhere):
        _ = other.p2m
    # Comparing two stand-ins, or a stand-in with a real VM, reads fields. (A stand-in
    # compared with itself need not: from Python 3.13 a dataclass's == asks ``is`` first.)
    with pytest.raises(ReadElsewhere):
        _ = other == another
    with pytest.raises(ReadElsewhere):
        _ = other == initial_state(TWO).vms[0]
    with pytest.raises(ReadElsewhere):
        hash(other)
    assert other is other and other is not another


def test_watched_host_notes_reads_and_equals_its_original_in_value() -> None:
    host = initial_state(TWO).host
    watched = WatchedHost.of(host)
    assert not watched.read
    assert watched.free == host.free
    assert watched.read
    assert watched != host  # another class never compares equal, so it is never interned
