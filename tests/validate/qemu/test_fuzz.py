"""Hostile QEMU trace logs and QMP logs: ``validate --format qemu`` refuses them with one line.

Malformed lines of every known event (digits of other scripts, numbers beyond 64 bits,
deep nesting in QMP, lines without end) are inserted into a clean log at a generated
place; the refusal must name that file and line, exit 2, and leave no file behind.
"""

from __future__ import annotations

import json
import lzma
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballast.validate.qemu.source import MAX_LINE_BYTES

from ...hostile_cli import Outcome, assert_refused, fresh, run_cli
from .qemu_lines import QemuLog

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

CLEAN = QemuLog(64).linux_run([8, 4, 12], batch=4).lines

# Digits that Python's int() or str.isdigit() take but QEMU never prints.
FOREIGN_DIGITS = ["\u0661", "\u0663\u0662", "\u00b2", "\u2075", "\uff11", "\u09e7", "\U0001d7ce"]

number = st.one_of(
    st.sampled_from(FOREIGN_DIGITS),
    st.builds(lambda a, b: f"{a}{b}", st.integers(0, 9), st.sampled_from(FOREIGN_DIGITS)),
    st.integers(21, 5000).map(lambda n: "9" * n),
    st.sampled_from(["1_0", "+5", " 7", "0x", "-", "NaN", "1e3"]))
hex_number = st.one_of(
    st.integers(17, 4000).map(lambda n: "0x" + "f" * n),
    st.sampled_from(FOREIGN_DIGITS).map(lambda d: "0x" + d),
    st.sampled_from(["0x_1", "0x", "1000", "0x-1"]))

TEMPLATES = {
    "get_config": "virtio_balloon_get_config num_pages: {n} actual: 0",
    "set_config": "virtio_balloon_set_config actual: {n} oldactual: 0",
    "to_target": "virtio_balloon_to_target balloon target: {h} num_pages: 4",
    "to_target_pages": "virtio_balloon_to_target balloon target: 0x100000 num_pages: {n}",
    "status": "virtio_set_status vdev 0x5500 val {n}",
    "queue": "virtio_queue_notify vdev 0x5500 n {n} vq 0x7f10",
    "page": "virtio_balloon_handle_output section name: pc.ram gpa: {h}",
    "event": "balloon_event opaque 0x1 addr {n}",
}


def _validate(tmp: Path, log: Path, *extra: str) -> tuple[Outcome, Path]:
    emit = tmp / "out" / "converted.jsonl"
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log),
                 "--emit-trace", str(emit), *extra])
    return o, emit


def _no_leftovers(tmp: Path) -> None:
    out = tmp / "out"
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


@FUZZ
@given(where=st.integers(0, len(CLEAN)), event=st.sampled_from(sorted(TEMPLATES)),
       n=number, h=hex_number, prefixed=st.booleans(), xz=st.booleans())
def test_malformed_numbers_in_known_events_are_refused_at_their_line(
        tmp_path: Path, where: int, event: str, n: str, h: str, prefixed: bool,
        xz: bool) -> None:
    tmp_path = fresh(tmp_path)
    bad = TEMPLATES[event].format(n=n, h=h)
    lines = CLEAN[:where] + [f"8@200.000001:{bad}" if prefixed else bad] + CLEAN[where:]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    log = tmp_path / ("trace.log.xz" if xz else "trace.log")
    log.write_bytes(lzma.compress(data) if xz else data)
    o, _ = _validate(tmp_path, log)
    assert_refused(o, file=str(log), line=where + 1)
    _no_leftovers(tmp_path)


@FUZZ
@given(where=st.integers(0, len(CLEAN) - 1),
       tid=st.one_of(st.sampled_from(FOREIGN_DIGITS), st.just("8")),
       stamp=st.one_of(st.sampled_from(FOREIGN_DIGITS).map(lambda d: f"{d}.000001"),
                       st.sampled_from(FOREIGN_DIGITS).map(lambda d: f"100.{d}"),
                       st.just("100.000001")))
def test_foreign_digits_in_the_timestamp_prefix_are_refused(tmp_path: Path, where: int,
                                                            tid: str, stamp: str) -> None:
    tmp_path = fresh(tmp_path)
    if tid == "8" and stamp == "100.000001":
        stamp = "\u0661.5"
    body = CLEAN[where].split(":", 1)[1]
    lines = list(CLEAN)
    lines[where] = f"{tid}@{stamp}:{body}"
    log = tmp_path / "trace.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    o, _ = _validate(tmp_path, log)
    assert_refused(o, file=str(log), line=where + 1)


def _qmp_line(msg: str) -> str:
    return f'{{"t": 1.0, "dir": "recv", "msg": {msg}}}'


@FUZZ
@given(depth=st.integers(17, 30_000), kind=st.sampled_from(["[", '{"a":']),
       where=st.integers(0, 2))
def test_deep_nesting_in_qmp_lines_is_refused(tmp_path: Path, depth: int, kind: str,
                                              where: int) -> None:
    tmp_path = fresh(tmp_path)
    close = "]" if kind == "[" else "}"
    good = [_qmp_line('{"QMP": {"version": {}}}'),
            '{"t": 1.1, "dir": "send", "msg": {"execute": "query-balloon", "id": 1}}',
            _qmp_line('{"return": {"actual": 4096}, "id": 1}')]
    bad = _qmp_line('{"return": ' + kind * depth + "1" + close * depth + "}")
    qmp = tmp_path / "qmp.log"
    qmp.write_text("\n".join(good[:where] + [bad] + good[where:]) + "\n")
    log = tmp_path / "trace.log"
    log.write_text("\n".join(CLEAN) + "\n")
    o, _ = _validate(tmp_path, log, "--qmp", str(qmp))
    assert_refused(o, file=str(qmp), line=where + 1)
    _no_leftovers(tmp_path)


