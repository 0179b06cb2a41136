"""A real capture end to end: boot a guest in QEMU (TCG), move its balloon, read the logs.

Skipped only where qemu-system-x86_64 is not installed and the environment variable CI is
not set; in CI a missing tool is a failure (run .ci/install-qemu.sh first).
"""

from __future__ import annotations

import doctest
import os
import shutil
import time
from pathlib import Path

import pytest

import ballast.validate.qemu.capture as qemu_capture
import ballast.validate.qemu.console as qemu_console
import ballast.validate.qemu.guest as qemu_guest
from ballast.validate.qemu.validation import validate_qemu
from ballast.validate.qemu.capture import INSTALL_HINT, CaptureError, capture, find_guest
from ballast.validate.qemu.events import (
    BalloonCommand,
    BalloonQueryReply,
    ConfigWrite,
    DeflateBuffer,
    HostTarget,
    InflateBuffer,
    NegotiatedFeatures,
)
from ballast.validate.qemu.qmp_reader import read_qmp
from ballast.validate.qemu.trace_reader import read_trace

MIB = 1 << 20
PAGES_PER_MIB = MIB // 4096


def _require_qemu() -> None:
    if shutil.which("qemu-system-x86_64") is None and "CI" not in os.environ:
        pytest.skip("qemu-system-x86_64 is not installed (run .ci/install-qemu.sh); "
                    "in CI this fails instead")


def test_short_capture_end_to_end(tmp_path: Path) -> None:
    _require_qemu()
    guest_mib, targets = 256, [192, 256]
    start = time.monotonic()
    result = capture(tmp_path / "cap", targets, guest_mib=guest_mib, settle_s=15.0, timeout_s=90.0)
    wall = time.monotonic() - start
    print(
        f"\nqemu capture: QEMU {result.qemu_version}, boot {result.boot_s:.2f} s, "
        f"capture {result.capture_s:.2f} s "
        f"(wall {wall:.2f} s), settle {[round(s.settle_s, 2) for s in result.steps]} s"
    )

    for path in (result.trace_log, result.qmp_log, result.console_log):
        assert path.is_file() and path.stat().st_size > 0, path
    assert result.trace_log.read_bytes()[:6] != b"\xfd7zXZ\x00"  # left plain
    assert [s.target_mib for s in result.steps] == targets
    assert all(s.reached for s in result.steps), result.steps
    assert result.final_actual_bytes == targets[-1] * MIB
    # The capture's own timeout bounds its duration; a wall-clock limit here would turn
    # a loaded machine into a failure.
    assert 0 < result.boot_s < result.capture_s

    events = list(read_trace(result.trace_log))
    inflated = sum(len(e.pfns) for e in events if isinstance(e, InflateBuffer))
    deflated = sum(len(e.pfns) for e in events if isinstance(e, DeflateBuffer))
    writes = [e for e in events if isinstance(e, ConfigWrite)]
    final_balloon_pages = (guest_mib - targets[-1]) * PAGES_PER_MIB
    assert inflated == (guest_mib - min(targets)) * PAGES_PER_MIB > 0
    assert writes[-1].actual == final_balloon_pages == inflated - deflated
    targets_seen = [e for e in events if isinstance(e, HostTarget)]
    assert [t.target_bytes for t in targets_seen] == [m * MIB for m in targets]
    assert [t.num_pages for t in targets_seen] == [(guest_mib - m) * PAGES_PER_MIB for m in targets]

    qmp = list(read_qmp(result.qmp_log))
    assert [e.target_bytes for e in qmp if isinstance(e, BalloonCommand)] == [
        m * MIB for m in targets]
    assert [e for e in qmp if isinstance(e, BalloonQueryReply)][-1].actual_bytes == (
        targets[-1] * MIB)
    features = [e for e in qmp if isinstance(e, NegotiatedFeatures)]
    assert len(features) == 1 and "STATS_VQ" in features[0].guest_names
    assert ("DEFLATE_ON_OOM" not in features[0].host_names
            and "MUST_TELL_HOST" not in features[0].host_names)
    assert result.guest_features == features[0].guest

    console = result.console_log.read_text()
    assert "BALLOON_READY" in console and "MARK end-of-steps" in console
    first = console.splitlines()[0].split(" ", 1)[0]
    assert abs(float(first) - time.time()) < 600  # host epoch prefix


