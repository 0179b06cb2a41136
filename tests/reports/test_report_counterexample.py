"""write_counterexample: confirmed by replay, then written; liveness lassos count as confirmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.trace import read_trace
from ballast.reports.counterexample import CounterexampleNotReproduced, write_counterexample
from report_fixtures import make_trace, reclaim_trace

SMALL = Config(vms=1, guest_pages=2, machine_pages=2)


def test_writes_trace_markdown_and_optional_html(tmp_path: Path) -> None:
    cx = write_counterexample(reclaim_trace(), tmp_path, html=True)
    assert cx.trace_path.name == "random-ballooned_pages_unbacked-reclaim_keeps_mapping.jsonl"
    assert [s.action for s in read_trace(cx.trace_path).steps] == [
        s.action for s in reclaim_trace().steps]
    md = cx.markdown_path.read_text()
    assert md.startswith("# Counterexample: `ballooned_pages_unbacked` is violated")
    assert f"ballast replay {cx.trace_path}" in md
    assert cx.trace_path.with_suffix(".html").exists()
    assert cx.replay.violations[0].property == FAULTS["reclaim_keeps_mapping"].breaks


def test_clean_trace_is_refused_and_nothing_written(tmp_path: Path) -> None:
    t = make_trace([("host_set_target", {"vm": 0, "pages": 1})], SMALL)
    with pytest.raises(CounterexampleNotReproduced):
        write_counterexample(t, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lasso_that_closes_is_a_counterexample(tmp_path: Path) -> None:
    steps = [("host_set_target", {"vm": 0, "pages": 1}), ("host_take_page", {"host_page": 1}),
             ("host_return_page", {"host_page": 1})]
    t = make_trace(steps, SMALL, source={"checker": "explore"},
                   expect={"property": "balloon_reaches_target", "lasso_start": 2})
    cx = write_counterexample(t, tmp_path)
    md = cx.markdown_path.read_text()
    assert "## Lasso" in md and "cycle: steps 2..3" in md
    open_loop = make_trace(steps[:2], SMALL, expect={"property": "x", "lasso_start": 2})
    with pytest.raises(CounterexampleNotReproduced):
        write_counterexample(open_loop, tmp_path / "no")
