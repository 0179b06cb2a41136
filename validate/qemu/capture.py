"""Make a real virtio-balloon capture: boot a Linux guest in QEMU and move its balloon.

:func:`capture` boots a :class:`~ballast.validate.qemu.guest.QemuGuest` and runs its
steps in order -- :func:`move_to_targets`, then optionally :func:`compact_memory`,
:func:`apply_pressure` and :func:`reset_guest` -- then :func:`finish` quits QEMU.  The
folder then holds ``trace.log`` (read it with
:func:`ballast.validate.qemu.trace_reader.read_trace`), ``qmp.log``
(:func:`ballast.validate.qemu.qmp_reader.read_qmp`), ``console.log`` and ``qemu.stderr``.
QEMU is always stopped, on success or error; anything that goes wrong raises
:class:`~ballast.validate.qemu.guest.CaptureError`.

>>> r = capture("out", [384, 256, 512])  # doctest: +SKIP
>>> r.steps[0].target_mib, r.steps[0].reached  # doctest: +SKIP
(384, True)
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ballast.validate.qemu.events import decode_features
from ballast.validate.qemu.guest import (
    INSTALL_HINT,
    QEMU_BINARY,
    TRACE_EVENTS,
    CaptureError,
    DeviceOptions,
    QemuGuest,
    check_guest_mib,
    find_guest,
)

__all__ = [
    "INSTALL_HINT",
    "QEMU_BINARY",
    "TRACE_EVENTS",
    "CaptureError",
    "CaptureResult",
    "CaptureStep",
    "apply_pressure",
    "capture",
    "compact_memory",
    "find_guest",
    "finish",
    "migrate_away",
    "move_to_targets",
    "reset_guest",
    "wait_settled",
    "wait_idle",
]


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
    resets: int = 0
    """Guest reboots (device resets) the capture made."""
    migrations: int = 0
    """Live migrations the capture made (to a sink that discards the stream)."""

    @property
    def guest_feature_names(self) -> tuple[str, ...]:
        """Names of the negotiated feature bits (empty when unknown)."""
        return decode_features(self.guest_features or 0)


def _check_targets(targets_mib: list[int], guest_mib: int, settle_s: float,
                   timeout_s: float) -> None:
    """Raise :class:`CaptureError` for arguments of :func:`capture` that cannot work, before
    QEMU starts or a file is written."""
    check_guest_mib(guest_mib)  # first: the targets are checked against it
    if not targets_mib:
        raise CaptureError("targets_mib is empty: give at least one target guest RAM size")
    for target in targets_mib:
        if not isinstance(target, int) or not 0 < target <= guest_mib:
            raise CaptureError(f"target {target!r} MiB is not an integer in 1..{guest_mib} "
                               "(the guest RAM)")
    if settle_s <= 0 or timeout_s <= 0:
        raise CaptureError("settle_s and timeout_s must be positive")


# ------------------------------------------------------------------------ the steps


def move_to_targets(guest: QemuGuest, targets_mib: list[int], settle_s: float) -> list[CaptureStep]:
    """Ask for each target guest RAM size in turn, noting the guest's view after each."""
    steps = []
    for target in targets_mib:
        guest.alive(f"before target {target} MiB")
        guest.console.say(f"mark target-{target}")
        reached, current, took = guest.move_balloon(target, settle_s)
        steps.append(CaptureStep(target, reached, current, took))
        guest.ask("mem", ("MEM ",), 2.0)  # the guest's view, before the next request
    return steps


def compact_memory(guest: QemuGuest, settle_s: float) -> int | None:
    """Have the guest compact its memory (migrating balloon pages); its ``balloon_migrate``."""
    done = guest.ask("compact", ("COMPACTED", "UNKNOWN compact"), settle_s)
    if done is None or not done[1].startswith("COMPACTED"):
        raise CaptureError("the guest did not compact its memory (an initramfs built before "
                           f"the compact command? {INSTALL_HINT})")
    match = re.search(r"balloon_migrate=(\d+)", done[1])
    return int(match.group(1)) if match else None


