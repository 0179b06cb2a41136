"""Tests of the explorer checker of ``ballast check``: every property over runs that a
slice checks gets a verdict, including where its full graph was not searched."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.budget import WorkBudget
from ballast.model.config import preset
from ballast.statespace import suite
from ballast.verdict import Verdict

RUNS = ("balloon_can_reach_target", "balloon_eventually_at_target")
# Two slices whose liveness is checked, the protocol slice and the refusal slice (about
# 20,000 and 9,000 states with symmetry), each in a second or two.
CFG = preset("core").replace(refusal=True)


def test_a_slice_stopped_by_its_budget_reports_its_liveness_inconclusive(
        tmp_path: Path) -> None:
    """A stopped slice does not leave the balloon's liveness out of the verdict."""
    out = suite.suite_check(CFG, report_dir=tmp_path, budget=WorkBudget(max_states=3000))
    by_name = {r.property: r for r in out.results}
    for name in RUNS:
        r = by_name[name]
        assert r.verdict is Verdict.INCONCLUSIVE, r.detail
        assert "not checked: the slice's exploration stopped after" in r.detail, r.detail
        assert "--max-states" in r.detail


def test_a_slice_too_large_for_its_full_graph_is_named_as_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a slice is over the size whose full graph is searched, its properties over
    runs are skipped with that reason, and the slices where they held are the others."""
    full = suite.suite_check(CFG, report_dir=tmp_path / "full")
    held = {r.property: r for r in full.results}["balloon_eventually_at_target"]
    assert held.verdict is Verdict.PASS and "(protocol, refusal)" in held.detail, held.detail
    # Between the protocol slice's size and the refusal slice's: the second is skipped.
    slices = full.stats["slices"]
    assert isinstance(slices, dict)
    small, large = sorted(int(slices[s]["states"]) for s in ("protocol", "refusal"))
    assert small < large
    monkeypatch.setattr(suite, "LIVENESS_MAX_STATES", small)
    out = suite.suite_check(CFG, report_dir=tmp_path / "out")
    r = {r.property: r for r in out.results}["balloon_eventually_at_target"]
    skipped = "refusal" if int(slices["refusal"]["states"]) == large else "protocol"
    kept = "protocol" if skipped == "refusal" else "refusal"
    assert r.verdict is Verdict.PASS, r.detail
    assert f"of 1 slices ({kept})" in r.detail, r.detail
    assert f"[{skipped}] not checked: the slice has {large:,} states" in r.detail, r.detail
    assert r.evidence["slices"] == [kept] and skipped in r.evidence["skipped"]
    # Over every slice's size: skipped everywhere, never a pass.
    monkeypatch.setattr(suite, "LIVENESS_MAX_STATES", 1)
    out = suite.suite_check(CFG, report_dir=tmp_path / "none")
    r = {r.property: r for r in out.results}["balloon_eventually_at_target"]
    assert r.verdict is Verdict.SKIPPED, r.detail
