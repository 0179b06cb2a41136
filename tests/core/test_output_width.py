"""Output for logs and pipes is never wrapped at the terminal's (or a pipe's 80) columns:
a path or a property name cut in two cannot be searched for or copied."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ballast.cli import main

FIGURES = re.compile(r"\d[\d,.]*")


def _commands(tmp: Path) -> list[list[str]]:
    small = ["--report-dir", str(tmp)]
    return [
        ["list", "faults"],
        ["list", "actions"],
        ["list", "presets"],
        ["list", "faults", "--backends"],
        ["fuzz", "--vms", "2", "--pages", "8", "--seeds", "0..1", "--steps", "10",
         "--workers", "1", "--fault", "host_takes_partial_page", *small],
        ["explore", "--preset", "core", "--small", *small],
        ["check", "--preset", "core", "--checkers", "random", "--random-runs", "30",
         "--random-steps", "60", "--fault", "reclaim_keeps_mapping", *small],
    ]


def _run(argv: list[str], columns: int, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    main(argv)
    # Durations and rates differ from run to run; the shape of the text must not.
    return FIGURES.sub("N", capsys.readouterr().out)


@pytest.mark.parametrize("which", range(7), ids=["list faults", "list actions",
                                                 "list presets", "list faults --backends",
                                                 "fuzz", "explore", "check"])
def test_output_to_a_pipe_is_the_same_whatever_the_width(
        which: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = _commands(tmp_path)[which]
    narrow = _run(argv, 80, monkeypatch, capsys)
    wide = _run(argv, 400, monkeypatch, capsys)
    assert narrow == wide
    assert max(map(len, narrow.splitlines())) > 80  # long lines are there, and kept whole