def apply_pressure(guest: QemuGuest, pressure_mib: int, settle_s: float) -> int:
    """Fill ``pressure_mib`` MiB of guest memory, watch for ``settle_s``, free it again.

    Returns the MiB the guest managed to write.
    """
    position = guest.console.position
    guest.console.say(f"pressure {pressure_mib}")
    pressure_deadline = min(guest.deadline, time.monotonic() + settle_s)
    done = None
    while done is None and time.monotonic() < pressure_deadline:
        guest.alive("under memory pressure")
        guest.actual_bytes()  # QEMU's view while the guest is squeezed, into the QMP log
        done = guest.console.wait_for(("PRESSURE filled",), position,
                                      min(pressure_deadline, time.monotonic() + 0.1))
    filled = 0
    if done is not None:
        match = re.search(r"mib=(\d+)", done[1])
        filled = int(match.group(1)) if match else 0
    guest.actual_bytes()
    guest.ask("release", ("PRESSURE released",), settle_s)
    return filled


MIGRATION_SINK = "exec:cat > /dev/null"
"""Where :func:`migrate_away` sends the guest: a stream nobody reads back."""


def migrate_away(guest: QemuGuest, settle_s: float) -> dict[str, object]:
    """Live-migrate the guest to :data:`MIGRATION_SINK` and let it run on (``cont``).

    A precopy migration is what makes QEMU start a free page hint cycle (with
    FREE_PAGE_HINT: it writes a new command id, the guest hints its free pages on
    free_page_vq, QEMU skips sending them).  Returns QEMU's last ``query-migrate`` answer."""
    guest.command_qmp("migrate", {"uri": MIGRATION_SINK})
    end = min(guest.deadline, time.monotonic() + settle_s)
    status: dict[str, object] = {}
    while time.monotonic() < end:
        guest.alive("while it migrated")
        answer = guest.command_qmp("query-migrate")
        status = answer if isinstance(answer, dict) else {}
        if status.get("status") in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.1)
    if status.get("status") != "completed":
        raise CaptureError(f"the migration did not complete within {settle_s:g} s: {status!r}")
    guest.command_qmp("cont")  # a completed migration leaves the source paused
    return status


def reset_guest(guest: QemuGuest, settle_s: float, ram_bytes: int | None = None) -> None:
    """Reboot the guest with its balloon as it is (``system_reset``: the device resets) and
    wait until the driver is bound again and has moved the balloon (to ``ram_bytes`` of
    guest RAM when given: :func:`wait_settled`)."""
    position = guest.console.position
    guest.command_qmp("system_reset")
    ready = None
    while ready is None:
        guest.alive("while the guest rebooted")
        ready = guest.console.wait_for(("BALLOON_READY", "BALLOON_MISSING", "Kernel panic"),
                                       position, min(guest.deadline, time.monotonic() + 0.5))
    if not ready[1].startswith("BALLOON_READY"):
        raise CaptureError(f"the guest did not bind virtio_balloon after the reset: {ready[1]!r}")
    # The new driver reads the target the device still has and inflates to it.
    wait_settled(guest, settle_s, ram_bytes)


def wait_settled(guest: QemuGuest, settle_s: float, ram_bytes: int | None = None) -> None:
    """Wait (at most ``settle_s``) until the guest RAM QEMU reports is ``ram_bytes`` (the
    target set last), or, not given, until it stops moving: a driver that just bound
    inflates to the target it read, and a target set meanwhile would race its buffers in
    flight."""
    deadline = min(guest.deadline, time.monotonic() + settle_s)
    while time.monotonic() < deadline:
        before = guest.actual_bytes()
        if before == ram_bytes:
            break
        time.sleep(0.5)
        if ram_bytes is None and guest.actual_bytes() == before:
            break


