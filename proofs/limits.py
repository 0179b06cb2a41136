"""How much work one Z3 query may do: a resource limit, and wall-clock time only when asked.

Z3's ``rlimit`` counts the solver's own work (resource units), so a query that
is proved within its budget on an idle machine is proved within it on a loaded
one: the verdict does not depend on the machine's speed. A query made of several
solver calls (one per argument tuple of an action) shares one budget between
them. A wall-clock limit (``--max-seconds``) is applied only when the user gives
one; a query it stops is inconclusive and says so.

A solver call can run for many seconds inside Z3's C library, where Python runs no signal
handler: Ctrl-C, or SIGTERM turned into :class:`~ballast.termination.Terminated`, would wait
for the call to end. So where such a handler is set, the call runs in a thread of its own
while the main thread waits in a way signals interrupt; the exception a handler raises
interrupts Z3 (``Context.interrupt``), waits for the call to return and is raised in the
main thread, where the usual clean-up runs. Only that one call runs in the thread, while the
main thread waits: no Z3 object is used by two threads at once. Z3's own Ctrl-C handling is
off: it took SIGINT over during a call, and answered ``unknown`` instead of stopping.

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
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

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
    # Z3's own Ctrl-C handler, set during a call, made a query stopped by Ctrl-C unknown
    # (inconclusive) and the command went on: SIGINT is left to Python (see _check).
    solver.set("rlimit", left, "ctrl_c", False)
    if limit.deadline is not None and math.isfinite(limit.deadline):
        # Z3 takes the timeout in milliseconds as an unsigned 32-bit number.
        left_ms = (limit.deadline - time.time()) * 1000
        solver.set("timeout", max(1, int(min(left_ms, 2**32 - 1))))
    before = rlimit_count(solver)
    r = _check(solver, assumptions)
    return r, rlimit_count(solver) - before


def why_unknown(limit: SolverLimit, used: int, reason: str) -> str:
    """Why a query ended ``unknown``: which budget ran out and which flag raises it."""
    if used >= limit.rlimit:
        return f"Z3 resource limit of {limit.rlimit:,} (rlimit) ran out; raise with {limit.flag}"
    if limit.expired():
        return "stopped by the wall-clock limit (--max-seconds)"
    return f"solver answered unknown: {reason}"


_STOPPING = {signal.SIGINT, signal.SIGTERM}
"""The signals whose handler raises the exception that stops a command."""

_POLL_S = 0.05
"""Seconds between two looks of the waiting main thread at a signal that reached another
thread (it wakes at once for one sent to it), and between two interrupts of a call that
has not yet noticed the first."""


def _check(solver: z3.Solver, assumptions: tuple[z3.ExprRef, ...]) -> z3.CheckSatResult:
    """``solver.check(*assumptions)``, its answer or its exception unchanged, stopped at
    once by an exception a signal handler raises meanwhile (which is then raised here).

    Off the main thread (where no handler runs) or where no handler of SIGINT or SIGTERM
    is set (a forked worker: Ctrl-C ignored, SIGTERM's default action), Z3 is called
    directly, as there is nothing to wait for.
    """
    if (threading.current_thread() is not threading.main_thread()
            or not any(callable(signal.getsignal(s)) for s in _STOPPING)):
        return solver.check(*assumptions)
    call = _Call(solver, assumptions)
    worker = threading.Thread(target=call.run, name="z3 check", daemon=True)
    try:
        try:
            worker.start()
        except RuntimeError:  # no thread to be had: called here, as it was before
            call.stop(worker)
            return solver.check(*assumptions)
        while worker.is_alive():
            worker.join(_POLL_S)  # Ctrl-C or SIGTERM raises here
    except BaseException:
        call.stop(worker)
        raise
    return call.answer()


class _Call:
    """One ``solver.check`` run by a worker thread, and what it gave."""

    def __init__(self, solver: z3.Solver, assumptions: tuple[z3.ExprRef, ...]) -> None:
        self.solver, self.assumptions = solver, assumptions
        self.lock = threading.Lock()
        self.state = "new"
        """``new``; ``checking`` once the worker called Z3, ``done`` once Z3 returned;
        ``cancelled`` where the main thread stopped before the worker called Z3."""
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        """In the worker thread."""
        if hasattr(signal, "pthread_sigmask"):  # the signals go to the waiting main thread
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        with self.lock:
            if self.state == "cancelled":
                return
            self.state = "checking"
        try:
            self.result = self.solver.check(*self.assumptions)
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            self.error = exc
        finally:
            self.state = "done"

    def answer(self) -> z3.CheckSatResult:
        """In the main thread, once the worker ended: its answer, or its exception."""
        error, self.error = self.error, None
        if error is not None:
            raise error
        result: z3.CheckSatResult = self.result
        return result

    def stop(self, worker: threading.Thread) -> None:
        """In the main thread, on an exception while the worker runs (or is being started):
        interrupt Z3 until the call has returned, so that nothing uses the solver once this
        returns. A second signal meanwhile does not cut this short (the first is raised)."""
        while True:
            try:
                with self.lock:
                    if self.state == "new":  # the worker, if it ever runs, will not call Z3
                        self.state = "cancelled"
                break
            except BaseException:  # noqa: BLE001 - a second signal: the first is raised
                continue
        while self.state == "checking":
            try:
                # An interrupt that comes before Z3 began the check is lost: again until
                # the call has returned.
                self.solver.ctx.interrupt()
                worker.join(_POLL_S)
            except BaseException:  # noqa: BLE001 - a second signal: the first is raised
                continue
