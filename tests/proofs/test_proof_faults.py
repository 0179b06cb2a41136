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


def _replayed(path: Path) -> tuple[int, str, object, dict[str, str]]:
    """What ``ballast replay`` says of the trace at ``path``: (step, action, VM, the
    properties its failing step breaks with the model's messages)."""
    from ballast.model.trace import read_trace
    result = replay(read_trace(path))
    assert result.outcome is ReplayOutcome.VIOLATION and result.action is not None
    assert result.step is not None
    return (result.step, str(result.action), result.action.kwargs.get("vm"),
            {v.property: v.message for v in result.violations})


FOREIGN = "vmm_maps_foreign_host_page"
"""Its counterexample to induction may read a page of VM 0 into host page 1 (MPNs 2 and 3)
while the run the bounded search finds reads VM 1's page into host page 0."""


def test_a_reachable_violation_is_worded_as_its_trace_replays(tmp_path: Path) -> None:
    from ballast.proofs.run import prove
    cfg = control_config(FOREIGN)
    report = prove(cfg, faults=(FOREIGN,), actions=[FAULTS[FOREIGN].action], policy=False,
                   report_dir=tmp_path, jobs=1)
    [f] = [f for f in report.findings if f.reachability == "reachable"]
    assert f.counterexample is not None
    step, action, vm, broken = _replayed(f.counterexample)
    [prop] = broken  # one property breaks at the failing step
    line = f"step {step} ({action}) breaks {prop}: {broken[prop]}"
    assert f.headline.startswith(line + "; a real bug, reachable in "), (f.headline, line)
    # The CTI (mostly another VM or host page; Z3 picks it) comes after, named as what it is.
    assert f.headline.endswith(f"found from a counterexample to induction: {f.cti_line}")
    assert f"vm={vm}" in action
    data = f.to_dict()
    assert data["headline"] == f.headline and data["property"] == prop
    assert (data["trace"]["step"], data["trace"]["vm"], data["trace"]["message"]) == \
        (step, vm, broken[prop])
    assert report.property_verdict(prop) is ProofVerdict.VIOLATED


def test_the_prove_checker_words_its_violation_as_its_trace_replays(tmp_path: Path) -> None:
    """``ballast check``'s prove checker: the violation is filed under the property the
    trace breaks, and its detail (terminal, JSON, JUnit, SARIF, Markdown) is the trace's."""
    from ballast.proofs.suite import suite_check
    from ballast.verdict import Verdict
    res = suite_check(control_config(FOREIGN), faults=(FOREIGN,), report_dir=tmp_path)
    [bad] = [r for r in res.results if r.verdict is Verdict.VIOLATION]
    assert bad.counterexample is not None
    step, action, vm, broken = _replayed(bad.counterexample)
    assert bad.property in broken
    assert bad.detail.startswith(f"step {step} ({action}) breaks {bad.property}: "
                                 f"{broken[bad.property]}; "), (bad.detail, action)
    assert f"vm={vm}" in action
