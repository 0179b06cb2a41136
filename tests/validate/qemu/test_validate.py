"""``ballast validate --format qemu``: the real sample is clean, each faulty variant is caught
and named, and the fast checker agrees with a full replay through the model."""

from __future__ import annotations

import io
import json
import lzma
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from ballast.cli import main
from ballast.errors import GuardError
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace as read_ballast_trace
from ballast.validate.qemu.validation import validate_qemu
from ballast.validate.suite import sample_dir

from .qemu_lines import QemuLog

SAMPLE = sample_dir()
needs_sample = pytest.mark.skipif(SAMPLE is None, reason="the QEMU sample (shared/samples/"
                                  "qemu-virtio-balloon) is not beside the repository")


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _sample_lines() -> list[str]:
    assert SAMPLE is not None
    with lzma.open(SAMPLE / "trace.log.xz", "rt") as f:
        text: str = f.read()
    return text.splitlines()


def _write(tmp_path: Path, lines: list[str], name: str = "trace.log") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


# ----------------------------------------------------------------------------- the sample


@needs_sample
def test_the_real_sample_validates_clean() -> None:
    assert SAMPLE is not None
    code, out, _ = _run("validate", "--format", "qemu", str(SAMPLE / "trace.log.xz"),
                        "--qmp", str(SAMPLE / "qmp.log"), "--json", "--no-progress")
    data = json.loads(out)
    assert code == 0 and data["violation"] is None and data["warnings"] == []
    assert data["pages_inflated"] == data["pages_deflated"] == 65536
    assert data["guest_pages"] == 131072
    assert data["features"] == ["STATS_VQ"]


@needs_sample
@pytest.mark.parametrize("qmp", ["", "\n\n"])
def test_a_qmp_log_that_recorded_nothing_is_refused(tmp_path: Path, qmp: str) -> None:
    """An empty QMP log is no session to cross-check the trace with: refused as input (its
    checks said every target the device took was asked for by no one: exit 1)."""
    trace = _write(tmp_path, _sample_lines()[:2000])
    log = tmp_path / "qmp.jsonl"
    log.write_text(qmp)
    code, out, err = _run("validate", "--format", "qemu", str(trace), "--qmp", str(log),
                          "--no-progress")
    assert code == 2, out + err
    assert f"{log}: no QMP message" in err and "qmp_balloon_request" not in out


def _buffers(lines: list[str]) -> list[tuple[int, int, int]]:
    """(queue, first page line, notify line) of each buffer of the sample."""
    out = []
    for i, text in enumerate(lines):
        if "virtio_queue_notify" in text and (" n 0 " in text or " n 1 " in text):
            queue = 0 if " n 0 " in text else 1
            j = i + 1
            while "handle_output" in lines[j]:
                j += 1
            if j > i + 1:
                out.append((queue, i + 1, j))
    return out


def _caught(tmp_path: Path, lines: list[str], *flags: str) -> dict[str, object]:
    code, out, _ = _run("validate", "--format", "qemu", str(_write(tmp_path, lines)), "--json",
                        "--no-progress", *flags)
    data: dict[str, object] = json.loads(out)
    assert code == 1, data
    return data


@needs_sample
def test_sample_with_a_double_inflate_is_caught(tmp_path: Path) -> None:
    lines = _sample_lines()
    infl = [b for b in _buffers(lines) if b[0] == 0]
    first_page = lines[infl[0][1]]
    q, start, _ = infl[3]
    lines.insert(start, first_page)  # the fourth buffer names a page of the first again
    data = _caught(tmp_path, lines)
    v = data["violation"]
    assert isinstance(v, dict)
    assert v["rule"] == "virtio_5_5_6_no_page_inflated_twice"
    assert v["line"] == start  # the buffer's virtio_queue_notify line (1-based)
    assert v["action"] == "balloon_inflate"


@needs_sample
def test_sample_with_a_deflate_of_a_page_never_inflated_is_caught(tmp_path: Path) -> None:
    lines = _sample_lines()
    q, start, _ = [b for b in _buffers(lines) if b[0] == 1][0]
    prefix = lines[start].split("gpa: ")[0]
    lines[start] = prefix + "gpa: 0x1000"  # PFN 1: low memory Linux never gives away
    data = _caught(tmp_path, lines)
    v = data["violation"]
    assert isinstance(v, dict)
    assert v["rule"] == "virtio_5_5_6_1_rule5_deflate_only_balloon_pages"
    assert "PFN 1 " in str(v["message"])


