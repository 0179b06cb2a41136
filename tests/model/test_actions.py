"""Actions: guards refuse what the mechanism forbids, effects do what the mechanism says."""

import random

import pytest

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, Action, Actor, apply, has_usable_free, usable_free
from ballast.model.config import PRESETS, Config, GuestPolicyName, ModuleKind
from ballast.model.state import BALLOON, FREE, UNBACKED, State, initial_state
from ballast.model.system import BalloonModel

CFG = Config(vms=2, guest_pages=4, guest_data_pages=3, machine_pages=6, refusal=True,
             sharing=True, host_swap=True, reset=True, hostile_vms=frozenset({1}))


def run(cfg: Config, *steps: tuple[str, dict]) -> State:
    s = initial_state(cfg)
    for name, args in steps:
        s = apply(cfg, s, Action.of(name, **args))
    return s


def inflated(cfg: Config = CFG, pages: int = 2) -> State:
    return run(cfg, ("host_set_target", {"vm": 0, "pages": pages}),
               ("balloon_poll", {"vm": 0}),
               ("balloon_inflate", {"vm": 0, "ppns": list(range(pages))}),
               ("vmm_reclaim", {"vm": 0, "refuse": []}),
               ("balloon_complete", {"vm": 0}))


def test_every_action_has_a_docstring_and_a_known_actor() -> None:
    for spec in ACTIONS.values():
        assert spec.doc, spec.name
        assert spec.name.startswith(("host_", "vmm_", "guest_", "balloon_", "rogue_")), spec.name


def test_only_host_swap_names_a_guest_page_to_take() -> None:
    # The host's own fallback, and the VMM paging out a VM over its target: both host swap.
    takers = [s.name for s in ACTIONS.values() if s.names_guest_page]
    assert takers == ["host_swap_out", "vmm_swap_over_target"]
    for spec in ACTIONS.values():
        if spec.actor in (Actor.HOST,) and not spec.names_guest_page:
            assert "ppn" not in spec.params and "ppns" not in spec.params, spec.name


def test_host_request_carries_only_a_quantity() -> None:
    assert ACTIONS["host_set_target"].params == ("vm", "pages")
    assert ACTIONS["host_set_cpu_target"].params == ("vm", "vcpus")


def test_inflate_round_trip_gives_machine_pages_back() -> None:
    s = run(CFG, ("guest_write", {"vm": 0, "vpn": 0, "token": 1}))
    assert s.vms[0].p2m[0] != UNBACKED
    before_free = len(s.host.free)
    s = apply(CFG, s, Action.of("guest_evict", vm=0, vpn=0))
    s = apply(CFG, s, Action.of("host_set_target", vm=0, pages=1))
    s = apply(CFG, s, Action.of("balloon_poll", vm=0))
    s = apply(CFG, s, Action.of("balloon_inflate", vm=0, ppns=[0]))
    assert s.vms[0].guest.ppn_use[0] == BALLOON and s.vms[0].inflate_queue == (0,)
    s = apply(CFG, s, Action.of("vmm_reclaim", vm=0, refuse=[]))
    assert s.vms[0].ballooned == {0} and s.vms[0].p2m[0] == UNBACKED
    assert len(s.host.free) == before_free + 1 and s.host.reclaimed
    s = apply(CFG, s, Action.of("balloon_complete", vm=0))
    assert s.vms[0].module.actual == 1 and s.vms[0].module.balloon == {0}


