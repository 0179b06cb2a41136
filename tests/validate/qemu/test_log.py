"""Tests of the QEMU trace and QMP log reader against the real capture and small cases."""

from __future__ import annotations

import doctest
import json
import lzma
from ballast.errors import InputError
import re
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

import ballast.validate.qemu.bulk as bulk
import ballast.validate.qemu.events as events
import ballast.validate.qemu.fields as fields
import ballast.validate.qemu.qmp_reader as qmp_reader
import ballast.validate.qemu.source as source
import ballast.validate.qemu.trace_reader as trace_reader
from ballast.validate.qemu.events import (
    BalloonChange,
    BalloonCommand,
    BalloonQueryReply,
    BalloonRequest,
    CommandError,
    ConfigRead,
    ConfigWrite,
    DeflateBuffer,
    DeviceNotify,
    DeviceStatus,
    HostTarget,
    InflateBuffer,
    NegotiatedFeatures,
    OtherBuffer,
    QueueBuffer,
    StatsBuffer,
    TraceEvent,
    decode_features,
)
from ballast.validate.qemu.qmp_reader import read_qmp
from ballast.validate.qemu.source import QemuLogError
from ballast.validate.qemu.trace_reader import read_trace


def _find_sample() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        for candidate in (
            parent / "shared" / "samples" / "qemu-virtio-balloon",
            parent.parent / "shared" / "samples" / "qemu-virtio-balloon",
        ):
            if (candidate / "trace.log.xz").is_file():
                return candidate
    return None


SAMPLE = _find_sample()
needs_sample = pytest.mark.skipif(SAMPLE is None,
                                  reason="the shared QEMU sample capture is not present")
MIB = 1 << 20
PAGES_PER_MIB = MIB // 4096


@pytest.fixture(scope="module")
def sample_events() -> list[TraceEvent]:
    assert SAMPLE is not None
    return list(read_trace(SAMPLE / "trace.log.xz"))


def _balance(events: Iterable[TraceEvent]) -> int:
    total = 0
    for event in events:
        if isinstance(event, InflateBuffer):
            total += len(event.pfns)
        elif isinstance(event, DeflateBuffer):
            total -= len(event.pfns)
    return total


# ------------------------------------------------------------------------- real sample


@needs_sample
def test_sample_page_counts_match_final_actual(sample_events: list[TraceEvent]) -> None:
    inflated = sum(len(e.pfns) for e in sample_events if isinstance(e, InflateBuffer))
    deflated = sum(len(e.pfns) for e in sample_events if isinstance(e, DeflateBuffer))
    writes = [e for e in sample_events if isinstance(e, ConfigWrite)]
    assert inflated == 65536  # 128 MiB, then 128 MiB more
    assert deflated == 65536  # all of it back
    assert inflated - deflated == writes[-1].actual == 0
    # The driver sends at most 256 pages a buffer and the device acknowledged each one.
    buffers = [e for e in sample_events if isinstance(e, (InflateBuffer, DeflateBuffer))]
    assert len(buffers) == 512
    assert all(len(b.pfns) == 256 and b.acknowledged and not b.bad_pfns for b in buffers)
    assert all(b.queue == (0 if isinstance(b, InflateBuffer) else 1) for b in buffers)


@needs_sample
def test_sample_actual_follows_the_buffers(sample_events: list[TraceEvent]) -> None:
    """Every write of `actual` equals the pages inflated minus deflated so far."""
    balance = 0
    peak = 0
    for event in sample_events:
        if isinstance(event, InflateBuffer):
            balance += len(event.pfns)
        elif isinstance(event, DeflateBuffer):
            balance -= len(event.pfns)
        elif isinstance(event, ConfigWrite):
            assert event.actual == balance, event
        peak = max(peak, balance)
    assert peak == 256 * PAGES_PER_MIB


