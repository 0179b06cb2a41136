"""Progress of long work: live lines on a terminal's stderr, plain periodic lines in a log."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from pathlib import Path

import pytest

from ballast import progress
from ballast.cli import main
from ballast.model.config import Config
from ballast.numeric.suite import SuiteSize, suite_check
from ballast.proofs.run import prove

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (as a user's stderr does)."""

    def isatty(self) -> bool:
        return True


def _text(stream: io.StringIO) -> str:
    """What a terminal would have been sent, without its control sequences."""
    return ANSI.sub("", stream.getvalue())


def _streams(monkeypatch: pytest.MonkeyPatch, err: io.StringIO) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("COLUMNS", "160")
    return out


def test_a_meter_draws_count_total_rate_and_note_on_a_terminal() -> None:
    tty = FakeTerminal()
    with progress.shown(stream=tty) as on:
        assert on and progress.active()
        with progress.meter("explore", total=8000, unit="states") as m:
            m.update(1000, note="depth 3")
            time.sleep(0.05)
            m.update(5000, note="depth 7")
    assert not progress.active()
    text = _text(tty)
    assert "explore" in text and "5,000/8,000 states" in text and "depth 7" in text
    assert re.search(r"[\d,]+ states/s", text), text


@pytest.mark.parametrize("stream, enabled", [(io.StringIO(), True), (FakeTerminal(), False)],
                         ids=["short work off a terminal", "quiet"])
def test_nothing_is_written_when_quiet_or_for_work_shorter_than_a_line(
        stream: io.StringIO, enabled: bool) -> None:
    with progress.shown(enabled, stream=stream, every=3600) as on:
        assert on == progress.active() == enabled
        with progress.meter("random", total=3, unit="runs") as m:
            m.advance()
            m.advance(2)
    assert stream.getvalue() == ""
    assert (m.completed, m.total) == (3, 3)  # the figures are kept all the same


def test_off_a_terminal_meters_are_plain_lines_never_wrapped() -> None:
    log = io.StringIO()
    long_note = "slice " + "x" * 300
    with progress.shown(stream=log, every=1e-9) as on:
        assert on and progress.active()
        with progress.meter("check", total=2, unit="checkers", rate=False) as outer:
            with progress.meter("explore", unit="states") as m:
                m.update(81920, note=long_note)
            outer.update(1)
    lines = log.getvalue().splitlines()
    assert ANSI.search(log.getvalue()) is None and "\r" not in log.getvalue()
    assert all(re.match(r"progress \d+ s: ", line) for line in lines), lines
    assert any("check: 0/2 checkers; explore: 81,920 states" in line
               and re.search(r"81,920 states, [\d,]+ states/s \(slice x{300}\)$", line)
               for line in lines), lines  # the whole note, on the one line
    assert any(re.search(r"done: explore: 81,920 states", line) for line in lines), lines
    assert lines[-1].endswith("done: check: 1/2 checkers"), lines


