"""The terminal every command writes to: one ``rich`` console, plain text off a terminal.

Checkers return data; the command line renders it (:mod:`ballast.cli.render`)
through :func:`console`, so that CI logs stay readable.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

__all__ = ["console"]


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout by default), wide enough for the tables."""
    return Console(file=stream or sys.stdout, width=120, highlight=False,
                   soft_wrap=True)
