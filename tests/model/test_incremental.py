"""The footprint checker gives the full check's verdicts: its frame holds on random walks of
every preset and of the QEMU trace configuration, and it catches what the full check
catches on states corrupted at a footprint page."""

from __future__ import annotations

import doctest
import random
from dataclasses import replace

import pytest

import ballast.model.incremental as incremental
from ballast.model.actions import Action
from ballast.model.faults import FAULTS
from ballast.model.config import PRESETS, Config, GuestPolicyName
from ballast.model.incremental import FRAMED_ACTIONS, PAGE_LOCAL, StepChecker, footprint
from ballast.model.invariants import INVARIANTS
from ballast.model.state import BALLOON, FREE, State, VmState
from ballast.model.system import BalloonModel

STEPS = 120

# The QEMU trace configuration (validate.qemu.steps.trace_config), small.
TRACE_LIKE = Config(vms=1, guest_pages=12, machine_pages=12, guest_data_pages=0, guest_disk_slots=0,
                    host_swap_slots=0, batch=4, tokens=1, guest_policy=GuestPolicyName.ANY,
                    host_use=False, reset=True, deflate_on_oom=True, reread_target=True,
                    migration=True, oom_notifier=True)

# Every preset but "large" (its successors are too many to enumerate per step in a fast test).
CONFIGS = {**{name: cfg for name, cfg in PRESETS.items() if name != "large"}, "trace-like": TRACE_LIKE}


def _walk(model: BalloonModel, seed: int) -> list[tuple[State, Action, State]]:
    rng = random.Random(seed)
    s = model.init_states()[0]
    out = []
    for _ in range(STEPS):
        succ = list(model.successors(s))
        if not succ:
            break
        framed = [x for x in succ if x[0].name in FRAMED_ACTIONS]
        act, post = rng.choice(framed if framed and rng.random() < 0.8 else succ)
        out.append((s, act, post))
        s = post
    return out


def _page_records(v: VmState, p: int) -> tuple[object, ...]:
    return (v.guest.ppn_use[p], v.p2m[p], p in v.ballooned, p in v.module.balloon,
            p in v.module.refused, v.inflate_queue.count(p), v.deflate_queue.count(p),
            p in v.acked_inflate, p in v.acked_refused, p in v.acked_deflate)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_framed_steps_change_pages_only_inside_their_footprint(name: str) -> None:
    model = BalloonModel(CONFIGS[name])
    seen = 0
    for pre, act, post in _walk(model, 1):
        if act.name not in FRAMED_ACTIONS:
            continue
        seen += 1
        vm = act.kwargs["vm"]
        pages = footprint(pre, act, post, vm)
        for p in range(model.cfg.guest_pages):
            if p not in pages:
                assert _page_records(pre.vms[vm], p) == _page_records(post.vms[vm], p), (act, p)
        assert all(a is b or a == b for w, (a, b) in enumerate(zip(pre.vms, post.vms)) if w != vm)
        assert ({e for e in pre.host.swap if not (e[0] == vm and e[1] in pages)}
                == {e for e in post.host.swap if not (e[0] == vm and e[1] in pages)})
    assert seen > 10


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_same_verdicts_as_the_full_check(name: str) -> None:
    model = BalloonModel(CONFIGS[name])
    for seed in range(3):
        checker = StepChecker(model)
        for pre, act, post in _walk(model, seed):
            assert checker.check(pre, act, post) == model.step_violations(pre, act, post)


def _corruptions(v: VmState, pages: set[int]) -> list[VmState]:
    """VM records broken at one footprint page, one way per property of PAGE_LOCAL."""
    out = []
    m = v.module
    for p in sorted(x for x in pages if 0 <= x < len(v.p2m))[:2]:
        out.append(v.replace(ballooned=v.ballooned - {p}))  # module holds it, the VMM not
        out.append(v.replace(ballooned=v.ballooned | {p}))  # the VMM holds it, nobody chose it
        use = list(v.guest.ppn_use)
        use[p] = FREE if use[p] == BALLOON else BALLOON
        out.append(v.replace(guest=replace(v.guest, ppn_use=tuple(use))))
        out.append(v.replace(module=replace(m, balloon=m.balloon | {p})))
        p2m = list(v.p2m)
        p2m[p] = 0
        out.append(v.replace(p2m=tuple(p2m)))
    return out


@pytest.mark.parametrize("name", ["default", "trace-like", "virtio"])
def test_corrupted_footprint_pages_are_caught_as_the_full_check_catches_them(name: str) -> None:
    model = BalloonModel(CONFIGS[name])
    caught = set()
    for pre, act, post in _walk(model, 2):
        if act.name not in FRAMED_ACTIONS:
            continue
        vm = act.kwargs["vm"]
        for bad_vm in _corruptions(post.vms[vm], footprint(pre, act, post, vm)):
            bad = post.with_vm(vm, bad_vm)
            checker = StepChecker(model)
            got = checker.check(pre, act, bad)
            assert got == model.step_violations(pre, act, bad), act
            caught |= {x.property for x in got}
    assert caught & PAGE_LOCAL, caught


def test_a_model_with_faults_is_checked_in_full() -> None:
    fault = next(iter(FAULTS))
    assert not StepChecker(BalloonModel(PRESETS["default"], faults=(fault,))).framed
    assert StepChecker(BalloonModel(PRESETS["default"])).framed


def test_the_tables_name_real_things_and_the_doctests_hold() -> None:
    assert PAGE_LOCAL <= set(INVARIANTS)
    assert all(INVARIANTS[name].per_vm is not None for name in PAGE_LOCAL)
    from ballast.model.actions import ACTIONS
    for name, params in FRAMED_ACTIONS.items():
        assert name in ACTIONS and set(params) <= set(ACTIONS[name].params)
    assert doctest.testmod(incremental).failed == 0
