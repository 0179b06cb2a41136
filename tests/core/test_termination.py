"""SIGTERM and Ctrl-C (SIGINT) within :func:`ballast.termination.sigterm_as_interrupt`, and
in the processes forked there."""

from __future__ import annotations

import doctest
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

import ballast.termination
from ballast.termination import Terminated, sigterm_as_interrupt


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test. A test run started in the background of a
    shell that has no job control ignores SIGINT, and the block leaves that alone."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_the_doctest_holds() -> None:
    assert doctest.testmod(ballast.termination).failed == 0


def test_sigterm_raises_terminated_in_the_block_and_is_default_after() -> None:
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 1.0)  # the handler runs at the next bytecode at the latest
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_raises_keyboard_interrupt_in_the_block_and_python_s_handler_is_back_after(
        python_ctrl_c: None) -> None:
    with sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        with pytest.raises(KeyboardInterrupt) as raised:
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 1.0)
        assert type(raised.value) is KeyboardInterrupt  # not Terminated: that is SIGTERM
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("where", ["gc callback", "__del__", "from_param", "weakref callback"])
def test_a_signal_in_code_whose_exceptions_are_dropped_is_raised_after_it(
        where: str, sig: str, python_ctrl_c: None) -> None:
    """Raised inside a garbage collector's callback (Hypothesis keeps one) or a ``__del__``,
    Terminated or Ctrl-C's KeyboardInterrupt was printed as 'Exception ignored' and the
    command went on; raised inside the ``from_param`` that converts an argument of a
    ``ctypes`` call (as each call of Z3's Python API has), it came out as
    ``ctypes.ArgumentError``: an internal error, exit 4."""
    import ctypes
    import gc

    ran: list[str] = []
    signum = getattr(signal, sig)
    expected = Terminated if sig == "SIGTERM" else KeyboardInterrupt

    def busy(note: str) -> None:
        os.kill(os.getpid(), signum)
        total = 0
        for i in range(200_000):  # Python code: the handler runs somewhere in here
            total += i
        ran.append(note)

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not ran:
            busy("callback")

    class Dropped:
        def __del__(self) -> None:
            busy("__del__")

    class Converted:
        @staticmethod
        def from_param(value: int) -> ctypes.c_int:
            busy("from_param")
            return ctypes.c_int(value)

    labs = ctypes.CDLL(None).labs
    labs.argtypes, labs.restype = [Converted], ctypes.c_long

    with sigterm_as_interrupt():
        with pytest.raises(expected) as raised:
            if where == "gc callback":
                gc.callbacks.append(callback)
                try:
                    gc.collect()
                finally:
                    gc.callbacks.remove(callback)
            elif where == "__del__":
                Dropped()
            elif where == "weakref callback":
                # No frame names it: the interpreter hands the dropped exception to
                # sys.unraisablehook (it was printed as 'Exception ignored in').
                freed = Converted()  # any object a weak reference can name
                watch = weakref.ref(freed, lambda _: busy("weakref callback"))
                del freed
                assert watch() is None
            else:
                assert labs(-3) == 3
            for _ in range(1000):  # the first checks for signals after it are here
                signal.sigtimedwait([], 0.001)
    assert type(raised.value) is expected
    if where == "weakref callback":
        assert ran == []  # cut short where it was, but the signal was not lost
    else:
        assert ran == ["callback" if where == "gc callback" else where]  # it ran whole


def test_a_ctrl_c_to_be_sent_again_as_the_block_ends_is_raised_by_its_end(
        python_ctrl_c: None) -> None:
    """A Ctrl-C that landed where its exception would be dropped, just before the block
    ended, was sent again after it: Python's own handler then raised it outside the
    command's clean-up (a traceback instead of exit 130; SIGTERM, its default action back,
    ended the process before its clean-up)."""
    import time

    class Dropped:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            total = 0
            for i in range(200_000):  # Python code: the handler runs somewhere in here
                total += i

    where = "end of the block"
    try:
        with sigterm_as_interrupt():
            Dropped()
        where = "after the block"
        time.sleep(0.2)  # ten times the delay before a signal is sent again
        where = "nowhere"
    except KeyboardInterrupt:
        pass
    assert where == "end of the block"
    try:
        time.sleep(0.2)  # nothing is sent again later
    except KeyboardInterrupt:  # pragma: no cover - the failure this test looks for
        pytest.fail("the Ctrl-C was sent again after the block had raised it")
    assert ballast.termination._waiting == []


def _embedders_handler(signum: int, frame: FrameType | None) -> None:
    """A handler set by a program that embeds Ballast."""