@pytest.mark.slow
def test_pressure_with_deflate_on_oom(tmp_path: Path) -> None:
    """Under memory pressure a DEFLATE_ON_OOM guest takes pages back on its own."""
    _require_qemu()
    result = capture(
        tmp_path / "oom", [128], guest_mib=256, deflate_on_oom=True, pressure_mib=150,
        settle_s=20.0, timeout_s=90.0
    )
    assert result.steps[0].reached
    assert result.pressure_filled_mib == 150
    assert "DEFLATE_ON_OOM" in result.guest_feature_names
    events = list(read_trace(result.trace_log))
    targets = [e for e in events if isinstance(e, HostTarget)]
    assert len(targets) == 1  # the host never asked for memory back ...
    deflated = sum(len(e.pfns) for e in events if isinstance(e, DeflateBuffer))
    assert deflated > 0  # ... yet the guest deflated
    inflated = sum(len(e.pfns) for e in events if isinstance(e, InflateBuffer))
    assert [e for e in events if isinstance(e, ConfigWrite)][-1].actual == inflated - deflated
    assert result.final_actual_bytes == 256 * MIB - (inflated - deflated) * 4096
    # The validator accepts the guest's own deflates because DEFLATE_ON_OOM was negotiated,
    # and names rule 3 when the same trace is judged as if it had not been.
    features = frozenset(result.guest_feature_names)
    assert validate_qemu(result.trace_log, features).report.violation is None
    strict = validate_qemu(result.trace_log, features - {"DEFLATE_ON_OOM"}).report.violation
    assert strict is not None and strict.rule == "virtio_5_5_6_1_rule3_deflate_only_when_asked"


def test_qemu_failure_is_a_capture_error(tmp_path: Path) -> None:
    """QEMU refusing the kernel gives CaptureError with QEMU's own words, and no QEMU left."""
    _require_qemu()
    _, initrd = find_guest()
    kernel = tmp_path / "not-a-kernel"
    kernel.write_text("not a kernel\n")
    start = time.monotonic()
    with pytest.raises(CaptureError, match="QEMU exited with status") as caught:
        capture(tmp_path / "out", [128], guest_mib=256, kernel=kernel, initrd=initrd,
                timeout_s=30.0)
    assert time.monotonic() - start < 30.0
    assert "kernel" in str(caught.value)


# ------------------------------------------------------------------ errors, no QEMU needed


def test_missing_qemu_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(CaptureError) as caught:
        capture(tmp_path, [128], guest_mib=256, qemu="ballast-no-such-qemu")
    assert "ballast-no-such-qemu not found" in str(caught.value)
    assert ".ci/install-qemu.sh" in str(caught.value) and "qemu-system-x86" in INSTALL_HINT


def test_missing_kernel_says_how_to_install(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALLAST_QEMU_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("BALLAST_QEMU_KERNEL", raising=False)
    monkeypatch.delenv("BALLAST_QEMU_INITRD", raising=False)
    with pytest.raises(CaptureError,
                       match=r"guest kernel not found: .*empty-cache.*install-qemu\.sh"):
        find_guest()
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"")
    with pytest.raises(CaptureError, match="guest initramfs not found"):
        find_guest(kernel)
    if shutil.which("sh"):
        with pytest.raises(CaptureError, match="guest initramfs not found"):
            capture(tmp_path / "out", [128], guest_mib=256, qemu="sh", kernel=kernel)


