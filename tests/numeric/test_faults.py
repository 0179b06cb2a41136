"""Seeded faults are caught at scale; the shrunk counterexample replays through the model."""

from __future__ import annotations

import pytest

from ballast.model.config import preset
from ballast.model.faults import FAULTS
from ballast.model.replay import ReplayOutcome
from ballast.model.trace import read_trace
from ballast.model.replay import replay
from ballast.numeric.engine import ENGINE_FAULTS
from ballast.numeric.runner import fuzz_seed
from ballast.numeric.scale import scaled, with_faults


def test_every_model_fault_has_a_numeric_variant():
    from ballast.numeric.encodes import KNOWN_GAPS
    assert ENGINE_FAULTS == set(FAULTS) - {n for kind, n in KNOWN_GAPS if kind == "faults"}


SLOW = {"host_takes_partial_page"}  # needs many steps to fill a host page; shrinking ~1 min


@pytest.mark.parametrize("fault", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f
                                   for f in sorted(ENGINE_FAULTS)])
def test_fault_caught_at_scale_and_confirmed_by_the_model(fault, tmp_path):
    cfg = with_faults(scaled(preset("large"), vms=16, pages=64), (fault,), keep_sizes=True)
    if fault == "vmm_accepts_flood":
        # The flood bound is two reports' worth of pages (2 x batch): one hostile VM, one
        # rogue report per batch, fills it against the VMM's draining only with a small batch.
        cfg = cfg.replace(batch=1)
    for seed in range(6):
        r = fuzz_seed(cfg, seed=seed, faults=(fault,), batches=300, report_dir=tmp_path)
        if r.violation is not None:
            break
    assert r.violation is not None, f"{fault} not caught"
    assert r.counterexample is not None, r.error
    trace = read_trace(r.counterexample)
    assert trace.header.source == {"checker": "numeric", "seed": r.seed}
    if fault not in SLOW:
        assert trace.header.config.vms * trace.header.config.guest_pages < \
            cfg.vms * cfg.guest_pages
    result = replay(trace)
    assert result.outcome is ReplayOutcome.VIOLATION
    assert result.step == len(trace.steps) == r.shrunk_steps
    broke = {v.property for v in result.violations}
    assert FAULTS[fault].breaks in broke | {r.violation[0]}, broke
    # The same fault is correct without the fault seeded: the shrunk run is legal and clean.
    clean = replay(type(trace)(type(trace.header)(config=trace.header.config),
                               trace.steps))
    assert clean.outcome is not ReplayOutcome.VIOLATION or fault == "host_takes_single_unit"