def test_guest_allocator_chooses_the_pages() -> None:
    s = run(CFG, ("guest_write", {"vm": 0, "vpn": 0, "token": 1}),
            ("host_set_target", {"vm": 0, "pages": 2}), ("balloon_poll", {"vm": 0}))
    # Any free pages, in any order: the allocator's choice.
    assert apply(CFG, s, Action.of("balloon_inflate", vm=0, ppns=[3, 1])).vms[0].inflate_queue \
        == (1, 3)
    with pytest.raises(GuardError, match="allocator"):
        apply(CFG, s, Action.of("balloon_inflate", vm=0, ppns=[0]))  # a process page
    lowest = CFG.replace(guest_policy=GuestPolicyName.LOWEST)
    with pytest.raises(GuardError, match="allocator"):
        apply(lowest, s, Action.of("balloon_inflate", vm=0, ppns=[3]))
    assert apply(lowest, s, Action.of("balloon_inflate", vm=0, ppns=[2, 1])).vms[0] \
        .inflate_queue == (1, 2)


def test_inflate_beyond_target_is_refused_by_the_guard() -> None:
    s = run(CFG, ("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}))
    with pytest.raises(GuardError, match="more pages than the target"):
        apply(CFG, s, Action.of("balloon_inflate", vm=0, ppns=[0, 1]))


def test_partial_fill_when_the_guest_has_no_free_pages() -> None:
    cfg = CFG.replace(guest_disk_slots=0)
    s = run(cfg, ("guest_write", {"vm": 0, "vpn": 0, "token": 1}),
            ("guest_write", {"vm": 0, "vpn": 1, "token": 1}),
            ("guest_write", {"vm": 0, "vpn": 2, "token": 1}),
            ("host_set_target", {"vm": 0, "pages": 3}), ("balloon_poll", {"vm": 0}))
    with pytest.raises(GuardError, match="cannot give"):
        apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[3, 4]))
    s = apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[3]))
    assert s.vms[0].inflate_queue == (3,)


def test_deflate_only_of_acknowledged_pages() -> None:
    s = run(CFG, ("host_set_target", {"vm": 0, "pages": 2}), ("balloon_poll", {"vm": 0}),
            ("balloon_inflate", {"vm": 0, "ppns": [0, 1]}),
            ("host_set_target", {"vm": 0, "pages": 0}), ("balloon_poll", {"vm": 0}))
    with pytest.raises(GuardError, match="acknowledged"):
        apply(CFG, s, Action.of("balloon_deflate", vm=0, ppns=[0]))


def test_must_tell_host_holds_pages_until_the_ack() -> None:
    s = inflated()
    s = apply(CFG, s, Action.of("host_set_target", vm=0, pages=0))
    s = apply(CFG, s, Action.of("balloon_poll", vm=0))
    s = apply(CFG, s, Action.of("balloon_deflate", vm=0, ppns=[0, 1]))
    assert s.vms[0].guest.ppn_use[:2] == (BALLOON, BALLOON)
    s = apply(CFG, s, Action.of("vmm_release", vm=0))
    s = apply(CFG, s, Action.of("balloon_complete", vm=0))
    assert s.vms[0].guest.ppn_use[:2] == (FREE, FREE) and not s.vms[0].ballooned


def test_without_must_tell_host_pages_return_at_once() -> None:
    cfg = CFG.replace(must_tell_host=False)
    s = inflated(cfg)
    s = apply(cfg, s, Action.of("host_set_target", vm=0, pages=0))
    s = apply(cfg, s, Action.of("balloon_poll", vm=0))
    s = apply(cfg, s, Action.of("balloon_deflate", vm=0, ppns=[0, 1]))
    assert s.vms[0].guest.ppn_use[:2] == (FREE, FREE)


@pytest.mark.parametrize("ppn, why", [(4, "out of range"), (0, "already ballooned")])
def test_vmm_refuses_bad_reports_from_a_hostile_guest(ppn: int, why: str) -> None:
    s = run(CFG, ("host_set_target", {"vm": 1, "pages": 1}),
            ("rogue_report", {"vm": 1, "queue": "inflate", "ppn": 0}),
            ("vmm_reclaim", {"vm": 1, "refuse": []}))
    assert s.vms[1].ballooned == {0}
    s = apply(CFG, s, Action.of("rogue_report", vm=1, queue="inflate", ppn=ppn))
    s2 = apply(CFG, s, Action.of("vmm_reclaim", vm=1, refuse=[]))
    assert s2.vms[1].ballooned == {0}, why
    assert ppn in s2.vms[1].acked_refused


