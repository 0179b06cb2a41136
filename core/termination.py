"""SIGTERM handled as Ctrl-C is: the clean-up of an interrupted command runs.

A command stopped by SIGTERM (``timeout``, a CI runner's cancel, ``kill``) dies at once by
default: a QEMU guest it started keeps running, a folder of states spilled to disk stays.
Those clean-ups are written for Ctrl-C (``KeyboardInterrupt``: ``finally`` blocks, context
managers). Within :func:`sigterm_as_interrupt` a SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``, where the process is, so the same clean-ups run; the command line then
exits 143, as a shell reports a program stopped by SIGTERM.

A worker process forked from inside the block inherits the handler; there the signal keeps
its default action (a pool ends its workers with SIGTERM), so only the process that entered
the block turns it into an exception.

>>> import os, signal
>>> with sigterm_as_interrupt():
...     try:
...         os.kill(os.getpid(), signal.SIGTERM)
...     except Terminated:
...         print("cleaned up")
cleaned up
>>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
True
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM (raised where it was, as Ctrl-C's exception is)."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in this process. Nothing changes
    outside the main thread (only it may set handlers) or where a handler other than the
    default is already set (the program that embeds Ballast chose what SIGTERM does)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    owner = os.getpid()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker: end as SIGTERM ends it by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
