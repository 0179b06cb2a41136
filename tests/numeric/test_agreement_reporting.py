"""The numeric core's free page reporting, page poison and statistics queue agree with the
model on the ``reporting`` and ``poison`` presets themselves and where poisoning writes
shared and host-swapped pages (``-m slow``; the default run checks the presets' small
slices in ``tests/numeric/test_agreement.py``); random runs of the engine break none of the
new properties, and each of their seeded faults in the engine alone is caught."""

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
