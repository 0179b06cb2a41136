"""The implementation under test as a subprocess speaking the adapter protocol.

Ballast writes one JSON request per line to the implementation's stdin and
reads one JSON reply per line from its stdout (``adapter_protocol.schema.json``).
Every way an implementation can fail to answer is its own error, naming the
request that caused it: no reply in time (:class:`AdapterTimeout`), the process
exited (:class:`AdapterCrashed`), a reply that is not a protocol reply
(:class:`AdapterGarbage`), a reply to another request (:class:`AdapterWrongId`),
or an ``error`` reply (:class:`AdapterFailed`). Reading never blocks longer than
the per-request timeout, and :meth:`AdapterProcess.close` always ends the
process and everything it started: its process group, and every process that
still carries the marker :data:`SESSION_ENV` in its environment, so that a
descendant that started its own session (``setsid``) or was re-parented is ended
too. A command that names no program that can run is a :class:`UsageError`
before anything starts.

>>> import sys
>>> script = "import sys; [print(l.strip(), flush=True) for l in sys.stdin]"
>>> with AdapterProcess([sys.executable, "-c", script], timeout_s=5) as p:
...     p.request({"id": 3, "reset": {}}, validate=False)
{'id': 3, 'reset': {}}
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
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
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
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
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, cwd=self._cwd, env=env,
                start_new_session=True)  # its own process group: close() ends all of it
        except OSError as exc:
            self._stderr.close()
            self._stderr = None
            raise AdapterCrashed(f"cannot start {shlex.join(self.argv)}: {exc.strerror}") from None
        assert self._proc.stdout is not None
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
        """Say goodbye, then end the process group: politely, then by force."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(b'{"id":%d,"bye":{}}\n' % (self.requests + 1))
                proc.stdin.flush()
        except OSError:
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
        # Descendants that left the group (setsid, daemons) still carry the marker.
        kill_marked(SESSION_ENV, self._marker)
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._proc = None

    def __enter__(self) -> "AdapterProcess":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- reading ------------------------------------------------------------
    def _readline(self, deadline: float) -> bytes | None:
        """The next reply line (None at end of output); raises TimeoutError at the deadline."""
        proc, sel = self._proc, self._selector
        assert proc is not None and proc.stdout is not None and sel is not None
        fd = proc.stdout.fileno()
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
            if not sel.select(remaining):
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
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
        except OSError:
            # Wait briefly for its exit status: the reason is worth reporting.
            raise AdapterCrashed(f"it stopped reading its stdin: {self._exit_note()}",
                                 message, self.stderr_tail()) from None
        try:
            line = self._readline(time.monotonic() + self.timeout_s)
        except TimeoutError:
            raise AdapterTimeout(f"no reply within {self.timeout_s:g} s", message,
                                 self.stderr_tail()) from None
        if line is None:
            raise AdapterCrashed(f"no reply: {self._exit_note()}", message, self.stderr_tail())
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
        if "id" in reply and reply["id"] != message.get("id"):
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
