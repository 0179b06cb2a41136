"""Jobs run each in a fresh process forked from the calling thread, a few at a time.

A ``multiprocessing`` pool that replaces each worker after one task forks the replacements
from a thread of its own, while the calling thread goes on (the fork then copies whatever
locks that thread held), and it waits for ever for the answer of a worker that died (a
worker killed by the kernel's out-of-memory killer hung ``ballast prove``). Here every process
is forked by the thread that asked for the work, and a worker that ends without an answer is
an error (:class:`~ballast.errors.WorkerLost`) naming its job, at once.

>>> list(forked_map(abs, [-3, 1, -2], workers=2, name=str))
[3, 1, 2]
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from ballast.errors import WorkerLost

__all__ = ["forked_map"]

Job = TypeVar("Job")
Result = TypeVar("Result")

_END_S = 5.0
"""Seconds a worker that was asked to end (SIGTERM) is given before it is killed."""


def _work(fn: Callable[[Any], Any], job: Any, answer: Connection) -> None:
    """In the worker: ``fn(job)``'s result, or the exception it raised, sent back once."""
    # Ctrl-C reaches the whole process group: the parent decides, and ends its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result: tuple[str, Any] = ("result", fn(job))
    except Exception as exc:  # noqa: BLE001 - raised again in the parent
        result = ("raised", exc)
    try:
        answer.send(result)
    except Exception as exc:  # noqa: BLE001 - an exception that cannot be pickled
        answer.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    answer.close()


def forked_map(fn: Callable[[Job], Result], jobs: Sequence[Job], *, workers: int,
               name: Callable[[Job], str]) -> Iterator[Result]:
    """``fn(job)`` for each of ``jobs``, in their order, each computed in a fresh process
    forked from this thread, at most ``workers`` at once.

    Every job starts from this process's state as it is when the job's process is forked.
    An exception ``fn`` raises is raised here; a worker that ends without an answer
    raises :class:`~ballast.errors.WorkerLost` naming ``name(job)``. Leaving the iteration
    early (an exception, Ctrl-C, SIGTERM, ``close()``) ends the workers still running.
    """
    ctx = (mp.get_context("fork") if "fork" in mp.get_all_start_methods()
           else mp.get_context("spawn"))
    running: dict[int, tuple[BaseProcess, Connection]] = {}
    done: dict[int, Result] = {}
    started = 0
    try:
        for index in range(len(jobs)):
            while index not in done:
                while started < len(jobs) and len(running) < max(1, workers):
                    reader, writer = ctx.Pipe(duplex=False)
                    worker = ctx.Process(target=_work, args=(fn, jobs[started], writer),
                                         daemon=True)
                    worker.start()
                    writer.close()
                    running[started] = (worker, reader)
                    started += 1
                ready = wait([reader for _, reader in running.values()])
                for k in [k for k, (_, reader) in running.items() if reader in ready]:
                    answered, reader = running.pop(k)
                    done[k] = _answer(answered, reader, name(jobs[k]))
            yield done.pop(index)
    finally:
        _end(list(running.values()))


def _answer(proc: BaseProcess, reader: Connection, job: str) -> Any:
    """The worker's result (raising what it raised), once its pipe is readable."""
    try:
        kind, value = reader.recv()
    except EOFError:  # it closed its end without a word: it died
        _join(proc)
        raise WorkerLost(job, proc.exitcode) from None
    finally:
        reader.close()
    _join(proc)
    if kind == "raised":
        raise value
    return value


def _join(proc: BaseProcess) -> None:
    """Wait for a worker that answered or died to end; one still there after
    :data:`_END_S` (stuck on its way out: its answer is in) is killed."""
    proc.join(_END_S)
    if proc.exitcode is None:
        proc.kill()
        proc.join()


def _end(workers: list[tuple[BaseProcess, Connection]]) -> None:
    """End the workers still running: SIGTERM, then SIGKILL for one that did not end."""
    for proc, reader in workers:
        reader.close()
        proc.terminate()
    for proc, _ in workers:
        _join(proc)
