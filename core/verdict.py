"""Verdicts and results shared by every checker, and the exit codes they map to.

Pass, violation and inconclusive are different outcomes with different exit
codes; inconclusive (a solver ``unknown``, a timeout, a budget hit) is never a
pass. An internal error (a bug in Ballast) has its own code, 4, and an
interruption 130, so neither is ever read as a pass or a violation. A scenario that was
never exercised is reported as ``vacuous``.

>>> overall([Verdict.PASS, Verdict.INCONCLUSIVE]).exit_code
3
>>> overall([Verdict.INCONCLUSIVE, Verdict.VIOLATION]).exit_code
1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable

__all__ = ["EXIT_INCONCLUSIVE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK",
           "EXIT_OUTPUT_CLOSED", "EXIT_TERMINATED", "EXIT_USAGE", "EXIT_VIOLATION",
           "CheckResult", "PropertyResult", "Verdict", "overall"]

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_INTERNAL = 4
"""An internal error of Ballast itself: never 0 or 1, so a crash never reads as a verdict."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C, SIGINT), as shells report it."""
EXIT_TERMINATED = 143
"""Stopped by SIGTERM (``timeout``, ``kill``), as shells report it; cleaned up as Ctrl-C is."""
EXIT_OUTPUT_CLOSED = 141
"""The reader of the output went away (``ballast ... | head``): what a shell reports for a
program stopped by SIGPIPE. The run was cut short, so it is no verdict: never 0 or 1."""


class Verdict(str, Enum):
    """The outcome of checking one property with one checker."""

    PASS = "pass"
    """Held: proved, or held over every state/step the checker covered."""
    VIOLATION = "violation"
    """Broken, with a replayable counterexample."""
    INCONCLUSIVE = "inconclusive"
    """Neither: a solver unknown, a timeout, a budget ran out."""
    VACUOUS = "vacuous"
    """A "sometimes" scenario never exercised: the checks around it may be empty."""
    SKIPPED = "skipped"
    """Not applicable in this configuration (feature switched off)."""

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: EXIT_OK, Verdict.SKIPPED: EXIT_OK,
                Verdict.VIOLATION: EXIT_VIOLATION,
                Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE,
                Verdict.VACUOUS: EXIT_INCONCLUSIVE}[self]


def overall(verdicts: Iterable[Verdict]) -> Verdict:
    """Violation beats inconclusive/vacuous beats pass."""
    vs = list(verdicts)
    if Verdict.VIOLATION in vs:
        return Verdict.VIOLATION
    if Verdict.INCONCLUSIVE in vs or Verdict.VACUOUS in vs:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


@dataclass(frozen=True)
class PropertyResult:
    """One property (or scenario, or action coverage item) as one checker saw it."""

    property: str
    """A name from INVARIANTS or SOMETIMES, or ``action:NAME`` for action coverage."""
    checker: str
    """``random``, ``hypothesis``, ``prove``, ``explore``, ``numeric``, ``validate``, ..."""
    verdict: Verdict
    detail: str = ""
    """One line: "held over 12,000 random steps", "proved in 0.3 s"; for a violation, what its
    ``counterexample`` shows when the reference model replays it (the failing step, the
    property, the model's message), never what the checker saw before it shrank or rebuilt
    the run, which may come after as such."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Figures: states, steps, seconds, query names, seed."""
    counterexample: Path | None = None
    """Trace file of the counterexample, for a violation."""
    kind: str = "invariant"
    """``invariant``, ``scenario`` or ``action``."""


@dataclass
class CheckResult:
    """Everything one checker found in one run."""

    checker: str
    results: list[PropertyResult] = field(default_factory=list)
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    """Coverage figures: states explored, steps run, queries made."""

    @property
    def verdict(self) -> Verdict:
        """The checker's verdict on the safety properties (coverage is pooled elsewhere)."""
        return overall(r.verdict for r in self.results if r.kind == "invariant")