@needs_sample
def test_sample_host_targets(sample_events: list[TraceEvent]) -> None:
    targets = [e for e in sample_events if isinstance(e, HostTarget)]
    assert [t.target_bytes // MIB for t in targets] == [384, 256, 512]
    assert [t.num_pages for t in targets] == [(512 - m) * PAGES_PER_MIB for m in (384, 256, 512)]
    requests = [e for e in sample_events if isinstance(e, BalloonRequest)]
    assert [r.target_bytes for r in requests] == [t.target_bytes for t in targets]
    assert all(t.time is not None and t.thread is not None for t in targets)


@needs_sample
def test_sample_device_status_and_stats(sample_events: list[TraceEvent]) -> None:
    statuses = [e.value for e in sample_events if isinstance(e, DeviceStatus)]
    # ACK, DRIVER, FEATURES_OK, DRIVER_OK; then reset at quit
    assert statuses[-5:-1] == [1, 3, 11, 15]
    stats = [e for e in sample_events if isinstance(e, StatsBuffer)]
    assert len(stats) == 1 and stats[0].pfns == () and stats[0].queue == 2
    reads = [e for e in sample_events if isinstance(e, ConfigRead)]
    assert len(reads) == 513
    lines = [e.line for e in sample_events]
    assert lines == sorted(lines)  # single vCPU thread: line order


@needs_sample
def test_sample_qmp() -> None:
    assert SAMPLE is not None
    events = list(read_qmp(SAMPLE / "qmp.log"))
    commands = [e for e in events if isinstance(e, BalloonCommand)]
    assert [c.target_bytes // MIB for c in commands] == [384, 256, 512]
    features = [e for e in events if isinstance(e, NegotiatedFeatures)]
    assert len(features) == 1
    assert features[0].guest_names == ("STATS_VQ",)
    assert features[0].host_names == ("STATS_VQ", "PAGE_POISON")
    assert "VIRTIO_CONFIG_S_DRIVER_OK" in features[0].status
    replies = [e for e in events if isinstance(e, BalloonQueryReply)]
    assert replies[-1].actual_bytes == 512 * MIB
    assert min(r.actual_bytes for r in replies) == 256 * MIB
    changes = [e for e in events if isinstance(e, BalloonChange)]
    assert changes[-1].actual_bytes == 512 * MIB and changes[-1].event_time is not None
    times = [e.time for e in events]
    assert times == sorted(times)


@needs_sample
def test_xz_and_plain_give_the_same_events(tmp_path: Path, sample_events: list[TraceEvent]) -> None:
    assert SAMPLE is not None
    plain = tmp_path / "trace.log"
    with lzma.open(SAMPLE / "trace.log.xz", "rb") as src:
        plain.write_bytes(src.read())
    assert list(read_trace(plain)) == sample_events
    # The xz magic decides, not the name.
    renamed = tmp_path / "trace.xz.txt"
    renamed.write_bytes((SAMPLE / "trace.log.xz").read_bytes())
    assert list(read_trace(str(renamed))) == sample_events


@needs_sample
def test_with_and_without_prefix(sample_events: list[TraceEvent]) -> None:
    assert SAMPLE is not None
    prefix = re.compile(r"^\d+@\d+\.\d+:")
    with lzma.open(SAMPLE / "trace.log.xz", "rt") as src:
        bare = [prefix.sub("", line) for line in src]
    assert all(not line[:1].isdigit() for line in bare)
    unprefixed = list(read_trace(bare))
    # Without the prefix there is no thread: a buffer ends at the next event of the whole
    # trace, which in this trace of one vCPU is the same event.
    assert len(unprefixed) == len(sample_events)
    for a, b in zip(unprefixed, sample_events):
        assert type(a) is type(b) and a.line == b.line
        assert a.time is None and a.thread is None and b.time is not None
        if isinstance(a, QueueBuffer):
            assert isinstance(b, QueueBuffer)
            assert (a.pfns, a.acknowledged, a.end_line) == (b.pfns, b.acknowledged, b.end_line)


@needs_sample
def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    """The reader's own memory stays small (the xz decoder of the sample needs its 64 MiB
    dictionary whatever reads it, so this is measured on the decompressed file)."""
    assert SAMPLE is not None
    plain = tmp_path / "trace.log"
    with lzma.open(SAMPLE / "trace.log.xz", "rb") as src:
        plain.write_bytes(src.read())
    tracemalloc.start()
    try:
        count = 0
        for _ in read_trace(plain):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1568
    assert peak < MIB, peak  # the trace itself is 11 MiB


@needs_sample
def test_parse_speed_against_raw_read(record_property: Callable[[str, object], None]) -> None:
    """Measure lines/s of read_trace against lzma.open + iterating the lines."""
    assert SAMPLE is not None
    path = SAMPLE / "trace.log.xz"

    def raw() -> int:
        n = 0
        with lzma.open(path, "rt") as stream:
            for _ in stream:
                n += 1
        return n

    lines = raw()

    def best(fn: object) -> float:
        assert callable(fn)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    raw_s = best(raw)
    parse_s = best(lambda: sum(1 for _ in read_trace(path)))
    record_property("raw_lines_per_s", round(lines / raw_s))
    record_property("parse_lines_per_s", round(lines / parse_s))
    print(
        f"\nqemu trace sample: {lines} lines; "
        f"lzma.open+iterate {lines / raw_s / 1e6:.2f} M lines/s, "
        f"read_trace {lines / parse_s / 1e6:.2f} M lines/s ({parse_s / raw_s:.1f}x the raw read)"
    )
    assert parse_s < 25 * raw_s


# ------------------------------------------------------------------------- small cases

P = "9@1.000001:"  # a vCPU thread
M = "7@1.000002:"  # the main thread


def test_buffer_attribution_and_end() -> None:
    lines = [
        f"{P}virtio_queue_notify vdev 0xd n 1 vq 0xb",
        f"{P}virtio_balloon_handle_output section name: pc.ram gpa: 0x1000",
        f"{P}virtio_notify vdev 0xd vq 0xb",
        # A second element in the same notification: same queue, new buffer.
        f"{P}virtio_balloon_handle_output section name: pc.ram gpa: 0x2000",
        f"{P}virtio_balloon_bad_addr 0xfee00000",
        f"{P}virtio_notify vdev 0xd vq 0xb",
        # Notification suppressed: the next event of the thread ends the buffer.
        f"{P}virtio_queue_notify vdev 0xd n 0 vq 0xa",
        f"{P}virtio_balloon_handle_output section name: pc.ram gpa: 0x3000",
        f"{P}virtio_balloon_set_config actual: 1 oldactual: 0",
        f"{M}virtio_notify vdev 0xd vq 0xc",
        f"{P}virtio_queue_notify vdev 0xd n 4 vq 0xe",
    ]
    events = list(read_trace(lines))
    kinds = [type(e) for e in events]
    assert kinds == [DeflateBuffer, DeflateBuffer, InflateBuffer, ConfigWrite, DeviceNotify,
                     OtherBuffer]
    first, second, third, _, notify, other = events
    assert isinstance(first, DeflateBuffer) and first.pfns == (1,) and first.acknowledged
    assert (first.line, first.end_line, first.thread, first.time) == (1, 3, 9, 1.000001)
    assert (isinstance(second, DeflateBuffer) and second.pfns == (2,)
            and second.bad_pfns == (0xFEE00,))
    assert second.line == 4
    assert isinstance(third, InflateBuffer) and third.pfns == (3,) and not third.acknowledged
    assert third.end_line == 9
    assert isinstance(notify, DeviceNotify) and notify.queue is None and notify.thread == 7
    assert (isinstance(other, OtherBuffer) and other.queue == 4 and other.pfns == ()
            and not other.acknowledged)


def test_discards_join_the_buffer_being_read_or_stand_alone() -> None:
    lines = [
        f"{P}virtio_queue_notify vdev 0xd n 0 vq 0xa",
        f"{P}virtio_balloon_handle_output section name: pc.ram gpa: 0x1000",
        (f"{P}ram_block_discard_range pc.ram@0x7f0000001000 + 0x1000: "
         "madvise: 1 fallocate: 0 ret: 0"),
        f"{P}virtio_balloon_handle_output section name: pc.ram gpa: 0x2000",
        f"{P}virtio_notify vdev 0xd vq 0xa",
        (f"{M}ram_block_discard_range mem@dimm0@0x7f1000000000 + 0x200000: "
         "madvise: 0 fallocate: 1 ret: 0"),
    ]
    inflate, alone = list(read_trace(lines))
    assert isinstance(inflate, InflateBuffer) and inflate.pfns == (1, 2) and inflate.acknowledged
    assert inflate.discards == (events.Discard(3, 0x7F0000001000, 0x1000, 1),)
    assert isinstance(alone, events.RamDiscard) and alone.block == "mem@dimm0"
    assert (alone.hva, alone.length, alone.line) == (0x7F1000000000, 0x200000, 6)


def test_threads_are_kept_apart() -> None:
    lines = [
        "1@1.0:virtio_queue_notify vdev 0xd n 0 vq 0xa",
        "1@1.0:virtio_balloon_handle_output section name: pc.ram gpa: 0x1000",
        "2@1.0:virtio_queue_notify vdev 0xd n 1 vq 0xb",
        "2@1.0:virtio_balloon_handle_output section name: pc.ram gpa: 0x9000",
        "1@1.0:virtio_balloon_handle_output section name: pc.ram gpa: 0x2000",
        "2@1.0:virtio_notify vdev 0xd vq 0xb",
        "1@1.0:virtio_notify vdev 0xd vq 0xa",
    ]
    events = list(read_trace(lines))
    assert [(type(e), e.pfns) for e in events if isinstance(e, QueueBuffer)] == [
        (DeflateBuffer, (9,)),
        (InflateBuffer, (1, 2)),
    ]


def test_all_event_kinds_and_unrelated_lines() -> None:
    lines = [
        "qemu-system-x86_64: some warning",
        "",
        "12@5.000001:virtio_balloon_to_target balloon target: 0x10000000 num_pages: 65536",
        "12@5.000002:balloon_event opaque 0x55aa addr 268435456",
        "virtio_balloon_get_config num_pages: 65536 actual: 0",
        "virtio_balloon_set_config actual: 256 oldactual: 0",
        "virtio_balloon_get_free_page_hints something we do not read",
        "virtio_set_status vdev 0x55aa val 15",
        "virtio_balloon_get_config num_pages: 1 actual: -1",  # QEMU prints uint32 with %d
    ]
    events = list(read_trace(lines))
    assert events == [
        HostTarget(line=3, time=5.000001, thread=12, target_bytes=256 * MIB, num_pages=65536),
        BalloonRequest(line=4, time=5.000002, thread=12, device="0x55aa", target_bytes=256 * MIB),
        ConfigRead(line=5, time=None, thread=None, num_pages=65536, actual=0),
        ConfigWrite(line=6, time=None, thread=None, actual=256, old_actual=0),
        DeviceStatus(line=8, time=None, thread=None, vdev="0x55aa", value=15),
        ConfigRead(line=9, time=None, thread=None, num_pages=1, actual=0xFFFFFFFF),
    ]


def test_open_buffer_at_end_of_file() -> None:
    events = list(
        read_trace(
            [
                "virtio_queue_notify vdev 0x1 n 0 vq 0x2",
                "virtio_balloon_handle_output section name: pc.ram gpa: 0x5000",
            ]
        )
    )
    assert len(events) == 1 and isinstance(events[0], InflateBuffer)
    assert events[0].pfns == (5,) and not events[0].acknowledged


def test_events_are_frozen() -> None:
    event = ConfigWrite(line=1, time=None, thread=None, actual=1, old_actual=0)
    with pytest.raises(AttributeError):
        event.actual = 2  # type: ignore[misc]
    assert decode_features(0b111111) == (
        "MUST_TELL_HOST",
        "STATS_VQ",
        "DEFLATE_ON_OOM",
        "FREE_PAGE_HINT",
        "PAGE_POISON",
        "PAGE_REPORTING",
    )


@pytest.mark.parametrize(
    ("lines", "bad_line", "words"),
    [
        (["virtio_queue_notify vdev 0x1 n 0 vq 0x2",
          "virtio_balloon_handle_output section name: pc.ram gpa: 0xzz"], 2,
         "malformed virtio_balloon_handle_output"),
        (["virtio_queue_notify vdev 0x1 n 0 vq 0x2",
          "virtio_balloon_handle_output section name: pc.ram gpa: 0x1001"], 2,
         "malformed virtio_balloon_handle_output"),
        (["virtio_queue_notify vdev 0x1 n 0 vq 0x2", "virtio_balloon_handle_output pc.ram 0x1000"],
         2, "malformed virtio_balloon_handle_output"),
        (["x", "virtio_balloon_handle_output section name: pc.ram gpa: 0x1000"], 2,
         "without a virtio_queue_notify"),
        (["virtio_balloon_set_config actual: 1"], 1, "malformed virtio_balloon_set_config"),
        (["", "virtio_balloon_get_config num_pages: 1 actual: two"], 2,
         "malformed virtio_balloon_get_config"),
        (["virtio_balloon_to_target balloon target: 1000 num_pages: 1"], 1,
         "malformed virtio_balloon_to_target"),
        (["virtio_queue_notify vdev 0x1 n -1 vq 0x2"], 1, "malformed virtio_queue_notify"),
        (["virtio_queue_notify vdev 0x1 n 1024 vq 0x2"], 1, "malformed virtio_queue_notify"),
        (["virtio_queue_notify vdev 0x1 n 99999999999999999999 vq 0x2"], 1,
         "malformed virtio_queue_notify"),
        (["virtio_notify vdev 0x1"], 1, "malformed virtio_notify"),
        (["virtio_set_status vdev 0x1 val"], 1, "malformed virtio_set_status"),
        (["balloon_event opaque 0x1 addr big"], 1, "malformed balloon_event"),
        (["ram_block_discard_range pc.ram@0x7f0000001000 + 4096: madvise: 1"], 1,
         "malformed ram_block_discard_range"),
        (["ram_block_discard_range pc.ram 0x7f0000001000 + 0x1000: madvise: 1"], 1,
         "malformed ram_block_discard_range"),
        (["ram_block_discard_range pc.ram@0x7f0000001800 + 0x1000: madvise: 1"], 1,
         "malformed ram_block_discard_range"),
        (["12@1.x:virtio_set_status vdev 0x1 val 1"], 1, "prefix"),
        (["virtio_queue_notify vdev 0x1 n 0 vq 0x2",
          "1x@1.0:virtio_balloon_handle_output section name: pc.ram gpa: 0x1000"], 2, "prefix"),
    ],
)
def test_malformed_trace_lines(lines: list[str], bad_line: int, words: str) -> None:
    with pytest.raises(QemuLogError) as caught:
        list(read_trace(lines, name="t.log"))
    assert caught.value.line == bad_line
    assert caught.value.file == "t.log"
    assert words in caught.value.message
    assert str(caught.value).startswith(f"t.log:{bad_line}: ")
    assert isinstance(caught.value, InputError)  # under the one exception root


def test_damaged_files(tmp_path: Path) -> None:
    text = "".join(f"virtio_set_status vdev 0x1 val {i % 16}\n" for i in range(20000)).encode()
    packed = lzma.compress(text)
    truncated = tmp_path / "cut.log.xz"
    truncated.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(QemuLogError, match="truncated xz") as caught:
        list(read_trace(truncated))
    assert caught.value.file == str(truncated) and caught.value.line is not None
    binary = tmp_path / "bytes.log"
    binary.write_bytes(b"virtio_set_status vdev 0x1 val \xff\n")
    with pytest.raises(QemuLogError, match="malformed virtio_set_status"):
        list(read_trace(binary))
    with pytest.raises(QemuLogError, match="expected a line of text"):
        list(read_trace([b"virtio_set_status vdev 0x1 val 1"]))  # type: ignore[list-item]


# ------------------------------------------------------------------------------- QMP


def _qmp(*records: dict[str, object]) -> list[str]:
    return [json.dumps(r) for r in records]


def test_qmp_matching_and_errors() -> None:
    log = _qmp(
        {"t": 1, "dir": "recv", "msg": {"QMP": {"version": {}, "capabilities": []}}},
        {"t": 2, "dir": "send",
         "msg": {"execute": "balloon", "arguments": {"value": 100 * MIB}, "id": "a"}},
        {"t": 3, "dir": "send", "msg": {"execute": "query-balloon"}},
        {"t": 4, "dir": "recv",
         "msg": {"error": {"class": "DeviceNotActive", "desc": "No balloon device"}, "id": "a"}},
        {"t": 5, "dir": "recv", "msg": {"return": {"actual": 512 * MIB}}},
        {"t": 6, "dir": "recv",
         "msg": {"return": {"actual": 1}, "id": 99}},  # answer to nothing we track
        {
            "t": 7,
            "dir": "send",
            "msg": {"execute": "x-query-virtio-status", "id": 3, "arguments": {"path": "/b"}},
        },
        {"t": 8, "dir": "recv",
         "msg": {"return": {"name": "virtio-balloon", "guest-features": 6,
                            "host-features": 0x4000000007}, "id": 3}},
        {"t": 9, "dir": "recv", "msg": {"event": "BALLOON_CHANGE", "data": {"actual": 300 * MIB}}},
        {"t": 10, "dir": "recv", "msg": {"event": "SHUTDOWN", "data": {}}},
    )
    log.insert(3, "")
    events = list(read_qmp(log))
    assert events == [
        BalloonCommand(line=2, time=2.0, id="a", target_bytes=100 * MIB),
        CommandError(line=5, time=4.0, id="a", command="balloon", error_class="DeviceNotActive",
                     description="No balloon device"),
        BalloonQueryReply(line=6, time=5.0, id=None, actual_bytes=512 * MIB),
        NegotiatedFeatures(line=9, time=8.0, path="/b", guest=0b110, host=0b111, status=()),
        BalloonChange(line=10, time=9.0, actual_bytes=300 * MIB, event_time=None),
    ]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "expected a JSON object"),
        ('{"t": "x", "dir": "send", "msg": {}}', "'t' must be a number"),
        ('{"t": 1, "dir": "sideways", "msg": {}}', "'dir' must be"),
        ('{"t": 1, "dir": "send", "msg": []}', "'msg' must be an object"),
        ('{"t": 1, "dir": "send", "msg": {"execute": "balloon", "arguments": {"value": "1G"}}}',
         "balloon 'value'"),
        ('{"t": 1, "dir": "recv", "msg": {"event": "BALLOON_CHANGE", "data": {"actual": 1.5}}}',
         "BALLOON_CHANGE 'actual'"),
    ],
)
def test_malformed_qmp_lines(line: str, words: str) -> None:
    good = '{"t": 0, "dir": "send", "msg": {"execute": "qmp_capabilities"}}'
    with pytest.raises(QemuLogError) as caught:
        list(read_qmp([good, line], name="qmp.log"))
    assert caught.value.line == 2 and words in caught.value.message


@pytest.mark.parametrize("module", [bulk, events, fields, qmp_reader, source, trace_reader],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted > 0 or module is bulk
