"""Golden files: the Markdown and JSON of a fixed counterexample and of a fixed check summary.

Regenerate after an intended change with ``BALLAST_UPDATE_GOLDEN=1 pytest tests/reports``
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ballast.reports.page import write_report
from ballast.reports.summary import summary_json, summary_markdown
from report_fixtures import check_results

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BALLAST_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with BALLAST_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.fixture
def in_tmp(reclaim_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Reports name the trace as given on the command line: a relative path.
    monkeypatch.chdir(reclaim_file.parent)
    return Path(reclaim_file.name)


def test_counterexample_markdown_and_json_match_golden(in_tmp: Path) -> None:
    written = write_report(in_tmp, "out", ("md", "json"))
    assert [p.name for p in written] == ["reclaim_keeps_mapping.md", "reclaim_keeps_mapping.json"]
    md = written[0].read_text(encoding="utf-8")
    js = written[1].read_text(encoding="utf-8")
    check_golden("reclaim_keeps_mapping.md", md)
    check_golden("reclaim_keeps_mapping.json", js)


def test_counterexample_outputs_are_deterministic(in_tmp: Path) -> None:
    first = [p.read_bytes() for p in write_report(in_tmp, "a", ("md", "json"))]
    second = [p.read_bytes() for p in write_report(in_tmp, "b", ("md", "json"))]
    assert first == second


def test_summary_markdown_and_json_match_golden(in_tmp: Path) -> None:
    results = check_results(in_tmp)
    check_golden("summary.md", summary_markdown(results))
    check_golden("summary.json", summary_json(results))
    data = json.loads(summary_json(results))
    assert data["verdict"] == "violation" and data["exit_code"] == 1
