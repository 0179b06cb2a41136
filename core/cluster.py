"""Worker processes beyond this one: a Dask cluster named by ``--scheduler``.

``ballast fuzz`` and ``ballast explore`` take ``--scheduler SPEC``:

- ``tcp://HOST:PORT`` (any address a Dask client accepts): a scheduler that is
  already running, with workers that have the same version of Ballast installed;
- ``local`` or ``local:N``: a cluster of N worker processes on this machine (one
  thread each; N defaults to the number of processors), started for the command
  and stopped when it ends, however it ends (an error, Ctrl-C): no process is
  left running.

Dask (``dask`` and ``distributed``) is an optional dependency, installed with
``pip install 'ballast[dask]'``; without ``--scheduler`` nothing here is imported.
An address that cannot be reached, a server there that is not a Dask scheduler (it
does not answer Dask's handshake within :data:`CONNECT_SECONDS`, or answers something
else), a scheduler without workers, or one whose workers do not all answer within
that time, is bad input (exit 2), said in one line.

>>> parse_scheduler("local:2")
Scheduler(address=None, workers=2)
>>> parse_scheduler("tcp://10.0.0.5:8786")
Scheduler(address='tcp://10.0.0.5:8786', workers=None)
>>> parse_scheduler("local:0")
Traceback (most recent call last):
ballast.errors.UsageError: --scheduler local:0: the number of workers must be at least 1
>>> parse_scheduler("tcp://10.0.0.5:99999")
Traceback (most recent call last):
ballast.errors.UsageError: --scheduler tcp://10.0.0.5:99999: the port must be a whole number \
from 1 to 65535
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

from ballast.argtypes import whole_number
from ballast.errors import UsageError

__all__ = ["CONNECT_SECONDS", "Scheduler", "add_scheduler_option", "connected", "installed",
           "parse_scheduler", "require_dask", "worker_count"]

CONNECT_SECONDS = 10
"""How long to wait for a scheduler to accept a connection, then to answer Dask's handshake,
and for it to have a worker."""

_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")
"""Address schemes a Dask client connects to."""


@dataclass(frozen=True)
class Scheduler:
    """Where the workers are: a running scheduler's ``address``, or a local cluster of
    ``workers`` processes (``address`` None)."""

    address: str | None
    workers: int | None

    def describe(self) -> str:
        """The cluster in a few words, for the command's output."""
        if self.address is not None:
            return f"the Dask scheduler at {self.address}"
        return f"a local Dask cluster of {self.workers} worker processes"


def parse_scheduler(text: str) -> Scheduler:
    """The cluster ``--scheduler`` names (see the module text)."""
    spec = text.strip()
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2]
        if not count:
            return Scheduler(None, os.cpu_count() or 1)
        workers = whole_number(count)  # the digits 0-9 only, as every number flag
        if workers is None:
            raise UsageError(f"--scheduler {text}: expected local:N with N a number of "
                             "workers (the digits 0-9)")
        if workers < 1:
            raise UsageError(f"--scheduler {text}: the number of workers must be at least 1")
        most = 4 * (os.cpu_count() or 1)
        if workers > most:
            raise UsageError(f"--scheduler {text}: at most {most} local workers (4 per "
                             "processor) on this machine")
        return Scheduler(None, workers)
    if not spec.startswith(_SCHEMES) or len(spec.split("://", 1)[1]) == 0:
        raise UsageError(f"--scheduler {text!r}: expected a scheduler address "
                         "(tcp://HOST:PORT), 'local' or 'local:N'")
    _check_port(spec)
    return Scheduler(spec, None)


def _check_port(address: str) -> None:
    """A port the address names is one a connection can be made to (1 to 65535): any other
    would only be refused after the whole connect timeout, as if no scheduler answered.
    (No port is Dask's default; ``inproc://`` addresses name a process, not a port.)"""
    if address.startswith("inproc://"):
        return
    try:
        port = urlsplit(address).port
    except ValueError:  # not a number, or beyond 65535
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--scheduler {address}: the port must be a whole number from 1 "
                         "to 65535")


