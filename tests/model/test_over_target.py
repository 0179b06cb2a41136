"""The VMM paging out a VM over its target, and the starvation property it must keep."""

import pytest

from ballast.errors import GuardError
from ballast.model.actions import Action, apply, over_target
from ballast.model.config import Config
from ballast.model.faults import FAULTS, action_table
from ballast.model.invariants import INVARIANTS
from ballast.model.state import UNBACKED, State, initial_state
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run

CFG = Config(vms=2, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=2,
             host_swap_slots=1, host_use=False, hostile_vms=frozenset({1}),
             vmm_reclaims_over_target=True)


def a(name: str, **args: object) -> Action:
    return Action.of(name, **args)


def run(steps: list[Action], faults: tuple[str, ...] = ()) -> State:
    s = initial_state(CFG)
    table = action_table(list(faults))
    for act in steps:
        s = apply(CFG, s, act, table)
    return s


PRESSED = [a("guest_write", vm=0, vpn=0, token=1), a("host_set_target", vm=1, pages=2),
           a("rogue_touch", vm=1, ppn=1, token=2)]
"""Honest VM 0 holds MPN 0; hostile VM 1 touched a page beyond its target of 2 (it may hold
none) and holds MPN 1: the host has no free page left."""


def check(pre: State, act: Action, post: State) -> str | None:
    return INVARIANTS["honest_memory_not_taken"].check_step(CFG, pre, act, post)


def test_the_vmm_pages_out_the_vm_over_its_target_and_leaves_the_honest_vm_alone() -> None:
    pre = run(PRESSED)
    assert not pre.host.free and over_target(CFG, pre, 1) == 1 and over_target(CFG, pre, 0) == 0
    act = a("vmm_swap_over_target", vm=1, ppn=1)
    post = apply(CFG, pre, act)
    assert post.vms[1].p2m[1] == UNBACKED and post.host.swap == ((1, 1, 2),)
    assert post.vms[0].p2m == pre.vms[0].p2m and post.host.free == {1}
    assert check(pre, act, post) is None
    with pytest.raises(GuardError, match="no more machine pages than the host allows"):
        apply(CFG, pre, a("vmm_swap_over_target", vm=0, ppn=0))
    with pytest.raises(GuardError, match="no more machine pages than the host allows"):
        apply(CFG, post, a("vmm_swap_over_target", vm=1, ppn=1))


def test_the_seeded_fault_takes_the_honest_page_and_the_property_catches_it() -> None:
    pre = run(PRESSED)
    act = a("vmm_swap_over_target", vm=1, ppn=1)
    post = apply(CFG, pre, act, action_table(["vmm_swaps_honest_page"]))
    assert post.vms[0].p2m[0] == UNBACKED  # the honest page went to host swap instead
    msg = check(pre, act, post)
    assert msg is not None and "backing honest VM 0's PPN 0" in msg
    assert FAULTS["vmm_swaps_honest_page"].breaks == "honest_memory_not_taken"
    # The honest guest's data is safe in host swap: only the starvation property sees it.
    others = [n for n, p in INVARIANTS.items() if n != "honest_memory_not_taken"
              and p.feature(CFG) and (p.check_state(CFG, post) or p.check_step(CFG, pre, act,
                                                                                post))]
    assert others == []


def test_host_steps_are_the_hosts_choice_not_a_guests() -> None:
    pre = run(PRESSED[:1])
    act = a("host_swap_out", vm=0, ppn=0)
    post = apply(CFG.replace(host_swap=True), pre, act)
    assert post.vms[0].p2m[0] == UNBACKED and check(pre, act, post) is None


def test_random_runs_catch_the_fault_and_pass_without_it() -> None:
    cfg = CFG.replace(hostile_vms=frozenset())
    seen: set[str] = set()
    for seed in range(10):
        r = random_run(BalloonModel(cfg), seed, 100, record_states=False)
        assert r.violation is None, r.violation
        seen |= r.witnessed
    assert "over_target_page_recovered" in seen
    caught = [random_run(BalloonModel(cfg, ("vmm_swaps_honest_page",)), seed, 100,
                         record_states=False).violation for seed in range(10)]
    assert any(v is not None and v.property == "honest_memory_not_taken" for v in caught)
