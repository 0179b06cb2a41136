"""``ballast capture qemu`` end to end: a real guest under QEMU, captured and validated clean.

Skipped only where qemu-system-x86_64 is not installed and CI is not set; in CI a missing
tool makes the capture fail, and so this test (run .ci/install-qemu.sh first).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from ballast.cli import main


def test_short_capture_with_compaction_validates_clean(tmp_path: Path) -> None:
    """Inflate to 64 MiB of balloon, then compact: Linux migrates balloon pages (a one-page
    inflate of the new page, a one-page deflate of the old), and the capture stays clean."""
    if shutil.which("qemu-system-x86_64") is None and "CI" not in os.environ:
        pytest.skip("qemu-system-x86_64 is not installed (run .ci/install-qemu.sh); "
                    "in CI this fails instead")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["capture", "qemu", "--out", str(tmp_path / "cap"), "--targets", "192",
                     "--guest-mib", "256", "--compaction", "--settle-s", "15",
                     "--timeout-s", "120", "--json"])
    assert code == 0, (out.getvalue(), err.getvalue())
    data = json.loads(out.getvalue())
    assert data["violation"] is None and data["warnings"] == []
    assert data["pages_inflated"] - data["pages_deflated"] == 64 * 256
    assert data["guest_pages"] == 256 * 256
    console = (tmp_path / "cap" / "console.log").read_text()
    match = re.search(r"COMPACTED up=\S+ balloon_migrate=(\d+)", console)
    assert match is not None, console[-2000:]
    assert data["pages_deflated"] == int(match.group(1))  # each migration: one deflate
    for name in ("trace.log", "qmp.log", "console.log"):
        assert (tmp_path / "cap" / name).is_file()


def test_capture_with_bad_targets_is_exit_2(tmp_path: Path) -> None:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["capture", "qemu", "--out", str(tmp_path), "--targets", "big"])
    assert code == 2 and "--targets" in err.getvalue()


def _capture(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["capture", *argv])
    return code, err.getvalue()


@pytest.mark.parametrize("command", ["qemu", "qemu-live"])
def test_an_out_that_is_a_file_is_exit_2_naming_it(tmp_path: Path, command: str) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    code, err = _capture(command, "--out", str(taken))
    assert code == 2 and "--out" in err and "must be a folder" in err and str(taken) in err, err
    assert "File exists" not in err
    code, err = _capture(command, "--out", str(taken / "below"))
    assert code == 2 and f"inside {taken}" in err, err


@pytest.mark.parametrize("command", ["qemu", "qemu-live"])
@pytest.mark.parametrize("mib", ["0", "-1", "100000000", str(10**30), "lots"])
def test_a_guest_size_out_of_bounds_is_exit_2_before_anything_starts(
        tmp_path: Path, command: str, mib: str) -> None:
    out = tmp_path / "out"
    code, err = _capture(command, "--out", str(out), "--guest-mib", mib)
    assert code == 2 and "--guest-mib" in err and "Traceback" not in err, err
    assert ("whole number of MiB" if mib == "lots" else "at least 64 and at most") in err
    assert not out.exists()  # QEMU never started: no logs


def test_the_help_bounds_the_guest_size() -> None:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        code = main(["capture", "qemu", "--help"])
    assert code == 0 and "physical memory" in " ".join(out.getvalue().split())
