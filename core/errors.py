"""The one exception root of Ballast and its direct children.

Every error that Ballast raises on purpose derives from :class:`BallastError`,
so a caller (or the command line) can catch the whole family in one place.

>>> issubclass(InputError, BallastError)
True
>>> str(InputError("trace.jsonl", 3, "expected an object"))
'trace.jsonl:3: expected an object'
"""

from __future__ import annotations

import signal

__all__ = [
    "BallastError",
    "ConfigError",
    "GuardError",
    "InputError",
    "InternalError",
    "OutputError",
    "UsageError",
    "WorkerLost",
]


class BallastError(Exception):
    """Root of every exception Ballast raises deliberately."""


class UsageError(BallastError):
    """The command line or an API was called with arguments that make no sense."""


class InputError(BallastError):
    """A file given to Ballast is malformed: names the file, the line and what was expected."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class OutputError(BallastError):
    """A file Ballast was asked to write cannot be written (a folder, no space, no right).

    Nothing partial is left behind; names the file and the reason.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class ConfigError(BallastError):
    """A model configuration is inconsistent (for example more VMs than MPNs allow)."""


class InternalError(BallastError):
    """Ballast contradicted itself: a checker's finding that its own reference model does
    not confirm, a step it applied where the model's guard refuses it. A bug of Ballast's,
    never a verdict nor bad input: the command line says so and exits 4."""


class GuardError(BallastError):
    """An action was applied in a state where its guard does not hold.

    ``reason`` says in domain words why the step is not allowed.
    """

    def __init__(self, action: str, reason: str) -> None:
        self.action = action
        self.reason = reason
        super().__init__(f"{action}: not allowed here: {reason}")


class WorkerLost(BallastError):
    """A worker process ended before its work was done (killed, crashed): the rest of that
    work is undone, so the run is inconclusive, whatever the others found.

    >>> print(WorkerLost("consecution of guest_write", -9))  # doctest: +NORMALIZE_WHITESPACE
    the worker process for consecution of guest_write ended by signal 9 (SIGKILL) before it
    answered; the kernel sends SIGKILL when it runs out of memory
    >>> print(WorkerLost("seeds 0..9", 1, sent=4))  # doctest: +NORMALIZE_WHITESPACE
    the worker process for seeds 0..9 ended with exit code 1 after 4 of its results, before
    it finished
    """

    def __init__(self, job: str, exitcode: int | None, sent: int = 0) -> None:
        self.job = job
        self.exitcode = exitcode
        self.sent = sent
        """Results the worker had sent before it ended (a job that reports as it goes)."""
        if exitcode is not None and exitcode < 0:
            try:
                how = f"by signal {-exitcode} ({signal.Signals(-exitcode).name})"
            except ValueError:
                how = f"by signal {-exitcode}"
        else:
            how = f"with exit code {exitcode}"
        hint = ("; the kernel sends SIGKILL when it runs out of memory"
                if exitcode == -9 else "")
        when = (f"after {sent:,} of its result{'s' if sent != 1 else ''}, before it finished"
                if sent else "before it answered")
        super().__init__(f"the worker process for {job} ended {how} {when}{hint}")
