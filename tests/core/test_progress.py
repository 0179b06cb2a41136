"""Progress of long work: live lines on a terminal's stderr, nothing anywhere else."""

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
                         ids=["not a terminal", "quiet"])
def test_nothing_is_drawn_off_a_terminal_or_when_quiet(stream: io.StringIO,
                                                       enabled: bool) -> None:
    with progress.shown(enabled, stream=stream) as on:
        assert not on and not progress.active()
        with progress.meter("random", total=3, unit="runs") as m:
            m.advance()
            m.advance(2)
    assert stream.getvalue() == ""
    assert (m.completed, m.total) == (3, 3)  # the figures are kept all the same


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


@pytest.mark.parametrize("err, quiet", [(io.StringIO(), False), (FakeTerminal(), True)],
                         ids=["not a terminal", "--quiet"])
def test_check_is_silent_on_stderr_off_a_terminal_or_quiet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: io.StringIO, quiet: bool) -> None:
    out = _streams(monkeypatch, err)
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
    assert main(["fuzz", "--vms", "2", "--pages", "8", "--seeds", "0..2", "--steps", "10",
                 "--workers", "1", "--report-dir", str(tmp_path)]) == 0
    assert "3/3 seeds" in _text(err) and "failing seeds: none" in out.getvalue()


@pytest.mark.parametrize("argv, what, at, said", [
    (["check", "--preset", "core", "--checkers", "random", "--random-runs", "50",
      "--random-steps", "20"], "random", 5, "random: 5/50 runs"),
    (["check", "--preset", "core", "--checkers", "hypothesis", "--examples", "30"],
     "hypothesis", 3, "hypothesis: 3/30 runs"),
    (["check", "--preset", "core", "--checkers", "numeric", "--numeric-seeds", "2",
      "--numeric-batches", "20"], "numeric", 25, "numeric: 25/40 batches"),
    (["explore", "--preset", "core"], "explore", 1, r"explore: [\d,]+ states"),
    (["prove", "--preset", "core", "--jobs", "1"], "prove", 40, r"prove: \d+ queries"),
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
