"""The terminal every command writes to: one ``rich`` console, plain text off a terminal.

Checkers return data; the command line renders it (:mod:`ballast.cli.render`)
through :func:`console`, so that CI logs stay readable.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

__all__ = ["console", "write_whole"]


class _Console(Console):
    """rich's console, but a closed pipe is an error the command line turns into its own
    exit code (rich would exit 1 at once, the code of a violation)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(32, "the reader of the output went away")


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout by default), wide enough for the tables."""
    return _Console(file=stream or sys.stdout, width=120, highlight=False,
                    soft_wrap=True)


def write_whole(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to ``stream`` (stdout by default) whole, or raise BrokenPipeError.

    A pipe whose reader goes away in the middle of a large write (``| head -1``) takes
    part of it without an error, and the rest is dropped: the command would end as if all
    was said. The bytes taken are counted here.
    """
    out = stream or sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:  # a text stream of its own (a test's StringIO)
        out.write(text)
        return
    out.flush()
    data = text.encode(out.encoding or "utf-8", errors=out.errors or "strict")
    if buffer.write(data) != len(data):
        raise BrokenPipeError(32, "the reader of the output went away")
    buffer.flush()
