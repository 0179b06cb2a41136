"""Progress of long work, shown on a terminal and nowhere else.

Long-running parts open a :class:`Meter` for each piece of work they count
(states explored, queries answered, batches run) and update it with figures they
keep anyway. While the command line shows progress (:func:`shown`: only when
standard error is a terminal and the user did not ask for ``--quiet``) every open
meter is one live line on standard error, drawn with ``rich``: what is counted,
how many of how many, the rate per second, a short note and the time spent.
Otherwise a meter costs one attribute test per update and prints nothing, so
standard output carries results and JSON alone, and logs and pipes stay clean.
Whether shown or not, what each meter counted is said if the command is
interrupted (:mod:`ballast.tally`).

>>> with meter("explore", unit="states") as m:  # nothing shown: no display is open
...     m.update(8192, note="depth 7")
>>> m.completed
8192
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, TextIO

from ballast import tally

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["Meter", "add_quiet_option", "active", "meter", "shown"]

_display: "Progress | None" = None
"""The live display while :func:`shown` shows one; ``None`` otherwise."""
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
        self.completed = 0
        self._task: "TaskID | None" = None
        tally.note(f"meter {what}", self.describe)  # said if the command is interrupted
        if _display is not None and _owner == os.getpid():
            self._task = _display.add_task(what, total=total, unit=unit, note="", rate=rate)

    def update(self, completed: int, *, total: int | None = None, note: str | None = None
               ) -> None:
        """``completed`` units done so far (and a new ``total`` or ``note`` if given)."""
        self.completed = completed
        if total is not None:
            self.total = total
        if self._task is not None and _display is not None:
            fields: dict[str, Any] = {} if note is None else {"note": note}
            _display.update(self._task, completed=completed, total=self.total, **fields)

    def describe(self) -> str | None:
        """``explore: 81,920 states`` (``prove: 308/779 queries``), or None before any work.

        >>> m = Meter("prove", total=779, unit="queries"); m.update(308); m.describe()
        'prove: 308/779 queries'
        """
        if not self.completed:
            return None
        of = f"/{self.total:,}" if self.total is not None else ""
        return f"{self.what}: {self.completed:,}{of} {self.unit}"

    def advance(self, n: int = 1, *, note: str | None = None) -> None:
        """``n`` more units done."""
        self.update(self.completed + n, note=note)

    def close(self) -> None:
        """The work is over: its line is drawn once more with the final figures, then goes."""
        if self._task is not None and _display is not None:
            _display.refresh()
            _display.remove_task(self._task)
        self._task = None

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def meter(what: str, *, total: int | None = None, unit: str = "steps", rate: bool = True
          ) -> Meter:
    """A new meter for ``what`` (shown while a display is open, silent otherwise)."""
    return Meter(what, total=total, unit=unit, rate=rate)


def active() -> bool:
    """Whether progress is being shown now (by this process)."""
    return _display is not None and _owner == os.getpid()


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
def shown(enabled: bool = True, stream: TextIO | None = None) -> Iterator[bool]:
    """Show every meter opened inside the block as a live line on ``stream`` (standard
    error by default) if ``enabled`` and ``stream`` is a terminal; yields whether it does.

    The lines are drawn over one another and cleared at the end: nothing of them is
    left in the terminal's scroll-back or in any file."""
    global _display, _owner
    stream = stream if stream is not None else sys.stderr
    if not enabled or _display is not None or not _is_terminal(stream):
        yield False
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


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream shows nothing
        return False


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress display, even on a terminal."""
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress display (it is shown on standard error only when that "
                        "is a terminal)")
