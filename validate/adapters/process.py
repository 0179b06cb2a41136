"""The implementation under test as a subprocess speaking the adapter protocol.

Ballast writes one JSON request per line to the implementation's stdin and
reads one JSON reply per line from its stdout (``adapter_protocol.schema.json``).
Every way an implementation can fail to answer is its own error, naming the
request that caused it: no reply in time (:class:`AdapterTimeout`), the process
exited (:class:`AdapterCrashed`), a reply that is not a protocol reply
(:class:`AdapterGarbage`), a reply to another request (:class:`AdapterWrongId`),
or an ``error`` reply (:class:`AdapterFailed`). A request never waits longer than
the per-request timeout, neither to be written (an implementation that does not
read its stdin) nor for its reply, and :meth:`AdapterProcess.close` never blocks
on either. It always ends the process and everything it started: its process
group; every process that still carries the marker :data:`SESSION_ENV` in its
environment, so that a descendant that started its own session (``setsid``) or
was re-parented is ended too; and on Linux, where this process is the
implementation's child subreaper while it runs, every descendant that left both
(a session of its own and an empty environment) and was orphaned: those are
re-parented to this process, ended and reaped. A command that names no program
that can run is a :class:`UsageError` before anything starts.

>>> import sys
>>> script = "import sys; [print(l.strip(), flush=True) for l in sys.stdin]"
>>> with AdapterProcess([sys.executable, "-c", script], timeout_s=5) as p:
...     p.request({"id": 3, "reset": {}}, validate=False)
{'id': 3, 'reset': {}}
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from importlib import resources
from types import TracebackType
from typing import IO, Any, Sequence

import jsonschema

from ballast import tally
from ballast.errors import BallastError, InputError, UsageError
from ballast.model.trace import loads_record

__all__ = [
    "AdapterCrashed",
    "AdapterError",
    "AdapterFailed",
    "AdapterGarbage",
    "AdapterProcess",
    "AdapterTimeout",
    "AdapterWrongId",
    "MAX_LINE",
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSIONS",
    "SESSION_ENV",
    "SHOWN_CHARS",
    "kill_marked",
    "one_line",
    "protocol_schema",
    "split_command",
]

PROTOCOL_VERSION = 2
"""The newest protocol version, the one Ballast proposes in its hello."""
PROTOCOL_VERSIONS = (1, 2)
"""Every version Ballast speaks."""
MAX_LINE = 1 << 20
"""Longest reply line accepted (bytes); a longer one is garbage."""

_STDERR_TAIL = 4096

SHOWN_CHARS = 200
"""Most characters of the implementation's own text (its name, a refusal's reason, an
``error`` reply) that a message quotes."""

SESSION_ENV = "BALLAST_ADAPTER_SESSION"
"""Environment variable set, with a value unique to each start, for the implementation
and everything it starts; on close every process still carrying it is ended."""


class AdapterError(BallastError):
    """The implementation did not answer a request as the protocol requires."""

    kind = "error"

    def __init__(self, message: str, request: dict[str, Any] | None = None,
                 stderr: str = "") -> None:
        self.message = message
        self.request = request
        """The request that was being answered (None: while starting)."""
        self.stderr = stderr
        """The last lines the implementation wrote to stderr."""
        where = f" (request {json.dumps(request, separators=(',', ':'))})" if request else ""
        super().__init__(f"{self.kind}: {message}{where}")


class AdapterTimeout(AdapterError):
    """No reply within the per-request timeout."""

    kind = "timeout"


class AdapterCrashed(AdapterError):
    """The implementation's process exited or closed its stdout."""

    kind = "crash"


class AdapterGarbage(AdapterError):
    """A reply line that is not JSON or not a protocol reply."""

    kind = "garbage"


class AdapterWrongId(AdapterError):
    """A reply carrying another request's id."""

    kind = "wrong-id"


class AdapterFailed(AdapterError):
    """The implementation answered with an ``error`` reply."""

    kind = "failed"


def one_line(text: str, limit: int = SHOWN_CHARS) -> str:
    """Text the implementation wrote, as one printable line of at most ``limit`` characters.

    Its line ends would start lines of their own in Ballast's one-line verdict, its other
    control characters (terminal escapes) would act on the reader's terminal, and a
    megabyte of it would bury the verdict: they are shown as spaces, escapes and ``...``.

    >>> one_line("oops\\n\\x1b[2J  twice")
    'oops \\\\x1b[2J twice'
    >>> one_line("x" * 300, limit=10)
    'xxxxxxx...'
    """
    flat = " ".join(text.split())
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


