"""The compact report of a QEMU validation: one row per host target, the judges' verdicts,
the first finding with its line -- as large as the number of requests, not the guest."""

from __future__ import annotations

import doctest
from pathlib import Path

import ballast.validate.qemu.report as report
from ballast.validate.qemu.validation import validate_qemu
from ballast.validate.qemu.report import compact_report

from .qemu_lines import QemuLog


def test_a_clean_capture_has_a_row_per_target(tmp_path: Path) -> None:
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(QemuLog(4096).linux_run([10, 3, 12, 0]).lines) + "\n")
    text = compact_report(trace, validate_qemu(trace, frozenset()))
    assert text.startswith("# QEMU capture: clean")
    assert "every property holds" in text and "VirtIO 5.5 rules: hold" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[2].strip() for row in rows] == ["10", "3", "12", "0"]
    assert len(text) < 2000  # the size of the requests, not of the 4,096-page guest


def test_a_broken_capture_names_the_rule_and_the_model_step(tmp_path: Path) -> None:
    log = QemuLog(64).linux_run([4])
    notify = len(log.lines) + 1  # the line of the bad buffer's virtio_queue_notify
    log.inflate([16])  # a page already in the balloon
    log.write(5, 4)
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    text = compact_report(trace, validate_qemu(trace, frozenset()), title="broken")
    assert text.startswith("# broken: NOT clean")
    assert f"`virtio_5_5_6_no_page_inflated_twice` broken at line {notify}:" in text
    # the model stops there too
    assert "reference model: step" in text and f"(line {notify})" in text


def test_a_capture_with_no_balloon_event_says_nothing_was_judged(tmp_path: Path) -> None:
    trace = tmp_path / "trace.log"
    trace.write_text("qemu-system-x86_64: terminating on signal 15\n")
    text = compact_report(trace, validate_qemu(trace, frozenset()), title="empty")
    assert text.startswith("# empty: nothing judged")


def test_doctests() -> None:
    result = doctest.testmod(report)
    assert result.attempted > 0 and result.failed == 0
