"""Jobs in fresh forked processes (:mod:`ballast.forked`): answers, errors and lost workers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ballast.errors import WorkerLost
from ballast.forked import forked_map, forked_stream

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_every_job_runs_in_a_fresh_process_a_few_at_a_time_answers_in_order() -> None:
    start = time.monotonic()
    pids = list(forked_map(_pid_after, [0.3, 0.0, 0.3, 0.0], workers=2, name=str))
    assert len(set(pids)) == 4 and os.getpid() not in pids
    # Two at a time: the two slow jobs cannot both have run beside a third.
    assert time.monotonic() - start >= 0.3
    assert list(forked_map(str, range(7), workers=3, name=str)) == [str(i) for i in range(7)]
    assert list(forked_map(str, [], workers=2, name=str)) == []


def _killed_at(job: tuple[int, Path]) -> int:
    n, folder = job
    if n == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
    (folder / str(os.getpid())).write_text("")
    time.sleep(30 if n == 2 else 0)  # still running when job 1's loss is found
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_that_dies_is_named_at_once_and_the_others_are_ended(tmp_path: Path) -> None:
    """A pool waited for ever for a killed worker's answer."""
    start = time.monotonic()
    answers: list[int] = []
    with pytest.raises(WorkerLost) as lost:
        for n in forked_map(_killed_at, [(0, tmp_path), (1, tmp_path), (2, tmp_path)],
                            workers=3, name=lambda job: f"job {job[0]}"):
            answers.append(n)
    assert answers in ([], [0])  # the loss is raised when found, before job 0's answer or after
    assert time.monotonic() - start < 20  # not job 2's 30 s
    assert lost.value.job == "job 1" and lost.value.exitcode == -signal.SIGKILL
    assert "signal 9 (SIGKILL)" in str(lost.value) and "out of memory" in str(lost.value)
    pids = [int(p.name) for p in tmp_path.iterdir()]
    assert len(pids) <= 2 and not any(_alive(p) for p in pids)


def _raises(n: int) -> int:
    if n == 1:
        raise ValueError(f"job {n} is wrong")
    return n


def test_what_a_job_raises_is_raised_here() -> None:
    with pytest.raises(ValueError, match="job 1 is wrong"):
        list(forked_map(_raises, [0, 1, 2], workers=2, name=str))


def test_leaving_early_ends_the_workers(tmp_path: Path) -> None:
    got = forked_map(_killed_at, [(0, tmp_path), (2, tmp_path), (3, tmp_path)], workers=3,
                     name=str)
    assert next(got) == 0
    got.close()  # job 2 still sleeps
    pids = [int(p.name) for p in tmp_path.iterdir()]
    assert pids and not any(_alive(p) for p in pids)


def test_a_lost_worker_makes_prove_inconclusive(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """On the command line: exit 3, saying which queries were lost and how."""
    from ballast.cli import main
    from ballast.proofs import induction

    def killed(job: object) -> object:
        os.kill(os.getpid(), signal.SIGKILL)
        return None

    monkeypatch.setattr(induction, "_consecution_job", killed)
    code = main(["prove", "--preset", "core", "--guest-pages", "1", "--machine-pages", "1",
                 "--jobs", "2"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "the worker process for the consecution queries of" in err
    assert "SIGKILL" in err and "(inconclusive)" in err


def _answers_then_hangs(n: int) -> int:
    import threading

    # A thread that is not a daemon: the process waits for it on its way out, its answer sent.
    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    return n


def test_a_worker_stuck_after_its_answer_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its answer is in: it is given a short while to end, then killed (the parent waited
    for it for ever)."""
    from ballast import forked

    monkeypatch.setattr(forked, "_END_S", 0.5)
    start = time.monotonic()
    assert list(forked_map(_answers_then_hangs, [1, 2], workers=2, name=str)) == [1, 2]
    assert time.monotonic() - start < 15


def _counts_then_dies_at(job: tuple[int, int | None]) -> Iterator[tuple[int, int]]:
    n, dies_at = job
    for i in range(n):
        if i == dies_at:
            os.kill(os.getpid(), signal.SIGKILL)
        yield job[0], i


def test_a_stream_gives_each_item_as_sent_and_its_lost_worker_after_them() -> None:
    got = sorted(forked_stream(_counts_then_dies_at, [(3, None), (2, None)], workers=2,
                               name=str))
    assert got == [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    seen: list[tuple[int, int]] = []
    with pytest.raises(WorkerLost, match="for job 4") as lost:
        for item in forked_stream(_counts_then_dies_at, [(4, 2)], workers=1,
                                  name=lambda job: f"job {job[0]}"):
            seen.append(item)
    assert seen == [(4, 0), (4, 1)]  # what it sent before it was killed
    assert lost.value.sent == 2
    assert "after 2 of its results, before it finished" in str(lost.value)
