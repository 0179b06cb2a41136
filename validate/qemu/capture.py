"""Make a real virtio-balloon capture: boot a Linux guest in QEMU and move its balloon.

:func:`capture` boots QEMU the way the reference (section 3) describes -- TCG, a Debian
kernel, a busybox initramfs that loads ``virtio_balloon`` -- with the balloon trace events
on, then drives the balloon over QMP and writes, in ``out_dir``:

- ``trace.log``: QEMU's trace (``-D``), plain text, read it with
  :func:`ballast.validate.qemu.trace_reader.read_trace`;
- ``qmp.log``: every QMP message, one JSON object a line
  ``{"t": HOST_EPOCH, "dir": "send"|"recv", "msg": {...}}``
  (:func:`ballast.validate.qemu.qmp_reader.read_qmp`);
- ``console.log``: the guest serial console, each line prefixed by the host epoch time;
  ``MEM`` lines carry MemTotal/MemFree and the guest's balloon counters;
- ``qemu.stderr``: what QEMU itself printed.

The kernel and initramfs come from ``.ci/install-qemu.sh`` (which also installs QEMU);
their paths are taken from the arguments, else ``$BALLAST_QEMU_KERNEL`` /
``$BALLAST_QEMU_INITRD``, else ``${BALLAST_QEMU_CACHE:-$HOME/.cache/ballast/qemu}``.
Every wait is bounded and QEMU is always stopped, on success or error.  Anything that goes
wrong raises :class:`CaptureError`.

>>> r = capture("out", [384, 256, 512])  # doctest: +SKIP
>>> r.steps[0].target_mib, r.steps[0].reached  # doctest: +SKIP
(384, True)
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from ballast.validate.qemu.events import decode_features
from ballast.validate.qemu.qmp_reader import feature_bits

__all__ = [
    "INSTALL_HINT",
    "QEMU_BINARY",
    "TRACE_EVENTS",
    "CaptureError",
    "CaptureResult",
    "CaptureStep",
    "capture",
    "find_guest",
]

QEMU_BINARY: Final = "qemu-system-x86_64"
INSTALL_HINT: Final = (
    "run `sudo .ci/install-qemu.sh` from the Ballast repository (Debian 12: it installs "
    "qemu-system-x86, busybox-static, cpio and xz-utils, and extracts linux-image-amd64 and "
    "builds the guest initramfs)"
)
TRACE_EVENTS: Final = (
    "virtio_balloon_*",
    "balloon_event",
    "virtio_queue_notify",
    "virtio_notify",
    "virtio_set_status",
)
"""The QEMU trace events a capture enables (``-trace enable=...``)."""

_MIB: Final = 1 << 20
_POLL_S: Final = 0.1
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MARKERS: Final = (
    "BALLOON_READY", "BALLOON_MISSING", "MARK ", "MEM ", "PRESSURE ", "COMPACTED", "UNKNOWN ", "Kernel panic",
)


class CaptureError(RuntimeError):
    """A capture could not be made: tools missing, QEMU failed, the guest misbehaved, a timeout."""


@dataclass(frozen=True, slots=True)
class CaptureStep:
    """One host request: the target guest RAM, whether the guest got there and how fast.

    ``actual_bytes`` is query-balloon's last answer (guest RAM in bytes); ``settle_s`` the
    seconds from the ``balloon`` command to that answer.
    """

    target_mib: int
    reached: bool
    actual_bytes: int
    settle_s: float


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """What :func:`capture` made and measured.

    ``boot_s``: QEMU start to the guest's ``BALLOON_READY``; ``capture_s``: QEMU start to
    its exit.  ``guest_features`` / ``host_features`` are the virtio-balloon feature bits
    (negotiated / offered) when QEMU's ``x-query-virtio-status`` told them, else None.
    ``pressure_filled_mib`` is how much of the requested pressure the guest wrote (None
    without pressure).
    """

    out_dir: Path
    trace_log: Path
    qmp_log: Path
    console_log: Path
    qemu_command: tuple[str, ...]
    qemu_version: str
    guest_mib: int
    deflate_on_oom: bool
    boot_s: float
    capture_s: float
    steps: tuple[CaptureStep, ...]
    final_actual_bytes: int
    guest_features: int | None
    host_features: int | None
    pressure_filled_mib: int | None
    balloon_migrate: int | None = None
    """With ``compaction``: the guest's ``balloon_migrate`` count after compacting memory."""

    @property
    def guest_feature_names(self) -> tuple[str, ...]:
        """Names of the negotiated feature bits (empty when unknown)."""
        return decode_features(self.guest_features or 0)


