"""A Linux guest booted under QEMU with a virtio balloon: started, driven, always stopped.

:class:`QemuGuest` boots QEMU the way the reference (section 3) describes -- a Debian
kernel, a busybox initramfs that loads ``virtio_balloon`` -- with the balloon trace events
on, and offers what a capture or a live test needs: the guest's RAM as QMP reports it,
``balloon`` requests, console commands, and a bounded shutdown.  It writes, in its
folder: ``trace.log`` (QEMU's trace, ``-D``), ``qmp.log`` (every QMP message, see
:mod:`ballast.validate.qemu.qmp_client`), ``console.log`` (the serial console with host
epoch times, see :mod:`ballast.validate.qemu.console`) and ``qemu.stderr``.

The kernel and initramfs come from ``.ci/install-qemu.sh`` (which also installs QEMU);
their paths are taken from the arguments, else ``$BALLAST_QEMU_KERNEL`` /
``$BALLAST_QEMU_INITRD``, else ``${BALLAST_QEMU_CACHE:-$HOME/.cache/ballast/qemu}``.
Every wait is bounded; anything that goes wrong raises :class:`CaptureError`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final

from ballast.errors import BallastError
from ballast.validate.qemu.console import GuestConsole
from ballast.validate.qemu.qmp_client import QmpLink, QmpLinkError
from ballast.validate.qemu.qmp_reader import feature_bits

__all__ = [
    "ACCEL_ENV",
    "DISCARD_EVENT",
    "INSTALL_HINT",
    "KVM_BOOT_S",
    "MIB",
    "MIN_GUEST_MIB",
    "QEMU_BINARY",
    "TRACE_EVENTS",
    "CaptureError",
    "DeviceOptions",
    "QemuGuest",
    "check_guest_mib",
    "choose_accel",
    "find_guest",
    "free_huge_pages_mib",
    "kvm_usable",
    "max_guest_mib",
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
DISCARD_EVENT: Final = "ram_block_discard_range"
"""The trace event of QEMU giving guest RAM back to the host, enabled where guest RAM is on
huge pages (which host pages go back) or free page reporting is on (which pages were
reported: QEMU traces no reported address otherwise).  It names host addresses, and the
first discard of an inflated page tells where guest RAM lies
(:class:`~ballast.validate.qemu.steps.GuestRam`).  Not enabled otherwise: with 4 KiB
pages it doubles the log, one line per ballooned page."""

MIB: Final = 1 << 20
_POLL_S: Final = 0.1

MIN_GUEST_MIB: Final = 64
"""The least guest RAM, in MiB, the guest's kernel and initramfs boot in with a balloon to move."""
_FALLBACK_MAX_GUEST_MIB: Final = 1 << 20
"""The most guest RAM (1 TiB) where the host's physical memory cannot be asked for."""

ACCEL_ENV: Final = "BALLAST_QEMU_ACCEL"
"""``kvm``, ``tcg`` or ``auto`` (the default): KVM when ``/dev/kvm`` can be opened and has
booted a guest in this process, else TCG."""
KVM_BOOT_S: Final = 30.0
"""Most seconds a KVM boot may take under ``auto`` before the guest is booted again under
TCG (a KVM boot takes a few seconds; nested KVM was seen to hang in the kernel's
decompressor, spinning, with no console output)."""

_kvm_given_up: list[str] = []
"""Why KVM was given up in this process (then every later guest boots under TCG)."""


def free_huge_pages_mib(meminfo: str = "/proc/meminfo") -> int:
    """MiB of free 2 MiB huge pages on this host (0 when there are none, or other sizes).

    >>> free_huge_pages_mib("/no/such/file")
    0
    """
    try:
        with open(meminfo, encoding="ascii") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
    except (OSError, ValueError):
        return 0
    try:
        free = int(info.get("HugePages_Free", "0").split()[0])
        size_kib = int(info.get("Hugepagesize", "0").split()[0])
    except (ValueError, IndexError):
        return 0
    return free * 2 if size_kib == 2048 else 0


