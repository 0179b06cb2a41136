"""How much work one Z3 query may do: a resource limit, and wall-clock time only when asked.

Z3's ``rlimit`` counts the solver's own work (resource units), so a query that
is proved within its budget on an idle machine is proved within it on a loaded
one: the verdict does not depend on the machine's speed. A query made of several
solver calls (one per argument tuple of an action) shares one budget between
them. A wall-clock limit (``--max-seconds``) is applied only when the user gives
one; a query it stops is inconclusive and says so.

>>> import z3
>>> x = z3.Int("x")
>>> s = z3.Solver()
>>> s.add(x > 1, x < 1)
>>> r, used = checked(s, SolverLimit(rlimit=1_000_000))
>>> r == z3.unsat and 0 < used < 1_000_000
True
>>> checked(s, SolverLimit(rlimit=10), used=10)[0] == z3.unknown
True
>>> far = [SolverLimit(deadline=time.time() + d) for d in (float("inf"), 1e308)]
>>> [checked(s, limit)[0] == z3.unsat for limit in far]  # no limit, or none Z3 can hold
[True, True]
>>> why_unknown(SolverLimit(rlimit=10), 10, "canceled")
'Z3 resource limit of 10 (rlimit) ran out; raise with --rlimit'
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import z3

from ballast.budget import BMC_RLIMIT, QUERY_RLIMIT

__all__ = ["BMC_RLIMIT", "QUERY_RLIMIT", "SolverLimit", "checked", "rlimit_count",
           "why_unknown"]


@dataclass(frozen=True)
class SolverLimit:
    """The budget of one query: Z3 resource units, and optionally a wall-clock deadline."""

    rlimit: int = QUERY_RLIMIT
    """Resource units the query may use in all its solver calls together."""
    deadline: float | None = None
    """``time.time()`` after which no solver call runs (only with ``--max-seconds``)."""
    flag: str = "--rlimit"
    """The option that raises ``rlimit``, named when it runs out."""

    def expired(self) -> bool:
        """Whether the wall-clock deadline, if any, has passed."""
        return self.deadline is not None and time.time() >= self.deadline


def rlimit_count(solver: z3.Solver) -> int:
    """Resource units Z3 has spent so far in the solver's context (its "rlimit count")."""
    stats = solver.statistics()
    for key in stats.keys():
        if key == "rlimit count":
            return int(stats.get_key_value(key))
    return 0


def checked(solver: z3.Solver, limit: SolverLimit, used: int = 0,
            *assumptions: z3.ExprRef) -> tuple[z3.CheckSatResult, int]:
    """``solver.check(*assumptions)`` within what is left of ``limit`` after ``used``
    resource units; the answer and the resource units this call used.

    No budget left (or the deadline passed) answers ``unknown`` without calling Z3.
    """
    left = limit.rlimit - used
    if left <= 0 or limit.expired():
        return z3.unknown, 0
    solver.set("rlimit", left)
    if limit.deadline is not None and math.isfinite(limit.deadline):
        # Z3 takes the timeout in milliseconds as an unsigned 32-bit number.
        left_ms = (limit.deadline - time.time()) * 1000
        solver.set("timeout", max(1, int(min(left_ms, 2**32 - 1))))
    before = rlimit_count(solver)
    r = solver.check(*assumptions)
    return r, rlimit_count(solver) - before


def why_unknown(limit: SolverLimit, used: int, reason: str) -> str:
    """Why a query ended ``unknown``: which budget ran out and which flag raises it."""
    if used >= limit.rlimit:
        return f"Z3 resource limit of {limit.rlimit:,} (rlimit) ran out; raise with {limit.flag}"
    if limit.expired():
        return "stopped by the wall-clock limit (--max-seconds)"
    return f"solver answered unknown: {reason}"