@pytest.mark.parametrize("refusal", [True, False])
def test_more_pages_than_asked_are_refused_the_vmm_chooses_which(refusal: bool) -> None:
    cfg = CFG.replace(refusal=refusal)
    s = run(cfg, ("host_set_target", {"vm": 1, "pages": 1}),
            ("rogue_report", {"vm": 1, "queue": "inflate", "ppn": 0}),
            ("rogue_report", {"vm": 1, "queue": "inflate", "ppn": 1}))
    with pytest.raises(GuardError, match="must refuse the rest"):
        apply(cfg, s, Action.of("vmm_reclaim", vm=1, refuse=[]))
    for keep, drop in ((0, 1), (1, 0)):  # lowest first or not: the VMM's choice
        t = apply(cfg, s, Action.of("vmm_reclaim", vm=1, refuse=[drop]))
        assert t.vms[1].ballooned == {keep} and t.vms[1].acked_refused == {drop}
    refuse_all = Action.of("vmm_reclaim", vm=1, refuse=[0, 1])
    if refusal:
        assert not apply(cfg, s, refuse_all).vms[1].ballooned
    else:
        with pytest.raises(GuardError, match="accepts every valid page"):
            apply(cfg, s, refuse_all)


def test_a_vmm_that_checks_no_target_accepts_a_report_the_host_lowered_the_target_under(
        ) -> None:
    """QEMU's device acknowledges every page of a buffer the driver filled before the host
    lowered the target (seen live); the driver then gives the excess back."""
    cfg = Config(vms=1, guest_pages=3, guest_data_pages=1, machine_pages=3, host_use=False,
                 must_tell_host=False)
    s = run(cfg.replace(accept_beyond_target=True), ("host_set_target", {"vm": 0, "pages": 2}),
            ("balloon_poll", {"vm": 0}), ("balloon_inflate", {"vm": 0, "ppns": [0, 1]}),
            ("host_set_target", {"vm": 0, "pages": 1}))
    with pytest.raises(GuardError, match="must refuse the rest"):
        apply(cfg, s, Action.of("vmm_reclaim", vm=0, refuse=[]))  # a VMM that counts
    wide = cfg.replace(accept_beyond_target=True)
    with pytest.raises(GuardError, match="accepts every valid page"):
        apply(wide, s, Action.of("vmm_reclaim", vm=0, refuse=[1]))  # no refusal: takes all
    s = run_from(wide, s, ("vmm_reclaim", {"vm": 0, "refuse": []}),
                 ("balloon_complete", {"vm": 0}), ("balloon_poll", {"vm": 0}),
                 ("balloon_deflate", {"vm": 0, "ppns": [1]}))
    assert s.vms[0].ballooned == {0, 1} and s.vms[0].module.balloon == {0}
    assert BalloonModel(wide).violations(s) == []


def test_rogue_actions_need_a_hostile_vm() -> None:
    with pytest.raises(GuardError, match="not configured as hostile"):
        run(CFG, ("rogue_touch", {"vm": 0, "ppn": 0, "token": 1}))


def test_touching_a_ballooned_page_pops_it() -> None:
    s = run(CFG, ("host_set_target", {"vm": 1, "pages": 1}),
            ("rogue_report", {"vm": 1, "queue": "inflate", "ppn": 2}),
            ("vmm_reclaim", {"vm": 1, "refuse": []}),
            ("rogue_touch", {"vm": 1, "ppn": 2, "token": 1}))
    assert 2 not in s.vms[1].ballooned and s.vms[1].p2m[2] != UNBACKED