def kvm_usable() -> bool:
    """``/dev/kvm`` exists and this user may open it for reading and writing."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def choose_accel() -> str:
    """The accelerator to boot with: ``kvm`` or ``tcg`` (see :data:`ACCEL_ENV`).

    >>> import os; os.environ[ACCEL_ENV] = "tcg"; choose_accel()
    'tcg'
    >>> del os.environ[ACCEL_ENV]
    """
    want = os.environ.get(ACCEL_ENV, "auto").strip().lower() or "auto"
    if want in ("kvm", "tcg"):
        return want
    if want != "auto":
        raise CaptureError(f"{ACCEL_ENV}={want!r}: expected kvm, tcg or auto")
    return "kvm" if kvm_usable() and not _kvm_given_up else "tcg"


class CaptureError(BallastError):
    """A capture could not be made: tools missing, QEMU failed, the guest misbehaved, a timeout."""


def max_guest_mib() -> int:
    """The most guest RAM a capture asks QEMU for, in MiB: this host's physical memory.

    A guest larger than the host cannot have its RAM backed (QEMU refuses it, or the host
    swaps it out and the balloon's timings mean nothing), so the size is refused before QEMU
    starts rather than after.  Huge pages are part of the physical memory, so a guest on
    them is bounded the same way (and further by the free huge pages:
    :meth:`DeviceOptions.check`).  Where the host does not say (no ``sysconf``), 1 TiB.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_MAX_GUEST_MIB
    return total // MIB if total > 0 else _FALLBACK_MAX_GUEST_MIB


def check_guest_mib(guest_mib: object) -> None:
    """Raise :class:`CaptureError` unless ``guest_mib`` is a whole number of MiB from
    :data:`MIN_GUEST_MIB` to :func:`max_guest_mib`: the one check of the guest's size, made
    before anything starts.

    >>> check_guest_mib(256)
    >>> check_guest_mib(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ballast.validate.qemu.guest.CaptureError: guest_mib must be an integer of at least 64 ...
    """
    most = max_guest_mib()
    if (isinstance(guest_mib, bool) or not isinstance(guest_mib, int)
            or not MIN_GUEST_MIB <= guest_mib <= most):
        raise CaptureError(f"guest_mib must be an integer of at least {MIN_GUEST_MIB} and at "
                           f"most {most} (this host's physical memory in MiB), "
                           f"not {guest_mib!r}")


@dataclass(frozen=True, slots=True)
class DeviceOptions:
    """The guest and its virtio-balloon device as QEMU is told to make them.

    ``free_page_reporting`` / ``free_page_hint`` / ``deflate_on_oom`` are the device's
    properties of those names; ``stats_interval_s`` > 0 makes QEMU poll the statistics
    queue (``guest-stats-polling-interval``); ``pressure_mib`` is the guest's default
    memory pressure (its ``pressure`` console command).

    >>> DeviceOptions(free_page_reporting=True).device_argument()
    'virtio-balloon-pci,id=balloon0,free-page-reporting=on'
    """

    guest_mib: int = 512
    deflate_on_oom: bool = False
    free_page_reporting: bool = False
    free_page_hint: bool = False
    stats_interval_s: int = 0
    pressure_mib: int = 0
    huge_pages: bool = False
    """Guest RAM backed by the host's 2 MiB huge pages (a hugetlb memfd), so that the host
    page is larger than the balloon's 4 KiB unit: QEMU discards a host page only once every
    4 KiB page of it is in the balloon (``ram_block_discard_range`` is traced)."""

    @property
    def traces_discards(self) -> bool:
        """Whether the capture traces QEMU's discards (:data:`DISCARD_EVENT`)."""
        return self.huge_pages or self.free_page_reporting

    def device_argument(self) -> str:
        """The ``-device`` argument of the balloon."""
        device = "virtio-balloon-pci,id=balloon0"
        if self.deflate_on_oom:
            device += ",deflate-on-oom=on"
        if self.free_page_reporting:
            device += ",free-page-reporting=on"
        if self.free_page_hint:
            device += ",free-page-hint=on,iothread=balloon-io"
        return device

    def check(self) -> None:
        """Raise :class:`CaptureError` for options QEMU or the guest cannot take."""
        check_guest_mib(self.guest_mib)
        # More than the guest has cannot be filled (its tmpfs holds less still).
        if (isinstance(self.pressure_mib, bool) or not isinstance(self.pressure_mib, int)
                or not 0 <= self.pressure_mib <= self.guest_mib):
            raise CaptureError(f"pressure_mib must be a whole number from 0 to the guest RAM "
                               f"({self.guest_mib} MiB), not {self.pressure_mib!r}")
        if not isinstance(self.stats_interval_s, int) or self.stats_interval_s < 0:
            raise CaptureError("stats_interval_s must be a non-negative integer, "
                               f"not {self.stats_interval_s!r}")
        if self.huge_pages:
            free = free_huge_pages_mib()
            if free < self.guest_mib:
                raise CaptureError(
                    f"guest RAM on 2 MiB huge pages needs {self.guest_mib} MiB of free huge pages "
                    f"on the host, and {free} MiB are free; reserve them as root: `bash "
                    f".ci/reserve-huge-pages.sh {self.guest_mib}` in the Ballast repository, or "
                    f"`echo {self.guest_mib // 2 + 16} > /proc/sys/vm/nr_hugepages` "
                    "(a capture does not change the host's settings)")


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


def _tail(path: Path, size: int = 600) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no stderr)"
    return text[-size:] if text else "(no stderr)"


