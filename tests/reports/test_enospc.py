"""No space left on device: reports, check summaries and diff results are written all or
nothing, and the command exits 2 naming the file, never 0 or 1 (a full disk is not a verdict).

Runs on a tmpfs of a few KiB, which needs root to mount; skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from ballast.model.config import PRESETS
from ballast.model.system import BalloonModel
from ballast.model.trace import write_trace
from ballast.simulation.randomwalk import random_run

sys.path.insert(0, str(Path(__file__).parents[1]))

from hostile_cli import assert_refused, run_cli  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FREE_BYTES = 4096
"""Room left on the tiny filesystem: a small file fits, a report does not."""


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 16 KiB with only FREE_BYTES left, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        (mnt / "filler").write_bytes(b"\0" * (16384 - FREE_BYTES))
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _trace(tmp_path: Path) -> Path:
    run = random_run(BalloonModel(PRESETS["core"]), 3, 40)
    path = tmp_path / "run.jsonl"
    write_trace(path, run.trace)
    return path


def test_the_filesystem_is_really_full(tiny: Path) -> None:
    with pytest.raises(OSError):
        (tiny / "big").write_bytes(b"x" * (FREE_BYTES + 8192))


def test_a_report_on_a_full_disk_leaves_nothing(tmp_path: Path, tiny: Path) -> None:
    o = run_cli(["report", str(_trace(tmp_path)), "--out", str(tiny), "--format", "md,html,json"])
    assert_refused(o, words="No space left on device")
    assert _files(tiny) == ["filler"]


def test_check_summaries_on_a_full_disk_are_exit_2_and_leave_nothing(
        tmp_path: Path, tiny: Path) -> None:
    """The Markdown summary alone would fit; the set is written all or nothing, so none is."""
    o = run_cli(["check", "--checkers", "random", "--random-runs", "2",
                 "--report-dir", str(tmp_path / "r"), "--json", str(tiny / "s.json"),
                 "--junit", str(tiny / "j.xml"), "--summary-md", str(tiny / "s.md"),
                 "--sarif", str(tiny / "s.sarif")])
    assert_refused(o, words="No space left on device")
    assert _files(tiny) == ["filler"]


def test_a_counterexample_on_a_full_disk_is_not_a_violation(tmp_path: Path, tiny: Path) -> None:
    o = run_cli(["check", "--checkers", "random", "--fault", "reclaim_keeps_mapping",
                 "--report-dir", str(tiny / "out")], seconds=120)
    assert_refused(o, words="No space left on device")
    assert _files(tiny) == ["filler"]


def test_a_diff_result_on_a_full_disk_is_not_a_violation(tiny: Path) -> None:
    adapter = f"{sys.executable} {EXAMPLES / 'balloon_adapter.py'} --bug release-keeps-ballooned"
    # Short runs find the bug too, and shrink it in a third of the time.
    o = run_cli(["diff", "--adapter", adapter, "--preset", "virtio", "--steps", "30",
                 "--report-dir", str(tiny / "out")], seconds=120)
    assert_refused(o, words="No space left on device")
    assert _files(tiny) == ["filler"]


@pytest.mark.parametrize("steps", ["3", "400"])
def test_a_run_on_a_full_disk_is_exit_2_and_leaves_nothing(tiny: Path, steps: str) -> None:
    """3 steps fit the spool and not the file beside it; 400 do not fit the spool itself
    (it lies on the trace's disk)."""
    o = run_cli(["run", "--preset", "core", "--steps", steps, "--out", str(tiny / "t.jsonl")])
    assert_refused(o, file=str(tiny / "t.jsonl"), words="No space left on device")
    assert _files(tiny) == ["filler"]