@needs_sample
def test_sample_with_actual_not_matching_is_caught(tmp_path: Path) -> None:
    lines = _sample_lines()
    i = next(n for n, t in enumerate(lines) if "set_config actual: 512 " in t)
    lines[i] = lines[i].replace("actual: 512 ", "actual: 513 ")
    data = _caught(tmp_path, lines)
    v = data["violation"]
    assert isinstance(v, dict)
    assert v["rule"] == "virtio_5_5_6_1_rule9_actual_matches_balloon" and v["line"] == i + 1


@needs_sample
def test_sample_with_a_page_used_before_its_inflate_ack_is_caught(tmp_path: Path) -> None:
    """The guest takes a page back (deflateq) before the device acknowledged its inflate:
    the device's only view of a use (rule 5), so rules 8 and 7 break on that line."""
    lines = _sample_lines()
    q, start, notify = [b for b in _buffers(lines) if b[0] == 0][5]
    tid = lines[notify].split("@")[0]
    page = lines[start]
    del lines[notify]  # no acknowledgement of this inflate yet ...
    lines[notify:notify] = [  # ... when the same page goes on deflateq
        f"{tid}@1795703470.000000:virtio_queue_notify vdev 0x55ba7e1fe600 n 1 vq 0x7fe7402d1088",
        page,
        f"{tid}@1795703470.000001:virtio_notify vdev 0x55ba7e1fe600 vq 0x7fe7402d1088",
    ]
    data = _caught(tmp_path, lines)
    v = data["violation"]
    assert isinstance(v, dict)
    assert v["rule"] == "virtio_5_5_6_1_rule8_no_deflate_before_inflate_ack"
    assert "virtio_5_5_6_1_rule7_no_use_before_inflate_ack" in str(v["also"])


@needs_sample
def test_sample_cut_short_of_its_target_is_a_warning_not_a_violation(tmp_path: Path) -> None:
    lines = _sample_lines()
    i = next(n for n, t in enumerate(lines) if "set_config actual: 16384 " in t)
    p = _write(tmp_path, lines[: i + 1])
    code, out, _ = _run("validate", "--format", "qemu", str(p), "--json", "--no-progress")
    data = json.loads(out)
    assert code == 0 and data["violation"] is None
    assert [w["rule"] for w in data["warnings"]] == ["virtio_5_5_6_1_rule1_should_reach_target"]
    code, text, _ = _run("validate", "--format", "qemu", str(p), "--strict", "--no-progress")
    assert code == 1 and "warning: SHOULD virtio_5_5_6_1_rule1_should_reach_target" in text


# ----------------------------------------------------------- programmed traces and replay


def _clean_log() -> QemuLog:
    return QemuLog(64).linux_run([10, 3, 12, 0])


def _variants() -> dict[str, tuple[QemuLog, str]]:
    double = QemuLog(64).linux_run([4])
    double.target(8).read(8, 4).inflate([16, 40, 41, 42])
    never = QemuLog(64).linux_run([8])
    never.target(4).read(4, 8).deflate([16, 17, 18, 63])
    actual = QemuLog(64).linux_run([4])
    actual.target(8).read(8, 4).inflate([40, 41, 42, 43]).write(9, 4)
    early = QemuLog(64).linux_run([4])
    early.target(8).read(8, 4).inflate([40, 41, 42, 43], ack=False).deflate([40])
    unasked = QemuLog(64).linux_run([8])
    unasked.read(8, 8).deflate([16])
    return {
        "double": (double, "virtio_5_5_6_no_page_inflated_twice"),
        "never": (never, "virtio_5_5_6_1_rule5_deflate_only_balloon_pages"),
        "actual": (actual, "virtio_5_5_6_1_rule9_actual_matches_balloon"),
        "early": (early, "virtio_5_5_6_1_rule8_no_deflate_before_inflate_ack"),
        "unasked": (unasked, "virtio_5_5_6_1_rule3_deflate_only_when_asked"),
    }


