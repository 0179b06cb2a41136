"""Free page hinting: command ids, hints, the migration's skip and the dirty log."""

import pytest

from ballast.errors import GuardError
from ballast.model.actions import HINT_DONE, HINT_STOP, apply
from ballast.model.config import Config, preset
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.state import UNBACKED, State
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run
from scripted import a, run

CFG = Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1, machine_pages=3,
             host_swap_slots=0, free_page_hint=True)


def lost(s: State) -> str | None:
    return INVARIANTS["hinted_pages_not_lost"].check_state(CFG, s)


# The guest uses page 0 and frees it again (still backed), the VMM starts a cycle, the module
# reads its id and hints page 0.
HINTED = [a("guest_write", vm=0, vpn=0, token=1), a("guest_evict", vm=0, vpn=0),
          a("vmm_request_hints", vm=0), a("balloon_hint_start", vm=0),
          a("balloon_hint_free_pages", vm=0, ppns=(0,))]


def test_a_hint_of_the_cycle_under_way_lets_the_migration_skip_the_page() -> None:
    s = run(CFG, HINTED)
    v = s.vms[0]
    assert v.hint_cmd_id == v.module.hinting_for == 2 and v.hinted == {0}
    mpn = v.p2m[0]
    s = apply(CFG, s, a("vmm_skip_hinted", vm=0))
    assert s.vms[0].p2m[0] == UNBACKED and mpn in s.host.free and s.vms[0].hinted == frozenset()
    assert lost(s) is None


def test_a_page_written_after_its_hint_is_dirty_and_is_not_skipped() -> None:
    s = run(CFG, HINTED + [a("guest_write", vm=0, vpn=1, token=1)])  # the allocator reuses page 0
    v = s.vms[0]
    assert v.guest.ppn_use[0] == 1 and v.hinted == frozenset() and v.hint_rewritten == {0}
    with pytest.raises(GuardError, match="no page was hinted"):
        apply(CFG, s, a("vmm_skip_hinted", vm=0))
    assert lost(s) is None


def test_the_seeded_fault_skips_a_rewritten_page_and_the_property_catches_it() -> None:
    steps = HINTED + [a("balloon_hint_free_pages", vm=0, ppns=(1,)),
                      a("guest_write", vm=0, vpn=1, token=1), a("vmm_skip_hinted", vm=0)]
    assert lost(run(CFG, steps)) is None
    broken = run(CFG, steps, ("hint_skips_rewritten_page",))
    assert broken.vms[0].p2m[0] == UNBACKED
    msg = lost(broken)
    assert msg is not None and "PPN 0, written after it was hinted free" in msg
    assert FAULTS["hint_skips_rewritten_page"].breaks == "hinted_pages_not_lost"


def test_a_hint_tagged_with_an_ended_cycle_is_ignored() -> None:
    s = run(CFG, HINTED[:4] + [a("vmm_stop_hints", vm=0, command="stop"),
                          a("vmm_request_hints", vm=0)])
    v = s.vms[0]
    assert v.hint_cmd_id == 3 and v.module.hinting_for == 2  # a new id the module has not read
    assert apply(CFG, s, a("balloon_hint_free_pages", vm=0, ppns=(0,))) == s
    s = apply(CFG, s, a("balloon_hint_start", vm=0))
    assert apply(CFG, s, a("balloon_hint_free_pages", vm=0, ppns=(0,))).vms[0].hinted == {0}


def test_stop_and_done_end_the_cycle_and_its_hints() -> None:
    for command, cmd_id in (("stop", HINT_STOP), ("done", HINT_DONE)):
        s = run(CFG, HINTED + [a("vmm_stop_hints", vm=0, command=command)])
        assert s.vms[0].hint_cmd_id == cmd_id and s.vms[0].hinted == frozenset()
        with pytest.raises(GuardError, match="no hint cycle"):
            apply(CFG, s, a("vmm_skip_hinted", vm=0))
    with pytest.raises(GuardError, match="stop or done"):
        run(CFG, HINTED + [a("vmm_stop_hints", vm=0, command="pause")])


def test_only_free_pages_are_hinted_and_only_with_a_command_id() -> None:
    with pytest.raises(GuardError, match="no hint command id"):
        run(CFG, [a("vmm_request_hints", vm=0), a("balloon_hint_free_pages", vm=0, ppns=(0,))])
    with pytest.raises(GuardError, match="free list"):
        run(CFG, [a("guest_write", vm=0, vpn=0, token=1), a("vmm_request_hints", vm=0),
             a("balloon_hint_start", vm=0), a("balloon_hint_free_pages", vm=0, ppns=(0,))])


def test_the_hinting_preset_exercises_hinting_and_keeps_every_property() -> None:
    model = BalloonModel(preset("hinting"))
    seen: set[str] = set()
    for seed in range(20):
        r = random_run(model, seed, 150, record_states=False)
        assert r.violation is None, r.violation
        seen |= r.witnessed
    assert {"hinted_page_skipped", "hinted_page_rewritten", "stale_hint_ignored"} <= seen