def test_host_reuses_only_whole_host_pages() -> None:
    cfg = Config(vms=1, guest_pages=4, machine_pages=4, host_page_units=2)
    s = run(cfg, ("guest_write", {"vm": 0, "vpn": 0, "token": 1}))  # backs MPN 0
    with pytest.raises(GuardError, match="not free"):
        apply(cfg, s, Action.of("host_take_page", host_page=0))
    s = apply(cfg, s, Action.of("host_take_page", host_page=1))
    assert s.host.in_use == {2, 3}


def test_sharing_and_copy_on_write() -> None:
    s = run(CFG, ("guest_write", {"vm": 0, "vpn": 0, "token": 2}),
            ("guest_write", {"vm": 1, "vpn": 0, "token": 2}),
            ("vmm_share", {"vm": 0, "ppn": 0, "other_vm": 1, "other_ppn": 0}))
    m = s.vms[0].p2m[0]
    assert s.vms[1].p2m[0] == m and m in s.host.cow
    s = apply(CFG, s, Action.of("guest_write", vm=1, vpn=0, token=1))
    assert s.vms[1].p2m[0] != m and s.host.content[m] == 2 and m not in s.host.cow


def test_host_swap_is_the_only_host_choice_and_keeps_data() -> None:
    s = run(CFG, ("guest_write", {"vm": 0, "vpn": 0, "token": 2}),
            ("host_swap_out", {"vm": 0, "ppn": 0}))
    assert s.vms[0].p2m[0] == UNBACKED and s.host.swap == ((0, 0, 2),)
    s = apply(CFG, s, Action.of("guest_read", vm=0, vpn=0))
    assert s.host.content[s.vms[0].p2m[0]] == 2 and s.host.swap == ()


def test_eager_backing_backs_only_pages_outside_the_balloon() -> None:
    cfg = CFG.replace(eager_backing=True)
    s = inflated(cfg)
    # A ballooned page is the guest's gift: the VMM never takes it back by itself.
    with pytest.raises(GuardError, match="in the balloon"):
        apply(cfg, s, Action.of("vmm_back_page", vm=0, ppn=0))
    # A page the guest never touched may be backed ahead of use, with a zero page.
    s = apply(cfg, s, Action.of("vmm_back_page", vm=0, ppn=3))
    assert s.vms[0].p2m[3] != UNBACKED and s.host.content[s.vms[0].p2m[3]] == 0
    with pytest.raises(GuardError, match="already backed"):
        apply(cfg, s, Action.of("vmm_back_page", vm=0, ppn=3))
    # After a deflate is released the page may be backed at once (Xen's populate).
    s = apply(cfg, inflated(cfg), Action.of("host_set_target", vm=0, pages=0))
    for name, args in (("balloon_poll", {"vm": 0}), ("balloon_deflate", {"vm": 0, "ppns": [0]}),
                       ("vmm_release", {"vm": 0}), ("vmm_back_page", {"vm": 0, "ppn": 0})):
        s = apply(cfg, s, Action.of(name, **args))
    assert s.vms[0].p2m[0] != UNBACKED and 0 not in s.vms[0].ballooned


def test_eager_backing_restores_a_page_the_host_swapped_out() -> None:
    cfg = CFG.replace(eager_backing=True)
    s = run(cfg, ("guest_write", {"vm": 0, "vpn": 0, "token": 2}),
            ("host_swap_out", {"vm": 0, "ppn": 0}), ("vmm_back_page", {"vm": 0, "ppn": 0}))
    assert s.host.content[s.vms[0].p2m[0]] == 2 and s.host.swap == ()


def test_eager_backing_is_off_unless_switched_on() -> None:
    with pytest.raises(GuardError, match="switched off"):
        apply(CFG, initial_state(CFG), Action.of("vmm_back_page", vm=0, ppn=0))


def test_reset_empties_the_balloon() -> None:
    s = apply(CFG, inflated(), Action.of("guest_reset", vm=0))
    assert not s.vms[0].ballooned and s.vms[0].module.actual == 0
    assert all(u == FREE for u in s.vms[0].guest.ppn_use)


