"""Live property-based testing of QEMU + Linux: the parts that need no QEMU; the real thing,
20 Hypothesis-chosen examples over the balloon devices (a guest booted per device drawn,
reboots and live migrations among the operations) judged clean by the rules and the model
(in the default suite: a few minutes under TCG on 2 cores); and (slow) a longer run and a
seeded deviation that is caught, shrunk, written and replayed."""

from __future__ import annotations

import doctest
import io
import json
import os
import shutil
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

import ballast.validate.qemu.live as live
from ballast.cli import main
from ballast.validate.qemu.guest import CaptureError
from ballast.validate.qemu.live import (
    DEFAULT_DEVICE,
    DEVICES,
    FAULTS,
    OP_KINDS,
    SHRINK_RUNS,
    LiveOp,
    LiveScenario,
    SegmentJudge,
    live_test,
    ops_strategy,
    read_scenario,
)

from .qemu_lines import QemuLog

GUEST_PAGES = 64


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _require_qemu() -> None:
    if shutil.which("qemu-system-x86_64") is None and "CI" not in os.environ:
        pytest.skip("qemu-system-x86_64 is not installed (run .ci/install-qemu.sh); "
                    "in CI this fails instead")


# ------------------------------------------------------------------ no QEMU needed


@given(ops_strategy(256, deflate_on_oom=True))
@settings(max_examples=50, deadline=None, database=None)
def test_examples_stay_within_what_the_guest_survives(ops: list[LiveOp]) -> None:
    assert 1 <= len(ops) <= 4
    assert sum(op.kind == "reboot" for op in ops) <= 1  # a reboot costs a boot
    for op in ops:
        assert op.kind in OP_KINDS
        if op.kind == "target":
            assert 160 <= op.mib <= 256 and op.mib % 16 == 0
        if op.kind == "pressure":
            assert op.mib in (32, 64, 96)


@given(ops_strategy(256, deflate_on_oom=False))
@settings(max_examples=50, deadline=None, database=None)
def test_without_deflate_on_oom_neither_pressure_nor_a_rebind_is_drawn(ops: list[LiveOp]) -> None:
    assert {op.kind for op in ops} <= {"target", "compact", "migrate", "reboot"}


def test_a_reboot_is_drawn_at_most_once_and_shrinks_away() -> None:
    from hypothesis import find

    quick = settings(database=None, max_examples=300)
    rebooted = find(ops_strategy(256, deflate_on_oom=True),
                    lambda ops: any(op.kind == "reboot" for op in ops), settings=quick)
    assert len(rebooted) == 2 and [op.kind for op in rebooted].count("reboot") == 1, rebooted
    # A failure that needs no reboot shrinks to an example without one.
    smallest = find(ops_strategy(256, deflate_on_oom=True),
                    lambda ops: sum(op.kind == "compact" for op in ops) >= 2, settings=quick)
    assert smallest == [LiveOp("compact"), LiveOp("compact")], smallest


def _example(log: QemuLog, target: int) -> None:
    """An example as the live runner makes one: a target, then all the RAM back."""
    log.linux_run([target, 0])


def test_segments_are_judged_one_by_one_from_an_empty_balloon(tmp_path: Path) -> None:
    trace = tmp_path / "trace.log"
    log = QemuLog(GUEST_PAGES)
    _example(log, 8)
    trace.write_text("\n".join(log.lines) + "\n")
    judge = SegmentJudge(trace, frozenset(), GUEST_PAGES)
    first = judge.next_segment()
    assert len(first) == len(log.lines)
    assert judge.judge(first, tmp_path / "1.trace.log") is None
    assert judge.next_segment() == []  # nothing new yet

    more = QemuLog(GUEST_PAGES)
    _example(more, 12)
    with open(trace, "a") as f:
        f.write("\n".join(more.lines) + "\n"
                + "8@1.0:virtio_notify vdev 0x5500")  # a line being written
    second = judge.next_segment()
    assert len(second) == len(more.lines)  # only whole lines
    assert judge.judge(second, tmp_path / "2.trace.log") is None


def test_a_broken_segment_names_the_rule_or_the_model_step(tmp_path: Path) -> None:
    log = QemuLog(GUEST_PAGES).linux_run([4])
    log.inflate([16])  # a page already in the balloon, inflated again
    log.write(5, 4)
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    judge = SegmentJudge(trace, frozenset(), GUEST_PAGES)
    reason = judge.judge(judge.next_segment(), tmp_path / "seg.trace.log")
    assert reason is not None and "virtio_5_5_6_no_page_inflated_twice" in reason, reason


