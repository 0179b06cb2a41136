"""The terminal every command writes to: one ``rich`` console, plain text off a terminal.

Checkers return data; the command line renders it (:mod:`ballast.cli.render`)
through :func:`console`, so that CI logs stay readable.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

__all__ = ["console"]


class _Console(Console):
    """rich's console, but a closed pipe is an error the command line turns into its own
    exit code (rich would exit 1 at once, the code of a violation)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(32, "the reader of the output went away")


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout by default), wide enough for the tables."""
    return _Console(file=stream or sys.stdout, width=120, highlight=False,
                    soft_wrap=True)
