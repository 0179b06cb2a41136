"""Named captures of the real system: each one (slow: it boots QEMU) passes both judges and
the QMP cross-checks, and says what no judge looked into."""

from __future__ import annotations

import doctest
import io
import json
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import ballast.validate.qemu.scenarios as scenarios
from ballast.cli import main
from ballast.validate.qemu.validation import validate_qemu
from ballast.validate.qemu.guest import free_huge_pages_mib
from ballast.validate.qemu.scenarios import (NOT_CAPTURED, SCENARIOS, queue_names, run_scenario,
                                             unjudged_buffers)

from .qemu_lines import QemuLog


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_buffers_whose_contents_the_trace_hides_are_counted_by_name(tmp_path: Path) -> None:
    log = QemuLog(64).linux_run([4])
    log.buffer(3, [])  # with STATS_VQ and PAGE_REPORTING, queue 3 is the reporting queue
    log.buffer(2, [])
    log.buffer(3, [])
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    features = frozenset({"STATS_VQ", "PAGE_REPORTING"})
    assert queue_names(features)[3] == "reporting_vq"
    assert unjudged_buffers(trace, features) == {"reporting_vq": 2, "statsq": 1}
    assert unjudged_buffers(trace, frozenset()) == {"queue 2": 1, "queue 3": 2}
    assert validate_qemu(trace, features).clean  # ... which the judges pass: hence the count


def test_every_scenario_is_listed_with_its_summary() -> None:
    code, out, _ = _run("capture", "qemu", "--help")
    assert code == 0
    for name, sc in SCENARIOS.items():
        assert name in out and sc.summary.split(":")[0][:20] in " ".join(out.split())
        assert all(0 < t <= sc.options.guest_mib for t in sc.targets_mib)
    assert "huge-pages" in SCENARIOS and "hint contents" in NOT_CAPTURED
    assert doctest.testmod(scenarios).failed == 0


def test_an_unknown_scenario_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _run("capture", "qemu", "--out", str(tmp_path), "--scenario", "no-such")
    assert code == 2 and "--scenario" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_passes_both_judges(tmp_path: Path, name: str) -> None:
    if shutil.which("qemu-system-x86_64") is None and "CI" not in os.environ:
        pytest.skip("qemu-system-x86_64 is not installed (run .ci/install-qemu.sh); "
                    "in CI this fails instead")
    if (SCENARIOS[name].options.huge_pages
            and free_huge_pages_mib() < SCENARIOS[name].options.guest_mib):
        pytest.skip(f"{SCENARIOS[name].options.guest_mib} MiB of free 2 MiB huge pages are not "
                    "reserved on this host (`.ci/reserve-huge-pages.sh`, as root)")
    run = run_scenario(name, tmp_path / name)
    sc = run.scenario
    assert all(s.reached for s in run.result.steps), run.result.steps
    emitted = tmp_path / f"{name}.model.jsonl"
    out = validate_qemu(run.result.trace_log, run.features, qmp=run.result.qmp_log,
                        emit_trace=str(emitted))
    assert out.report.violation is None, out.report.violation
    assert out.model is not None and out.model.ok and out.model.steps > 0, out.model
    assert out.qmp == [], out.qmp
    if sc.options.deflate_on_oom:
        assert "DEFLATE_ON_OOM" in run.features and out.report.deflated > 0
    if sc.options.free_page_reporting:  # reports judged by both judges, none left unjudged
        assert "PAGE_REPORTING" in run.features and out.ram is not None and out.ram.reports >= 1
        assert "reporting_vq" not in run.unjudged and out.ram.unlocated == 0
    if sc.options.free_page_hint:  # a hint cycle ran; what it carried is said not judged
        assert "FREE_PAGE_HINT" in run.features and sc.notes
        assert (run.result.migrations == sc.migrations == 1
                and run.unjudged.get("free_page_vq", 0) >= 1)
    if sc.options.huge_pages:  # the host pages the balloon held whole, and what QEMU gave back
        assert run.huge_pages is not None and run.huge_pages[0] > 0
        assert any(line.startswith("huge pages:") for line in run.coverage_lines())
    if sc.options.stats_interval_s:
        assert run.unjudged.get("statsq", 0) >= 2
    if sc.compaction:
        assert run.result.balloon_migrate and out.report.deflated >= run.result.balloon_migrate
    if sc.resets:
        assert run.result.resets == sc.resets
    assert run.coverage_lines() or not (run.unjudged or sc.notes)
    code, replayed, _ = _run("replay", str(emitted))  # the model trace replays clean
    assert code == 0 and "every property holds" in replayed, replayed


@pytest.mark.slow
def test_capture_cli_runs_a_scenario_and_says_what_was_not_judged(tmp_path: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None and "CI" not in os.environ:
        pytest.skip("qemu-system-x86_64 is not installed (run .ci/install-qemu.sh); "
                    "in CI this fails instead")
    code, out, err = _run("capture", "qemu", "--out", str(tmp_path / "cap"), "--scenario", "stats",
                          "--json")
    assert code == 0, (out, err)
    data = json.loads(out)
    assert data["scenario"] == "stats" and data["model"]["ok"] and data["qmp"]["broken"] == []
    assert any("statsq" in line for line in data["not_judged"])
    summary = (tmp_path / "cap" / "report.md").read_text()
    assert summary.startswith("# QEMU capture stats: clean") and "statsq" in summary