def test_the_seeded_fault_hides_the_hosts_target_and_is_caught(tmp_path: Path) -> None:
    log = QemuLog(GUEST_PAGES)
    _example(log, 8)
    trace = tmp_path / "trace.log"
    trace.write_text("\n".join(log.lines) + "\n")
    judge = SegmentJudge(trace, frozenset(), GUEST_PAGES, fault="hide-target")
    lines = judge.next_segment()
    assert not any("virtio_balloon_to_target" in line for line in lines)
    reason = judge.judge(lines, tmp_path / "seg.trace.log", emit=True)
    assert reason is not None and "target" in reason
    assert (tmp_path / "seg.trace.model.jsonl").is_file()
    assert "NOT clean" in (tmp_path / "seg.trace.report.md").read_text()
    with pytest.raises(ValueError, match="unknown fault"):
        SegmentJudge(trace, frozenset(), GUEST_PAGES, fault="no-such-fault")


def test_scenario_files_are_read_or_refused_with_exit_2(tmp_path: Path) -> None:
    good = tmp_path / "failure.json"
    good.write_text(json.dumps({"seed": 3, "fault": "hide-target", "guest_mib": 256,
                                "ops": [{"kind": "target", "mib": 160}, {"kind": "compact"}]}))
    assert read_scenario(good) == LiveScenario((LiveOp("target", 160), LiveOp("compact")),
                                               "hide-target", 256, DEFAULT_DEVICE)
    good.write_text(json.dumps({"ops": [{"kind": "reboot"}, {"kind": "target", "mib": 192}],
                                "device": "plain"}))
    assert read_scenario(good) == LiveScenario((LiveOp("reboot"), LiveOp("target", 192)), None,
                                               256, "plain")
    good.write_text(json.dumps({"ops": [{"kind": "rebind"}]}))
    assert read_scenario(good).ops == (LiveOp("rebind"),)
    good.write_text(json.dumps({"ops": [{"kind": "migrate"}], "device": "free-page-hint"}))
    assert read_scenario(good) == LiveScenario((LiveOp("migrate"),), None, 256, "free-page-hint")
    for text in ("not json", '{"ops": [{"kind": "poweroff"}]}', '{"ops": [], "fault": "x"}', "[]",
                 '{"ops": [], "device": "no-such-device"}', '{"ops": [], "guest_mib": 0}',
                 '{"ops": [{"kind": "target", "mib": "1G"}]}',
                 # values QEMU would refuse only after a boot, refused before it
                 '{"ops": [{"kind": "target", "mib": -5}]}', '{"ops": [{"kind": "target"}]}',
                 '{"ops": [{"kind": "target", "mib": 257}]}',
                 '{"ops": [{"kind": "pressure", "mib": 300}], "guest_mib": 256}',
                 # JSON Ballast does not read: nested past its depth, NaN, too long
                 "[" * 100_000 + "]" * 100_000, '{"ops": [], "guest_mib": NaN}',
                 '{"ops": []}' + " " * (1 << 20)):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        code, out, err = _run("capture", "qemu-live", "--out", str(tmp_path / "o"),
                              "--replay", str(bad))
        assert code == 2 and str(bad) in err and "Traceback" not in err, (text, err)
    # A named pipe no program writes to is an empty file, not a wait for ever.
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    code, _, err = _run("capture", "qemu-live", "--out", str(tmp_path / "o"), "--replay",
                        str(fifo))
    assert code == 2 and str(fifo) in err and "not valid JSON" in err, err
    code, _, err = _run("capture", "qemu-live", "--out", str(tmp_path / "o"), "--examples", "0")
    assert code == 2 and "--examples" in err
    code, _, err = _run("capture", "qemu-live", "--out", str(tmp_path / "o"), "--devices",
                        "plain,bogus")
    assert code == 2 and "bogus" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text", ["[1, 2]", '"ops"', '{"ops": 3}', '{"ops": [1]}', "null",
                                  '{"ops": [], "fault": []}'])
