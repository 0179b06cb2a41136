"""Pooling of verdicts and coverage in ``ballast check``."""

from pathlib import Path

from ballast.check import CheckOptions, run_check
from ballast.model.config import preset
from ballast.verdict import Verdict


def test_vacuous_scenarios_make_the_check_inconclusive(tmp_path: Path) -> None:
    # Two steps per run cannot reach a balloon target: the scenario is vacuous.
    opts = CheckOptions(checkers=("random",), random_runs=3, random_steps=2,
                        report_dir=tmp_path)
    report = run_check(preset("default"), (), opts)
    vac = [r.property for r in report.pooled if r.verdict is Verdict.VACUOUS]
    assert "balloon_reaches_target" in vac
    assert report.verdict is Verdict.INCONCLUSIVE


def test_full_coverage_on_the_default_configuration(tmp_path: Path) -> None:
    opts = CheckOptions(checkers=("random",), report_dir=tmp_path)
    report = run_check(preset("default"), (), opts)
    assert [r.property for r in report.pooled if r.verdict is not Verdict.PASS] == []
    assert report.verdict is Verdict.PASS


def test_seeded_fault_gives_a_shrunk_counterexample(tmp_path: Path) -> None:
    opts = CheckOptions(checkers=("random",), report_dir=tmp_path)
    cfg = preset("default").replace(host_page_units=2)
    report = run_check(cfg, ("host_takes_partial_page",), opts)
    assert report.verdict is Verdict.VIOLATION
    [cx] = report.counterexamples()
    assert cx.property == "memory_conservation"
    assert cx.counterexample is not None
    assert len(cx.counterexample.read_text().splitlines()) <= 8  # header + a few steps