def test_programmed_clean_trace_validates_and_replays_through_the_model(tmp_path: Path) -> None:
    p = _write(tmp_path, _clean_log().lines)
    emitted = tmp_path / "converted.jsonl"
    out = validate_qemu(p, frozenset(), emit_trace=str(emitted))
    assert out.report.violation is None and out.report.warnings == []
    result = replay(read_ballast_trace(emitted))
    assert result.outcome is ReplayOutcome.OK, result.describe()
    assert result.steps_run > 20


@pytest.mark.parametrize("name", sorted(_variants()))
def test_fast_checker_agrees_with_full_model_replay(tmp_path: Path, name: str) -> None:
    """The differential proof: each faulty trace is caught by the fast checker under the
    expected rule, and the converted trace is rejected by the reference model too."""
    log, rule = _variants()[name]
    p = _write(tmp_path, log.lines)
    emitted = tmp_path / "converted.jsonl"
    out = validate_qemu(p, frozenset(), emit_trace=str(emitted))
    assert out.report.violation is not None and out.report.violation.rule == rule
    result = replay(read_ballast_trace(emitted))
    assert result.outcome is not ReplayOutcome.OK, name


def test_compaction_is_allowed(tmp_path: Path) -> None:
    """Linux page migration: a one-page inflate of the new page, a one-page deflate of the
    old one, ``actual`` unchanged (not a model behaviour; the specification allows it)."""
    log = QemuLog(64).linux_run([4])
    log.inflate([50]).deflate([16])
    out = validate_qemu(_write(tmp_path, log.lines), frozenset())
    assert out.report.violation is None


def test_a_deflate_right_after_a_migration_may_hand_back_the_new_page(tmp_path: Path) -> None:
    """Linux's migration callback puts the new page on its balloon list once the device has
    acknowledged both buffers, and writes no ``actual`` (the size is unchanged): a deflate
    that follows at once may hand back the new page (seen in a live capture: compaction,
    then the host's target down to zero before any ``actual`` write)."""
    log = QemuLog(64).linux_run([4])  # the balloon: pages 16..19
    log.inflate([50]).deflate([16])  # page 16 migrated to page 50
    log.target(0).read(0, 4).deflate([17, 18, 19, 50]).write(0, 4)
    p = _write(tmp_path, log.lines)
    emitted = tmp_path / "migrated.jsonl"
    out = validate_qemu(p, frozenset(), emit_trace=str(emitted))
    assert out.report.violation is None and out.model is not None and out.model.ok, out.model
    assert replay(read_ballast_trace(emitted)).outcome is ReplayOutcome.OK
    # Handing back the old page instead is caught: it left the balloon with the migration.
    log = QemuLog(64).linux_run([4])
    log.inflate([50]).deflate([16])
    log.target(0).read(0, 4).deflate([16, 17, 18, 19]).write(0, 4)
    out = validate_qemu(_write(tmp_path, log.lines), frozenset())
    assert out.model is not None and not out.model.ok


def test_an_actual_write_during_a_migration_is_taken_when_the_migration_ends(
        tmp_path: Path) -> None:
    """Linux writes ``actual`` outside the balloon lock, so a fill's write may come while a
    migration holds the lock with its new page acknowledged; the model's module takes that
    fill's acknowledgements with the migration's, after the old page's release (taking them
    at the write would count the migrating page twice, which the model refuses)."""
    log = QemuLog(64).linux_run([4])  # the balloon: pages 16..19
    log.target(6).read(6, 4).inflate([40, 41])  # acknowledged, no actual written yet
    # Page 16 migrates to 50; the fill's write comes before the device acknowledges 50.
    log.inflate([50], ack=False).write(6, 4).notify(0).deflate([16])
    log.read(6, 6)
    p = _write(tmp_path, log.lines)
    emitted = tmp_path / "migrating.jsonl"
    out = validate_qemu(p, frozenset(), emit_trace=str(emitted))
    assert out.report.violation is None and out.model is not None and out.model.ok, out.model
    steps = [s for s in read_ballast_trace(emitted).steps]
    names = [s.action.name for s in steps]
    assert names[-6:] == ["balloon_migrate", "vmm_reclaim", "balloon_migrate_release",
                          "vmm_release", "balloon_complete", "balloon_poll"], names
    assert steps[-2].observe == {"vms/0/module/actual": 6}
    assert replay(read_ballast_trace(emitted)).outcome is ReplayOutcome.OK


