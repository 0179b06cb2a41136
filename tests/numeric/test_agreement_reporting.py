"""The numeric core's free page reporting, page poison and statistics queue agree with the
model on the ``reporting`` and ``poison`` presets themselves and where poisoning writes
shared and host-swapped pages (``-m slow``; the default run checks the presets' small
slices in ``tests/numeric/test_agreement.py``); random runs of the engine break none of the
new properties, and each of their seeded faults in the engine alone is caught. The same for
rogue processors, reports racing a reset, free page hinting and hibernation, on prefixes of
the ``hostile``, ``hinting`` and ``hibernation`` presets and where a hostile guest's reports
race a reset."""

from __future__ import annotations

import numpy as np
import pytest

from ballast.model.config import Config, preset
from ballast.numeric.agreement import check_numeric_agreement
from ballast.numeric.engine import Engine
from ballast.numeric.invariants import violations
from ballast.numeric.workload import run_batches
from ballast.proofs.agreement import agreement_configs
from ballast.proofs.reachability import reachable

PREFIX = 150
"""States of each preset checked first (those a breadth-first search finds first)."""


def _check(cfg: Config, max_states: int | None) -> None:
    rs = reachable(cfg, max_states=max_states)
    report = check_numeric_agreement(cfg, rs.states, steps=rs.steps)
    assert report.ok, (report.summary(), [(str(rs.path(i)), w) for i, w in report.disagreements])
    assert report.enabled_steps > 0 and report.invariant_checks > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reporting", "poison"])
def test_the_engine_agrees_on_a_prefix_of_the_preset(name: str) -> None:
    _check(preset(name), PREFIX)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reporting", "poison"])
def test_the_engine_agrees_on_a_longer_prefix_of_the_preset(name: str) -> None:
    _check(preset(name), 5_000)


@pytest.mark.slow
def test_the_engine_agrees_where_poison_writes_shared_and_swapped_pages() -> None:
    _check(preset("poison").replace(
        vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=2,
        host_swap=True, host_swap_slots=1, sharing=True, host_use=False, batch=1), None)


@pytest.mark.parametrize("name", ["reporting", "poison"])
def test_random_runs_report_discard_and_reuse_pages_and_break_nothing(name: str) -> None:
    eng = Engine(preset(name))
    log = run_batches(eng, np.random.default_rng(7), 600)
    fired = {b.name for b in log}
    assert {"balloon_report_free_pages", "vmm_discard_reported", "balloon_report_done"} <= fired
    assert violations(eng.arr) == [] and eng.step_violations == []


@pytest.mark.parametrize("fault, config", [
    ("report_without_isolation", "reporting/protocol-paging"),
    ("discard_keeps_swap_slot", "reporting/host-swap"),
    ("report_skips_poison", "poison/protocol-paging"),
    ("stats_count_balloon_as_free", "reporting/protocol-paging"),
    ("vmm_accepts_flood", "default/flood"),
])
def test_a_wrong_engine_is_caught(fault: str, config: str) -> None:
    """Each fault of these features put into the engine alone is found by the agreement."""
    cfg = agreement_configs()[config]
    rs = reachable(cfg, max_states=3_000)
    report = check_numeric_agreement(cfg, rs.states, steps=rs.steps, engine_faults=(fault,),
                                     max_disagreements=1)
    assert report.disagreements, f"{fault}: the wrong engine agrees on {config}"


# Rogue processors, reports racing a reset, free page hinting and hibernation.

RACING_HOSTILE = agreement_configs()["hostile/reset-races"].replace(hostile_vms=frozenset({0}))
"""A hostile guest's reports (duplicates, a PPN out of range) in flight across its reset."""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hostile", "hinting", "hibernation"])
def test_the_engine_agrees_on_a_prefix_of_the_features_preset(name: str) -> None:
    # The VMM paging out a VM over its target is compared on its own slice
    # (agreement_configs: hostile/over-target), kept off in this prefix.
    _check(preset(name).replace(vmm_reclaims_over_target=False), 150)


@pytest.mark.slow
def test_the_engine_agrees_where_a_hostile_guests_reports_race_its_reset() -> None:
    _check(RACING_HOSTILE, 2_000)


@pytest.mark.parametrize("name, fired, batches", [
    # The hostile preset has every memory feature on: about a third of its batches take
    # effect, and a stale report needs a reset while a hostile guest's reports are queued.
    ("hostile", {"rogue_cpu_park", "rogue_cpu_online", "vmm_enforce_cpu_target",
                 "vmm_drop_stale_reports"}, 4_000),
    ("hinting", {"vmm_request_hints", "balloon_hint_start", "balloon_hint_free_pages",
                 "vmm_skip_hinted", "vmm_stop_hints"}, 1_500),
    ("hibernation", {"balloon_freeze", "balloon_restore"}, 1_500),
])
def test_random_runs_fire_the_features_and_break_nothing(name: str, fired: set[str],
                                                         batches: int) -> None:
    eng = Engine(preset(name))
    log = run_batches(eng, np.random.default_rng(7), batches)
    assert fired <= {b.name for b in log}
    assert violations(eng.arr) == [] and eng.step_violations == []


@pytest.mark.parametrize("fault, config", [
    ("vmm_trusts_guest_cpus", "hostile/hostile-processors"),
    ("vmm_trusts_park_report", "hostile/hostile-processors"),
    ("vmm_applies_stale_reports", "hostile/reset-races"),
    ("hint_skips_rewritten_page", "hinting/hinting"),
    pytest.param("restore_forgets_balloon", "hibernation/hibernation",
                 marks=pytest.mark.slow),  # after an inflate round trip and a freeze
])
def test_a_wrong_engine_of_the_features_is_caught(fault: str, config: str) -> None:
    """Each fault of these features put into the engine alone is found by the agreement."""
    cfg = agreement_configs()[config]
    rs = reachable(cfg, max_states=1_000)
    report = check_numeric_agreement(cfg, rs.states, steps=rs.steps, engine_faults=(fault,),
                                     max_disagreements=1)
    assert report.disagreements, f"{fault}: the wrong engine agrees on {config}"
