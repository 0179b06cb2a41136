"""Jobs run each in a fresh process forked from the calling thread, a few at a time.

A ``multiprocessing`` pool that replaces each worker after one task forks the replacements
from a thread of its own, while the calling thread goes on (the fork then copies whatever
locks that thread held), and it waits for ever for the answer of a worker that died (a
worker killed by the kernel's out-of-memory killer hung ``ballast prove``). Here every process
is forked by the thread that asked for the work, and a worker that ends without its answer is
an error (:class:`~ballast.errors.WorkerLost`) naming its job, at once.

:func:`forked_map` gives one answer per job, in the jobs' order; :func:`forked_stream` gives
every item each job's iterator yields, as they come (a long job reports as it goes).

>>> list(forked_map(abs, [-3, 1, -2], workers=2, name=str))
[3, 1, 2]
>>> sorted(forked_stream(range, [2, 3], workers=2, name=str))
[0, 0, 1, 1, 2]
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from ballast.errors import WorkerLost

__all__ = ["forked_map", "forked_stream"]

Job = TypeVar("Job")
Result = TypeVar("Result")

_END_S = 5.0
"""Seconds a worker is given to end (asked to with SIGTERM, or on its own once it answered)
before it is killed."""


def forked_map(fn: Callable[[Job], Result], jobs: Sequence[Job], *, workers: int,
               name: Callable[[Job], str]) -> Iterator[Result]:
    """``fn(job)`` for each of ``jobs``, in their order, each computed in a fresh process
    forked from this thread, at most ``workers`` at once.

    Every job starts from this process's state as it is when the job's process is forked.
    An exception ``fn`` raises is raised here; a worker that ends without an answer
    raises :class:`~ballast.errors.WorkerLost` naming ``name(job)``. Leaving the iteration
    early (an exception, Ctrl-C, SIGTERM, ``close()``) ends the workers still running.
    """
    done: dict[int, Result] = {}
    head = 0
    for k, result in _answers(_Once(fn), jobs, workers, name):
        done[k] = result
        while head in done:
            yield done.pop(head)
            head += 1


class _Once:
    """``fn`` as a job of one item (a class, not a lambda: it is pickled where there is no
    fork)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, job: Any) -> tuple[Any]:
        return (self.fn(job),)


def forked_stream(fn: Callable[[Job], Iterable[Result]], jobs: Sequence[Job], *,
                  workers: int, name: Callable[[Job], str]) -> Iterator[Result]:
    """Every item of ``fn(job)`` for each of ``jobs``, as the workers send them (a job's own
    items in their order, the jobs' interleaved), each job in a fresh process forked from
    this thread, at most ``workers`` at once; errors and leaving early as
    :func:`forked_map`. A worker lost midway raises once the items it sent are given."""
    for _, item in _answers(fn, jobs, workers, name):
        yield item


def _answers(fn: Callable[[Any], Iterable[Any]], jobs: Sequence[Any], workers: int,
             name: Callable[[Any], str]) -> Iterator[tuple[int, Any]]:
    """(job index, item) for every item of every ``fn(job)``, as they arrive."""
    ctx = (mp.get_context("fork") if "fork" in mp.get_all_start_methods()
           else mp.get_context("spawn"))
    running: dict[int, tuple[BaseProcess, Connection]] = {}
    sent: dict[int, int] = {}  # items each running job has sent so far
    started = 0
    try:
        while started < len(jobs) or running:
            while started < len(jobs) and len(running) < max(1, workers):
                reader, writer = ctx.Pipe(duplex=False)
                new = ctx.Process(target=_work, args=(fn, jobs[started], writer), daemon=True)
                new.start()
                writer.close()  # the worker's end: its death is then the pipe's end
                running[started] = (new, reader)
                started += 1
            ready = wait([reader for _, reader in running.values()])
            for k in [k for k, (_, reader) in running.items() if reader in ready]:
                worker, reader = running[k]
                try:
                    kind, value = reader.recv()
                except EOFError:  # it closed its end without its last word: it died
                    del running[k]
                    reader.close()
                    _join(worker)
                    raise WorkerLost(name(jobs[k]), worker.exitcode,
                                     sent.pop(k, 0)) from None
                if kind == "item":
                    sent[k] = sent.get(k, 0) + 1
                    yield k, value
                    continue
                del running[k]
                sent.pop(k, None)
                reader.close()
                _join(worker)
                if kind == "raised":
                    raise value
    finally:
        _end(list(running.values()))


def _work(fn: Callable[[Any], Iterable[Any]], job: Any, answer: Connection) -> None:
    """In the worker: each item of ``fn(job)``, then the end (or the exception it raised)."""
    # Ctrl-C reaches the whole process group: the parent decides, and ends its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for item in fn(job):
            answer.send(("item", item))
        last: tuple[str, Any] = ("end", None)
    except Exception as exc:  # noqa: BLE001 - raised again in the parent
        last = ("raised", exc)
    try:
        answer.send(last)
    except Exception as exc:  # noqa: BLE001 - an exception that cannot be pickled
        answer.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    answer.close()


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