@lru_cache(maxsize=1)
def protocol_schema() -> dict[str, Any]:
    """The JSON Schema of the adapter protocol (requests and replies under ``$defs``)."""
    text = resources.files("ballast.validate").joinpath(
        "adapter_protocol.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@lru_cache(maxsize=4)
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = protocol_schema()
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"})


def schema_errors(kind: str, record: Any) -> list[str]:
    """What is wrong with ``record`` as a protocol message of ``kind`` (empty: nothing).

    >>> schema_errors("step_reply", {"id": 1, "ok": True})
    []
    >>> schema_errors("step_reply", {"id": 1})
    ["'ok' is a required property"]
    """
    return [e.message for e in sorted(_validator(kind).iter_errors(record),
                                      key=lambda e: list(e.path))]


def split_command(command: str | Sequence[str]) -> list[str]:
    """The argument vector of an adapter command given as one shell-like string.

    No shell runs it: quoting works as in a POSIX shell, pipes and ``&&`` do not.

    >>> split_command("node examples/balloon_adapter.js --quiet")
    ['node', 'examples/balloon_adapter.js', '--quiet']
    """
    if not isinstance(command, str):
        argv = list(command)
    else:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"cannot parse adapter command {command!r}: {exc}") from None
    if not argv:
        raise UsageError("the adapter command is empty")
    return argv


def _require_program(program: str, cwd: str | os.PathLike[str] | None,
                     env: dict[str, str] | None) -> None:
    """Refuse, as bad usage, a command whose program does not exist or cannot run."""
    if os.sep in program:
        path = os.path.join(cwd, program) if cwd is not None else program
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise UsageError(f"cannot start the adapter: {program!r} is not an executable file")
        return
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    if shutil.which(program, path=search) is None:
        raise UsageError(f"cannot start the adapter: no program {program!r} on the PATH")


def kill_marked(name: str, value: str, *, rounds: int = 20) -> int:
    """Kill every process whose environment holds ``name=value``; the number killed.

    Reads ``/proc`` (Linux); elsewhere it does nothing. Repeats until a round finds
    none, so that a process forking while it is being ended is caught too.
    """
    if not value or not os.path.isdir("/proc"):
        return 0
    needle = f"{name}={value}".encode()
    killed = 0
    for _ in range(rounds):
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            if needle in _environ(int(entry)):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    found += 1
                except (ProcessLookupError, PermissionError):
                    pass
        killed += found
        if not found:
            break
        time.sleep(0.01)
    return killed


# -- orphans: this process as the implementations' child subreaper (Linux) ----------
#
# A descendant that calls setsid and clears its environment carries neither the process
# group close() kills nor the marker kill_marked looks for. With PR_SET_CHILD_SUBREAPER
# set on this process, such a descendant, once orphaned (its parent exited or was
# killed), becomes a child of this process instead of init's, where close() finds it.
#
# The flag is process-wide: while it is set, the orphans of every tree this process
# started are adopted, not only an implementation's. So it is set only while at least
# one AdapterProcess runs (the first start sets it, the last close clears it, unless it
# was set before, by someone else), and close() ends and reaps only the children that
# can be orphans of an implementation, by this rule:
#
#   a child of this process that (1) was not its child when the implementation started,
#   (2) is not the implementation itself nor another running implementation, (3) is not
#   in this process's own session, and (4) is not in another running implementation's
#   session nor carries its marker.
#
# (1) and (2) spare what this process started or adopted before, and the processes of
# other AdapterProcess objects. (3) is what makes the rule safe for the rest of Ballast:
# an implementation starts in a session of its own, and a process can only be in its
# parent's session or in one it creates itself (setsid), so no descendant of an
# implementation is ever in this process's session, while everything else Ballast starts
# without a session of its own (pool and Dask workers, plain subprocesses) is, so it is
# never killed nor reaped here: reaping a child whose Popen (or multiprocessing Process)
# has not yet waited would steal its exit status. What the rule cannot tell from an
# implementation's orphan is a child that another thread starts in a session of its own
# (as QEMU is) while an implementation runs, or an orphan of such a child's tree: Ballast
# does not do that (an implementation is spoken to from one thread, and no command runs
# a guest and an implementation at once).
#
# An orphan of another tree in this process's session, adopted while the flag is set, is
# left alone; when it exits it stays a zombie until this process exits (nothing here can
# tell it from a child someone will wait for). Elsewhere than Linux none of this happens.

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_POLL_S = 0.1
"""While a reply is awaited, how often whether the implementation still runs is checked."""