def add_scheduler_option(p: argparse.ArgumentParser) -> None:
    """``--scheduler ADDRESS | local[:N]``: run the work on a Dask cluster."""
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local[:N]",
                   help="run on a Dask cluster: the address of a running scheduler "
                        "(tcp://HOST:PORT, its workers with this Ballast installed), or "
                        "'local[:N]' for N local worker processes started and stopped with "
                        "the command (default N: one per processor); needs the 'dask' extra")


_NO_DASK = ("--scheduler needs Dask: pip install 'ballast[dask]' (dask and distributed)")


def require_dask() -> None:
    """Refuse ``--scheduler`` at once where Dask is not installed (before the command says
    anything of the cluster it would use); nothing is imported."""
    if importlib.util.find_spec("distributed") is None:
        raise UsageError(_NO_DASK)


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(_NO_DASK) from None
    return distributed


@contextmanager
def connected(spec: Scheduler) -> Iterator[Any]:
    """A Dask client of the cluster ``spec`` names, closed (with a local cluster, stopped)
    when the block ends, however it ends."""
    distributed = _dask()
    loggers = _event_loop_loggers()
    levels = {log: log.level for log in loggers}
    # Dask's own log lines (workers starting, connections closing) are not results. A failure
    # inside Dask's event loop reaches us as the exception of the call we made; what the loop
    # logs beside it (a callback failing while Ctrl-C interrupts a call) is not a result either.
    for log in loggers:
        log.setLevel(logging.CRITICAL if log.name.startswith("tornado") else
                     max(log.level, logging.ERROR))
    cluster: Any = None
    client: Any = None
    interrupted = False
    try:
        if spec.address is None:
            with _workers_ignore_ctrl_c():
                cluster = distributed.LocalCluster(
                    n_workers=spec.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, scheduler_port=0, silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
        else:
            # Dask's client waits for the handshake's reply without a limit and reads
            # whatever comes as its frames (an HTTP reply is a length of exabytes): a server
            # that is not a scheduler is found out first, within a bounded wait.
            asyncio.run(_greet(distributed, spec.address, CONNECT_SECONDS))
            try:
                client = distributed.Client(spec.address, timeout=CONNECT_SECONDS)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UsageError(f"--scheduler {spec.address}: no Dask scheduler answers "
                                 f"there ({_said(exc)})") from None
            try:
                client.wait_for_workers(1, timeout=CONNECT_SECONDS)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--scheduler {spec.address}: the scheduler has no worker "
                                 f"({_said(exc)})") from None
            _check_workers(client, spec.address)
        yield client
    except BaseException:
        # Torn down after an error or Ctrl-C: the connections it closes are not news.
        interrupted = True
        for log in loggers:
            log.setLevel(logging.CRITICAL)
        raise
    finally:
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()
            if not interrupted:
                # After an error or Ctrl-C the levels stay quiet: Dask's event loop thread
                # may still run the interrupted call's callbacks (and log their failures)
                # after this block, while the command is on its way out.
                for log, before in levels.items():
                    log.setLevel(before)


async def _greet(distributed: Any, address: str, seconds: float) -> None:
    """Connect to ``address`` and exchange Dask's handshake, each within ``seconds``; the
    connection is closed again, however it ends. UsageError says what failed."""
    comm = await _open(distributed, address, seconds)
    try:
        reply = await asyncio.wait_for(_exchange(comm), seconds)
    except asyncio.TimeoutError:
        raise _not_dask(address, f"no answer in {seconds:g} s") from None
    except Exception as exc:  # noqa: BLE001 - whatever the reply made Dask's reader raise
        raise _not_dask(address, f"{type(exc).__name__}: {_said(exc)}") from None
    finally:
        comm.abort()
    if not isinstance(reply, dict):
        raise _not_dask(address, "its reply is not Dask's handshake")