def test_application_module_inflates_one_page_at_a_time_within_its_pin_limit() -> None:
    cfg = Config(vms=1, guest_pages=4, machine_pages=4, module=ModuleKind.APPLICATION,
                 pin_limit=1)
    s = run(cfg, ("host_set_target", {"vm": 0, "pages": 3}), ("balloon_poll", {"vm": 0}))
    with pytest.raises(GuardError):
        apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[0, 1]))
    s = apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[0]))
    with pytest.raises(GuardError, match="cannot give"):
        apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[1]))


def test_driver_leaves_the_kernel_reserve() -> None:
    cfg = Config(vms=1, guest_pages=3, machine_pages=3, kernel_reserve=1, batch=3)
    s = run(cfg, ("host_set_target", {"vm": 0, "pages": 3}), ("balloon_poll", {"vm": 0}))
    with pytest.raises(GuardError, match="cannot give"):
        apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[0, 1, 2]))


def test_processors_guest_chooses_which_vcpu() -> None:
    cfg = Config(vms=1, guest_pages=2, machine_pages=2, processors=True, vcpus=3, pcpus=3)
    s = run(cfg, ("host_set_cpu_target", {"vm": 0, "vcpus": 1}), ("balloon_poll", {"vm": 0}),
            ("balloon_cpu_offline", {"vm": 0, "vcpu": 2}))
    with pytest.raises(GuardError, match="boot vCPU"):
        apply(cfg, s, Action.of("balloon_cpu_offline", vm=0, vcpu=0))
    s = apply(cfg, s, Action.of("vmm_cpu_reclaim", vm=0))
    assert s.host.idle_pcpus == 1 and s.vms[0].guest.vcpus == {0, 1}


def test_unknown_action_and_bad_arguments() -> None:
    s = initial_state(CFG)
    with pytest.raises(GuardError, match="no such action"):
        apply(CFG, s, Action.of("host_steal_page", vm=0))
    with pytest.raises(GuardError, match="expected arguments"):
        apply(CFG, s, Action.of("host_set_target", vm=0))
    with pytest.raises(GuardError, match="no VM"):
        apply(CFG, s, Action.of("host_set_target", vm=7, pages=1))


def test_no_reinflate_of_a_page_whose_deflate_is_unprocessed() -> None:
    # Found by the Z3 induction check on the virtio preset: without MUST_TELL_HOST the guest
    # may reuse a deflated page at once; if the module re-inflated it before the VMM
    # processed the deflate report, the stale report would release the re-inflated page.
    cfg = Config(vms=1, guest_pages=4, guest_data_pages=3, machine_pages=4,
                 must_tell_host=False, deflate_on_oom=True)
    s = run(cfg, ("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}),
            ("balloon_inflate", {"vm": 0, "ppns": [0]}), ("vmm_reclaim", {"vm": 0, "refuse": []}),
            ("balloon_complete", {"vm": 0}), ("host_set_target", {"vm": 0, "pages": 0}),
            ("balloon_poll", {"vm": 0}), ("balloon_deflate", {"vm": 0, "ppns": [0]}),
            ("host_set_target", {"vm": 0, "pages": 1}), ("balloon_poll", {"vm": 0}))
    assert s.vms[0].deflate_queue == (0,) and s.vms[0].guest.ppn_use[0] == FREE
    with pytest.raises(GuardError, match="allocator"):
        apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[0]))
    s = apply(cfg, s, Action.of("balloon_inflate", vm=0, ppns=[1]))  # the allocator skips PPN 0
    s = apply(cfg, s, Action.of("vmm_release", vm=0))
    assert s.vms[0].ballooned == frozenset()


