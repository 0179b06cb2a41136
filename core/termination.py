"""SIGTERM handled as Ctrl-C is: the clean-up of an interrupted command runs.

A command stopped by SIGTERM (``timeout``, a CI runner's cancel, ``kill``) dies at once by
default: a QEMU guest it started keeps running, a folder of states spilled to disk stays.
Those clean-ups are written for Ctrl-C (``KeyboardInterrupt``: ``finally`` blocks, context
managers). Within :func:`sigterm_as_interrupt` a SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``, where the process is, so the same clean-ups run; the command line then
exits 143, as a shell reports a program stopped by SIGTERM.

A process forked from inside the block (a pool's worker) gets SIGTERM's default action back
before it runs anything: a pool ends its workers with SIGTERM, and only the process that entered
the block turns the signal into an exception. The signal is held blocked across the fork, so one
sent to a worker that has only just been forked is not lost: Python drops the signals a new
child received before its own start-up finished, and a worker that lost its SIGTERM that way
never ended (a pool that replaces each worker after one task, closed while it was starting a
new one, waited for it for ever).

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

import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

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
        if _swallowing(frame):
            # Raised here, the exception would be printed and dropped, and the command
            # would go on, or turned into another (an internal error): the signal is sent
            # again a moment later, until it lands outside.
            _send_again(owner)
            return
        raise Terminated()

    def on_unraisable(unraisable: Any) -> None:
        # Dropped where no frame says so in advance (a weak reference's callback run while
        # an object is freed, ...): the interpreter hands it here instead of raising it.
        if isinstance(unraisable.exc_value, Terminated) and os.getpid() == owner:
            _send_again(owner)
            return
        before(unraisable)

    _hooks_registered()
    before = sys.unraisablehook
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.unraisablehook = on_unraisable
    _handlers.add(on_sigterm)
    try:
        yield
    finally:
        _handlers.discard(on_sigterm)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if sys.unraisablehook is on_unraisable:
            sys.unraisablehook = before


def _send_again(owner: int) -> None:
    """Send SIGTERM to ``owner`` again after :data:`_AGAIN_S` (from a thread: sent from the
    handler itself, it would be handled there again at once)."""
    again = threading.Timer(_AGAIN_S, os.kill, (owner, signal.SIGTERM))
    again.daemon = True
    again.start()


_AGAIN_S = 0.02
"""Seconds after which a SIGTERM that arrived where its exception would be dropped (or
turned into another) is sent again."""


def _swallowing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside code whose exceptions the interpreter prints and drops
    instead of raising: a garbage collector's callback (Hypothesis registers one) or a
    ``__del__`` method; or inside a ``from_param`` method, by which ``ctypes`` converts an
    argument of a foreign call (Z3's Python API has one per kind of object) and which
    turns any exception into ``ctypes.ArgumentError``."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name in _SWALLOWING_NAMES:
            return True
        frame = frame.f_back
    return False


_SWALLOWING_NAMES = frozenset({"__del__", "from_param"})
"""Names of the functions an exception raised in is dropped or turned into another."""
_handlers: set[Callable[[int, FrameType | None], None]] = set()
"""The SIGTERM handlers :func:`sigterm_as_interrupt` has set and not yet taken back."""
_forking = threading.local()
"""For the thread now forking: ``ours``, whether a handler of this module is set (the child
takes the default action back), and ``unblock``, whether SIGTERM was blocked for the fork."""
_registered = False


def _hooks_registered() -> None:
    """The fork hooks, registered once per process (they cannot be taken back)."""
    global _registered
    if not _registered:
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                            after_in_child=_after_fork_in_child)
        _registered = True


def _before_fork() -> None:
    # Only while a handler of ours is set: a thread's mask is inherited by its child, so a
    # SIGTERM sent to the child before the hook below ran waits for it instead of being lost.
    _forking.ours = signal.getsignal(signal.SIGTERM) in _handlers
    _forking.unblock = False
    if _forking.ours:
        was = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        _forking.unblock = signal.SIGTERM not in was  # a mask set by others stays as it was


def _after_fork_in_parent() -> None:
    if getattr(_forking, "unblock", False):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _after_fork_in_child() -> None:
    if getattr(_forking, "ours", False):
        _handlers.clear()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a SIGTERM already sent ends it here
    if getattr(_forking, "unblock", False):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
