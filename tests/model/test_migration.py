"""Balloon page migration holds the module's balloon lock from the new page to the old one.

Linux's migration callback (``virtballoon_migratepage``) runs with ``balloon_lock`` held
from the new page's inflate to the old page's deflate, and ``fill_balloon`` and
``leak_balloon`` (the deflate-on-OOM notifier's path) take the same lock. Without the
lock in the model, the notifier deflated the old page of a migration in flight and the
module took the new page's acknowledgement first (``actual`` one over the target): a fair
run of the ``qemu`` preset then never reached its target (a lasso of
``balloon_eventually_at_target``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, apply, enabled
from ballast.model.config import PRESETS, Config
from ballast.model.faults import action_table
from ballast.model.system import BalloonModel
from ballast.statespace.frontier import explore_frontier
from ballast.statespace.liveness import REACHES, check_liveness
from ballast.statespace.suite import feature_slices, liveness_fairness
from scripted import a, run

CFG = Config(vms=1, guest_pages=3, guest_data_pages=0, guest_disk_slots=0, machine_pages=3,
             host_swap_slots=0, tokens=1, batch=1, host_use=False, migration=True,
             deflate_on_oom=True, oom_notifier=True, reread_target=True)
"""One VM of three pages whose driver migrates balloon pages and deflates on OOM."""

AT_TARGET = [a("host_set_target", vm=0, pages=1), a("balloon_poll", vm=0),
             a("balloon_inflate", vm=0, ppns=(0,)), a("vmm_reclaim", vm=0, refuse=()),
             a("balloon_complete", vm=0)]
"""A balloon of one page (PPN 0) at its target of one."""

NEW_ACKED = AT_TARGET + [a("balloon_migrate", vm=0, new=1), a("vmm_reclaim", vm=0, refuse=())]
"""Compaction moves PPN 0 to PPN 1; the VMM has acknowledged the new page."""


def test_a_migration_holds_the_lock_until_the_old_page_is_released() -> None:
    s = run(CFG, AT_TARGET + [a("balloon_migrate", vm=0, new=1)])
    assert s.vms[0].module.migrating == 1
    s = apply(CFG, s, a("host_set_target", vm=0, pages=2))
    s = apply(CFG, s, a("balloon_poll", vm=0))
    for act in (a("balloon_oom_deflate", vm=0, ppns=(0,)), a("balloon_inflate", vm=0, ppns=(2,)),
                a("balloon_deflate", vm=0, ppns=(0,))):
        with pytest.raises(GuardError, match="balloon lock"):
            apply(CFG, s, act)


def test_the_new_page_joins_the_balloon_only_after_the_old_one_is_released() -> None:
    s = run(CFG, NEW_ACKED)
    with pytest.raises(GuardError, match="waits for the old page's release"):
        apply(CFG, s, a("balloon_complete", vm=0))
    s = apply(CFG, s, a("balloon_migrate_release", vm=0, old=0))
    assert s.vms[0].module.migrating == 0
    s = apply(CFG, s, a("vmm_release", vm=0))
    s = apply(CFG, s, a("balloon_complete", vm=0))
    m = s.vms[0].module
    assert m.balloon == {1} and m.actual == 1 == s.vms[0].target
    assert [str(x) for x, _ in enabled(CFG, s) if x.name == "balloon_oom_deflate"] == \
        ["balloon_oom_deflate(vm=0, ppns=[1])"]


def test_the_oom_notifier_deflates_before_or_after_a_migration_never_within() -> None:
    before = run(CFG, AT_TARGET)
    within = run(CFG, NEW_ACKED)
    names = {x.name for x, _ in enabled(CFG, before)}
    assert {"balloon_oom_deflate", "balloon_migrate"} <= names
    assert {x.name for x, _ in enabled(CFG, within)} & {
        "balloon_oom_deflate", "balloon_deflate", "balloon_inflate", "balloon_complete",
        "balloon_migrate"} == set()


def test_a_migration_whose_new_page_is_refused_ends_with_the_refusal() -> None:
    cfg = replace(CFG, refusal=True)
    s = run(cfg, AT_TARGET + [a("balloon_migrate", vm=0, new=1),
                              a("vmm_reclaim", vm=0, refuse=(1,))])
    assert s.vms[0].module.migrating == 1 and s.vms[0].acked_refused == {1}
    s = apply(cfg, s, a("balloon_complete", vm=0))
    m = s.vms[0].module
    assert m.migrating == 0 and m.balloon == {0} and m.refused == {1}
    apply(cfg, s, a("balloon_oom_deflate", vm=0, ppns=(0,)))  # the lock is free again


def test_a_reset_ends_a_migration_under_way() -> None:
    cfg = replace(CFG, reset=True)
    s = run(cfg, NEW_ACKED + [a("guest_reset", vm=0)])
    assert s.vms[0].module.migrating == 0


def test_the_seeded_migration_fault_still_ends_the_migration() -> None:
    s = run(CFG, NEW_ACKED)
    post = apply(CFG, s, a("balloon_migrate_release", vm=0, old=0),
                 action_table(["migrate_forgets_old_page"]))
    assert post.vms[0].module.migrating == 0 and post.vms[0].module.balloon == frozenset()


def _qemu_protocol_slice() -> Config:
    slices = feature_slices(PRESETS["qemu"])
    return slices["protocol"]


def test_a_fair_run_of_the_qemu_preset_reaches_its_target() -> None:
    """The lasso found before the lock: the notifier deflates the migration's old page, the
    module migrates again into it, forever one page over the target."""
    small = _qemu_protocol_slice()
    fairness = liveness_fairness("protocol", small)
    assert fairness is not None
    ex = explore_frontier(BalloonModel(small), keep_edges=True)
    results = {r.property: r for r in check_liveness(ex, fairness)}
    assert results[REACHES].holds, results[REACHES].detail


def test_an_honest_guest_of_a_vmm_that_accepts_every_page_has_nothing_refused() -> None:
    """``balloon_free_refused`` applies where the VMM may refuse: QEMU's device accepts every
    valid page, so on the ``qemu`` preset it cannot happen (and is not reported unexercised)."""
    spec = ACTIONS["balloon_free_refused"]
    assert not spec.feature(PRESETS["qemu"])
    assert spec.feature(PRESETS["default"])
    assert spec.feature(replace(PRESETS["qemu"], hostile_vms=(0,)))
    assert spec.feature(replace(PRESETS["qemu"], refusal=True))