def test_deflate_on_oom_feature_allows_deflating_at_target(tmp_path: Path) -> None:
    log = QemuLog(64).linux_run([8])
    log.deflate([16, 17, 18, 19]).write(4, 8)
    p = _write(tmp_path, log.lines)
    assert validate_qemu(p, frozenset()).report.violation is not None
    code, _, _ = _run("validate", "--format", "qemu", str(p), "--features", "DEFLATE_ON_OOM",
                      "--no-progress")
    assert code == 0


def test_an_oom_deflate_between_an_acknowledgement_and_the_actual_write_is_explained(
        tmp_path: Path) -> None:
    """Linux's deflate-on-OOM shrinker may deflate pages whose inflate the device has just
    acknowledged, before the driver writes ``actual`` (seen in a real capture under memory
    pressure): the driver already holds them in its balloon list."""
    log = QemuLog(64).linux_run([8])
    log.target(12).read(12, 8).inflate([40, 41])  # acknowledged, no actual written yet
    log.deflate([16, 17, 18, 19, 40, 41]).write(4, 8)
    p = _write(tmp_path, log.lines)
    emitted = tmp_path / "oom.jsonl"
    out = validate_qemu(p, frozenset({"DEFLATE_ON_OOM"}), emit_trace=str(emitted))
    assert out.report.violation is None and out.model is not None and out.model.ok, out.model
    assert replay(read_ballast_trace(emitted)).outcome is ReplayOutcome.OK
    # Without the feature an OOM deflate is no driver behaviour: still caught.
    assert not validate_qemu(p, frozenset()).clean


def _oom_race(write: int, deflated: list[int]) -> QemuLog:
    """A guest at 12 balloon pages whose worker writes ``actual`` as ``write`` while the
    OOM notifier's deflate of ``deflated`` is still on its way to the device."""
    log = QemuLog(64).linux_run([8])
    log.target(12).read(12, 8).inflate([24, 25, 26, 27])  # the device knows 12 pages
    log.write(write, 8)  # the worker's write, from a count the notifier already lowered
    log.deflate(deflated).write(12 - len(deflated), write)  # the notifier's own write
    return log


def test_an_actual_write_that_counts_a_deflate_still_on_its_way_is_explained(
        tmp_path: Path) -> None:
    """Seen live under memory pressure: Linux lowers its count when the OOM notifier takes a
    page off its balloon list, and the worker writes ``actual`` from that count before the
    notifier's deflate buffer reaches the device. In the driver's order the deflate came
    first; both judges accept it, and the converted trace replays."""
    oom = frozenset({"DEFLATE_ON_OOM"})
    p = _write(tmp_path, _oom_race(11, [16]).lines)
    emitted = tmp_path / "race.jsonl"
    out = validate_qemu(p, oom, emit_trace=str(emitted))
    assert out.report.violation is None and out.model is not None and out.model.ok, out.model
    assert replay(read_ballast_trace(emitted)).outcome is ReplayOutcome.OK
    # The validator says which write it read in the driver's order.
    write_line = next(n for n, t in enumerate(_oom_race(11, [16]).lines, 1)
                      if "actual: 11 oldactual: 8" in t)
    assert out.moved is not None and (out.moved.count, out.moved.lines) == (1, [write_line])
    code, text, _ = _run("validate", "--format", "qemu", str(p), "--features", "DEFLATE_ON_OOM",
                         "--no-progress")
    assert code == 0 and "1 actual write judged after the report it already counted" in text
    assert f"first at line {write_line}" in text
    code, text, _ = _run("validate", "--format", "qemu", str(p), "--features", "DEFLATE_ON_OOM",
                         "--json", "--no-progress")
    assert json.loads(text)["writes_in_driver_order"] == {"count": 1, "lines": [write_line]}
    # Two pages on their way, in one buffer or in two acknowledged one after the other.
    assert validate_qemu(_write(tmp_path, _oom_race(10, [16, 17]).lines), oom).clean
    log = QemuLog(64).linux_run([8])
    log.target(12).read(12, 8).inflate([24, 25, 26, 27]).write(10, 8)
    log.deflate([16]).deflate([17]).write(10, 10)
    assert validate_qemu(_write(tmp_path, log.lines), oom).clean
    # The other way round: the notifier writes the count while the worker's inflate buffer,
    # already counted, is on its way.
    log = QemuLog(64).linux_run([8])
    log.target(12).read(12, 8).write(12, 8).inflate([24, 25, 26, 27]).write(12, 12)
    out = validate_qemu(_write(tmp_path, log.lines), oom)
    assert out.clean and out.model is not None and out.model.steps > 10, out.model
    assert out.moved is not None and out.moved.count == 1


