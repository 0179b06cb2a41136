"""Work budgets: how much each checker of ``ballast check`` does, counted in work, not seconds.

Every default is a count of work: runs and steps for the random and Hypothesis
checkers, states per feature slice for the explorer, Z3 resource units
(``rlimit``) per query for the proofs, seeds and batches for the numeric core.
The same command with the same seed therefore does the same work and reaches
the same verdict on an idle and on a loaded machine. A wall-clock limit applies
only when the user asks for one (``--max-seconds``); a checker it stops is
inconclusive and says so. A budget that runs out names the flag that raises it.

>>> b = WorkBudget()
>>> b.max_seconds is None and b.rlimit >= 10 * MAX_MEASURED_RLIMIT
True
>>> out_of_budget("stopped after 200,000 states", "--max-states")
'stopped after 200,000 states (budget); raise with --max-states'
>>> out_of_time("stopped after 1,200 steps", 30)
'stopped after 1,200 steps: wall-clock limit of 30 s reached (--max-seconds)'
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["BMC_RLIMIT", "EXPLORE_STATES", "MAX_MEASURED_RLIMIT", "NUMERIC_BATCHES",
           "NUMERIC_SEEDS", "QUERY_RLIMIT", "Deadline", "WorkBudget", "out_of_budget",
           "out_of_time"]

MAX_MEASURED_RLIMIT = 16_509_011
"""Z3 resource units of the costliest query of ``ballast prove --preset default``
(``cow_shared preserved by vmm_reclaim``), as ``benchmarks/bench_proofs.py`` prints."""

QUERY_RLIMIT = 200_000_000
"""Default Z3 resource units per proof query: about twelve times the costliest one."""

BMC_RLIMIT = 1_000_000_000
"""Default Z3 resource units for one bounded model checking search (all depths)."""

EXPLORE_STATES = 1_000_000
"""Default states per feature slice for the explorer in ``ballast check``."""

NUMERIC_SEEDS = 4
"""Default seeds of the numeric core in ``ballast check``."""

NUMERIC_BATCHES = 200
"""Default batches per seed of the numeric core in ``ballast check``."""


@dataclass(frozen=True)
class WorkBudget:
    """How much work the exhaustive and scaled checkers of ``ballast check`` do."""

    max_states: int = EXPLORE_STATES
    """Explorer: distinct states per feature slice (``--max-states``)."""
    rlimit: int = QUERY_RLIMIT
    """Proofs: Z3 resource units per query (``--rlimit``)."""
    bmc_rlimit: int = BMC_RLIMIT
    """Proofs: Z3 resource units per bounded search (``--bmc-rlimit``)."""
    numeric_seeds: int = NUMERIC_SEEDS
    """Numeric core: seeds run (``--numeric-seeds``)."""
    numeric_batches: int = NUMERIC_BATCHES
    """Numeric core: batches per seed (``--numeric-batches``)."""
    max_seconds: float | None = None
    """Wall-clock seconds per checker, only when asked (``--max-seconds``)."""

    def deadline(self) -> "Deadline":
        """A wall-clock deadline starting now (never passes without ``max_seconds``)."""
        return Deadline(self.max_seconds)


class Deadline:
    """The wall-clock limit of one checker, started when it is made."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds
        self._epoch_end = None if seconds is None else time.time() + seconds

    def passed(self) -> bool:
        """Whether the limit (if any) is reached."""
        return self._end is not None and time.monotonic() >= self._end

    @property
    def epoch(self) -> float | None:
        """The limit as a ``time.time()`` value (for worker processes), or None."""
        return self._epoch_end


def out_of_budget(done: str, flag: str) -> str:
    """The detail of a result whose work budget ran out: what was done, which flag raises it."""
    return f"{done} (budget); raise with {flag}"


def out_of_time(done: str, seconds: float) -> str:
    """The detail of a result stopped by the wall-clock limit the user asked for."""
    return f"{done}: wall-clock limit of {seconds:g} s reached (--max-seconds)"
