"""Free page reporting, page poisoning, the statistics queue and the VMM's flood bound."""

import pytest

from ballast.errors import GuardError
from ballast.model.actions import apply, guest_free_pages, report_queue_bound
from ballast.model.config import Config, preset
from ballast.model.faults import action_table
from ballast.model.invariants import INVARIANTS
from ballast.model.state import FREE, UNBACKED, initial_state
from ballast.model.system import BalloonModel
from ballast.model.virtio import VirtioEvent, VirtioTracker, VirtioView
from scripted import a, run

CFG = Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1, machine_pages=3,
             host_swap_slots=1, host_swap=True, free_page_reporting=True, stats_queue=True)


# A page written, paged out by the guest (free but still backed), then reported.
FREED = [a("guest_write", vm=0, vpn=0, token=1), a("guest_evict", vm=0, vpn=0)]


def test_a_reported_page_is_off_the_free_list_until_the_report_comes_back() -> None:
    s = run(CFG, FREED + [a("balloon_report_free_pages", vm=0, ppns=(0, 1))])
    assert s.vms[0].report_queue == {0, 1} and s.vms[0].guest.ppn_use[0] == FREE
    assert guest_free_pages(s.vms[0]) == 1
    s = apply(CFG, s, a("guest_write", vm=0, vpn=1, token=1))
    assert s.vms[0].guest.ppn_use[2] == 1  # the allocator handed out the one unreported page
    with pytest.raises(GuardError, match="still in flight"):
        apply(CFG, s, a("balloon_report_free_pages", vm=0, ppns=(0,)))


def test_the_vmm_discards_reported_pages_and_the_guest_reuses_them_after_the_ack() -> None:
    s = run(CFG, FREED + [a("balloon_report_free_pages", vm=0, ppns=(0,))])
    mpn = s.vms[0].p2m[0]
    s = apply(CFG, s, a("vmm_discard_reported", vm=0))
    assert s.vms[0].p2m[0] == UNBACKED and mpn in s.host.free and s.host.content[mpn] == 0
    assert s.vms[0].discarded == {0} and s.vms[0].acked_report == {0}
    assert guest_free_pages(s.vms[0]) == 2  # still held until the module takes the return
    s = apply(CFG, s, a("balloon_report_done", vm=0))
    assert guest_free_pages(s.vms[0]) == 3
    s = apply(CFG, s, a("guest_write", vm=0, vpn=1, token=1))
    assert s.vms[0].discarded == frozenset()  # written again: the guest's own data


def test_a_discard_drops_the_host_swap_slot_and_the_fault_keeps_it() -> None:
    steps = FREED + [a("host_swap_out", vm=0, ppn=0),
                     a("balloon_report_free_pages", vm=0, ppns=(0,)),
                     a("vmm_discard_reported", vm=0)]
    assert run(CFG, steps).host.swap == ()
    broken = run(CFG, steps, ("discard_keeps_swap_slot",))
    msg = INVARIANTS["discarded_pages_read_clean"].check_state(CFG, broken)
    assert msg is not None and "token 1 from host swap" in msg


def test_with_page_poison_the_vmm_keeps_poisoned_pages() -> None:
    cfg = CFG.replace(page_poison=True, poison_val=2, tokens=2)
    steps = FREED + [a("balloon_report_free_pages", vm=0, ppns=(0,)),
                     a("vmm_discard_reported", vm=0)]
    s = run(cfg, steps)
    assert s.vms[0].p2m[0] != UNBACKED and s.host.content[s.vms[0].p2m[0]] == 2
    assert INVARIANTS["discarded_pages_read_clean"].check_state(cfg, s) is None
    broken = run(cfg, steps, ("report_skips_poison",))
    assert "old data" in (INVARIANTS["discarded_pages_read_clean"].check_state(cfg, broken) or "")


def test_statistics_report_the_guests_free_pages() -> None:
    s = run(CFG, [a("guest_write", vm=0, vpn=0, token=1), a("balloon_report_stats", vm=0)])
    assert s.vms[0].stats_free == 2
    with pytest.raises(GuardError, match="already has these statistics"):
        apply(CFG, s, a("balloon_report_stats", vm=0))


def test_the_vmm_refuses_a_flood_on_full_queues() -> None:
    cfg = Config(vms=1, guest_pages=2, machine_pages=2, hostile_vms=frozenset({0}),
                 vmm_bounds_queues=True, batch=1)
    s = initial_state(cfg)
    for _ in range(report_queue_bound(cfg)):
        s = apply(cfg, s, a("rogue_report", vm=0, queue="deflate", ppn=1))
    full = apply(cfg, s, a("rogue_report", vm=0, queue="inflate", ppn=0))
    assert full.vms[0].inflate_queue == () and full.vms[0].acked_refused == {0}
    flooded = apply(cfg, s, a("rogue_report", vm=0, queue="inflate", ppn=0),
                    action_table(["vmm_accepts_flood"]))
    prop = INVARIANTS["vmm_refuses_report_floods"]
    act = a("rogue_report", vm=0, queue="inflate", ppn=0)
    assert prop.check_step(cfg, s, act, full) is None
    assert "beyond the VMM's bound" in (prop.check_step(cfg, s, act, flooded) or "")


def test_without_the_switch_the_rogue_guard_caps_the_flood() -> None:
    cfg = preset("hostile").replace(vmm_bounds_queues=False)
    s = initial_state(cfg)
    for _ in range(report_queue_bound(cfg)):
        s = apply(cfg, s, a("rogue_report", vm=1, queue="deflate", ppn=0))
    with pytest.raises(GuardError, match="queues are full"):
        apply(cfg, s, a("rogue_report", vm=1, queue="deflate", ppn=0))


def test_the_virtio_profile_flags_use_of_a_reported_page() -> None:
    t = VirtioTracker(frozenset())
    t.apply(VirtioEvent("report", (3,)))
    assert [r.name for r, _ in t.violations(VirtioEvent("use", (3,)))] == [
        "virtio_5_5_6_6_no_use_of_reported_page"]
    assert [r.name for r, _ in t.violations(VirtioEvent("report", (3,)))] == [
        "virtio_5_5_6_6_report_only_free_pages"]
    t.apply(VirtioEvent("report_ack", (3,)))
    assert t.violations(VirtioEvent("use", (3,))) == []
    assert t.view() == VirtioView(0, 0, 0, frozenset(), frozenset(), frozenset(), frozenset())


def test_one_report_carries_up_to_report_pages_else_the_batch() -> None:
    three = (0, 1, 2)
    with pytest.raises(GuardError, match="1 to 2 distinct pages"):  # batch 2
        apply(CFG, initial_state(CFG), a("balloon_report_free_pages", vm=0, ppns=three))
    wide = CFG.replace(report_pages=3)
    s0 = initial_state(wide)
    s = apply(wide, s0, a("balloon_report_free_pages", vm=0, ppns=three))
    assert s.vms[0].report_queue == set(three)
    offered = [act.kwargs["ppns"] for act, _ in BalloonModel(wide).successors(s0)
               if act.name == "balloon_report_free_pages"]
    assert three in offered and max(map(len, offered)) == 3