def test_a_scenario_file_of_another_shape_says_what_was_expected(tmp_path: Path,
                                                                 text: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    code, _, err = _run("capture", "qemu-live", "--out", str(tmp_path / "o"), "--replay",
                        str(bad))
    assert code == 2 and str(bad) in err, err
    assert 'expected a JSON object with "ops"' in err and "indices" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("mib", ["0", "-1", "63", "100000000", str(10**30)])
def test_a_guest_size_out_of_bounds_is_refused_before_anything_starts(tmp_path: Path,
                                                                      mib: str) -> None:
    code, _, err = _run("capture", "qemu-live", "--out", str(tmp_path / "o"), "--guest-mib", mib)
    assert code == 2 and "--guest-mib" in err and "at least 64 and at most" in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
    with pytest.raises(CaptureError, match="guest_mib must be an integer of at least 64"):
        live_test(tmp_path / "o", guest_mib=int(mib))
    assert not (tmp_path / "o").exists()


def test_the_help_says_how_large_a_guest_may_be() -> None:
    code, out, _ = _run("capture", "qemu-live", "--help")
    assert code == 0 and "physical memory" in " ".join(out.split())


class _FakeGuest:
    """What the live run asks of a runner's guest, without QEMU."""

    def __init__(self) -> None:
        self.boot_s = 0.0
        self.stopped = False

    def quit(self) -> None:
        """Nothing to quit."""

    def stop(self) -> None:
        self.stopped = True


class _FakeClock:
    """The live run's clock in these tests: time passes with the examples (0.1 s each) and
    a microsecond with each reading, not with the machine's load (importing Hypothesis on a
    busy machine took a 0.5 s run's whole time before its first example)."""

    now = 0.0

    @classmethod
    def read(cls) -> float:
        cls.now += 1e-6
        return cls.now


class _FakeRunner:
    """A :class:`~ballast.validate.qemu.live.LiveRunner` whose examples pass at once (or whose
    boot fails, with ``boot_fails``), each taking 0.1 s of :class:`_FakeClock`'s time."""

    boot_fails = False
    made: list[_FakeRunner] = []

    def __init__(self, out_dir: Path, options: Any, *, settle_s: float, deadline: float,
                 fault: str | None = None, device: str = DEFAULT_DEVICE) -> None:
        self.guest = _FakeGuest()
        self.device, self.deadline = device, deadline
        self.runs = self.reboots = self.migrations = 0
        _FakeRunner.made.append(self)

    def boot(self) -> None:
        if self.boot_fails:
            raise CaptureError("the guest ran out of time while the guest booted")

    def run(self, ops: tuple[LiveOp, ...], where: Path, emit: bool = False) -> str | None:
        self.runs += 1
        _FakeClock.now += 0.1
        return None


def _live_run_within(seconds: float, **kwargs: Any) -> live.LiveOutcome:
    """``live_test(**kwargs)`` in a thread, which must end within ``seconds`` (a run that
    does not is left behind, a daemon, and the test fails instead of hanging)."""
    got: list[live.LiveOutcome] = []
    thread = threading.Thread(target=lambda: got.append(live_test(**kwargs)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the live run did not end within {seconds} s"
    assert got, "the live run raised"
    return got[0]


@pytest.mark.parametrize("boot_fails", [False, True], ids=["examples-run", "boot-fails"])
def test_the_whole_run_ends_at_its_timeout_inconclusive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boot_fails: bool) -> None:
    """``--timeout-s`` bounds the whole run whatever ``--examples`` asks: no example starts
    after it (nor after a guest gave out), Hypothesis's search ends there, and the guests
    are stopped; the examples were not all run, so the run is inconclusive (exit 3)."""
    monkeypatch.setattr(live, "LiveRunner", _FakeRunner)
    monkeypatch.setattr(_FakeRunner, "boot_fails", boot_fails)
    monkeypatch.setattr(_FakeRunner, "made", [])
    monkeypatch.setattr(live, "_now", _FakeClock.read)
    start = time.monotonic()
    out = _live_run_within(20.0, out_dir=tmp_path / "o", examples=10**12, settle_s=0.1,
                           timeout_s=0.5)
    assert time.monotonic() - start < 10.0
    assert out.exit_code == 3 and out.failure is None and out.inconclusive is not None
    assert ("ran out of time" if boot_fails else "time (0.5 s) ran out") in out.inconclusive
    assert _FakeRunner.made and all(r.guest.stopped for r in _FakeRunner.made)
    assert out.examples == (0 if boot_fails else 5)  # 5 of 0.1 s each fill the 0.5 s
    replayed = _live_run_within(20.0, out_dir=tmp_path / "r", timeout_s=1e-9,
                                replay=(LiveOp("compact"),))
    assert replayed.exit_code == 3 and replayed.examples == 0  # the time was up before it ran


def test_doctests_and_faults_are_documented() -> None:
    assert doctest.testmod(live).failed == 0
    assert set(FAULTS) == {"hide-target"} and SHRINK_RUNS > 0
    code, out, _ = _run("capture", "qemu-live", "--help")
    assert code == 0 and "hide-target" in out and "--replay" in out
    assert all(name in "".join(out.split()) for name in DEVICES)  # names wrapped at hyphens


# ------------------------------------------------------------------ a real guest


LIVE_EXAMPLES = 20
"""Hypothesis-chosen examples of the live run in the default suite."""

LONG_LIVE_EXAMPLES = int(os.environ.get("BALLAST_LONG_LIVE_EXAMPLES", "100"))
"""Examples of the longer live run (``-m slow``)."""


def _clean_live_run(folder: Path, examples: int, seed: int) -> live.LiveOutcome:
    out = live_test(folder, examples=examples, seed=seed, timeout_s=1800.0)
    assert out.inconclusive is None, out.inconclusive
    assert out.failure is None, out.failure
    # Hypothesis may draw one example twice; the runner runs it once.
    assert out.examples >= examples * 3 // 4 and out.exit_code == 0
    assert out.finals and all(fin.clean for fin in out.finals.values())
    assert all(fin.model is not None and fin.model.steps > 20 for fin in out.finals.values())
    made = [json.loads(p.read_text()) for p in (folder / "examples").glob("*.json")]
    assert "target" in {ex["ops"][0].split()[0] for ex in made}
    # One guest per device drawn, each with its own capture.
    assert set(out.finals) == {ex["device"] for ex in made}
    assert all((folder / f"capture-{d}" / "trace.log").is_file() for d in out.finals)
    return out


def test_twenty_hypothesis_examples_on_a_live_guest_are_clean(tmp_path: Path) -> None:
    _require_qemu()
    out = _clean_live_run(tmp_path / "live", LIVE_EXAMPLES, seed=1)
    assert out.reboots >= 1  # the seed's examples reboot the guest, and the model explains it
    assert out.migrations >= 1  # migrate it live
    assert len(out.finals) >= 2  # and switch devices


@pytest.mark.slow
def test_a_longer_live_run_on_one_guest_is_clean(tmp_path: Path) -> None:
    _require_qemu()
    _clean_live_run(tmp_path / "live", LONG_LIVE_EXAMPLES, seed=2)


@pytest.mark.slow
def test_linux_leaving_the_device_without_deflate_on_oom_breaks_rule_3(tmp_path: Path) -> None:
    """A real deviation of Linux, reported as such: its driver, leaving the device, takes
    every page out of the balloon whatever the target, and without DEFLATE_ON_OOM 5.5.6.1
    rule 3 forbids that. The same scenario with DEFLATE_ON_OOM negotiated is clean."""
    _require_qemu()
    scenario = tmp_path / "rebind.json"
    scenario.write_text(json.dumps({"device": "plain", "ops": [{"kind": "target", "mib": 192},
                                                               {"kind": "rebind"}]}))
    code, out, err = _run("capture", "qemu-live", "--out", str(tmp_path / "plain"), "--replay",
                          str(scenario), "--json")
    assert code == 1, (out, err)
    failure = json.loads(out)["failure"]
    assert failure["device"] == "plain" and failure["ops"] == ["target 192", "rebind"]
    assert "virtio_5_5_6_1_rule3_deflate_only_when_asked" in failure["reason"], failure
    scenario.write_text(json.dumps({"device": "deflate-on-oom", "ops": [
        {"kind": "target", "mib": 192}, {"kind": "rebind"}]}))
    code, out, err = _run("capture", "qemu-live", "--out", str(tmp_path / "oom"), "--replay",
                          str(scenario), "--json")
    assert code == 0 and json.loads(out)["devices"] == {"deflate-on-oom": True}, (out, err)


@pytest.mark.slow
def test_a_seeded_deviation_fails_shrinks_and_replays(tmp_path: Path) -> None:
    _require_qemu()
    code, out, err = _run("capture", "qemu-live", "--out", str(tmp_path / "f"), "--examples", "6",
                          "--seed", "5", "--fault", "hide-target", "--json")
    assert code == 1, (out, err)
    data = json.loads(out)
    failure = data["failure"]
    # Shrunk to one target below the guest's RAM: the least that shows the deviation.
    assert len(failure["ops"]) == 1 and failure["ops"][0].startswith("target "), failure
    assert "target" in failure["reason"]
    assert data["examples"] <= 6 + SHRINK_RUNS + 1
    scenario = Path(failure["scenario"])
    saved = json.loads(scenario.read_text())
    assert saved["seed"] == 5 and saved["fault"] == "hide-target" and saved["reproduced"]
    assert saved["device"] == failure["device"] == DEFAULT_DEVICE  # shrunk to the first device
    assert Path(failure["model_trace"]).is_file()
    assert "NOT clean" in Path(failure["segment"]).with_suffix(".report.md").read_text()
    code, out, err = _run("capture", "qemu-live", "--out", str(tmp_path / "again"),
                          "--replay", str(scenario))
    assert code == 1 and "FAILED" in out, (out, err)
