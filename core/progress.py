"""Progress of long work: live lines on a terminal, plain periodic lines in a log.

Long-running parts open a :class:`Meter` for each piece of work they count
(states explored, queries answered, batches run) and update it with figures they
keep anyway. While the command line shows progress (:func:`shown`, unless the user
asked for ``--quiet``), on standard error:

- on a terminal, every open meter is one live line drawn with ``rich``: what is
  counted, how many of how many, the rate per second, a short note and the time
  spent, cleared when the work ends;
- anywhere else (a CI log, a pipe, a file), one plain line of every open meter at
  most every :data:`EVERY_SECONDS` of wall time (``BALLAST_PROGRESS_SECONDS``
  changes it), written when a meter counts work: no control sequences, never
  wrapped, and nothing at all for work shorter than that; a meter that was written
  about says its final figures when it closes.

Outside :func:`shown` (a library call) a meter costs one attribute test per update
and prints nothing. Standard output carries results and JSON alone. Whether shown
or not, what each meter counted is said if the command is interrupted
(:mod:`ballast.tally`).

>>> with meter("explore", unit="states") as m:  # nothing shown: no display is open
...     m.update(8192, note="depth 7")
>>> m.completed
8192
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

from ballast import tally
from ballast.argtypes import decimal_number
from ballast.errors import UsageError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["EVERY_SECONDS", "Meter", "PlainLines", "add_quiet_option", "active", "meter",
           "shown"]

EVERY_SECONDS = 10.0
"""Wall-clock seconds between two plain progress lines (off a terminal), unless
``BALLAST_PROGRESS_SECONDS`` says otherwise."""

_display: "Progress | None" = None
"""The live display while :func:`shown` shows one; ``None`` otherwise."""
_plain: "PlainLines | None" = None
"""The plain lines while :func:`shown` writes them (not a terminal); ``None`` otherwise."""
_owner = 0
"""The process that opened the display: a worker forked from it draws nothing (its copy of
the display has no refresh thread, and its locks may have been held at the fork)."""


class Meter:
    """One line of progress: work counted in ``unit`` (out of ``total`` if known).

    ``rate``: whether units per second mean something for this work. Without a live
    display (not a terminal, ``--quiet``, or a library call) it only remembers its
    figures."""

    def __init__(self, what: str, *, total: int | None = None, unit: str = "steps",
                 rate: bool = True) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.completed, self.rate, self.note = 0, rate, ""
        self.started = time.monotonic()
        self._task: "TaskID | None" = None
        self._plain: "PlainLines | None" = None
        tally.note(f"meter {what}", self.describe)  # said if the command is interrupted
        if _display is not None and _owner == os.getpid():
            self._task = _display.add_task(what, total=total, unit=unit, note="", rate=rate)
        elif _plain is not None and _owner == os.getpid():
            self._plain = _plain
            _plain.open(self)

    def update(self, completed: int, *, total: int | None = None, note: str | None = None
               ) -> None:
        """``completed`` units done so far (and a new ``total`` or ``note`` if given)."""
        self.completed = completed
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        if self._task is not None and _display is not None:
            fields: dict[str, Any] = {} if note is None else {"note": note}
            _display.update(self._task, completed=completed, total=self.total, **fields)
        elif self._plain is not None:
            self._plain.counted()

    def describe(self) -> str | None:
        """``explore: 81,920 states`` (``prove: 308/779 queries``), or None before any work.

        >>> m = Meter("prove", total=779, unit="queries"); m.update(308); m.describe()
        'prove: 308/779 queries'
        """
        if not self.completed:
            return None
        of = f"/{self.total:,}" if self.total is not None else ""
        return f"{self.what}: {self.completed:,}{of} {self.unit}"

    def line(self, now: float) -> str:
        """The meter in one plain line: ``explore: 81,920 states, 4,096 states/s (depth 7)``.

        >>> m = Meter("prove", total=779, unit="queries"); m.update(308, note="init")
        >>> m.line(m.started + 2.0)
        'prove: 308/779 queries, 154 queries/s (init)'
        """
        of = f"/{self.total:,}" if self.total is not None else ""
        text = f"{self.what}: {self.completed:,}{of} {self.unit}"
        seconds = now - self.started
        if self.rate and self.completed and seconds > 0:
            text += f", {self.completed / seconds:,.0f} {self.unit}/s"
        note = " ".join(self.note.split())
        return f"{text} ({note})" if note else text

    def advance(self, n: int = 1, *, note: str | None = None) -> None:
        """``n`` more units done."""
        self.update(self.completed + n, note=note)

    def close(self) -> None:
        """The work is over: its line is drawn once more with the final figures, then goes."""
        if self._task is not None and _display is not None:
            _display.refresh()
            _display.remove_task(self._task)
        self._task = None
        if self._plain is not None:
            self._plain.close(self)
        self._plain = None

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def meter(what: str, *, total: int | None = None, unit: str = "steps", rate: bool = True
          ) -> Meter:
    """A new meter for ``what`` (shown while a display is open, silent otherwise)."""
    return Meter(what, total=total, unit=unit, rate=rate)


def active() -> bool:
    """Whether progress is being shown now (by this process), live or as plain lines."""
    return (_display is not None or _plain is not None) and _owner == os.getpid()


class PlainLines:
    """Progress as plain lines on a stream that is not a terminal (a CI log, a pipe).

    When a meter counts work and ``every`` seconds have passed since the last line (or
    the start), one line says what every open meter has counted; a meter that was in
    such a line says its final figures when it closes. The lines have no control
    sequences and are never wrapped: one line each, however long.

    >>> import io
    >>> clock = iter([0.0, 4.0, 11.0, 12.0, 30.0]).__next__
    >>> log = PlainLines(io.StringIO(), every=10.0, clock=clock)   # starts at 0 s
    >>> m = Meter("random", total=300, unit="runs", rate=False); log.open(m)
    >>> m.completed = 5; log.counted()                             # 4 s: too soon
    >>> m.completed = 40; log.counted()                            # 11 s: a line
    >>> m.completed = 41; log.counted()                            # 12 s: too soon
    >>> m.completed = 300; log.close(m)                            # 30 s: its final line
    >>> print(log.stream.getvalue(), end="")
    progress 11 s: random: 40/300 runs
    progress 30 s: done: random: 300/300 runs
    """

    def __init__(self, stream: TextIO, *, every: float = EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.every, self.clock = stream, every, clock
        self.start = self.last = clock()
        self.meters: list[Meter] = []
        self._written: set[int] = set()
        """The meters (by id) named in a line so far: they say when they are done."""

    def open(self, m: Meter) -> None:
        """``m`` is counting work: it is in every line until it closes."""
        self.meters.append(m)

    def counted(self) -> None:
        """A meter counted work: write a line if ``every`` seconds have passed."""
        now = self.clock()
        if now - self.last < self.every or not self.meters:
            return
        self.last = now
        self._written.update(id(m) for m in self.meters)
        self._write(now, "; ".join(m.line(now) for m in self.meters))

    def close(self, m: Meter) -> None:
        """``m``'s work is over: its final figures, if a line named it before."""
        if m not in self.meters:
            return
        self.meters.remove(m)
        if id(m) in self._written:
            self._written.discard(id(m))
            now = self.clock()
            self._write(now, f"done: {m.line(now)}")

    def _write(self, now: float, text: str) -> None:
        try:
            self.stream.write(f"progress {now - self.start:.0f} s: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or full log loses a progress line, no more
            pass


def _columns() -> list[Any]:
    from rich.progress import (BarColumn, ProgressColumn, SpinnerColumn, Task, TextColumn,
                               TimeElapsedColumn)
    from rich.table import Column
    from rich.text import Text

    class Count(ProgressColumn):
        """``1,234/5,678 states`` (or ``1,234 states`` when the total is unknown)."""

        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "")
            of = f"/{int(task.total):,}" if task.total is not None else ""
            return Text(f"{int(task.completed):,}{of} {unit}")

    class Rate(ProgressColumn):
        """``12,345 states/s`` over the last seconds."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if not speed or not task.fields.get("rate", True):
                return Text("")
            return Text(f"{speed:,.0f} {task.fields.get('unit', '')}/s", style="cyan")

    def fixed() -> Column:
        return Column(no_wrap=True)

    # Figures never wrap; the note, last, takes what is left and is cut short with "...".
    return [SpinnerColumn(), TextColumn("[bold]{task.description}", table_column=fixed()),
            BarColumn(bar_width=20), Count(table_column=fixed()), Rate(table_column=fixed()),
            TimeElapsedColumn(table_column=fixed()),
            TextColumn("[dim]{task.fields[note]}",
                       table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))]


@contextmanager
def shown(enabled: bool = True, stream: TextIO | None = None,
          every: float | None = None) -> Iterator[bool]:
    """Show every meter opened inside the block on ``stream`` (standard error by default)
    if ``enabled``; yields whether it does.

    On a terminal the meters are live lines drawn over one another and cleared at the
    end: nothing of them is left in the terminal's scroll-back or in any file.
    Elsewhere they are :class:`PlainLines`, one line every ``every`` seconds (default
    ``BALLAST_PROGRESS_SECONDS``, else :data:`EVERY_SECONDS`)."""
    global _display, _plain, _owner
    stream = stream if stream is not None else sys.stderr
    if not enabled or _display is not None or _plain is not None:
        yield False
        return
    if not _is_terminal(stream):
        _plain, _owner = PlainLines(stream, every=_every(every)), os.getpid()
        try:
            yield True
        finally:
            _plain = None
        return
    from rich.console import Console
    from rich.progress import Progress

    display = Progress(*_columns(), console=Console(file=stream, highlight=False),
                       transient=True, refresh_per_second=8)
    _display, _owner = display, os.getpid()
    try:
        with display:
            yield True
    finally:
        _display = None


def _every(given: float | None) -> float:
    """Seconds between plain lines: ``given``, else ``BALLAST_PROGRESS_SECONDS``, else
    :data:`EVERY_SECONDS`."""
    if given is not None:
        return given
    raw = os.environ.get("BALLAST_PROGRESS_SECONDS")
    if raw is None:
        return EVERY_SECONDS
    value = decimal_number(raw)  # the digits 0-9, as a flag takes them
    if value is None or not math.isfinite(value) or value <= 0:
        raise UsageError(f"BALLAST_PROGRESS_SECONDS: expected a positive number of seconds, "
                         f"got {raw!r}")
    return value


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream shows nothing
        return False


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress display, even on a terminal."""
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on standard error (live lines on a terminal; elsewhere "
                        "one plain line every BALLAST_PROGRESS_SECONDS, default "
                        f"{EVERY_SECONDS:.0f}, for work that lasts that long)")