class QemuGuest:
    """One booted guest (see the module's documentation); use :meth:`boot`, then :meth:`stop`."""

    def __init__(self, out_dir: Path, options: DeviceOptions, deadline: float, *,
                 kernel: str | os.PathLike[str] | None = None,
                 initrd: str | os.PathLike[str] | None = None, qemu: str = QEMU_BINARY) -> None:
        options.check()
        self.options = options
        self.deadline = deadline
        """Bound on everything this guest does (``time.monotonic``)."""
        binary = shutil.which(qemu)
        if binary is None:
            raise CaptureError(f"{qemu} not found on PATH; {INSTALL_HINT}")
        self.binary = binary
        self.kernel, self.initrd = find_guest(kernel, initrd)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.trace_log = out_dir / "trace.log"
        self.qmp_log = out_dir / "qmp.log"
        self.console_log = out_dir / "console.log"
        self.stderr_log = out_dir / "qemu.stderr"
        for stale in (self.trace_log, self.qmp_log, self.console_log, self.stderr_log):
            stale.unlink(missing_ok=True)
        self._sock_dir = tempfile.mkdtemp(prefix="ballast-qmp-")
        self.accel = choose_accel()
        """``kvm`` or ``tcg``: what QEMU runs the guest with."""
        self.accel_note: str | None = None
        """Why KVM was not used although it looked usable (a boot that timed out)."""
        self.command = self._command(os.path.join(self._sock_dir, "qmp.sock"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._console: GuestConsole | None = None
        self._qmp: QmpLink | None = None
        self.boot_s = 0.0
        self.version = ""
        self.guest_features: int | None = None
        self.host_features: int | None = None

    def _command(self, sock_path: str) -> list[str]:
        o = self.options
        append = "console=ttyS0 panic=-1 ballast_interval=2"
        if o.pressure_mib:
            append += f" ballast_pressure_mib={o.pressure_mib}"
        machine = f"q35,accel={self.accel}"
        if o.huge_pages:
            machine += ",memory-backend=guest-ram"
        command = [self.binary, "-machine", machine, "-m", str(o.guest_mib), "-nographic"]
        if o.huge_pages:
            command += ["-object", f"memory-backend-memfd,id=guest-ram,size={o.guest_mib}M,"
                                   "hugetlb=on,hugetlbsize=2M"]
        command += ["-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", append]
        if o.free_page_hint:
            command += ["-object", "iothread,id=balloon-io"]
        command += ["-device", o.device_argument()]
        command += ["-qmp", f"unix:{sock_path},server=on,wait=off", "-msg", "timestamp=on"]
        for event in TRACE_EVENTS + ((DISCARD_EVENT,) if o.traces_discards else ()):
            command += ["-trace", f"enable={event}"]
        command += ["-D", str(self.trace_log)]
        return command

    # -- the parts a capture is made of ---------------------------------------------

    @property
    def console(self) -> GuestConsole:
        """The guest's console (after :meth:`boot`)."""
        assert self._console is not None, "boot the guest first"
        return self._console

    @property
    def qmp(self) -> QmpLink:
        """The QMP session (after :meth:`boot`)."""
        assert self._qmp is not None, "boot the guest first"
        return self._qmp

    def boot(self) -> None:
        """Start QEMU, connect QMP, wait until the guest's balloon driver is bound.

        Under ``auto`` a KVM boot that is not ready within :data:`KVM_BOOT_S` is stopped
        and the guest booted again under TCG (and so is every later guest of this process)."""
        if self.accel == "kvm" and os.environ.get(ACCEL_ENV, "auto").strip().lower() != "kvm":
            whole = self.deadline
            self.deadline = min(whole, time.monotonic() + KVM_BOOT_S)
            try:
                self._boot()
                return
            except CaptureError as exc:
                reason = (f"KVM did not boot the guest within {KVM_BOOT_S:.0f} s ({exc}); "
                          f"booted under TCG instead")
                _kvm_given_up.append(reason)
                self.accel_note = reason
                self._halt()
                self.accel = "tcg"
                self.command = self._command(os.path.join(self._sock_dir, "qmp.sock"))
                for stale in (self.trace_log, self.qmp_log, self.console_log, self.stderr_log):
                    stale.unlink(missing_ok=True)
            finally:
                self.deadline = whole
        self._boot()

    def _boot(self) -> None:
        started = time.monotonic()
        stderr_file = open(self.stderr_log, "wb")
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=stderr_file,
                                         start_new_session=True)
        except OSError as exc:
            raise CaptureError(f"cannot start {self.binary}: {exc}; {INSTALL_HINT}") from None
        finally:
            stderr_file.close()
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._console = GuestConsole(self.proc.stdout, self.proc.stdin, self.console_log)
        self._qmp = QmpLink(self.qmp_log)
        sock = self.command[self.command.index("-qmp") + 1].split(",")[0].removeprefix("unix:")
        self._guarded(lambda: self.qmp.connect(sock, min(self.deadline, time.monotonic() + 30.0),
                                               lambda: self.alive("at start")))
        self.version = self.qmp.version
        self._wait_ready()
        self.boot_s = time.monotonic() - started
        self._read_features()
        if self.options.stats_interval_s:
            self.command_qmp("qom-set", {"path": "/machine/peripheral/balloon0",
                                         "property": "guest-stats-polling-interval",
                                         "value": self.options.stats_interval_s})

    def _wait_ready(self) -> None:
        ready = None
        while ready is None:
            self.alive("while the guest booted")
            ready = self.console.wait_for(("BALLOON_READY", "BALLOON_MISSING", "Kernel panic"), 0,
                                          min(self.deadline, time.monotonic() + 0.5))
        if not ready[1].startswith("BALLOON_READY"):
            raise CaptureError(f"the guest did not bind virtio_balloon: {ready[1]!r} "
                               f"(see {self.console_log})")

    def _read_features(self) -> None:
        """The negotiated and offered feature bits, when this QEMU has ``x-query-virtio``."""
        try:
            devices = self.command_qmp("x-query-virtio")
        except CaptureError as exc:
            if "QMP x-query" in str(exc):
                return  # a QEMU without x-query-virtio* still makes a capture
            raise
        path = next((d.get("path") for d in (devices if isinstance(devices, list) else [])
                     if isinstance(d, dict) and d.get("name") == "virtio-balloon"), None)
        if isinstance(path, str):
            status = self.command_qmp("x-query-virtio-status", {"path": path})
            if isinstance(status, dict):
                self.guest_features = _bits(status.get("guest-features"))
                self.host_features = _bits(status.get("host-features"))

    def _guarded(self, call: Callable[[], object]) -> object:
        try:
            return call()
        except QmpLinkError as exc:
            raise CaptureError(str(exc)) from None

    def command_qmp(self, name: str, arguments: dict[str, object] | None = None) -> object:
        """Run a QMP command within the guest's deadline."""
        return self._guarded(lambda: self.qmp.command(name, self.deadline, arguments))

    def alive(self, what: str) -> None:
        """Raise :class:`CaptureError` if the guest panicked, QEMU exited, or time is up."""
        if self._console is not None:
            panic = self._console.wait_for(("Kernel panic",), 0, 0.0)
            if panic is not None:
                raise CaptureError(f"the guest kernel panicked {what}: {panic[1]!r} "
                                   f"(see {self.console_log})")
        if self.proc is not None and self.proc.poll() is not None:
            raise CaptureError(f"QEMU exited with status {self.proc.returncode} {what}: "
                               f"{_tail(self.stderr_log)}")
        if time.monotonic() > self.deadline:
            raise CaptureError(f"the guest ran out of time {what}")

    def actual_bytes(self) -> int:
        """The guest RAM QEMU reports (``query-balloon``), in bytes."""
        answer = self.command_qmp("query-balloon")
        if not isinstance(answer, dict) or not isinstance(answer.get("actual"), int):
            raise CaptureError(f"query-balloon answered {answer!r}")
        value: int = answer["actual"]
        return value

    def move_balloon(self, target_mib: int, settle_s: float) -> tuple[bool, int, float]:
        """Ask for ``target_mib`` of guest RAM; poll until reached or ``settle_s`` passed.

        Returns (reached, last guest RAM in bytes, seconds taken).
        """
        sent = time.monotonic()
        self.command_qmp("balloon", {"value": target_mib * MIB})
        settle_deadline = min(self.deadline, sent + settle_s)
        current = self.actual_bytes()
        while current != target_mib * MIB and time.monotonic() < settle_deadline:
            self.alive(f"while moving to {target_mib} MiB")
            time.sleep(_POLL_S)
            current = self.actual_bytes()
        return current == target_mib * MIB, current, time.monotonic() - sent

    def ask(self, command: str, answer: tuple[str, ...],
            timeout_s: float) -> tuple[float, str] | None:
        """Type a console command and wait (within the deadline) for its answer marker."""
        return self.console.ask(command, answer,
                                min(timeout_s, max(self.deadline - time.monotonic(), 0.0)))

    def quit(self) -> None:
        """Tell QEMU to quit and wait for it to exit."""
        assert self.proc is not None
        try:
            self.qmp.command("quit", min(self.deadline + 5.0, time.monotonic() + 5.0))
        except QmpLinkError:
            pass  # QEMU may close the socket before it answers
        try:
            self.proc.wait(max(1.0, min(10.0, self.deadline + 5.0 - time.monotonic())))
        except subprocess.TimeoutExpired:
            raise CaptureError("QEMU did not exit after quit") from None

    def explain(self, exc: CaptureError) -> CaptureError:
        """The error to raise for ``exc``: QEMU's exit status and last words when it went away."""
        if self.proc is None:
            return exc
        try:
            status = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return exc
        if "QEMU exited" in str(exc):
            return exc
        return CaptureError(f"QEMU exited with status {status} ({exc}): {_tail(self.stderr_log)}")

    def stop(self) -> None:
        """Make sure QEMU is gone (terminate, then kill) and every file is closed."""
        self._halt()
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def _halt(self) -> None:
        """Stop QEMU (terminate, then kill; its whole session) and close QMP and the console."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                _kill_session(proc)
                proc.wait(5.0)
        if self._qmp is not None:
            self._qmp.close()
        if self._console is not None:
            self._console.close(5.0)
        self.proc, self._qmp, self._console = None, None, None


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL QEMU and anything it started (it runs in a session of its own)."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _bits(value: object) -> int | None:
    try:
        return feature_bits(value)
    except ValueError:
        return None
