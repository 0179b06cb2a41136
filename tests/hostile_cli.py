"""Running ``ballast`` on hostile input, bounded in time and memory, and judging how it refuses.

Most cases run in-process through :func:`ballast.cli.main` with captured output (fast);
:func:`run_subprocess` runs the real command under ``resource`` limits for the few cases
that need a process of their own.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ballast.cli import main

__all__ = ["Outcome", "assert_refused", "bounded", "fresh", "run_cli", "run_subprocess"]

MEMORY_HEADROOM = 1 << 30
"""Address space a case may add to what the test process already maps (1 GiB)."""

SECONDS = 20.0
"""Longest a case may run."""


class RanTooLong(BaseException):
    """Raised by the alarm in a case that runs past its time (not an Exception: main()
    must not turn it into an exit code)."""


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def bounded(seconds: float = SECONDS, headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Run the block with at most ``seconds`` of time and ``headroom`` more address space."""
    def alarm(signum: int, frame: object) -> None:
        raise RanTooLong(f"ran longer than {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old_handler)


def run_cli(args: Sequence[str], *, cwd: Path | None = None,
            seconds: float = SECONDS) -> Outcome:
    """``ballast ARGS`` in this process, bounded, with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(bounded(seconds))
        code = main(list(args))
    return Outcome(code, out.getvalue(), err.getvalue(), time.monotonic() - start)


def run_subprocess(args: Sequence[str], *, cwd: Path | None = None, seconds: float = 60.0,
                   memory: int = 2 << 30, env: dict[str, str] | None = None,
                   ) -> Outcome:
    """The real ``ballast ARGS`` command, under an address-space limit and a timeout."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ballast", *args], capture_output=True, text=True,
                       cwd=cwd, timeout=seconds, preexec_fn=limits,
                       env={**os.environ, **(env or {})})
    return Outcome(r.returncode, r.stdout, r.stderr, time.monotonic() - start)


def assert_refused(o: Outcome, *, file: str | None = None, line: int | None = None,
                   codes: Sequence[int] = (2,), words: str | None = None) -> None:
    """Refused the way bad input must be: the exit code, one line on stderr naming the
    file (and line), no traceback."""
    shown = f"exit {o.code}\nstdout: {o.out[-2000:]}\nstderr: {o.err[-2000:]}"
    assert o.code in codes, shown
    assert "Traceback" not in o.err and "Traceback" not in o.out, shown
    # Long work off a terminal may have said its progress first, on lines of their own.
    lines = [t for t in o.err.strip().splitlines() if not re.match(r"progress \d+ s: ", t)]
    assert len(lines) == 1, shown
    if file is not None:
        where = f"{file}:{line}" if line is not None else file
        assert where in lines[0], shown
    if words is not None:
        assert words in lines[0], shown


def fresh(tmp_path: Path) -> Path:
    """A new empty folder under ``tmp_path``: Hypothesis runs many examples in one test."""
    import tempfile

    return Path(tempfile.mkdtemp(dir=tmp_path))
