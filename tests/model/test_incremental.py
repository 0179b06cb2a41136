"""The footprint checker gives the full check's verdicts: its frame holds on random walks of
every preset and of the QEMU trace configuration, and it catches what the full check
catches on states corrupted at a footprint page."""

from __future__ import annotations

import doctest
import random
from dataclasses import replace
from typing import Callable

import pytest

import ballast.model.incremental as incremental
import ballast.model.kernel_reads as kernel_reads
from ballast.model.actions import Action
from ballast.model.faults import FAULTS
from ballast.model.config import PRESETS, Config, GuestPolicyName
from ballast.model.incremental import FRAMED_ACTIONS, PAGE_LOCAL, StepChecker, footprint
from ballast.model.invariants import INVARIANTS
from ballast.model.kernel_reads import FIELD_PATHS, state_form_reads
from ballast.model.property_kernels import PROPERTY_KERNELS, PropertyKernel
from ballast.model.state import BALLOON, FREE, State, VmState
from ballast.model.system import BalloonModel

STEPS = 120

# The QEMU trace configuration (validate.qemu.steps.trace_config), small.
TRACE_LIKE = Config(vms=1, guest_pages=12, machine_pages=12, guest_data_pages=0, guest_disk_slots=0,
                    host_swap_slots=0, batch=4, tokens=1, guest_policy=GuestPolicyName.ANY,
                    host_use=False, reset=True, deflate_on_oom=True, reread_target=True,
                    migration=True, oom_notifier=True)

# Every preset but "large" (its successors are too many to enumerate per step in a fast test).
CONFIGS = {**{name: cfg for name, cfg in PRESETS.items() if name != "large"},
           "trace-like": TRACE_LIKE}


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


# -- skipping a property whose records a step left alone ------------------------------------


def _one_record_corruptions(s: State, vm: int, pages: set[int]) -> list[State]:
    """``s`` broken in one record at a time (of VM ``vm``, at a footprint page, or of the
    host): every record some property reads, one way or another, so that a property whose
    derived read set missed that record would be skipped where the full check catches it."""
    v, m, g, host = s.vms[vm], s.vms[vm].module, s.vms[vm].guest, s.host
    out = [s.with_vm(vm, w) for w in _corruptions(v, pages)]
    out.append(s.with_vm(vm, v.replace(module=replace(m, actual=m.actual + 1))))
    out.append(State(replace(host, free=host.free - {min(host.free, default=0)}), s.vms))
    out.append(State(replace(host, in_use=host.in_use | {0}), s.vms))
    out.append(State(replace(host, content=(7,) + host.content[1:]), s.vms))
    out.append(State(replace(host, cow=host.cow | {0}), s.vms))
    for p in sorted(x for x in pages if 0 <= x < len(v.p2m))[:2]:
        flip = {p}
        out += [s.with_vm(vm, w) for w in (
            v.replace(module=replace(m, refused=m.refused ^ flip)),
            v.replace(module=replace(m, balloon=m.balloon - flip)),
            v.replace(deflate_queue=tuple(x for x in v.deflate_queue if x != p)),
            v.replace(deflate_queue=tuple(sorted(v.deflate_queue + (p,)))),
            v.replace(inflate_queue=tuple(sorted(v.inflate_queue + (p,)))),
            v.replace(acked_inflate=v.acked_inflate ^ flip),
            v.replace(acked_deflate=v.acked_deflate ^ flip),
            v.replace(acked_refused=v.acked_refused ^ flip),
            v.replace(guest=replace(g, expected=(1,) + g.expected[1:]) if g.expected else g),
        )]
        out.append(State(replace(host, swap=tuple(sorted(host.swap + ((vm, p, 1),)))), s.vms))
    return out


def _disagreements(model: BalloonModel, seed: int, edit: Callable[[StepChecker], None]
                   ) -> int:
    """How many steps of a walk, each broken in one record (:func:`_one_record_corruptions`),
    a checker altered by ``edit`` judges otherwise than the full check."""
    wrong = 0
    for pre, act, post in _walk(model, seed):
        if act.name not in FRAMED_ACTIONS:
            continue
        vm = act.kwargs["vm"]
        for bad in _one_record_corruptions(post, vm, footprint(pre, act, post, vm)):
            checker = StepChecker(model)
            edit(checker)
            wrong += checker.check(pre, act, bad) != model.step_violations(pre, act, bad)
    return wrong