@pytest.mark.parametrize("case", ["deflate passes the value", "deflate falls short",
                                  "inflate follows", "nothing follows"])
def test_an_actual_write_no_following_report_explains_is_caught_at_its_line(
        tmp_path: Path, case: str) -> None:
    """The write waits only for reports that bring the balloon exactly to its value, in its
    direction: anything else leaves it where it was logged, and rule 9 flags it there."""
    oom = frozenset({"DEFLATE_ON_OOM"})
    if case == "deflate passes the value":
        log = _oom_race(11, [16, 17])
    elif case == "deflate falls short":
        log = _oom_race(10, [16])
    elif case == "inflate follows":
        log = QemuLog(64).linux_run([8])
        log.target(16).read(16, 8).inflate([24, 25, 26, 27]).write(11, 8)
        log.inflate([28, 29, 30, 31]).write(16, 11)
    else:
        log = QemuLog(64).linux_run([8])
        log.target(12).read(12, 8).inflate([24, 25, 26, 27]).write(11, 8)
    line = next(n for n, t in enumerate(log.lines, 1) if "set_config actual: " in t
                and "oldactual: 8" in t and n > len(QemuLog(64).linux_run([8]).lines))
    out = validate_qemu(_write(tmp_path, log.lines), oom)
    v = out.report.violation
    assert v is not None and v.rule == "virtio_5_5_6_1_rule9_actual_matches_balloon"
    assert v.line == line
    assert out.model is not None and not out.model.ok
    assert out.moved is not None and out.moved.count == 0


def test_a_target_lowered_under_an_inflate_in_flight_is_explained(tmp_path: Path) -> None:
    """Seen live: the host lowers the target while the driver's inflate buffer is on its way;
    QEMU's device, which checks no target, acknowledges every page, and the driver then
    deflates the excess. Both judges accept it; the model's VMM that counts the target
    (``accept_beyond_target`` off) would not."""
    log = QemuLog(64).linux_run([4])
    log.target(8).read(8, 4).inflate([40, 41, 42, 43], ack=False)
    log.target(6).notify(0)  # the device acknowledges the buffer after the host lowered it
    log.write(8, 4).read(6, 8).deflate([40, 41]).write(6, 8)
    p = _write(tmp_path, log.lines)
    emitted = tmp_path / "lowered.jsonl"
    out = validate_qemu(p, frozenset(), emit_trace=str(emitted))
    assert out.clean and out.model is not None and out.model.steps > 15, out.model
    trace = read_ballast_trace(emitted)
    assert trace.header.config.accept_beyond_target
    assert replay(trace).outcome is ReplayOutcome.OK
    model = BalloonModel(trace.header.config.replace(accept_beyond_target=False))
    state = model.init_states()[0]
    with pytest.raises(GuardError, match="must refuse the rest"):
        for step in trace.steps:
            state = model.next_state(state, step.action)


def test_bad_input_is_exit_2_with_file_and_line_and_no_partial_output(tmp_path: Path) -> None:
    log = _clean_log()
    log.lines.insert(5, "8@1.0:virtio_balloon_set_config actual: x oldactual: 0")
    p = _write(tmp_path, log.lines)
    emitted = tmp_path / "out.jsonl"
    code, out, err = _run("validate", "--format", "qemu", str(p), "--emit-trace", str(emitted))
    assert code == 2 and out == ""
    assert f"{p}:6:" in err and "virtio_balloon_set_config" in err
    assert "Traceback" not in err
    assert not emitted.exists() and not list(tmp_path.glob(".emit.*"))
    code, _, err = _run("validate", "--format", "qemu", str(tmp_path / "missing.log"))
    assert code == 2 and "missing.log" in err
    code, _, err = _run("validate", "--format", "qemu", str(p), "--features", "BOGUS")
    assert code == 2 and "BOGUS" in err
    for empty in ("", " , "):  # an unset variable is no claim that nothing was negotiated
        code, out, err = _run("validate", "--format", "qemu", str(p), "--features", empty)
        assert code == 2 and out == "" and "--features is empty" in err