def _cache_dir() -> Path:
    env = os.environ.get("BALLAST_QEMU_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ballast" / "qemu"


def find_guest(
    kernel: str | os.PathLike[str] | None = None, initrd: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """The guest kernel and initramfs to boot; raises :class:`CaptureError` if missing.

    >>> try:
    ...     find_guest("/nonexistent/vmlinuz", "/nonexistent/initrd")
    ... except CaptureError as exc:
    ...     print(str(exc)[:67])
    guest kernel not found: /nonexistent/vmlinuz; run `sudo .ci/install
    """
    cache = _cache_dir()
    found = []
    for given, env, default, what in (
        (kernel, "BALLAST_QEMU_KERNEL", cache / "vmlinuz", "guest kernel"),
        (initrd, "BALLAST_QEMU_INITRD", cache / "initramfs.cpio", "guest initramfs"),
    ):
        path = Path(given) if given is not None else Path(os.environ.get(env) or default)
        if not path.is_file():
            raise CaptureError(f"{what} not found: {path}; {INSTALL_HINT}")
        found.append(path)
    return found[0], found[1]


# ------------------------------------------------------------------------- the console


class _Console:
    """Copies QEMU's serial output to console.log with host epoch prefixes; notes markers."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self._stream = stream
        self._file = open(path, "w", encoding="utf-8")
        self._cond = threading.Condition()
        self._markers: deque[tuple[int, float, str]] = deque(maxlen=4096)
        self._count = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ballast-qemu-console", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in iter(self._stream.readline, b""):
                now = time.time()
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                text = _CONTROL.sub("", _ANSI.sub("", text))
                self._file.write(f"{now:.6f} {text}\n")
                marker = next((m for m in _MARKERS if m in text), None)
                if marker is not None:
                    self._file.flush()
                    with self._cond:
                        self._count += 1
                        self._markers.append((self._count, now, text[text.index(marker) :]))
                        self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    @property
    def position(self) -> int:
        """The number of markers seen so far (to wait only for later ones)."""
        with self._cond:
            return self._count

    def wait_for(self, prefixes: tuple[str, ...], after: int, deadline: float) -> tuple[float, str] | None:
        """The first marker line after ``after`` that starts with one of ``prefixes``.

        Returns None at ``deadline`` or when QEMU closed its output.
        """
        with self._cond:
            while True:
                for count, when, text in self._markers:
                    if count > after and text.startswith(prefixes):
                        return when, text
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(min(left, _POLL_S))

    def close(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._file.flush()
        self._file.close()


# ----------------------------------------------------------------------------- QMP


class _Qmp:
    """A QMP client that logs every message it sends or receives as a JSON line."""

    def __init__(self, sock: socket.socket, log_path: Path) -> None:
        self._sock = sock
        self._log = open(log_path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._inbox: queue.Queue[dict[str, object] | None] = queue.Queue()
        self._next_id = 1
        self._thread = threading.Thread(target=self._run, name="ballast-qemu-qmp", daemon=True)
        self._thread.start()

    def _write(self, direction: str, msg: dict[str, object]) -> None:
        with self._lock:
            if not self._log.closed:
                self._log.write(json.dumps({"t": time.time(), "dir": direction, "msg": msg}) + "\n")
                self._log.flush()

    def _run(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(msg, dict):
                        self._write("recv", msg)
                        self._inbox.put(msg)
        except OSError:
            pass
        finally:
            self._inbox.put(None)

    def receive(self, deadline: float) -> dict[str, object]:
        """The next message (reply, event or greeting) before ``deadline``."""
        left = deadline - time.monotonic()
        try:
            msg = self._inbox.get(timeout=max(left, 0.001))
        except queue.Empty:
            raise CaptureError("QMP: no answer from QEMU in time") from None
        if msg is None:
            self._inbox.put(None)
            raise CaptureError("QMP: QEMU closed the connection")
        return msg

    def command(self, name: str, deadline: float, arguments: dict[str, object] | None = None) -> object:
        """Run ``name`` and return its ``return`` value; a QMP error raises CaptureError."""
        ident = self._next_id
        self._next_id += 1
        msg: dict[str, object] = {"execute": name, "id": ident}
        if arguments is not None:
            msg["arguments"] = arguments
        self._write("send", msg)
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            raise CaptureError(f"QMP: cannot send {name}: {exc}") from None
        while True:
            reply = self.receive(deadline)
            if reply.get("id") != ident:
                continue  # an event: already logged
            if "error" in reply:
                error = reply["error"]
                desc = error.get("desc", error) if isinstance(error, dict) else error
                raise CaptureError(f"QMP {name} failed: {desc}")
            return reply.get("return")

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(2.0)
        with self._lock:
            self._log.close()


def _connect(path: str, proc: subprocess.Popen[bytes], deadline: float, stderr: Path) -> socket.socket:
    while True:
        if proc.poll() is not None:
            raise CaptureError(f"QEMU exited with status {proc.returncode} at start: {_tail(stderr)}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
        if time.monotonic() > deadline:
            raise CaptureError(f"QMP socket {path} did not open in time: {_tail(stderr)}")
        time.sleep(0.02)


def _tail(path: Path, size: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no stderr)"
    return text[-size:] if text else "(no stderr)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Make sure QEMU is gone: it is our child, so terminate, then kill."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)


# ---------------------------------------------------------------------------- capture


def _features(value: object) -> int | None:
    try:
        return feature_bits(value)
    except ValueError:
        return None


def _check_arguments(targets_mib: list[int], guest_mib: int, pressure_mib: int, settle_s: float, timeout_s: float) -> None:
    if not isinstance(guest_mib, int) or guest_mib < 64:
        raise CaptureError(f"guest_mib must be an integer of at least 64, not {guest_mib!r}")
    if not targets_mib:
        raise CaptureError("targets_mib is empty: give at least one target guest RAM size")
    for target in targets_mib:
        if not isinstance(target, int) or not 0 < target <= guest_mib:
            raise CaptureError(f"target {target!r} MiB is not an integer in 1..{guest_mib} (the guest RAM)")
    if not isinstance(pressure_mib, int) or pressure_mib < 0:
        raise CaptureError(f"pressure_mib must be a non-negative integer, not {pressure_mib!r}")
    if settle_s <= 0 or timeout_s <= 0:
        raise CaptureError("settle_s and timeout_s must be positive")


def capture(
    out_dir: str | os.PathLike[str],
    targets_mib: list[int],
    guest_mib: int = 512,
    deflate_on_oom: bool = False,
    pressure_mib: int = 0,
    settle_s: float = 10.0,
    timeout_s: float = 120.0,
    *,
    compaction: bool = False,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    qemu: str = QEMU_BINARY,
) -> CaptureResult:
    """Boot a guest of ``guest_mib`` MiB, ask for each target guest RAM size in turn, record.

    For each of ``targets_mib`` the host sends QMP ``balloon`` (the value is the target
    guest RAM, not the balloon size) and polls ``query-balloon`` every 0.1 s until the
    guest's ``actual`` reaches it or ``settle_s`` pass (then the step is marked not
    reached; that is not an error, a guest may refuse).  With ``pressure_mib`` > 0 the guest
    then writes that many MiB to a tmpfs (``deflate_on_oom`` lets it take pages back from
    the balloon), the host watches for ``settle_s``, and the guest frees it again.  With
    ``compaction`` the guest then compacts its memory (``/proc/sys/vm/compact_memory``),
    which migrates balloon pages: one-page inflates and deflates with ``actual`` unchanged.
    ``timeout_s`` bounds the whole run, boot included.  QEMU is told to quit at the end and
    is killed if it does not; it is stopped on any error too.
    """
    _check_arguments(targets_mib, guest_mib, pressure_mib, settle_s, timeout_s)
    binary = shutil.which(qemu)
    if binary is None:
        raise CaptureError(f"{qemu} not found on PATH; {INSTALL_HINT}")
    kernel_path, initrd_path = find_guest(kernel, initrd)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace_log, qmp_log, console_log, stderr_log = (
        out / "trace.log",
        out / "qmp.log",
        out / "console.log",
        out / "qemu.stderr",
    )
    for stale in (trace_log, qmp_log, console_log, stderr_log):
        stale.unlink(missing_ok=True)

    started = time.monotonic()
    deadline = started + timeout_s
    sock_dir = tempfile.mkdtemp(prefix="ballast-qmp-")
    sock_path = os.path.join(sock_dir, "qmp.sock")
    append = "console=ttyS0 panic=-1 ballast_interval=2"
    if pressure_mib:
        append += f" ballast_pressure_mib={pressure_mib}"
    device = "virtio-balloon-pci,id=balloon0" + (",deflate-on-oom=on" if deflate_on_oom else "")
    command = [binary, "-machine", "q35,accel=tcg", "-m", str(guest_mib), "-nographic"]
    command += ["-kernel", str(kernel_path), "-initrd", str(initrd_path), "-append", append]
    command += ["-device", device, "-qmp", f"unix:{sock_path},server=on,wait=off", "-msg", "timestamp=on"]
    for event in TRACE_EVENTS:
        command += ["-trace", f"enable={event}"]
    command += ["-D", str(trace_log)]

    stderr_file = open(stderr_log, "wb")
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            start_new_session=True,
        )
    except OSError as exc:
        stderr_file.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
        raise CaptureError(f"cannot start {binary}: {exc}; {INSTALL_HINT}") from None
    assert proc.stdout is not None and proc.stdin is not None
    stdin = proc.stdin
    console = _Console(proc.stdout, console_log)
    qmp: _Qmp | None = None

    def say(line: str) -> None:
        """Type a command on the guest console (its /init reads them)."""
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except (OSError, ValueError):
            pass

    def alive(what: str) -> None:
        panic = console.wait_for(("Kernel panic",), 0, 0.0)
        if panic is not None:
            raise CaptureError(f"the guest kernel panicked {what}: {panic[1]!r} (see {console_log})")
        if proc.poll() is not None:
            raise CaptureError(f"QEMU exited with status {proc.returncode} {what}: {_tail(stderr_log)}")
        if time.monotonic() > deadline:
            raise CaptureError(f"capture took more than timeout_s={timeout_s} s {what}")

    try:
        qmp = _Qmp(_connect(sock_path, proc, min(deadline, time.monotonic() + 30.0), stderr_log), qmp_log)
        greeting = qmp.receive(deadline)
        version = ""
        info = greeting.get("QMP")
        if isinstance(info, dict) and isinstance(info.get("version"), dict):
            qemu_v = info["version"].get("qemu", {})
            if isinstance(qemu_v, dict):
                version = f"{qemu_v.get('major')}.{qemu_v.get('minor')}.{qemu_v.get('micro')}"
        qmp.command("qmp_capabilities", deadline)

        # Wait for the guest driver to bind.
        ready = None
        while ready is None:
            alive("while the guest booted")
            ready = console.wait_for(
                ("BALLOON_READY", "BALLOON_MISSING", "Kernel panic"), 0, min(deadline, time.monotonic() + 0.5)
            )
        when, text = ready
        if not text.startswith("BALLOON_READY"):
            raise CaptureError(f"the guest did not bind virtio_balloon: {text!r} (see {console_log})")
        boot_s = time.monotonic() - started - (time.time() - when)

        guest_features = host_features = None
        try:
            devices = qmp.command("x-query-virtio", deadline)
            path = next(
                (
                    d.get("path")
                    for d in (devices if isinstance(devices, list) else [])
                    if isinstance(d, dict) and d.get("name") == "virtio-balloon"
                ),
                None,
            )
            if isinstance(path, str):
                status = qmp.command("x-query-virtio-status", deadline, {"path": path})
                if isinstance(status, dict):
                    guest_features = _features(status.get("guest-features"))
                    host_features = _features(status.get("host-features"))
        except CaptureError as exc:
            if "QMP x-query" not in str(exc):
                raise  # a QEMU without x-query-virtio* still makes a capture

        def actual() -> int:
            answer = qmp.command("query-balloon", deadline) if qmp is not None else None
            if not isinstance(answer, dict) or not isinstance(answer.get("actual"), int):
                raise CaptureError(f"query-balloon answered {answer!r}")
            value: int = answer["actual"]
            return value

        current = actual()
        steps: list[CaptureStep] = []
        for target in targets_mib:
            alive(f"before target {target} MiB")
            say(f"mark target-{target}")
            sent = time.monotonic()
            qmp.command("balloon", deadline, {"value": target * _MIB})
            settle_deadline = min(deadline, sent + settle_s)
            current = actual()
            while current != target * _MIB and time.monotonic() < settle_deadline:
                alive(f"while moving to {target} MiB")
                time.sleep(_POLL_S)
                current = actual()
            steps.append(CaptureStep(target, current == target * _MIB, current, time.monotonic() - sent))
            position = console.position
            say("mem")  # the guest's view, before the next request
            console.wait_for(("MEM ",), position, min(deadline, time.monotonic() + 2.0))

        migrated: int | None = None
        if compaction:
            position = console.position
            say("compact")
            done = console.wait_for(("COMPACTED", "UNKNOWN compact"), position,
                                    min(deadline, time.monotonic() + settle_s))
            if done is None or not done[1].startswith("COMPACTED"):
                raise CaptureError("the guest did not compact its memory (an initramfs built before "
                                   f"the compact command? {INSTALL_HINT})")
            match = re.search(r"balloon_migrate=(\d+)", done[1])
            migrated = int(match.group(1)) if match else None
            current = actual()

        filled: int | None = None
        if pressure_mib:
            position = console.position
            say(f"pressure {pressure_mib}")
            pressure_deadline = min(deadline, time.monotonic() + settle_s)
            done = None
            while done is None and time.monotonic() < pressure_deadline:
                alive("under memory pressure")
                current = actual()
                done = console.wait_for(("PRESSURE filled",), position, min(pressure_deadline, time.monotonic() + _POLL_S))
            if done is not None:
                match = re.search(r"mib=(\d+)", done[1])
                filled = int(match.group(1)) if match else None
            else:
                filled = 0
            current = actual()
            position = console.position
            say("release")
            console.wait_for(("PRESSURE released",), position, min(deadline, time.monotonic() + settle_s))
            current = actual()

        position = console.position
        say("mark end-of-steps")
        console.wait_for(("MARK end-of-steps",), position, min(deadline, time.monotonic() + 3.0))
        position = console.position
        say("mem")
        console.wait_for(("MEM ",), position, min(deadline, time.monotonic() + 2.0))
        current = actual()
        try:
            qmp.command("quit", min(deadline + 5.0, time.monotonic() + 5.0))
        except CaptureError:
            pass  # QEMU may close the socket before it answers
        try:
            proc.wait(max(1.0, min(10.0, deadline + 5.0 - time.monotonic())))
        except subprocess.TimeoutExpired:
            raise CaptureError("QEMU did not exit after quit") from None
        capture_s = time.monotonic() - started
    except CaptureError as exc:
        # Say why QEMU went away when it did: its exit status and last words beat "closed".
        try:
            status = proc.wait(1.0)
        except subprocess.TimeoutExpired:
            raise exc from None
        if "QEMU exited" in str(exc):
            raise
        raise CaptureError(f"QEMU exited with status {status} ({exc}): {_tail(stderr_log)}") from None
    finally:
        _stop(proc)
        if qmp is not None:
            qmp.close()
        try:
            stdin.close()
        except OSError:
            pass
        console.close(5.0)
        stderr_file.close()
        shutil.rmtree(sock_dir, ignore_errors=True)

    if not trace_log.is_file():
        raise CaptureError(f"QEMU wrote no trace log {trace_log}: {_tail(stderr_log)}")
    return CaptureResult(
        out_dir=out,
        trace_log=trace_log,
        qmp_log=qmp_log,
        console_log=console_log,
        qemu_command=tuple(command),
        qemu_version=version,
        guest_mib=guest_mib,
        deflate_on_oom=deflate_on_oom,
        boot_s=boot_s,
        capture_s=capture_s,
        steps=tuple(steps),
        final_actual_bytes=current,
        guest_features=guest_features,
        host_features=host_features,
        pressure_filled_mib=filled,
        balloon_migrate=migrated,
    )