_BROKEN_WALKS = [("trace-like", 3), ("qemu", 0), ("default", 0), ("hostile", 0), ("virtio", 0)]
"""The walks whose steps are broken one record at a time (preset, seed)."""


@pytest.mark.parametrize(("name", "seed"), _BROKEN_WALKS)
def test_steps_broken_in_one_record_are_judged_as_the_full_check_judges_them(name: str, seed: int
                                                                            ) -> None:
    assert _disagreements(BalloonModel(CONFIGS[name]), seed, lambda checker: None) == 0


def _caught(edit: Callable[[StepChecker], None]) -> bool:
    """Whether a checker altered by ``edit`` judges some broken step of those walks otherwise
    than the full check."""
    return any(_disagreements(BalloonModel(CONFIGS[name]), seed, edit) > 0
               for name, seed in _BROKEN_WALKS)


def _without(prop: str, field: str) -> Callable[[StepChecker], None]:
    """A seeded mistake: the read set of ``prop`` misses ``field``."""
    def edit(checker: StepChecker) -> None:
        checker.plan = [r._replace(reads=r.reads - {field})
                        if r.prop.name == prop and r.reads is not None else r
                        for r in checker.plan]
    return edit


@pytest.mark.parametrize(("prop", "field"), [
    ("module_pages_pinned", "module.refused"), ("module_pages_pinned", "guest.ppn_use"),
    ("guest_chooses_pages", "ballooned"), ("ballooned_pages_unbacked", "p2m"),
    ("balloon_accounting_exact", "module.actual"), ("migration_loses_nothing", "acked_inflate"),
    ("memory_conservation", "host.free"), ("isolation", "host.content")])
def test_a_read_set_missing_a_record_is_caught(prop: str, field: str) -> None:
    """Seeded mistakes in the read sets: the comparison above catches each."""
    assert field in (state_form_reads(prop, CONFIGS["trace-like"]) or ())
    assert _caught(_without(prop, field))


def test_a_plan_set_after_steps_were_checked_is_the_one_read() -> None:
    """What the checker works out of its plan once (the records it watches, the properties
    read again per action and per set of changed records) is worked out again of a plan set
    later: the next step is judged by the new plan, not by what was kept of the old one."""
    model = BalloonModel(TRACE_LIKE)
    pre = model.init_states()[0]
    act = Action.of("host_set_target", vm=0, pages=2)
    post = model.next_state(pre, act)
    v = post.vms[0]
    # The module holds a free page as refused: module_pages_pinned, read from module.refused.
    bad = post.with_vm(0, v.replace(module=replace(v.module, refused=frozenset({0}))))
    assert pre.vms[0].guest.ppn_use[0] == FREE
    checker = StepChecker(model)
    expected = model.step_violations(pre, act, bad)
    assert [x.property for x in expected] == ["module_pages_pinned"]
    assert checker.check(pre, act, bad) == expected
    _without("module_pages_pinned", "module.refused")(checker)
    assert checker.check(pre, act, bad) == []  # the seeded mistake is the one read now


def test_a_read_log_that_misses_an_operation_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seeded mistake in the derivation itself: queue reads not noted."""
    monkeypatch.setitem(kernel_reads._FIXED, "queued", ())
    assert "deflate_queue" not in (state_form_reads("guest_chooses_pages", CONFIGS["qemu"]) or ())
    assert _caught(lambda checker: None)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_property_kernel_tells_what_it_reads(name: str) -> None:
    """Derived for every property of every preset (a property whose reads are not known is
    checked after every step: correct, only slower)."""
    cfg = CONFIGS[name]
    for prop in BalloonModel(cfg).properties():
        if prop.state is not None:
            reads = state_form_reads(prop.name, cfg)
            assert reads is not None and reads <= FIELD_PATHS, prop.name


def test_what_the_read_log_cannot_account_for_reads_as_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = CONFIGS["default"]
    name = "module_pages_pinned"
    kernels = {
        "a branch on a value": lambda o: o.all(o.pages("ballooned")) if o.pages("p2m") else True,
        "an operation it does not know": lambda o: o.all(o.new_read("ballooned")),
        "a field that is no record": lambda o: o.all(o.pages("balloned")),
    }
    for why, kernel in kernels.items():
        monkeypatch.setitem(PROPERTY_KERNELS, name, PropertyKernel(name, each_vm=kernel))
        assert state_form_reads(name, cfg) is None, why
    assert state_form_reads("no_such_property", cfg) is None
    assert doctest.testmod(kernel_reads).failed == 0
