"""Hibernation: the driver freezes with pages in its balloon and is restored."""

import pytest

from ballast.errors import GuardError
from ballast.model.actions import Action, apply
from ballast.model.config import Config, preset
from ballast.model.faults import FAULTS, action_table
from ballast.model.invariants import INVARIANTS
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run
from scripted import a, run

CFG = Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1, machine_pages=3,
             host_swap_slots=0, hibernation=True)


FULL = [a("host_set_target", vm=0, pages=1), a("balloon_poll", vm=0),
        a("balloon_inflate", vm=0, ppns=(1,)), a("vmm_reclaim", vm=0, refuse=()),
        a("balloon_complete", vm=0)]
"""A balloon of one page, every report acknowledged."""


def check(pre: State, act: Action, post: State) -> str | None:
    return INVARIANTS["balloon_agrees_after_restore"].check_step(CFG, pre, act, post)


def test_a_frozen_guest_runs_nothing_while_the_host_goes_on() -> None:
    s = run(CFG, FULL + [a("balloon_freeze", vm=0)])
    assert s.vms[0].module.frozen == 1
    for act in (a("guest_write", vm=0, vpn=0, token=1), a("balloon_poll", vm=0),
                a("balloon_freeze", vm=0)):
        with pytest.raises(GuardError, match="hibernated"):
            apply(CFG, s, act)
    s = apply(CFG, s, a("host_set_target", vm=0, pages=0))
    assert s.vms[0].target == 0 and s.vms[0].module.balloon == {1}


def test_the_restore_keeps_the_balloon_and_the_vmm_agrees() -> None:
    pre = run(CFG, FULL + [a("balloon_freeze", vm=0), a("host_set_target", vm=0, pages=0)])
    act = a("balloon_restore", vm=0)
    post = apply(CFG, pre, act)
    m = post.vms[0].module
    assert m.frozen == 0 and m.balloon == post.vms[0].ballooned == {1} and m.actual == 1
    assert check(pre, act, post) is None
    post = apply(CFG, post, a("balloon_poll", vm=0))  # the new target is read after
    assert post.vms[0].module.target == 0


def test_the_seeded_fault_forgets_the_balloon_and_the_property_catches_it() -> None:
    pre = run(CFG, FULL + [a("balloon_freeze", vm=0)])
    act = a("balloon_restore", vm=0)
    post = apply(CFG, pre, act, action_table(["restore_forgets_balloon"]))
    msg = check(pre, act, post)
    assert msg is not None and "holds [] but the VMM holds [1]" in msg
    assert FAULTS["restore_forgets_balloon"].breaks == "balloon_agrees_after_restore"


def test_the_driver_freezes_only_with_no_report_in_flight() -> None:
    with pytest.raises(GuardError, match="in flight"):
        run(CFG, FULL[:3] + [a("balloon_freeze", vm=0)])
    with pytest.raises(GuardError, match="not frozen"):
        run(CFG, [a("balloon_restore", vm=0)])


def test_the_hibernation_preset_exercises_hibernation_and_keeps_every_property() -> None:
    model = BalloonModel(preset("hibernation"))
    seen: set[str] = set()
    for seed in range(20):
        r = random_run(model, seed, 150, record_states=False)
        assert r.violation is None, r.violation
        seen |= r.witnessed
    assert {"restored_with_balloon", "target_changed_while_frozen"} <= seen