_EXITED_GRACE_S = 0.5
"""How long output is still read after the implementation exited, from a process it started
that holds its stdout open, before that counts as the end of its output."""

_ORPHAN_WAIT_S = 5.0
"""Longest close() waits for the orphans it killed to be reaped."""


class _Subreaper:
    """This process's state as the implementations' subreaper (see the comment above)."""

    lock = threading.Lock()
    """Held across a start (the snapshot of children, the flag, the new process, its entry in
    ``running``) and across a close's hunt for orphans, so neither sees the other half done."""
    running: dict[int, str] = {}
    """The pid of every running implementation of this process, with its marker."""
    flag_ours = False
    """Whether the flag was set here (and is cleared when the last implementation ends)."""

    @classmethod
    def forget(cls) -> None:
        """In a forked child: no implementation is its own, and the flag is not inherited."""
        cls.lock = threading.Lock()
        cls.running = {}
        cls.flag_ours = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_Subreaper.forget)


def _prctl(option: int, arg: int | ctypes.c_int) -> bool:
    """``prctl(option, arg)`` (Linux); whether it succeeded."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        value = ctypes.byref(arg) if isinstance(arg, ctypes.c_int) else ctypes.c_ulong(arg)
        return int(libc.prctl(ctypes.c_int(option), value, ctypes.c_ulong(0),
                              ctypes.c_ulong(0), ctypes.c_ulong(0))) == 0
    except (OSError, AttributeError):
        return False


def _subreaper_enlist() -> None:
    """Set the flag for a starting implementation (called with the lock held)."""
    if _Subreaper.running or _Subreaper.flag_ours or not sys.platform.startswith("linux"):
        return
    was = ctypes.c_int(0)
    if _prctl(_PR_GET_CHILD_SUBREAPER, was) and not was.value:
        _Subreaper.flag_ours = _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _subreaper_release() -> None:
    """Clear the flag if no implementation runs any more (called with the lock held)."""
    if not _Subreaper.running and _Subreaper.flag_ours:
        _prctl(_PR_SET_CHILD_SUBREAPER, 0)
        _Subreaper.flag_ours = False


def _children() -> dict[int, int]:
    """Every child of this process, zombies included, with its session id (Linux ``/proc``;
    elsewhere none)."""
    if not sys.platform.startswith("linux"):
        return {}
    me = os.getpid()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                # pid (comm) state ppid pgrp session ...; comm may hold spaces and ")".
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == me:
                found[int(entry)] = int(fields[3])
        except (OSError, IndexError, ValueError):
            continue
    return found


def _environ(pid: int) -> list[bytes]:
    """The ``NAME=value`` entries of process ``pid``'s environment (none if unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _end_orphans(leader: int, before: frozenset[int]) -> int:
    """Kill and reap the children that can only be orphans of the implementation ``leader``
    (the rule above), until none is left; the number ended. Called with the lock held,
    after ``leader`` was ended, while the flag is still set: killing an orphan re-parents
    its own children here, and the next round finds them."""
    if not sys.platform.startswith("linux"):
        return 0
    own_session = os.getsid(0)
    others = {pid: marker for pid, marker in _Subreaper.running.items() if pid != leader}
    theirs = {f"{SESSION_ENV}={marker}".encode() for marker in others.values()}
    deadline = time.monotonic() + _ORPHAN_WAIT_S
    ended = 0
    while time.monotonic() < deadline:
        orphans = [pid for pid, session in _children().items()
                   if pid not in before and pid != leader and pid not in others
                   and session != own_session and session not in others
                   and not theirs.intersection(_environ(pid))]
        if not orphans:
            break
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in orphans:
            # Reaped here: a child of this process, nobody else's to wait for (the rule).
            while True:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] != 0:
                        ended += 1
                        break
                except ChildProcessError:
                    break
                if time.monotonic() >= deadline:
                    return ended
                time.sleep(0.005)
    return ended


