"""SIGTERM within :func:`ballast.termination.sigterm_as_interrupt`, and in the processes
forked there."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest

from ballast.termination import Terminated, sigterm_as_interrupt


def test_sigterm_raises_terminated_in_the_block_and_is_default_after() -> None:
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 1.0)  # the handler runs at the next bytecode at the latest
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("where", ["gc callback", "__del__", "from_param", "weakref callback"])
def test_sigterm_in_code_whose_exceptions_are_dropped_is_raised_after_it(where: str) -> None:
    """Raised inside a garbage collector's callback (Hypothesis keeps one) or a ``__del__``,
    Terminated was printed as 'Exception ignored' and the command went on; raised inside the
    ``from_param`` that converts an argument of a ``ctypes`` call (as each call of Z3's
    Python API has), it came out as ``ctypes.ArgumentError``: an internal error, exit 4."""
    import ctypes
    import gc

    ran: list[str] = []

    def busy(note: str) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
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
        with pytest.raises(Terminated):
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
    if where == "weakref callback":
        assert ran == []  # cut short where it was, but the signal was not lost
    else:
        assert ran == ["callback" if where == "gc callback" else where]  # it ran whole


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
