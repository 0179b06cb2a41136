"""Work budgets: counted defaults, wall-clock limits only when asked, messages naming flags."""

from __future__ import annotations

import doctest
import time

import ballast.budget
from ballast.budget import (MAX_MEASURED_RLIMIT, QUERY_RLIMIT, Deadline, WorkBudget,
                            out_of_budget, out_of_time)


def test_doctests() -> None:
    assert doctest.testmod(ballast.budget).failed == 0


def test_defaults_count_work_and_set_no_wall_clock_limit() -> None:
    b = WorkBudget()
    assert b.max_seconds is None
    assert not b.deadline().passed() and b.deadline().epoch is None
    # Generous headroom over the costliest measured proof query.
    assert QUERY_RLIMIT >= 10 * MAX_MEASURED_RLIMIT


def test_a_deadline_passes_only_when_one_was_asked_for() -> None:
    assert Deadline(0.0).passed()
    epoch = Deadline(60.0).epoch
    assert epoch is not None and time.time() < epoch <= time.time() + 60.0
    assert not Deadline(60.0).passed()


def test_messages_name_the_budget_and_the_flag() -> None:
    assert out_of_budget("stopped after 5 states", "--max-states").endswith(
        "(budget); raise with --max-states")
    assert "(--max-seconds)" in out_of_time("stopped after 5 steps", 2.5)
    assert "2.5 s" in out_of_time("stopped after 5 steps", 2.5)
