"""``--scheduler``: what it names, and the cluster it opens is closed however the block ends."""

from __future__ import annotations

import doctest
import logging
import os
import socket
import threading
import time
from typing import Iterator

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
                                  "local:\uff11", "local: 1", "local:1_0", "local:+2",
                                  f"local:{4 * (os.cpu_count() or 1) + 1}"])
def test_a_spec_that_names_no_cluster_is_bad_usage(text: str) -> None:
    with pytest.raises(UsageError, match="--scheduler"):
        parse_scheduler(text)


@pytest.mark.parametrize("text", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:0",
                                  "tcp://127.0.0.1:-1", "tls://h:65536", "tcp://h:port",
                                  "ws://[::1]:70000"])
def test_a_port_outside_1_to_65535_is_bad_usage_at_once(text: str) -> None:
    with pytest.raises(UsageError, match="the port must be a whole number from 1 to 65535"):
        parse_scheduler(text)


@pytest.mark.parametrize("text", ["tcp://h:1", "tcp://h:65535", "tcp://h", "tcp://[::1]:8786",
                                  "inproc://10.0.0.5/1234/1"])
def test_a_port_in_range_or_none_is_an_address(text: str) -> None:
    assert parse_scheduler(text) == Scheduler(text, None)


class _Server:
    """A TCP server on 127.0.0.1 that is not Dask: it answers every connection with
    ``reply`` and closes it, or (``reply`` None) holds it open and says nothing."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.address = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self.reply is None:
                self.held.append(conn)
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                except OSError:  # the client gave up first: nothing to answer
                    continue
                conn.sendall(self.reply)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.listener.close()


@pytest.fixture
def quiet_loggers() -> Iterator[None]:
    """Dask's loggers as they were: :func:`connected` leaves them quiet after an error."""
    loggers = [logging.getLogger(name)
               for name in ("tornado", "tornado.application", "distributed", "distributed.client")]
    levels = [log.level for log in loggers]
    yield
    for log, level in zip(loggers, levels):
        log.setLevel(level)


@pytest.mark.usefixtures("quiet_loggers")
@pytest.mark.parametrize(("reply", "says"), [
    # Dask reads the first bytes as a frame count and length: it would allocate exabytes.
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "the handshake failed: MemoryError"),
    (None, "the handshake failed: no answer in 1 s"),
    (b"", "the handshake failed"),
])
def test_a_server_that_is_not_a_scheduler_is_bad_input_within_the_connect_timeout(
        reply: bytes | None, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(ballast.cluster, "CONNECT_SECONDS", 1)
    server = _Server(reply)
    threads = set(threading.enumerate())
    try:
        started = time.monotonic()
        with pytest.raises(UsageError) as caught:
            with connected(Scheduler(server.address, None)):
                pytest.fail("connected to a server that is not a Dask scheduler")
        assert time.monotonic() - started < 5
    finally:
        server.close()
    assert str(caught.value).startswith(
        f"--scheduler {server.address}: the server there is not a Dask scheduler (")
    assert says in str(caught.value)
    # The handshake's event loop, its resolver's threads and its connection are gone.
    assert set(threading.enumerate()) - threads == set()


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


@pytest.mark.slow
@pytest.mark.usefixtures("quiet_loggers")
def test_a_scheduler_whose_worker_is_stopped_is_bad_input_within_the_connect_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking the workers for their version waited for ever for a stopped one."""
    pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")
    with connected(parse_scheduler("local:1")) as local:
        address = local.scheduler.address
        (pid,) = local.run(os.getpid).values()
        worker = psutil.Process(pid)
        monkeypatch.setattr(ballast.cluster, "CONNECT_SECONDS", 2)
        worker.suspend()
        try:
            started = time.monotonic()
            with pytest.raises(UsageError, match=r"the workers did not all answer within 2 s"):
                with connected(Scheduler(address, None)):
                    pytest.fail("connected to a scheduler whose worker is stopped")
            assert time.monotonic() - started < 15
        finally:
            worker.resume()


@pytest.mark.usefixtures("quiet_loggers")
def test_a_tls_address_without_dask_tls_settings_is_bad_input_at_once() -> None:
    pytest.importorskip("distributed")
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"tls://127\.0\.0\.1:1: cannot connect there \("):
        with connected(Scheduler("tls://127.0.0.1:1", None)):
            pytest.fail("connected without TLS settings")
    assert time.monotonic() - started < 5