def wait_idle(guest: QemuGuest, idle_s: float) -> None:
    """Leave the guest alone for ``idle_s`` seconds, asking QEMU its view once a second."""
    end = min(guest.deadline, time.monotonic() + idle_s)
    while time.monotonic() < end:
        guest.alive("while idle")
        guest.actual_bytes()
        time.sleep(min(1.0, max(end - time.monotonic(), 0.0)))


def finish(guest: QemuGuest) -> int:
    """Mark the end, record the guest's last view, quit QEMU; QEMU's last ``actual``."""
    guest.ask("mark end-of-steps", ("MARK end-of-steps",), 3.0)
    guest.ask("mem", ("MEM ",), 2.0)
    current = guest.actual_bytes()
    guest.quit()
    return current


# ------------------------------------------------------------------------ a capture


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
    resets: int = 0,
    idle_s: float = 0.0,
    migrations: int = 0,
    options: DeviceOptions | None = None,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    qemu: str = QEMU_BINARY,
) -> CaptureResult:
    """Boot a guest of ``guest_mib`` MiB, ask for each target guest RAM size in turn, record.

    For each of ``targets_mib`` the host sends QMP ``balloon`` (the value is the target
    guest RAM, not the balloon size) and polls ``query-balloon`` every 0.1 s until the
    guest's ``actual`` reaches it or ``settle_s`` pass (then the step is marked not
    reached; that is not an error, a guest may refuse).  With ``compaction`` the guest then
    compacts its memory, which migrates balloon pages: one-page inflates and deflates with
    ``actual`` unchanged.  With ``pressure_mib`` > 0 the guest then writes that many MiB to
    a tmpfs (``deflate_on_oom`` lets it take pages back from the balloon), the host
    watches for ``settle_s``, and the guest frees it again.  ``resets`` reboots the guest
    that many times with its balloon full.  ``migrations`` migrates it live that many times
    (:func:`migrate_away`; with FREE_PAGE_HINT each is a hint cycle).  ``idle_s`` leaves the
    guest alone that long before the end (free page reporting and statistics happen on their
    own).  ``options`` (the device's other properties) overrides ``guest_mib``,
    ``deflate_on_oom`` and ``pressure_mib``.  ``timeout_s`` bounds the whole run, boot
    included.
    """
    if options is None:
        options = DeviceOptions(guest_mib=guest_mib, deflate_on_oom=deflate_on_oom,
                                pressure_mib=pressure_mib)
    _check_targets(targets_mib, options.guest_mib, settle_s, timeout_s)
    started = time.monotonic()
    guest = QemuGuest(Path(out_dir), options, started + timeout_s, kernel=kernel, initrd=initrd,
                      qemu=qemu)
    try:
        guest.boot()
        steps = move_to_targets(guest, targets_mib, settle_s)
        migrated = compact_memory(guest, settle_s) if compaction else None
        filled = (apply_pressure(guest, options.pressure_mib, settle_s) if options.pressure_mib
                  else None)
        for _ in range(resets):
            reset_guest(guest, settle_s)
        for _ in range(migrations):
            migrate_away(guest, settle_s)
        if idle_s > 0:
            wait_idle(guest, idle_s)
        current = finish(guest)
        capture_s = time.monotonic() - started
    except CaptureError as exc:
        raise guest.explain(exc) from None
    finally:
        guest.stop()
    if not guest.trace_log.is_file():
        raise CaptureError(f"QEMU wrote no trace log {guest.trace_log}")
    return CaptureResult(
        out_dir=guest.out_dir,
        trace_log=guest.trace_log,
        qmp_log=guest.qmp_log,
        console_log=guest.console_log,
        qemu_command=tuple(guest.command),
        qemu_version=guest.version,
        guest_mib=options.guest_mib,
        deflate_on_oom=options.deflate_on_oom,
        boot_s=guest.boot_s,
        capture_s=capture_s,
        steps=tuple(steps),
        final_actual_bytes=current,
        guest_features=guest.guest_features,
        host_features=guest.host_features,
        pressure_filled_mib=filled,
        balloon_migrate=migrated,
        resets=resets,
        migrations=migrations,
    )
