"""``--scheduler``: what it names, and the cluster it opens is closed however the block ends."""

from __future__ import annotations

import doctest
import logging
import os

import pytest

import ballast.cluster
from ballast.cluster import Scheduler, connected, parse_scheduler
from ballast.errors import UsageError


def test_docstring_examples_run() -> None:
    assert doctest.testmod(ballast.cluster).failed == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("local", Scheduler(None, os.cpu_count() or 1)),
    ("local:3", Scheduler(None, 3)),
    ("tcp://scheduler.example:8786", Scheduler("tcp://scheduler.example:8786", None)),
    (" tls://10.1.2.3:8786 ", Scheduler("tls://10.1.2.3:8786", None)),
])
def test_what_a_scheduler_spec_names(text: str, expected: Scheduler) -> None:
    assert parse_scheduler(text) == expected


@pytest.mark.parametrize("text", ["", "localhost:8786", "tcp://", "local:-1", "local:x",
                                  f"local:{4 * (os.cpu_count() or 1) + 1}"])
def test_a_spec_that_names_no_cluster_is_bad_usage(text: str) -> None:
    with pytest.raises(UsageError, match="--scheduler"):
        parse_scheduler(text)


@pytest.mark.slow
def test_a_local_cluster_stops_when_the_block_fails() -> None:
    pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    # Dask's configuration gives tornado.application a level of its own (it logged a
    # callback's traceback on Ctrl-C while tornado itself was quiet).
    loggers = [logging.getLogger(name)
               for name in ("tornado", "tornado.application", "distributed", "distributed.client")]
    levels = [log.level for log in loggers]
    with pytest.raises(RuntimeError, match="inside"):
        with connected(parse_scheduler("local:2")) as client:
            assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
            # A callback the event loop runs while Ctrl-C interrupts a call logs its failure
            # on tornado.application: not a result of the command.
            assert not logging.getLogger("tornado.application").isEnabledFor(logging.ERROR)
            # Python's resource tracker, started with the first process it spawns, stays
            # until this process ends; the workers are the others.
            started = [p for p in psutil.Process().children(recursive=True)
                       if p.pid not in before
                       and "resource_tracker" not in " ".join(p.cmdline())]
            assert started
            raise RuntimeError("inside")
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert alive == []
    # Dask's event loop thread may still log the failed call's callbacks after the block:
    # its loggers stay quiet (a traceback there would read as the command's own).
    try:
        assert [log.level for log in loggers] == [logging.CRITICAL] * len(loggers)
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


@pytest.mark.slow
def test_workers_with_another_version_of_ballast_are_bad_input(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    with connected(parse_scheduler("local:1")) as local:
        address = local.scheduler.address
        with connected(Scheduler(address, None)) as client:  # the same Ballast: accepted
            assert len(client.scheduler_info(n_workers=-1)["workers"]) == 1
        monkeypatch.setattr(ballast.cluster, "installed", lambda: "0.0.0-elsewhere")
        with pytest.raises(UsageError, match="another version of Ballast"):
            with connected(Scheduler(address, None)):
                pass