def test_plain_lines_come_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", "3600")
    with progress.shown(stream=log):
        with progress.meter("random", total=1000, unit="runs") as m:
            for _ in range(1000):
                m.advance()
    assert log.getvalue() == ""  # a thousand updates within the hour: not one line


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", "\u0661", "1_0"])
def test_a_bad_progress_interval_is_bad_usage(value: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", value)
    assert main(["explore", "--preset", "core", "--small", "--max-states", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ballast: error: BALLAST_PROGRESS_SECONDS: expected a positive "
                          "number of seconds") and len(err.splitlines()) == 1, err


def _check_args(tmp_path: Path) -> list[str]:
    return ["check", "--preset", "core", "--checkers", "random", "--random-runs", "5",
            "--random-steps", "20", "--report-dir", str(tmp_path)]


def test_check_shows_progress_on_stderr_and_keeps_stdout_for_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTerminal()
    out = _streams(monkeypatch, err)
    assert main(_check_args(tmp_path)) in (0, 3)  # few runs: some scenarios unexercised
    shown = _text(err)
    assert "5/5 runs" in shown and "running random" in shown and "check" in shown
    assert "Verdict: " in out.getvalue()
    for progress_only in ("runs/s", "running random", "\x1b["):
        assert progress_only not in out.getvalue()



def test_check_progress_ends_saying_every_checker_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line read 'check: 0/1 checkers (running random)' once it had run."""
    err = io.StringIO()
    out = _streams(monkeypatch, err)
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", "0.000001")  # a line at every count
    assert main(_check_args(tmp_path)) in (0, 3)
    lines = [line for line in err.getvalue().splitlines() if "check: " in line]
    assert lines and lines[-1].endswith("done: check: 1/1 checkers"), lines
    assert "running random" not in lines[-1]
    assert "Verdict: " in out.getvalue()


@pytest.mark.parametrize("err, quiet", [(io.StringIO(), False), (FakeTerminal(), True)],
                         ids=["short work off a terminal", "--quiet"])
def test_check_is_silent_on_stderr_for_short_work_off_a_terminal_or_quiet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: io.StringIO, quiet: bool) -> None:
    out = _streams(monkeypatch, err)
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", "3600")
    assert main(_check_args(tmp_path) + (["--quiet"] if quiet else [])) in (0, 3)
    assert err.getvalue() == ""
    assert "Verdict: " in out.getvalue()


def test_explore_json_stays_clean_while_states_are_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTerminal()
    out = _streams(monkeypatch, err)
    main(["explore", "--preset", "core", "--small", "--json", "--report-dir", str(tmp_path)])
    states = json.loads(out.getvalue())["stats"]["states"]
    assert f"{states:,} states" in _text(err) and "depth" in _text(err)


def _tiny() -> Config:
    return Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                  machine_pages=1, host_swap_slots=0, tokens=1, batch=1)


def test_prove_counts_every_query_it_answers_against_the_total() -> None:
    tty = FakeTerminal()
    with progress.shown(stream=tty):
        report = prove(_tiny(), jobs=1)
    n = len(report.queries)
    assert n > 10 and f"{n}/{n} queries" in _text(tty)


def test_the_numeric_suite_counts_batches_of_every_seed(tmp_path: Path) -> None:
    tty = FakeTerminal()
    with progress.shown(stream=tty):
        suite_check(_tiny(), report_dir=tmp_path,
                    size=SuiteSize(vms=2, pages=4, seeds=2, batches=15))
    assert "30/30 batches" in _text(tty) and "seed 2 of 2" in _text(tty)


def test_fuzz_counts_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTerminal()
    out = _streams(monkeypatch, err)
    # Ten batches leave actions unexercised: inconclusive, after the meter counted seeds.
    assert main(["fuzz", "--vms", "2", "--pages", "8", "--seeds", "0..2", "--steps", "10",
                 "--workers", "1", "--report-dir", str(tmp_path)]) == 3
    assert "3/3 seeds" in _text(err) and "failing seeds: none" in out.getvalue()


@pytest.mark.parametrize("argv, what, at, said", [
    (["check", "--preset", "core", "--checkers", "random", "--random-runs", "50",
      "--random-steps", "20"], "random", 5, "random: 5/50 runs"),
    (["check", "--preset", "core", "--checkers", "hypothesis", "--examples", "30"],
     "hypothesis", 3, "hypothesis: 3/30 runs"),
    (["check", "--preset", "core", "--checkers", "numeric", "--numeric-seeds", "2",
      "--numeric-batches", "20"], "numeric", 25, "numeric: 25/40 batches"),
    (["explore", "--preset", "core"], "explore", 1, r"explore: [\d,]+ states"),
    (["prove", "--preset", "core", "--jobs", "1"], "prove", 40, r"prove: \d+/\d+ queries"),
    (["fuzz", "--vms", "2", "--pages", "8", "--seeds", "0..3", "--steps", "10", "--workers",
      "1"], "fuzz", 2, "fuzz 2 VMs x 8 PPNs: 2/4 seeds"),
], ids=["random", "hypothesis", "numeric", "explore", "prove", "fuzz"])
def test_an_interrupted_command_says_what_each_meter_counted(
        argv: list[str], what: str, at: int, said: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    update = progress.Meter.update

    def interrupted(self: progress.Meter, completed: int, **kw: object) -> None:
        update(self, completed, **kw)  # type: ignore[arg-type]
        if self.what.startswith(what) and completed >= at:
            raise KeyboardInterrupt  # Ctrl-C, in the middle of the work

    monkeypatch.setattr(progress.Meter, "update", interrupted)
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", "3600")  # no progress line before it
    assert main(argv + ["--report-dir", str(tmp_path)]) == 130
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("ballast: interrupted after") and re.search(said, line), line


def test_diff_counts_runs_on_stderr_while_its_json_stays_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTerminal()
    out = _streams(monkeypatch, err)
    adapter = f"{sys.executable} {EXAMPLES / 'balloon_adapter.py'} --protocol 2"
    main(["diff", "--adapter", adapter, "--preset", "core", "--examples", "3", "--steps", "20",
          "--report-dir", str(tmp_path), "--json"])
    assert json.loads(out.getvalue())["runs"] >= 3
    assert "3/3 runs" in _text(err)


def test_docstring_examples() -> None:
    import doctest

    result = doctest.testmod(progress)
    assert result.attempted > 0 and result.failed == 0


def test_a_forked_worker_draws_nothing_on_its_parents_display() -> None:
    import os

    tty = FakeTerminal()
    with progress.shown(stream=tty):
        pid = os.fork()
        if pid == 0:  # the worker: its meters count silently
            m = progress.meter("in the worker", total=2)
            m.update(2)
            os._exit(0 if not progress.active() and m.describe() == "in the worker: 2/2 steps"
                     else 1)
        _, status = os.waitpid(pid, 0)
        assert progress.active()
    assert os.waitstatus_to_exitcode(status) == 0
    assert "in the worker" not in _text(tty)


def _trace(tmp_path: Path, steps: int) -> Path:
    trace = tmp_path / "run.jsonl"
    assert main(["run", "--preset", "core", "--seed", "1", "--steps", str(steps), "--no-states",
                 "--out", str(trace)]) == 0
    return trace


@pytest.mark.parametrize("command", ["check", "explore", "prove", "fuzz", "diff", "validate"])
def test_every_long_command_writes_plain_progress_lines_in_a_log(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = f"{sys.executable} {EXAMPLES / 'balloon_adapter.py'} --protocol 2"
    argv, meter_says = {
        "check": (_check_args(tmp_path), r"random: \d+/5 runs"),
        "explore": (["explore", "--preset", "core", "--small"], r"explore: [\d,]+ states"),
        "prove": (["prove", "--preset", "core", "--guest-pages", "1", "--machine-pages", "1",
                   "--jobs", "1"], r"prove: \d+/\d+ queries"),
        "fuzz": (["fuzz", "--vms", "2", "--pages", "8", "--seeds", "0..1", "--steps", "5"],
                 r"fuzz 2 VMs x 8 PPNs: \d/2 seeds"),
        "diff": (["diff", "--adapter", adapter, "--preset", "core", "--examples", "2",
                  "--steps", "10"], r"diff: \d/2 runs"),
        "validate": (["validate", str(_trace(tmp_path, 1100))],
                     r"validating run\.jsonl: [\d,]+/[\d,]+ bytes"),
    }[command]
    if command != "validate":
        argv += ["--report-dir", str(tmp_path / "out")]
    err = io.StringIO()
    out = _streams(monkeypatch, err)
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", "0.000001")
    assert main(argv) in (0, 3), err.getvalue()
    lines = err.getvalue().splitlines()
    assert lines and all(line.startswith("progress ") for line in lines), lines
    assert any(re.search(meter_says, line) for line in lines), lines
    assert ANSI.search(err.getvalue()) is None
    assert "progress " not in out.getvalue()


def test_validate_shows_its_lines_read_through_the_shared_display(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = _trace(tmp_path, 1100)
    err = FakeTerminal()
    out = _streams(monkeypatch, err)
    assert main(["validate", str(trace)]) == 0
    size = trace.stat().st_size
    assert "validating run.jsonl" in _text(err) and f"/{size:,} bytes" in _text(err)
    assert "explained by the model" in out.getvalue()
