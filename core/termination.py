"""SIGTERM handled as Ctrl-C is, and Ctrl-C never lost: the clean-up of an interrupted
command runs.

A command stopped by SIGTERM (``timeout``, a CI runner's cancel, ``kill``) dies at once by
default: a QEMU guest it started keeps running, a folder of states spilled to disk stays.
Those clean-ups are written for Ctrl-C (``KeyboardInterrupt``: ``finally`` blocks, context
managers). Within :func:`sigterm_as_interrupt` a SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``, where the process is, so the same clean-ups run; the command line then
exits 143, as a shell reports a program stopped by SIGTERM.

Python's own Ctrl-C handler raises ``KeyboardInterrupt`` wherever the process is, even where
the exception cannot come out: inside a ``__del__`` or a weak reference's callback it is
printed as "Exception ignored" and the command goes on, and inside the conversion of an
argument of a ``ctypes`` call (each call of Z3's Python API has one) it becomes
``ctypes.ArgumentError``, an internal error (exit 4) instead of an interruption (130).
Within the block both signals get one handler, made for each from one table: where its
exception would be dropped or turned into another, the signal is sent again a moment later,
until it lands where it is raised.

A process forked from inside the block gets each signal's default back before it runs
anything: a pool ends its workers with SIGTERM, and only the process that entered the block
turns a signal into an exception. SIGTERM is held blocked across the fork, so one sent to a
worker that has only just been forked is not lost: Python drops the signals a new child
received before its own start-up finished, and a worker that lost its SIGTERM that way never
ended (a pool that replaces each worker after one task, closed while it was starting a new
one, waited for it for ever).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeAlias

__all__ = ["Terminated", "interrupts_deferred", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM (raised where it was, as Ctrl-C's exception is)."""


_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None
"""What ``signal.signal`` takes: a function, ``SIG_DFL`` or ``SIG_IGN``."""


@dataclass(frozen=True)
class _Stop:
    """A signal that stops a command, and what it does within the block."""

    signum: int
    default: _Handler
    """Python's own handler: the block takes the signal over only from it, and gives it back."""
    exception: type[KeyboardInterrupt]
    """Raised where the process is when the signal arrives."""

    @property
    def held_across_fork(self) -> bool:
        """Whether the signal stays blocked while a process forks. Only a default action of
        the kernel (SIG_DFL) can end a child before its hooks ran; Python's own handler
        (Ctrl-C's) cannot run there, and the child drops what it received until then."""
        return self.default is signal.SIG_DFL


_STOPS = (_Stop(signal.SIGTERM, signal.SIG_DFL, Terminated),
          _Stop(signal.SIGINT, signal.default_int_handler, KeyboardInterrupt))
"""The signals the block handles: SIGTERM as Ctrl-C, and Ctrl-C itself."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and Ctrl-C (SIGINT)
    ``KeyboardInterrupt`` in this process, neither dropped nor turned into another
    exception. Nothing changes outside the main thread (only it may set handlers), and a
    signal whose handler is not Python's default is left alone (the program that embeds
    Ballast chose what it does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = [stop for stop in _STOPS if signal.getsignal(stop.signum) is stop.default]
    if not stops:
        yield
        return
    owner = os.getpid()
    handlers = [_handler(stop, owner) for stop in stops]
    before = sys.unraisablehook
    on_unraisable = _unraisable_hook(stops, owner, before)
    _hooks_registered()
    for stop, handler in zip(stops, handlers):
        signal.signal(stop.signum, handler)
    sys.unraisablehook = on_unraisable
    _handlers.update(handlers)
    raising = False
    try:
        yield
    except BaseException:
        raising = True
        raise
    finally:
        # A signal still to be sent again arrived within the block: it is raised here, as
        # it would have been a moment later, rather than after the block, where Python's
        # handler would raise it outside the command's clean-up (or not at all).
        try:
            unsent = _unsent(owner)  # one sent meanwhile is raised here, by the handler
        finally:
            for stop, handler in zip(stops, handlers):
                _handlers.discard(handler)
                signal.signal(stop.signum, stop.default)
            if sys.unraisablehook is on_unraisable:
                sys.unraisablehook = before
        if not raising:
            for stop in stops:
                if stop.signum in unsent:
                    raise stop.exception()


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Within the block, Ctrl-C and SIGTERM that :func:`sigterm_as_interrupt` turns into
    exceptions wait until the block has ended and are raised just after it: a few steps
    that must all be taken or none (a set of files renamed into place) are not cut between
    two. Outside :func:`sigterm_as_interrupt` (Python's own handler, or one an embedding
    program set) nothing is deferred, and the caller undoes what an interrupt cut short.

    >>> import os, signal, time
    >>> steps = []
    >>> with sigterm_as_interrupt():
    ...     try:
    ...         with interrupts_deferred():
    ...             os.kill(os.getpid(), signal.SIGINT)
    ...             steps.append("both steps taken")
    ...         time.sleep(1)
    ...     except KeyboardInterrupt:
    ...         steps.append("then interrupted")
    >>> steps
    ['both steps taken', 'then interrupted']
    """
    _deferring.depth = getattr(_deferring, "depth", 0) + 1
    try:
        yield
    finally:
        _deferring.depth -= 1