def test_a_hung_kvm_boot_falls_back_to_tcg_and_leaves_no_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested KVM was seen to hang at boot, spinning without output: under ``auto`` the
    KVM boot is stopped after KVM_BOOT_S, QEMU killed, and the guest booted under TCG."""
    if shutil.which("sh") is None or shutil.which("sleep") is None:
        pytest.skip("needs sh and sleep")
    pids = tmp_path / "pids"
    fake = tmp_path / "fake-qemu"
    fake.write_text("#!/bin/sh\n"
                    f"echo $$ >> {pids}\n"
                    'case "$*" in *accel=kvm*) exec sleep 600;; esac\n'
                    "echo tcg-started >&2\nexit 1\n")
    fake.chmod(0o755)
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    kernel.write_bytes(b"")
    initrd.write_bytes(b"")
    monkeypatch.delenv(qemu_guest.ACCEL_ENV, raising=False)
    monkeypatch.setattr(qemu_guest, "kvm_usable", lambda: True)
    monkeypatch.setattr(qemu_guest, "KVM_BOOT_S", 2.0)
    monkeypatch.setattr(qemu_guest, "_kvm_given_up", [])
    assert qemu_guest.choose_accel() == "kvm"
    start = time.monotonic()
    with pytest.raises(CaptureError, match="QEMU exited with status 1.*tcg-started"):
        capture(tmp_path / "out", [128], guest_mib=256, qemu=str(fake), kernel=kernel,
                initrd=initrd, timeout_s=60.0)
    assert time.monotonic() - start < 30.0
    hung, tcg = (int(x) for x in pids.read_text().split())
    with pytest.raises(ProcessLookupError):
        os.kill(hung, 0)  # the hung KVM QEMU is gone
    assert tcg != hung
    assert qemu_guest._kvm_given_up and "TCG" in qemu_guest._kvm_given_up[0]
    assert qemu_guest.choose_accel() == "tcg"  # later guests of this process skip KVM
    monkeypatch.setenv(qemu_guest.ACCEL_ENV, "kvm")
    assert qemu_guest.choose_accel() == "kvm"
    monkeypatch.setenv(qemu_guest.ACCEL_ENV, "bogus")
    with pytest.raises(CaptureError, match="kvm, tcg or auto"):
        qemu_guest.choose_accel()


@pytest.mark.parametrize(
    ("targets", "guest", "pressure", "words"),
    [
        ([], 256, 0, "targets_mib is empty"),
        ([300], 256, 0, "not an integer in 1..256"),
        ([0], 256, 0, "not an integer in 1..256"),
        ([128], 32, 0, "at least 64"),
        ([128], 0, 0, "at least 64"),
        ([128], 10**8, 0, "at least 64 and at most"),
        ([128], 10**30, 0, "at least 64 and at most"),
        ([128], 256, -1, "pressure_mib"),
        # More than the guest has cannot be filled: refused before QEMU starts.
        ([128], 256, 257, r"pressure_mib must be a whole number from 0 to the guest RAM"),
        ([128], 256, 10**30, r"guest RAM \(256 MiB\)"),
    ],
)
def test_bad_arguments(tmp_path: Path, targets: list[int], guest: int, pressure: int,
                       words: str) -> None:
    with pytest.raises(CaptureError, match=words):
        capture(tmp_path, targets, guest_mib=guest, pressure_mib=pressure)


@pytest.mark.parametrize("module", [qemu_capture, qemu_console, qemu_guest],
                         ids=lambda m: m.__name__)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted >= 1 or module is qemu_capture  # its examples boot QEMU: skipped


def test_a_guest_larger_than_the_host_is_refused_before_qemu_starts(tmp_path: Path) -> None:
    """The bound is the host's physical memory: QEMU would only refuse it once started,
    leaving its logs behind."""
    most = qemu_guest.max_guest_mib()
    assert most == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // qemu_guest.MIB
    qemu_guest.check_guest_mib(qemu_guest.MIN_GUEST_MIB)
    qemu_guest.check_guest_mib(most)
    for bad in (most + 1, 10**8, 10**30, 0, -1, True, 256.0):
        with pytest.raises(CaptureError, match=f"at least 64 and at most {most} .*physical"):
            qemu_guest.check_guest_mib(bad)
    out = tmp_path / "out"
    with pytest.raises(CaptureError, match="guest_mib must be an integer"):
        capture(out, [128], guest_mib=most + 1)
    with pytest.raises(CaptureError, match="guest_mib must be an integer"):
        qemu_guest.QemuGuest(out, qemu_guest.DeviceOptions(guest_mib=10**8), time.monotonic())
    assert not out.exists()


def test_huge_pages_are_counted_from_meminfo_and_a_capture_without_them_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 1000 kB\nHugePages_Free:      40\nHugepagesize:    2048 kB\n")
    assert qemu_guest.free_huge_pages_mib(str(info)) == 80
    info.write_text("HugePages_Free: 40\nHugepagesize: 1048576 kB\n")  # 1 GiB pages: not ours
    assert qemu_guest.free_huge_pages_mib(str(info)) == 0
    monkeypatch.setattr(qemu_guest, "free_huge_pages_mib", lambda: 128)
    options = qemu_guest.DeviceOptions(guest_mib=256, huge_pages=True)
    with pytest.raises(CaptureError, match="needs 256 MiB of free huge pages .* 128 MiB are free"):
        options.check()
    qemu_guest.DeviceOptions(guest_mib=128, huge_pages=True).check()
    # The host's bound comes first, then the free huge pages (which are part of it).
    monkeypatch.setattr(qemu_guest, "free_huge_pages_mib", lambda: 10**9)
    with pytest.raises(CaptureError, match="at most"):
        qemu_guest.DeviceOptions(guest_mib=10**8, huge_pages=True).check()
    assert options.traces_discards and not qemu_guest.DeviceOptions().traces_discards