class AdapterProcess:
    """One running implementation, spoken to one request at a time."""

    def __init__(self, command: str | Sequence[str], *, timeout_s: float = 5.0,
                 cwd: str | os.PathLike[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.argv = split_command(command)
        _require_program(self.argv[0], cwd, env)
        self.timeout_s = timeout_s
        self._cwd = cwd
        self._env = env
        self._marker = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._writable: selectors.BaseSelector | None = None
        self._children_before: frozenset[int] = frozenset()
        self._buffer = bytearray()
        self._eof = False
        self.requests = 0
        """Requests sent so far (for figures)."""

    # -- lifetime -----------------------------------------------------------
    def start(self) -> None:
        """Start the process; a command that cannot run is an :class:`AdapterCrashed`."""
        # stderr goes to a file, never a pipe: a chatty implementation can then
        # not block on a full pipe, and its last words survive its exit.
        self._stderr = tempfile.TemporaryFile()
        self._marker = secrets.token_hex(16)
        env = dict(os.environ if self._env is None else self._env)
        env[SESSION_ENV] = self._marker
        with _Subreaper.lock:
            # Orphans of the implementation are this process's children from now on; the
            # children it has already are none of them (see _end_orphans).
            self._children_before = frozenset(_children())
            _subreaper_enlist()
            try:
                self._proc = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=self._stderr, cwd=self._cwd, env=env,
                    start_new_session=True)  # its own process group: close() ends all of it
            except OSError as exc:
                _subreaper_release()
                self._stderr.close()
                self._stderr = None
                raise AdapterCrashed(
                    f"cannot start {shlex.join(self.argv)}: {exc.strerror}") from None
            _Subreaper.running[self._proc.pid] = self._marker
        assert self._proc.stdout is not None and self._proc.stdin is not None
        # Requests are written without blocking, so that one the implementation does not
        # read (a full pipe) waits no longer than the timeout (_write).
        os.set_blocking(self._proc.stdin.fileno(), False)
        self._writable = selectors.DefaultSelector()
        self._writable.register(self._proc.stdin, selectors.EVENT_WRITE)
        tally.note("adapter", lambda: f"{self.requests:,} requests to the implementation")
        # Replies are read in this thread with select(): no reader thread to
        # contend with for the interpreter lock on every reply.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Say goodbye, then end the process group: politely, then by force; then the
        descendants that left it (the marker; on Linux, orphans adopted as subreaper)."""
        proc = self._proc
        if proc is None:
            return
        try:
            self._end_group(proc)
            # Descendants that left the group (setsid, daemons) still carry the marker.
            kill_marked(SESSION_ENV, self._marker)
        finally:
            # Those that also cleared their environment were re-parented here once
            # orphaned. Even if ending the group was interrupted (Ctrl-C): this
            # implementation's entry goes, and with the last one the subreaper flag.
            with _Subreaper.lock:
                try:
                    _end_orphans(proc.pid, self._children_before)
                finally:
                    _Subreaper.running.pop(proc.pid, None)
                    _subreaper_release()
        for selector in (self._selector, self._writable):
            if selector is not None:
                selector.close()
        self._selector = self._writable = None
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._proc = None

    def _end_group(self, proc: subprocess.Popen[bytes]) -> None:
        """Say goodbye, close stdin, then end the process group: politely, then by force."""
        try:
            if proc.poll() is None and proc.stdin is not None:
                # Only if the pipe takes it at once: one that does not read its stdin gets
                # no goodbye (and is ended below all the same). Shorter than PIPE_BUF, it
                # is written whole or not at all: never half a line.
                self._write(b'{"id":%d,"bye":{}}\n' % (self.requests + 1), time.monotonic())
        except OSError:  # TimeoutError included: the pipe was full
            pass
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        for sig, wait in ((None, 0.5), (signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
            if sig is not None:
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader (a shell's children): end the rest too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "AdapterProcess":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- writing and reading --------------------------------------------------
    def _write(self, data: bytes, deadline: float) -> None:
        """Write all of ``data`` to the implementation's stdin (non-blocking) by the deadline;
        raises TimeoutError at the deadline (the pipe stayed full: it does not read), and
        OSError if it closed its stdin."""
        proc, sel = self._proc, self._writable
        assert proc is not None and proc.stdin is not None and sel is not None
        fd = proc.stdin.fileno()
        view = memoryview(data)
        while True:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                pass
            if not view:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sel.select(remaining)

    def _readline(self, deadline: float) -> bytes | None:
        """The next reply line (None at end of output); raises TimeoutError at the deadline."""
        proc, sel = self._proc, self._selector
        assert proc is not None and proc.stdout is not None and sel is not None
        fd = proc.stdout.fileno()
        exited_at: float | None = None
        while True:
            nl = self._buffer.find(b"\n")
            if nl >= 0 or len(self._buffer) > MAX_LINE or (self._eof and self._buffer):
                end = nl + 1 if nl >= 0 else len(self._buffer)
                line = bytes(self._buffer[:end])
                del self._buffer[:end]
                return line
            if self._eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not sel.select(min(remaining, _POLL_S)):
                # The implementation exited, but a process it started still holds its stdout
                # open: no reply can come, so that is its end of output (a crash named with its
                # exit status), not a wait for the whole timeout.
                if proc.poll() is not None:
                    exited_at = exited_at if exited_at is not None else time.monotonic()
                    if time.monotonic() - exited_at >= _EXITED_GRACE_S:
                        self._eof = True
                continue
            chunk = os.read(fd, 1 << 16)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    def stderr_tail(self) -> str:
        """The last few KiB the implementation wrote to stderr."""
        f = self._stderr
        if f is None:
            return ""
        try:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _STDERR_TAIL))
            return f.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _exit_note(self) -> str:
        proc = self._proc
        if proc is None:
            return "the process is gone"
        try:
            code = proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "it closed its stdout but is still running"
        if code < 0:
            try:
                return f"it was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"it was killed by signal {-code}"
        return f"it exited with status {code}"

    # -- one request --------------------------------------------------------
    def request(self, message: dict[str, Any], *, reply_kind: str = "reply",
                validate: bool = True) -> dict[str, Any]:
        """Send ``message``, wait for its reply (at most ``timeout_s``) and return it."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise AdapterCrashed("the implementation is not running", message)
        self.requests += 1
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        # One deadline for the whole request: writing it, then reading its reply.
        deadline = time.monotonic() + self.timeout_s
        try:
            self._write(data, deadline)
        except TimeoutError:
            raise AdapterTimeout(f"it did not read its stdin within {self.timeout_s:g} s",
                                 message, self.stderr_tail()) from None
        except OSError:
            # Wait briefly for its exit status: the reason is worth reporting.
            raise AdapterCrashed(f"it stopped reading its stdin: {self._exit_note()}",
                                 message, self.stderr_tail()) from None
        try:
            line = self._readline(deadline)
        except TimeoutError:
            raise AdapterTimeout(f"no reply within {self.timeout_s:g} s", message,
                                 self.stderr_tail()) from None
        if line is None:
            raise AdapterCrashed(f"no reply: {self._exit_note()}", message, self.stderr_tail())
        if self._eof and not line.endswith(b"\n") and len(line) <= MAX_LINE:
            raise AdapterCrashed(f"it ended in the middle of a reply ({len(line)} bytes and no "
                                 f"end of line): {self._exit_note()}", message,
                                 self.stderr_tail())
        return self._parse(line, message, reply_kind, validate)

    def _parse(self, line: bytes, message: dict[str, Any], kind: str,
               validate: bool) -> dict[str, Any]:
        if len(line) > MAX_LINE:
            raise AdapterGarbage(f"a reply line longer than {MAX_LINE} bytes", message,
                                 self.stderr_tail())
        shown = line[:200].decode("utf-8", "replace").rstrip("\n")
        try:
            reply = loads_record(line.decode("utf-8"), "reply", self.requests)
        except UnicodeDecodeError:
            raise AdapterGarbage(f"reply is not UTF-8 text: {shown!r}", message,
                                 self.stderr_tail()) from None
        except InputError as exc:
            what = "not JSON" if exc.message.startswith("not valid JSON") else \
                f"not usable JSON ({exc.message})"
            raise AdapterGarbage(f"reply is {what}: {shown!r}", message,
                                 self.stderr_tail()) from None
        if not isinstance(reply, dict):
            raise AdapterGarbage(f"reply is not a JSON object: {shown!r}", message,
                                 self.stderr_tail())
        # 1.0 and true equal 1 in Python, but neither is how a request number is written.
        if "id" in reply and (type(reply["id"]) is not int
                              or reply["id"] != message.get("id")):
            raise AdapterWrongId(f"reply carries id {reply['id']!r}, expected "
                                 f"{message.get('id')!r}: {shown!r}", message, self.stderr_tail())
        if validate:
            if "error" in reply and not schema_errors("error_reply", reply):
                raise AdapterFailed("the implementation reports an error: "
                                    f"{one_line(reply['error'])}", message, self.stderr_tail())
            errors = schema_errors(kind, reply)
            if errors:
                raise AdapterGarbage(f"not a valid {kind.replace('_', ' ')}: {errors[0]}: "
                                     f"{shown!r}", message, self.stderr_tail())
        return reply