@FUZZ
@given(value=st.one_of(st.integers(21, 5000).map(lambda n: "9" * n),
                       st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])),
       field=st.sampled_from(["t", "actual"]))
def test_huge_and_non_finite_numbers_in_qmp_lines_are_refused(tmp_path: Path, value: str,
                                                              field: str) -> None:
    tmp_path = fresh(tmp_path)
    if field == "t":
        line = f'{{"t": {value}, "dir": "recv", "msg": {{}}}}'
    else:
        line = _qmp_line(f'{{"event": "BALLOON_CHANGE", "data": {{"actual": {value}}}}}')
    qmp = tmp_path / "qmp.log"
    qmp.write_text(line + "\n")
    log = tmp_path / "trace.log"
    log.write_text("\n".join(CLEAN) + "\n")
    o, _ = _validate(tmp_path, log, "--qmp", str(qmp))
    assert_refused(o, file=str(qmp), line=1)


@pytest.mark.parametrize("which", ["trace", "qmp"])
def test_a_line_without_end_is_refused_in_linear_time(tmp_path: Path, which: str) -> None:
    """Eight times the line limit, no newline: refused where the line starts, quickly."""
    endless = "x" * (8 * MAX_LINE_BYTES)
    log, qmp = tmp_path / "trace.log", tmp_path / "qmp.log"
    log.write_text("\n".join(CLEAN) + "\n" + (endless if which == "trace" else ""))
    greeting = '{"t": 1.0, "dir": "recv", "msg": {"QMP": {"capabilities": []}}}\n'
    qmp.write_text(endless if which == "qmp" else greeting)
    start = time.monotonic()
    o, _ = _validate(tmp_path, log, "--qmp", str(qmp))
    assert time.monotonic() - start < 10
    target = log if which == "trace" else qmp
    line = len(CLEAN) + 1 if which == "trace" else 1
    assert_refused(o, file=str(target), line=line, words="longer than")
    _no_leftovers(tmp_path)


def test_a_guest_larger_than_the_model_emits_nothing(tmp_path: Path) -> None:
    lines = [f"7@100.000001:virtio_balloon_to_target balloon target: {0xffff_ffff_ffff_f000:#x} "
             "num_pages: 4"]
    log = tmp_path / "trace.log"
    log.write_text("\n".join(lines) + "\n")
    o, emit = _validate(tmp_path, log)
    assert_refused(o, file=str(log), words="more than the model can hold")
    assert not emit.exists()
    _no_leftovers(tmp_path)


def test_emit_trace_refuses_to_overwrite_its_own_input(tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    log.write_text("\n".join(CLEAN) + "\n")
    before = log.read_bytes()
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log),
                 "--emit-trace", str(log)])
    assert_refused(o, words="is the trace being read")
    assert log.read_bytes() == before
    qmp = tmp_path / "qmp.log"
    qmp.write_text("")
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log), "--qmp", str(qmp),
                 "--emit-trace", str(qmp)])
    assert_refused(o, words="QMP log")


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_emit_trace_to_a_destination_that_cannot_be_a_file(tmp_path: Path, where: str) -> None:
    log = tmp_path / "trace.log"
    log.write_text("\n".join(CLEAN) + "\n")
    dest = tmp_path / "d"
    if where == "folder":
        dest.mkdir()
    else:
        dest.write_text("x")
        dest = dest / "out.jsonl"
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log),
                 "--emit-trace", str(dest)])
    assert_refused(o, file=str(dest))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "trace.log"]


def test_the_clean_log_still_converts(tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    log.write_text("\n".join(CLEAN) + "\n")
    o, emit = _validate(tmp_path, log)
    assert o.code == 0, o
    header = json.loads(emit.read_text().splitlines()[0])
    assert header["config"]["guest_pages"] == 64
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["converted.jsonl"]


@pytest.mark.parametrize("features", [[], ["--features", "none"]])
def test_a_qmp_log_that_is_a_named_pipe_is_refused_at_once(tmp_path: Path,
                                                           features: list[str]) -> None:
    """Opening a named pipe waits for a writer (for ever with none), and the QMP log is read
    twice: refused as the trace log is, whether or not it is read for its features."""
    import os

    log = tmp_path / "trace.log"
    log.write_text("\n".join(CLEAN) + "\n")
    qmp = tmp_path / "qmp.log"
    os.mkfifo(qmp)
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log), "--qmp", str(qmp),
                 *features], seconds=10)
    assert_refused(o, file=str(qmp), words="not a regular file")


def test_a_refused_log_leaves_no_folder_made_for_its_trace(tmp_path: Path) -> None:
    """The folders --emit-trace names are made only when the converted trace is written."""
    log = tmp_path / "trace.log"
    log.write_bytes(b"\x00" * 100)
    emit = tmp_path / "new" / "deeper" / "converted.jsonl"
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log),
                 "--emit-trace", str(emit)])
    assert_refused(o, file=str(log))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.log"]
    log.write_text("\n".join(CLEAN) + "\n")
    o = run_cli(["validate", "--format", "qemu", "--no-progress", str(log),
                 "--emit-trace", str(emit)])
    assert o.code == 0, o
    assert [p.name for p in emit.parent.iterdir()] == ["converted.jsonl"]