def _deferred() -> bool:
    """Whether the main thread, where signal handlers run, is inside
    :func:`interrupts_deferred` (a handler runs in the main thread, so that thread's depth is
    the one read)."""
    return getattr(_deferring, "depth", 0) > 0


def _handler(stop: _Stop, owner: int) -> Callable[[int, FrameType | None], None]:
    """The handler of ``stop``'s signal within the block that process ``owner`` entered."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker: the default, as if the block were not
            signal.signal(signum, stop.default)
            os.kill(os.getpid(), signum)
            return
        if _swallowing(frame) or _deferred():
            # Raised here, the exception would be printed and dropped, and the command
            # would go on, or turned into another (an internal error), or cut steps that
            # must all be taken: the signal is sent again a moment later, until it lands
            # outside.
            _send_again(owner, signum)
            return
        raise stop.exception()

    return on_signal


def _unraisable_hook(stops: Sequence[_Stop], owner: int,
                     before: Callable[[Any], object]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that sends again the signal whose exception (one of
    ``stops``') was dropped, and hands anything else to ``before``."""

    def on_unraisable(unraisable: Any) -> None:
        # Dropped where no frame says so in advance (a weak reference's callback run while
        # an object is freed, ...): the interpreter hands it here instead of raising it.
        for stop in stops:
            if type(unraisable.exc_value) is stop.exception and os.getpid() == owner:
                _send_again(owner, stop.signum)
                return
        before(unraisable)

    return on_unraisable


def _send_again(owner: int, signum: int) -> None:
    """Send ``signum`` to ``owner`` again after :data:`_AGAIN_S` (from a thread: sent from
    the handler itself, it would be handled there again at once)."""
    again = _Again(owner, signum)
    _waiting.append(again)
    again.start()


class _Again(threading.Timer):
    """A signal to be sent again to a process a moment later, unless cancelled first."""

    def __init__(self, owner: int, signum: int) -> None:
        super().__init__(_AGAIN_S, self._send)
        self.daemon = True
        self.owner = owner
        self.signum = signum
        self.sent = False

    def _send(self) -> None:
        os.kill(self.owner, self.signum)
        self.sent = True


def _unsent(owner: int) -> set[int]:
    """Cancel the signals waiting to be sent again to ``owner``: those not sent yet."""
    mine = [again for again in _waiting if again.owner == owner]
    for again in mine:
        again.cancel()
        again.join()  # returns at once once cancelled, or once sent
        _waiting.remove(again)
    return {again.signum for again in mine if not again.sent}


_AGAIN_S = 0.02
"""Seconds after which a signal that arrived where its exception would be dropped (or
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
"""The handlers :func:`sigterm_as_interrupt` has set and not yet taken back."""
_waiting: list[_Again] = []
"""Signals to be sent again (:func:`_send_again`) not yet taken back by the block."""
_deferring = threading.local()
"""``depth``: how many :func:`interrupts_deferred` blocks this thread is inside."""
_forking = threading.local()
"""For the thread now forking: ``ours``, the stops whose handler of this module is set (the
child takes their defaults back), and ``unblock``, the signals blocked for the fork."""
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
    _forking.ours = [stop for stop in _STOPS if signal.getsignal(stop.signum) in _handlers]
    held = {stop.signum for stop in _forking.ours if stop.held_across_fork}
    _forking.unblock = set()
    if held:
        was = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        _forking.unblock = held - set(was)  # a mask set by others stays as it was


def _after_fork_in_parent() -> None:
    _unblock()


def _after_fork_in_child() -> None:
    ours: list[_Stop] = getattr(_forking, "ours", [])
    if ours:
        _handlers.clear()
    _waiting.clear()  # the parent's to send: their threads are not in the child
    for stop in ours:
        signal.signal(stop.signum, stop.default)  # a SIGTERM already sent ends it here
    _unblock()


def _unblock() -> None:
    """Unblock what :func:`_before_fork` blocked in this thread."""
    unblock: set[int] = getattr(_forking, "unblock", set())
    if unblock:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, unblock)