@pytest.mark.parametrize("theirs", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("handler", [_embedders_handler, signal.SIG_IGN])
def test_a_handler_set_by_an_embedding_program_is_left_alone_and_the_other_signal_handled(
        theirs: str, handler: Any, python_ctrl_c: None) -> None:
    """Only the signal whose handler is Python's default is taken over: the other one's
    handler stays, in the block and after it, and its exceptions are not ours to send again."""
    ours = "SIGINT" if theirs == "SIGTERM" else "SIGTERM"
    before = signal.signal(getattr(signal, theirs), handler)
    try:
        default = signal.getsignal(getattr(signal, ours))
        with sigterm_as_interrupt():
            assert signal.getsignal(getattr(signal, theirs)) is handler
            assert signal.getsignal(getattr(signal, ours)) is not default
            with pytest.raises(Terminated if ours == "SIGTERM" else KeyboardInterrupt):
                os.kill(os.getpid(), getattr(signal, ours))
                signal.sigtimedwait([], 1.0)
        assert signal.getsignal(getattr(signal, theirs)) is handler
        assert signal.getsignal(getattr(signal, ours)) is default
    finally:
        signal.signal(getattr(signal, theirs), before)


def test_an_interrupt_the_block_did_not_raise_goes_to_the_hook_before_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With Ctrl-C left to the embedding program, a KeyboardInterrupt dropped in a weak
    reference's callback is its own: handed to the hook that was there, not sent again."""
    seen: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(type(u.exc_value)))
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigterm_as_interrupt():
            freed = _Referent()
            watch = weakref.ref(freed, lambda _: _raise(KeyboardInterrupt()))
            del freed
            assert watch() is None
    finally:
        signal.signal(signal.SIGINT, before)
    assert seen == [KeyboardInterrupt]


class _Referent:
    """Any object a weak reference can name."""


def _raise(exc: BaseException) -> None:
    raise exc


def _fork_and_report(read_in_child: "callable[[], str]") -> str:  # type: ignore[valid-type]
    """Fork from a thread that is not the main thread (as a pool replaces its workers) and
    return what ``read_in_child`` said in the child."""
    r, w = os.pipe()
    pids: list[int] = []

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os.write(w, read_in_child().encode())
            os._exit(0)
        pids.append(pid)

    t = threading.Thread(target=fork)
    t.start()
    t.join()
    os.close(w)
    said = os.read(r, 1000).decode()
    os.close(r)
    os.waitpid(pids[0], 0)
    return said


def _disposition() -> str:
    blocked = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    default = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    return f"default={default} blocked={blocked}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_child_forked_in_the_block_starts_with_the_default_action_unblocked() -> None:
    """Python drops the signals a child received before its own start-up ended: a worker sent
    SIGTERM then, with this module's handler inherited, never ended. The child gets SIG_DFL
    back while SIGTERM is still blocked, so such a signal ends it; no thread's mask changes."""
    with sigterm_as_interrupt():
        assert _fork_and_report(_disposition) == "default=True blocked=False"
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    # Outside the block nothing is done to a fork (the default action is already there).
    assert _fork_and_report(_disposition) == "default=True blocked=False"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_mask_set_before_the_fork_is_left_as_it_was() -> None:
    with sigterm_as_interrupt():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            assert _fork_and_report(_disposition) == "default=True blocked=True"
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _ctrl_c_disposition() -> str:
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    python_s = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    return f"python's={python_s} blocked={blocked}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_child_forked_in_the_block_gets_python_s_ctrl_c_handler_back(
        python_ctrl_c: None) -> None:
    """Only the process that entered the block sends a dropped Ctrl-C again; a worker raises
    KeyboardInterrupt as Python does (or ignores it, as it chooses)."""
    with sigterm_as_interrupt():
        assert _fork_and_report(_ctrl_c_disposition) == "python's=True blocked=False"
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


# A pool that replaces each worker after one task forks the replacements from a thread of
# its own; closing it while it starts one sends SIGTERM to a child still starting up.
_POOL_CLOSED_WHILE_REPLACING = textwrap.dedent("""
    import multiprocessing as mp, sys
    from ballast.termination import sigterm_as_interrupt

    def one(i):
        return i

    with sigterm_as_interrupt():
        ctx = mp.get_context("fork")
        for _ in range(int(sys.argv[1])):
            with ctx.Pool(2, maxtasksperchild=1) as pool:
                assert list(pool.imap(one, range(6), chunksize=1)) == list(range(6))
    print("ended")
""")


@pytest.mark.slow
@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork here")
def test_pools_closed_while_replacing_workers_end() -> None:
    """The stop that used to hang now and then (once in a few hundred pools on two busy
    cores): every pool ends."""
    r = subprocess.run([sys.executable, "-c", _POOL_CLOSED_WHILE_REPLACING, "300"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ended", r.stderr
