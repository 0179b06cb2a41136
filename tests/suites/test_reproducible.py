"""The same ``ballast check`` with the same seed gives the same verdicts and figures,
whatever the machine's load: every budget counts work, none counts seconds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# A small configuration and reduced work, every checker on: some 20 seconds. The
# explorer's state budget is set to run out, to show that it runs out at the same
# state on both runs. The ``ci`` Hypothesis profile keeps the example database off: a
# database replays earlier failures first, which is not the same run.
CHECK = ["check", "--preset", "core", "--guest-pages", "2", "--machine-pages", "2",
         "--hypothesis-profile", "ci",
         "--seed", "7", "--random-runs", "25", "--random-steps", "100", "--examples", "10",
         "--numeric-seeds", "2", "--numeric-batches", "30", "--max-states", "3000"]

BUSY_SECONDS = 240
"""Upper bound on the life of each competing process, even if the test is killed."""


def _without_seconds(value: Any) -> Any:
    """``value`` with every ``seconds`` field dropped: the one figure allowed to vary."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def _verdict_lines(stdout: str) -> list[str]:
    """The printed verdicts, with the durations ("in 12.3 s") taken out."""
    return [re.sub(r" in \d+(\.\d+)? s\b", " in _ s", line) for line in stdout.splitlines()
            if not line.startswith("running ")]


def _check(tmp_path: Path, name: str) -> tuple[int, list[str], Any]:
    out = tmp_path / name
    summary = out / "summary.json"
    r = subprocess.run([sys.executable, "-m", "ballast", *CHECK, "--report-dir", str(out),
                        "--json", str(summary)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COLUMNS": "120"})
    assert r.returncode in (0, 1, 3), r.stderr
    return r.returncode, _verdict_lines(r.stdout), json.loads(summary.read_text())


def _busy(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that keep a CPU busy each, for at most ``BUSY_SECONDS``."""
    loop = (f"import time\nend = time.monotonic() + {BUSY_SECONDS}\n"
            "while time.monotonic() < end:\n    pass\n")
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]


def test_the_same_check_gives_the_same_figures_idle_and_loaded(tmp_path: Path) -> None:
    idle = _check(tmp_path, "idle")
    hogs = _busy(2 * (os.cpu_count() or 1))
    try:
        assert all(h.poll() is None for h in hogs)
        loaded = _check(tmp_path, "loaded")
        # The competing processes were still running: the second check ran under load.
        assert all(h.poll() is None for h in hogs)
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait()
    code, lines, summary = idle
    assert loaded[0] == code
    assert loaded[1] == lines
    assert _without_seconds(loaded[2]) == _without_seconds(summary)
    # The comparison is about real figures: each checker ran and reported its work.
    checkers = {c["checker"]: c for c in summary["checkers"]}
    assert set(checkers) >= {"random", "hypothesis", "explore", "prove", "numeric", "validate"}
    assert checkers["prove"]["stats"]["rlimit"] > 0
    assert checkers["numeric"]["stats"]["ops"] > 0
    assert checkers["explore"]["stats"]["states"] > 0
    for name in ("random", "hypothesis", "prove", "numeric"):
        assert checkers[name]["verdict"] == "pass", name
    assert code == 3 and checkers["explore"]["verdict"] == "inconclusive"
    # The safety properties, and the liveness the stopped slice could not check, each name
    # the budget that ran out.
    ran_out = [line for line in lines if line.startswith("INCONCLUSIVE explore")]
    assert len(ran_out) == 2, ran_out
    assert all("states (budget); raise with --max-states" in line for line in ran_out)
    assert "balloon_eventually_at_target" in ran_out[1]


@pytest.mark.parametrize("value, kept", [
    ({"seconds": 1.5, "ops": 3}, {"ops": 3}),
    ([{"seconds": 2, "stats": {"seconds": 3, "states": 9}}], [{"stats": {"states": 9}}]),
])
def test_only_seconds_are_left_out_of_the_comparison(value: Any, kept: Any) -> None:
    assert _without_seconds(value) == kept


def test_durations_are_left_out_of_the_verdict_lines() -> None:
    text = "running prove ...\n  prove: pass in 12.3 s  proved\nVerdict: pass (exit 0) in 40.1 s"
    assert _verdict_lines(text) == ["  prove: pass in _ s  proved",
                                    "Verdict: pass (exit 0) in _ s"]
