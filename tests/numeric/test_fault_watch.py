"""A seeded fault's step compared with the model's own: whether its branch was exercised."""

from __future__ import annotations

import pytest

from ballast.model.action_kernels import FAULT_KERNELS, KERNELS
from ballast.model.config import preset
from ballast.numeric.runner import fuzz_seed
from ballast.numeric.scale import scaled, with_faults

FLOOD = "vmm_accepts_flood"


def _large(fault: str):
    return with_faults(preset("large"), (fault,), keep_sizes=False)


def test_seeds_that_never_reach_the_faults_branch_say_so():
    """``vmm_accepts_flood`` differs from the model only for a report arriving on full
    queues: seeds 0-3 of ``ballast fuzz``'s defaults never get there (and pass), seed 7
    does, in the batch that breaks the property."""
    cfg = _large(FLOOD)
    for seed in range(4):
        r = fuzz_seed(cfg, seed=seed, faults=(FLOOD,), batches=200)
        assert r.violation is None and r.actions_seen.get("rogue_report", 0) > 0
        assert r.fault_deviated == {}, seed
    r = fuzz_seed(cfg, seed=7, faults=(FLOOD,), batches=200, shrink=False)
    assert r.violation is not None and r.violation[0] == "vmm_refuses_report_floods"
    assert 0 < r.fault_deviated[FLOOD] <= r.batches


def test_without_a_fault_nothing_is_watched():
    r = fuzz_seed(scaled(preset("large"), vms=8, pages=32), seed=0, batches=40)
    assert r.fault_deviated == {} and r.ops > 0


@pytest.mark.parametrize("fault", ["free_without_scrub", "cow_write_in_place",
                                   "host_swap_loses_data", "cpu_reclaim_keeps_parked"])
def test_a_fault_that_does_what_the_model_does_is_never_exercised(fault, monkeypatch):
    """The comparison sees the model's state, not the arrays' accidents: a "fault" whose
    step is its action's own never deviates, however often it runs (free MPNs handed out,
    copy-on-write, host swap, processors)."""
    action = FAULT_KERNELS[fault][0]
    monkeypatch.setitem(FAULT_KERNELS, fault, (action, KERNELS[action]))
    # Sizes of its own: the engine learns what a fault's kernel writes per configuration.
    cfg = with_faults(scaled(preset("large"), vms=6, pages=24), (fault,), keep_sizes=True)
    r = fuzz_seed(cfg, seed=0, faults=(fault,), batches=150)
    assert r.violation is None and r.actions_seen.get(action, 0) > 0
    assert r.fault_deviated == {}


@pytest.mark.parametrize("fault", ["free_without_scrub", "cpu_reclaim_keeps_parked"])
def test_a_fault_caught_was_exercised_no_later_than_the_violation(fault):
    cfg = with_faults(scaled(preset("large"), vms=16, pages=64), (fault,), keep_sizes=True)
    for seed in range(6):
        r = fuzz_seed(cfg, seed=seed, faults=(fault,), batches=300, shrink=False)
        if r.violation is not None:
            break
    assert r.violation is not None
    assert 0 < r.fault_deviated[fault] <= r.batches