def test_a_deflate_ack_never_frees_a_page_the_module_holds_as_refused() -> None:
    # A hostile guest reports a refused page for deflation; the VMM acknowledges it.
    # The module must keep holding it until balloon_free_refused, or the page would
    # be freed twice, the second time under a process page.
    from ballast.model.invariants import INVARIANTS

    cfg = CFG.replace(sharing=False)
    s = run(cfg, ("host_set_target", {"vm": 1, "pages": 1}), ("balloon_poll", {"vm": 1}),
            ("balloon_inflate", {"vm": 1, "ppns": [0]}),
            ("vmm_reclaim", {"vm": 1, "refuse": [0]}), ("balloon_complete", {"vm": 1}))
    assert s.vms[1].module.refused == {0}
    s = run_from(cfg, s, ("rogue_report", {"vm": 1, "queue": "deflate", "ppn": 0}),
                 ("vmm_release", {"vm": 1}), ("balloon_complete", {"vm": 1}))
    assert s.vms[1].guest.ppn_use[0] == BALLOON and s.vms[1].module.refused == {0}
    s = run_from(cfg, s, ("guest_write", {"vm": 1, "vpn": 0, "token": 1}))
    assert s.vms[1].guest.ppn_use[0] == BALLOON  # the process got another page
    s = run_from(cfg, s, ("balloon_free_refused", {"vm": 1}))
    assert s.vms[1].guest.ppn_use.count(0) == 1  # VPN 0 lives in exactly one page
    for prop in INVARIANTS.values():
        assert prop.check_state(cfg, s) is None, prop.name


def test_module_pages_pinned_catches_a_page_freed_under_the_module() -> None:
    from dataclasses import replace as dc_replace

    from ballast.model.invariants import INVARIANTS

    s = inflated()
    v = s.vms[0]
    bad = s.with_vm(0, v.replace(guest=dc_replace(v.guest, ppn_use=(FREE,) + v.guest.ppn_use[1:])))
    msg = INVARIANTS["module_pages_pinned"].check_state(CFG, bad)
    assert msg is not None and "PPN 0" in msg


def run_from(cfg: Config, s: State, *steps: tuple[str, dict]) -> State:
    for name, args in steps:
        s = apply(cfg, s, Action.of(name, **args))
    return s


def test_inflate_guard_asks_for_free_pages_as_usable_free_counts_them() -> None:
    configs = [PRESETS[name] for name in ("default", "virtio", "application", "qemu")]
    configs.append(Config(vms=1, guest_pages=5, guest_data_pages=2, machine_pages=5,
                          kernel_reserve=2))
    checked = 0
    for cfg in configs:
        model = BalloonModel(cfg)
        rng = random.Random(5)
        s = model.init_states()[0]
        for _ in range(60):
            for v in s.vms:
                for n in range(cfg.guest_pages + 3):
                    assert has_usable_free(cfg, v, n) == (usable_free(cfg, v) >= n), (cfg, n)
                    checked += 1
            succ = list(model.successors(s))
            if not succ:
                break
            s = rng.choice(succ)[1]
    assert checked > 1000


def test_the_lru_order_holds_each_vpn_once_even_after_a_stale_entry() -> None:
    """A broken module can free the page of a resident VPN (the seeded fault
    ``free_refused_keeps_held``), leaving the VPN in the LRU order with no PPN. The guest's
    next access makes it resident again and most recently used, listed once: the order is
    an ordered set, as the numeric core, the frontier and the Z3 encoding hold it."""
    from dataclasses import replace
    cfg = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=1,
                 machine_pages=2, host_swap_slots=1, tokens=1, batch=1)
    s = initial_state(cfg)
    v = s.vms[0]
    stale = s.with_vm(0, v.replace(guest=replace(v.guest, lru=(0,))))
    post = apply(cfg, stale, Action.of("guest_read", vm=0, vpn=0))
    assert post.vms[0].guest.lru == (0,)
    assert post.vms[0].guest.ppn_use.count(0) == 1