def _not_dask(address: str, why: str) -> UsageError:
    """The error for a server at ``address`` that failed Dask's handshake (``why``)."""
    return UsageError(f"--scheduler {address}: the server there is not a Dask scheduler "
                      f"(the handshake failed: {why})")


async def _open(distributed: Any, address: str, seconds: float) -> Any:
    """A connection to ``address``, tried again until ``seconds`` have passed (a scheduler
    that is starting may refuse the first tries), as Dask's own client does."""
    try:
        scheme, location = distributed.comm.parse_address(address)
        connector = distributed.comm.registry.get_backend(scheme).get_connector()
        args = distributed.security.Security().get_connection_args("client")
    except ValueError as exc:  # a scheme this Dask does not know
        raise UsageError(f"--scheduler {address}: no Dask scheduler answers there "
                         f"({_said(exc)})") from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            return await asyncio.wait_for(
                connector.connect(location, deserialize=True, **args), left)
        except (distributed.comm.core.FatalCommClosedError, TypeError, RuntimeError) as exc:
            # TLS refused, or Dask's TLS settings missing (TypeError: no ssl_context) or
            # required (RuntimeError): trying again would not change that.
            raise UsageError(f"--scheduler {address}: cannot connect there ({_said(exc)}; "
                             "see Dask's distributed.comm.tls settings)") from None
        except (asyncio.TimeoutError, OSError):
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
    raise UsageError(f"--scheduler {address}: no Dask scheduler answers there (Timed out "
                     f"trying to connect to {address} after {seconds:g} s)")


async def _exchange(comm: Any) -> Any:
    """What the server at the other end of ``comm`` replies to Dask's handshake."""
    await comm.write(comm.handshake_info())
    return await comm.read()


def _said(exc: BaseException) -> str:
    """An exception's message on one line, or its type where it has none."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _event_loop_loggers() -> list[logging.Logger]:
    """Dask's and its event loop's loggers, each that has a level of its own.

    Dask's configuration gives some of them their own levels (``tornado.application`` logs
    errors while ``tornado`` is silent), so quieting the parents alone is not enough.
    """
    names = ["distributed", "tornado", "tornado.application"]
    names += [name for name, log in logging.Logger.manager.loggerDict.items()
              if isinstance(log, logging.Logger) and log.level != logging.NOTSET
              and name.startswith(("distributed.", "tornado.")) and name not in names]
    return [logging.getLogger(name) for name in names]


def installed() -> str:
    """The version of Ballast this process runs."""
    import ballast

    return ballast.__version__


def _worker_version() -> str:
    """:func:`installed`, as a worker runs it (sent by name: the worker's own Ballast)."""
    import ballast

    return ballast.__version__


def _check_workers(client: Any, address: str) -> None:
    """Every worker runs the Ballast this process runs, or the command stops here: a worker
    without it, or with another version, would fail or disagree part way through."""
    try:
        # Bounded: a worker that is stopped (or its host gone) answers nothing, and Dask's
        # broadcast would wait for it for ever.
        theirs: dict[str, str] = client.run(_worker_version, callback_timeout=CONNECT_SECONDS)
    except TimeoutError:
        raise UsageError(f"--scheduler {address}: the workers did not all answer within "
                         f"{CONNECT_SECONDS:g} s (a worker stopped or unreachable)") from None
    except Exception as exc:  # noqa: BLE001 - whatever a worker raised, said in one line
        raise UsageError(f"--scheduler {address}: the workers cannot run Ballast "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())}); install "
                         "it where they run") from None
    ours = installed()
    other = sorted(f"{worker} has {version}" for worker, version in theirs.items()
                   if version != ours)
    if other:
        raise UsageError(f"--scheduler {address}: workers run another version of Ballast "
                         f"than this one ({ours}): {'; '.join(other)}")


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Processes started in the block ignore Ctrl-C (the terminal sends it to every process
    of the command): this one stops them when it is interrupted, and they print nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def worker_count(client: Any) -> int:
    """The number of workers the client's scheduler has now."""
    return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
