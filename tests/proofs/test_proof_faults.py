"""Negative controls: every seeded fault is refuted, and its counterexample replays."""

from __future__ import annotations

from pathlib import Path

import pytest

from proof_samples import control_config
from ballast.model.faults import FAULTS
from ballast.proofs.faults import FAULT_EFFECTS
from ballast.model.replay import ReplayOutcome, replay
from ballast.proofs.bmc import bmc
from ballast.proofs.induction import ProofVerdict, consecution
from ballast.reports.counterexample import write_counterexample

# The faults of actions the Z3 encoding lists as known gaps are not proof faults.
QUICK = sorted((set(FAULTS) & set(FAULT_EFFECTS)) - {"free_without_scrub"})


def _refute(fault: str, tmp_path: Path, depth: int, control: bool = False) -> None:
    f = FAULTS[fault]
    cfg = control_config(fault)
    results = consecution(cfg, f.action, (fault,))
    broken = [r for r in results if r.verdict is ProofVerdict.VIOLATED]
    assert broken, f"{fault}: every query of {f.action} was proved"
    found = bmc(cfg, f.breaks, depth=depth, faults=(fault,))
    assert found.found and found.trace is not None
    assert found.trace.header.source["checker"] == "prove"
    assert found.trace.header.expect == {"property": f.breaks, "step": found.depth}
    result = replay(found.trace)
    assert result.outcome is ReplayOutcome.VIOLATION
    assert f.breaks in {v.property for v in result.violations}
    written = write_counterexample(found.trace, tmp_path)
    assert written.trace_path.exists()
    if control:
        # The correct model has no such path.
        assert not bmc(cfg, f.breaks, depth=found.depth).found


def _depth(fault: str) -> int:
    # The accounting fault shows only after a whole inflate-deflate round trip; a migration
    # that forgets its old page only after an inflate round trip and a migrated page's; a
    # restore that forgets the balloon only after an inflate round trip and a freeze.
    return {"release_keeps_balloon_set": 12, "migrate_forgets_old_page": 8,
            "restore_forgets_balloon": 8}.get(fault, 6)


@pytest.mark.parametrize("fault", QUICK)
def test_seeded_fault_is_refuted_with_a_replayed_counterexample(fault: str,
                                                                tmp_path: Path) -> None:
    _refute(fault, tmp_path, depth=_depth(fault))


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["free_without_scrub"])
def test_deep_seeded_fault_is_refuted(fault: str, tmp_path: Path) -> None:
    _refute(fault, tmp_path, depth=12)


@pytest.mark.slow
@pytest.mark.parametrize("fault", QUICK)
def test_correct_model_has_no_path_of_the_same_length(fault: str, tmp_path: Path) -> None:
    _refute(fault, tmp_path, depth=_depth(fault), control=True)


def test_the_accounting_fault_breaks_the_inductive_invariant_at_once() -> None:
    """Even without the deep search, induction flags the broken release step."""
    cfg = control_config("release_keeps_balloon_set")
    out = consecution(cfg, "vmm_release", ("release_keeps_balloon_set",))
    assert any(r.verdict is ProofVerdict.VIOLATED for r in out)