@pytest.mark.parametrize("content, expected", [
    (b"", "empty: no line"),
    (b"\x00\x01\xfe\xff binary\n", "1: bytes that are no text"),
    (lzma.compress(b""), "empty: no line"),
    (lzma.compress(bytes(range(256)) * 16), "1: bytes that are no text"),
], ids=["empty", "binary", "empty-xz", "binary-xz"])
def test_an_empty_or_binary_log_is_bad_input(tmp_path: Path, content: bytes,
                                             expected: str) -> None:
    """A file of no line, or of bytes that are no text and no balloon event, is no QEMU trace
    log: bad input (exit 2) naming it, as an empty project trace is."""
    p = tmp_path / ("trace.log.xz" if content[:6] == b"\xfd7zXZ\x00" else "trace.log")
    p.write_bytes(content)
    code, out, err = _run("validate", "--format", "qemu", str(p))
    assert code == 2 and out == ""
    assert err.startswith(f"ballast: error: {p}") and expected in err, err


def test_a_balloon_event_damaged_beyond_recognition_is_named_beside_the_verdict(
        tmp_path: Path) -> None:
    """A line of no known event is ignored (other devices' events are), so a damaged
    balloon event is lost, and the verdict is of a log without it: the note names it."""
    lines = QemuLog(64).linux_run([4, 0]).lines
    clean = validate_qemu(_write(tmp_path, lines), frozenset())
    assert clean.ignored is not None and clean.ignored.count == 0
    assert clean.ignored_note is None
    k = next(i for i, line in enumerate(lines) if "virtio_balloon_set_config" in line)
    damaged = _write(tmp_path, lines[:k] + ["garbage line here"] + lines[k + 1:], "d.log")
    code, out, _ = _run("validate", "--format", "qemu", str(damaged))
    assert (f"note: 1 line of no balloon event ignored, first at line {k + 1}: "
            "'garbage line here'") in out
    code, out, _ = _run("validate", "--format", "qemu", "--json", str(damaged))
    assert json.loads(out)["ignored_lines"] == {"count": 1, "first_line": k + 1,
                                                "first_text": "garbage line here"}


def test_a_text_log_with_no_balloon_event_is_inconclusive_not_clean(tmp_path: Path) -> None:
    """Another text file, or a QEMU run without tracing, breaks no rule; passing it would
    pass a capture that recorded nothing."""
    p = tmp_path / "trace.log"
    p.write_bytes(b"unrelated text\nqemu-system-x86_64: warning\n")
    code, out, err = _run("validate", "--format", "qemu", str(p))
    assert code == 3 and err == ""
    assert (out.startswith(f"{p}: inconclusive: no virtio-balloon trace event")
            and "model" not in out)
    code, out, _ = _run("validate", "--format", "qemu", "--json", str(p))
    data = json.loads(out)
    assert code == 3 and data["exit"] == 3 and data["events"] == 0
    assert "nothing was judged" in data["nothing_judged"]
    assert validate_qemu(p, frozenset()).nothing_judged is not None


def test_a_log_with_balloon_events_is_judged_and_one_with_device_status_alone_is_not(
        tmp_path: Path) -> None:
    judged = validate_qemu(_write(tmp_path, QemuLog(64).linux_run([4]).lines), frozenset())
    assert judged.report.events > 0 and judged.nothing_judged is None
    assert judged.exit_code() == 0
    # The device reset by a guest whose driver never asked for a page: no balloon event.
    status = validate_qemu(_write(tmp_path, ["virtio_set_status vdev 0x1 val 15"], "s.log"),
                           frozenset())
    assert status.report.events == 0 and status.exit_code() == 3


def test_xz_and_plain_give_the_same_answer(tmp_path: Path) -> None:
    lines = QemuLog(64).linux_run([4]).lines
    lines.insert(0, "unrelated line")
    plain = _write(tmp_path, lines)
    packed = tmp_path / "trace.log.xz"
    packed.write_bytes(lzma.compress(plain.read_bytes()))
    a = validate_qemu(plain, frozenset()).report
    b = validate_qemu(packed, frozenset()).report
    assert (a.events, a.pages, a.violation) == (b.events, b.pages, b.violation)
    assert os.path.getsize(packed) > 0


# ------------------------------------------------- what the device gives back to the host

HUGE = 2 << 20
"""A 2 MiB host huge page: 512 balloon pages."""


