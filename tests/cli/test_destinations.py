"""A file or folder the results would be written to, checked before any work: a bad one is
exit 2 naming it, with no checker run and no verdict printed that the exit code contradicts,
and nothing created where it was refused."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import ballast.suites.check as check
from ballast.cli import main
from ballast.errors import OutputError
from ballast.model.trace import check_destinations
from ballast.verdict import EXIT_USAGE


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def ran(*args: object, **kwargs: object) -> None:
        raise AssertionError("the command started its work before checking where to write")
    monkeypatch.setattr(check, "run_check", ran)
    monkeypatch.setattr("ballast.cli.explore.run_explore", ran)
    monkeypatch.setattr("ballast.cli.fuzz.run_campaign", ran)
    monkeypatch.setattr("ballast.cli.diff.run_diff", ran)


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A file standing where a folder would have to be made."""
    f = tmp_path / "a-file"
    f.write_text("x")
    return f


@pytest.mark.parametrize("argv", [
    ["check", "--checkers", "random", "--junit", "{blocked}/j.xml"],
    ["check", "--checkers", "random", "--sarif", "{tmp}"],
    ["check", "--checkers", "random", "--report-dir", "{blocked}/out"],
    ["explore", "--preset", "core", "--dot", "{blocked}/g.dot"],
    ["explore", "--preset", "core", "--graphml", "{tmp}"],
    ["explore", "--preset", "core", "--report-dir", "{blocked}"],
    ["fuzz", "--seeds", "0", "--report-dir", "{blocked}/r"],
    ["diff", "--adapter", "true", "--report-dir", "{blocked}"],
], ids=["check-junit", "check-sarif-folder", "check-report-dir", "explore-dot",
        "explore-graphml-folder", "explore-report-dir", "fuzz-report-dir", "diff-report-dir"])
def test_a_destination_that_cannot_be_written_is_refused_before_any_work(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, blocked: Path, argv: list[str]) -> None:
    _nothing_runs(monkeypatch)
    args = [a.format(blocked=blocked, tmp=tmp_path) for a in argv]
    before = sorted(tmp_path.rglob("*"))
    code, out, err = _run(*args)
    assert code == EXIT_USAGE
    assert "Verdict" not in out and "pass" not in out
    assert err.startswith("ballast: error: ") and len(err.strip().splitlines()) == 1
    assert str(tmp_path) in err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a folder without write access")
def test_a_folder_without_write_access_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            check_destinations([ro / "new" / "s.json"])
    finally:
        ro.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="no /proc file system")
def test_a_file_in_a_folder_where_nothing_can_be_made_names_the_folder() -> None:
    # /proc says "No such file or directory" of a file it holds: the message explains.
    with pytest.raises(OutputError, match="cannot write: no file can be made in /proc "):
        check_destinations(["/proc/version"])


def test_good_destinations_are_left_as_they_were(tmp_path: Path) -> None:
    check_destinations([tmp_path / "a" / "b.xml", tmp_path / "c.json", None],
                       folders=[tmp_path / "reports" / "out", None])
    assert list(tmp_path.iterdir()) == []


def test_an_example_database_where_none_can_be_kept_is_refused(
        tmp_path: Path, blocked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--hypothesis-db`` naming a file: the failures found would not be kept, silently."""
    _nothing_runs(monkeypatch)
    code, out, err = _run("check", "--checkers", "hypothesis", "--hypothesis-db", str(blocked),
                          "--report-dir", str(tmp_path / "r"))
    assert code == EXIT_USAGE and "is a file, not a folder" in err and "Verdict" not in out


def test_a_summary_that_cannot_be_written_after_all_prints_no_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills during the run: the summary fails to be written (exit 2) before any
    verdict line is printed that the exit code would contradict."""
    import ballast.reports.summary as summary

    def full(*args: object, **kwargs: object) -> None:
        raise OutputError(str(tmp_path / "j.xml"), "cannot write: No space left on device")
    monkeypatch.setattr(summary, "write_summary", full)
    code, out, err = _run("check", "--preset", "core", "--checkers", "random",
                          "--random-runs", "2", "--junit", str(tmp_path / "j.xml"),
                          "--report-dir", str(tmp_path / "r"))
    assert code == EXIT_USAGE and "No space left" in err
    assert "Verdict" not in out


@pytest.mark.parametrize("argv, words", [
    (["check", "--checkers", "random", "--summary-md", "{tmp}/s", "--junit", "{tmp}/s"],
     "named for two outputs"),
    (["check", "--checkers", "random", "--config", "{config}", "--summary-md", "{config}"],
     "is an input of this command"),
    (["explore", "--preset", "core", "--dot", "{tmp}/g", "--graphml", "{tmp}/./g"],
     "named for two outputs"),
    (["explore", "--config", "{config}", "--dot", "{config}"], "is an input of this command"),
    (["run", "--config", "{config}", "--out", "{config}"], "is an input of this command"),
], ids=["check-two-outputs", "check-over-config", "explore-two-outputs", "explore-over-config",
        "run-over-config"])
def test_an_output_that_would_replace_another_or_the_configuration_is_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str], words: str) -> None:
    """Written as asked, the second output replaced the first, or the summary replaced the
    configuration file it was run from: refused before any work, both left as they were."""
    _nothing_runs(monkeypatch)
    monkeypatch.setattr("ballast.simulation.randomwalk.random_run", lambda *a, **k: 1 / 0)
    config = tmp_path / "c.toml"
    config.write_text('preset = "core"\n')
    code, out, err = _run(*[a.format(tmp=tmp_path, config=config) for a in argv])
    assert code == EXIT_USAGE, err
    assert err.startswith("ballast: error: ") and len(err.strip().splitlines()) == 1
    assert words in err and str(tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
    assert config.read_text() == 'preset = "core"\n'


def test_a_device_may_take_several_outputs(tmp_path: Path) -> None:
    check_destinations([os.devnull, os.devnull], inputs=[tmp_path / "c.toml"])
