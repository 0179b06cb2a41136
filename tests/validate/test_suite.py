"""``ballast check`` integration: results per property, the sample's rules, budgets."""

from __future__ import annotations

from pathlib import Path

from ballast.budget import WorkBudget
from ballast.model.config import preset
from ballast.model.virtio import VIRTIO_RULES
from ballast.validate.suite import sample_dir, suite_check
from ballast.verdict import Verdict


def test_suite_on_core_with_a_fault(tmp_path: Path) -> None:
    res = suite_check(preset("virtio"), faults=("reclaim_keeps_mapping",), seed=1,
                      report_dir=tmp_path)
    by = {(r.property, r.checker): r for r in res.results}
    assert by[("trace_validation_explains_model_runs", "validate")].verdict is Verdict.PASS
    caught = by[("ballooned_pages_unbacked", "validate")]
    assert caught.verdict is Verdict.VIOLATION and caught.counterexample is not None
    assert caught.counterexample.is_file()
    rules = [r for r in res.results if r.checker == "validate-qemu"]
    assert {r.property for r in rules} == set(VIRTIO_RULES)
    if sample_dir() is None:
        assert {r.verdict for r in rules} == {Verdict.SKIPPED}
        assert all("not present" in r.detail for r in rules)
    else:
        # The sample negotiated STATS_VQ alone: the rules of another feature judged nothing
        # in it, and say so rather than pass.
        skipped = {r.property for r in rules if r.verdict is Verdict.SKIPPED}
        assert skipped == {name for name, rule in VIRTIO_RULES.items()
                           if rule.requires is not None}
        assert "virtio_5_5_6_1_rule6_must_tell_host_wait" in skipped
        assert len([n for n in skipped if n.startswith("virtio_5_5_6_5_")]) == 6
        assert {r.verdict for r in rules if r.property not in skipped} == {Verdict.PASS}


def test_an_exhausted_budget_is_inconclusive_never_pass(tmp_path: Path) -> None:
    res = suite_check(preset("core"), seed=0, report_dir=tmp_path,
                      budget=WorkBudget(max_seconds=0.0))
    first = res.results[0]
    assert first.property == "trace_validation_explains_model_runs"
    assert first.verdict is Verdict.INCONCLUSIVE


def test_a_caught_fault_whose_step_blames_no_property_says_so_in_words(tmp_path: Path) -> None:
    """A recorded state the correct model does not reach blames no property: the detail
    reads without one, never 'property None'."""
    import time

    from ballast.validate.suite import _fault_caught

    r = _fault_caught(preset("core"), "release_keeps_balloon_set", 0, tmp_path,
                      time.monotonic() + 600)
    assert r.verdict is Verdict.VIOLATION, r.detail
    assert "None" not in r.detail and "not explained" in r.detail, r.detail