def test_a_host_page_given_back_once_all_its_pages_are_in_the_balloon_is_clean(
        tmp_path: Path) -> None:
    # Two buffers of 256 pages read in one notification complete the host page at 2 MiB.
    log = QemuLog(2048).target(512).read(512, 0)
    log.inflate(list(range(512, 768)))
    log.inflate(list(range(768, 1024)), discards={1023: HUGE}, kicked=False)
    log.write(512, 0).read(512, 512)
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    out = validate_qemu(trace, frozenset())
    assert out.report.violation is None and out.model is not None and out.model.ok, out
    assert out.ram is not None and (out.ram.discards, out.ram.host_page_bytes) == (1, HUGE)
    assert out.ram.discarded_pages == 512
    code, text, _ = _run("validate", "--format", "qemu", str(trace), "--json")
    assert code == 0 and json.loads(text)["given_back"]["host_page_bytes"] == HUGE


def test_a_host_page_given_back_with_half_its_pages_in_the_balloon_is_caught(
        tmp_path: Path) -> None:
    # 256 pages of the host page at 2 MiB, and QEMU gives the whole host page back.
    log = QemuLog(2048).linux_inflate(list(range(512, 768)), batch=256, discards={767: HUGE})
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    line = next(n for n, t in enumerate(log.lines, 1) if "ram_block_discard_range" in t)
    out = validate_qemu(trace, frozenset())
    v = out.report.violation
    assert v is not None and v.rule == "virtio_5_5_6_device_discards_only_given_pages", v
    assert v.line == line and "PFN 768" in v.message
    code, text, _ = _run("validate", "--format", "qemu", str(trace))
    assert code == 1 and f":{line}: MUST virtio_5_5_6_device_discards_only_given_pages" in text


def test_a_free_page_report_before_any_discard_located_guest_ram_is_not_judged(
        tmp_path: Path) -> None:
    features = frozenset({"STATS_VQ", "PAGE_REPORTING"})
    log = QemuLog(2048)
    log.buffer(3, [], discards={1024: HUGE})  # where is guest RAM? nothing said so yet
    log.linux_inflate([5, 6], batch=2, discards={5: 4096, 6: 4096})
    log.buffer(3, [], discards={1024: HUGE})  # now located: pages 1024..1535
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    out = validate_qemu(trace, features)
    assert out.clean and out.model is not None and out.model.ok
    assert out.ram is not None and (out.ram.reports, out.ram.unlocated) == (1, 1)
    from ballast.validate.qemu.scenarios import unjudged_buffers
    assert unjudged_buffers(trace, features) == {"reporting_vq": 1}
    code, text, _ = _run("validate", "--format", "qemu", str(trace), "--features",
                         "STATS_VQ,PAGE_REPORTING")
    assert code == 0 and "1 discards or reports not located (not judged)" in text


def test_a_guest_too_large_for_one_ram_address_leaves_its_discards_unlocated(
        tmp_path: Path) -> None:
    log = QemuLog(0xB0000).linux_inflate([5, 6], batch=2, discards={5: 4096, 6: 4096})  # 2.75 GiB
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    out = validate_qemu(trace, frozenset(), model=False)
    assert out.clean and out.ram is not None and (out.ram.discards, out.ram.unlocated) == (0, 2)


def test_a_discard_past_the_guest_is_not_located_and_one_past_any_guest_is_refused(
        tmp_path: Path) -> None:
    # 1 GiB given back while a 64-page guest's page 5 was read: not a page of this guest, so
    # not located (said, not judged), rather than 262,144 pages given back.
    log = QemuLog(64).linux_inflate([5, 6], batch=2, discards={5: 1 << 30})
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    out = validate_qemu(trace, frozenset())
    assert out.ram is not None and (out.ram.discards, out.ram.unlocated) == (0, 1)
    # 1 TiB is more than any guest the model holds: bad input naming the line, at once
    # (it listed 268 million pages one by one).
    huge = [t.replace("+ 0x40000000:", "+ 0x10000000000:") for t in log.lines]
    assert huge != log.lines
    trace.write_text("\n".join(huge) + "\n")
    line = next(n for n, t in enumerate(huge, 1) if "0x10000000000" in t)
    code, _, err = _run("validate", "--format", "qemu", str(trace))
    assert code == 2 and f"trace.log:{line}: a discard of 0x10000000000 bytes" in err, err
