"""Read a real QEMU virtio-balloon capture: the trace log and the QMP log.

Both readers stream: they are generators that hold at most one virtio buffer's page
numbers (per QEMU thread) and a few counters, whatever the size of the file, and read
plain or xz-compressed files alike (``lzma``; the xz magic bytes decide, not the name;
an xz file also costs its decoder's dictionary, 64 MiB for ``xz -9``).

**Trace log** (``-trace enable=virtio_balloon_* ... -D trace.log``, see the reference,
section 3).  Lines may carry QEMU's ``TID@SECONDS.MICROS:`` prefix (``-msg
timestamp=on``) or not; lines of other trace events, and any other text, are ignored.
:func:`read_trace` yields, in order:

- :class:`HostTarget` -- the host set a new balloon target (``virtio_balloon_to_target``);
- :class:`BalloonRequest` -- QEMU's balloon layer passed a request to the device
  (``balloon_event``);
- :class:`ConfigRead` / :class:`ConfigWrite` -- the guest read the config space, or wrote
  ``actual`` (``virtio_balloon_get_config`` / ``virtio_balloon_set_config``);
- :class:`InflateBuffer` / :class:`DeflateBuffer` / :class:`StatsBuffer` /
  :class:`OtherBuffer` -- one buffer the guest made available on a queue.  The pages
  (``virtio_balloon_handle_output``, one line a page) belong to the queue named by the
  preceding ``virtio_queue_notify ... n QUEUE`` of the same QEMU thread; the buffer ends at
  the device's ``virtio_notify`` for that queue (``acknowledged=True``), or, when QEMU
  suppressed the notification, at the thread's next other event (``acknowledged=False``);
- :class:`DeviceNotify` -- a ``virtio_notify`` that ends no buffer;
- :class:`DeviceStatus` -- the driver wrote the virtio status byte (``virtio_set_status``).

A buffer is yielded when it ends, so its ``line`` (where it began) may be smaller than
the line of an event yielded just before it from another thread; within one thread, and in
a trace of one thread, events come in line order.

Pages are given as 4096-byte page frame numbers (``gpa >> 12``), whatever the guest's
page size, as virtio-balloon counts them.  ``virtio_queue_notify``, ``virtio_notify`` and
``virtio_set_status`` fire for every virtio device: in a VM with several, keep the events
whose ``vdev`` is the balloon's (:attr:`BalloonRequest.device`, or that of any buffer
with pages).

**QMP log** (one JSON object a line: ``{"t": EPOCH, "dir": "send"|"recv", "msg": {...}}``).
:func:`read_qmp` yields :class:`BalloonCommand` (the ``balloon`` command: target guest RAM
in bytes), :class:`BalloonQueryReply` (answer to ``query-balloon``),
:class:`BalloonChange` (the ``BALLOON_CHANGE`` event), :class:`NegotiatedFeatures` (from an
``x-query-virtio-status`` reply about the balloon) and :class:`CommandError` (an error
answer to one of those commands).

Malformed input raises :class:`QemuLogError` naming the file and the line.

>>> trace = [
...     "7@100.000001:virtio_balloon_to_target balloon target: 0x18000000 num_pages: 32768",
...     "8@100.000100:virtio_queue_notify vdev 0x5500 n 0 vq 0x7f10",
...     "8@100.000101:virtio_balloon_handle_output section name: pc.ram gpa: 0x83f1000",
...     "8@100.000102:virtio_balloon_handle_output section name: pc.ram gpa: 0x83f2000",
...     "8@100.000200:virtio_notify vdev 0x5500 vq 0x7f10",
...     "virtio_balloon_set_config actual: 2 oldactual: 0",
... ]
>>> events = list(read_trace(trace))
>>> [type(e).__name__ for e in events]
['HostTarget', 'InflateBuffer', 'ConfigWrite']
>>> events[0].target_bytes // 2**20, events[0].num_pages
(384, 32768)
>>> events[1].pfns, events[1].line, events[1].thread, events[1].acknowledged
((33777, 33778), 2, 8, True)
>>> events[2].actual, events[2].time is None
(2, True)
>>> qmp = ['{"t": 1.5, "dir": "send", "msg": {"execute": "balloon", "id": 6,'
...        ' "arguments": {"value": 402653184}}}']
>>> list(read_qmp(qmp))
[BalloonCommand(line=1, time=1.5, id=6, target_bytes=402653184)]
"""

from __future__ import annotations

import json
import lzma
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import repeat
from dataclasses import dataclass
from typing import IO, Final

from ballast.errors import InputError
from ballast.model.trace import bounded_lines, loads_record

__all__ = [
    "BALLOON_FEATURES",
    "MAX_BUFFER_PAGES",
    "MAX_LINE_BYTES",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "QUEUE_DEFLATE",
    "QUEUE_INFLATE",
    "QUEUE_STATS",
    "BalloonChange",
    "BalloonCommand",
    "BalloonQueryReply",
    "BalloonRequest",
    "CommandError",
    "ConfigRead",
    "ConfigWrite",
    "DeflateBuffer",
    "DeviceNotify",
    "DeviceStatus",
    "HostTarget",
    "InflateBuffer",
    "NegotiatedFeatures",
    "OtherBuffer",
    "QemuLogError",
    "QmpEvent",
    "QueueBuffer",
    "Source",
    "StatsBuffer",
    "TraceEvent",
    "decode_features",
    "feature_bits",
    "read_qmp",
    "read_trace",
]

PAGE_SHIFT: Final = 12
"""virtio-balloon's page unit is 4096 bytes whatever the guest page size."""
PAGE_SIZE: Final = 1 << PAGE_SHIFT

QUEUE_INFLATE: Final = 0
QUEUE_DEFLATE: Final = 1
QUEUE_STATS: Final = 2

BALLOON_FEATURES: Final[dict[int, str]] = {
    0: "MUST_TELL_HOST",
    1: "STATS_VQ",
    2: "DEFLATE_ON_OOM",
    3: "FREE_PAGE_HINT",
    4: "PAGE_POISON",
    5: "PAGE_REPORTING",
}
"""The virtio-balloon device feature bits (OASIS virtio, section 5.5.3)."""

# QEMU spells some names its own way ("VIRTIO_BALLOON_F_REPORTING").
_FEATURE_BIT_BY_NAME: Final[dict[str, int]] = {
    **{name: bit for bit, name in BALLOON_FEATURES.items()},
    "REPORTING": 5,
    "FREE_PAGE_REPORTING": 5,
}

MAX_BUFFER_PAGES: Final = 1 << 20
"""A buffer larger than this many pages is taken for a malformed trace (bounds memory)."""

MAX_LINE_BYTES: Final = 1 << 20
"""Longest line of a trace or QMP log (1 MiB; QEMU's are under 200 bytes): a longer one
is refused where it starts, so that a file without newlines is read in linear time."""

_PENDING_LIMIT: Final = 4096

Source = str | os.PathLike[str] | Iterable[str]
"""A file name (plain or xz), or the lines themselves (any iterable of ``str`` but ``str``)."""


class QemuLogError(InputError):
    """A QEMU trace or QMP log is malformed: names the file, the line and what was wrong.

    >>> str(QemuLogError("trace.log", 7, "bad gpa"))
    'trace.log:7: bad gpa'
    """

    def __reduce__(self) -> tuple[type[QemuLogError], tuple[str, int | None, str]]:
        return (type(self), (self.file, self.line, self.message))


# --------------------------------------------------------------------------- trace events


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """Base of every trace event: where it came from.

    ``line`` is the 1-based line of the file; ``time`` the host epoch seconds of the
    ``TID@SECONDS.MICROS:`` prefix (None without a prefix); ``thread`` the QEMU thread id
    of the prefix (None without one).
    """

    line: int
    time: float | None
    thread: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostTarget(TraceEvent):
    """The host asked for a new balloon size (``virtio_balloon_to_target``).

    ``target_bytes`` is the requested guest RAM size (QMP ``balloon`` value);
    ``num_pages`` the resulting balloon size the device now shows, in 4 KiB pages.
    """

    target_bytes: int
    num_pages: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BalloonRequest(TraceEvent):
    """QEMU's balloon layer handed a target guest RAM size to the device (``balloon_event``).

    ``device`` is the device's address in QEMU (the same as buffers' ``vdev``).
    """

    device: str
    target_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigRead(TraceEvent):
    """The guest read the config space (``virtio_balloon_get_config``), in 4 KiB pages."""

    num_pages: int
    actual: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigWrite(TraceEvent):
    """The guest wrote ``actual``, the balloon's size in 4 KiB pages (``virtio_balloon_set_config``)."""

    actual: int
    old_actual: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStatus(TraceEvent):
    """The driver wrote the virtio status byte (1 ACK, 3 DRIVER, 11 FEATURES_OK, 15 DRIVER_OK)."""

    vdev: str
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceNotify(TraceEvent):
    """A ``virtio_notify`` (device returned buffers and interrupted) that ends no page buffer.

    ``queue`` is the queue index when an earlier ``virtio_queue_notify`` named this ``vq``.
    """

    vdev: str
    vq: str
    queue: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueBuffer(TraceEvent):
    """One buffer the guest made available on a balloon queue, as the device saw it.

    ``line``/``time``/``thread`` are those of the ``virtio_queue_notify`` (or of the first
    page, for a further buffer handled in the same notification); ``end_line``/``end_time``
    those of the line that ended it.  ``pfns`` are the pages in the order given
    (4 KiB frame numbers), ``bad_pfns`` those QEMU rejected as not guest memory
    (``virtio_balloon_bad_addr``).  ``acknowledged`` is True when the device's
    ``virtio_notify`` ended the buffer.
    """

    vdev: str
    vq: str
    queue: int
    pfns: tuple[int, ...]
    bad_pfns: tuple[int, ...]
    acknowledged: bool
    end_line: int
    end_time: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InflateBuffer(QueueBuffer):
    """Pages the guest gave to the balloon (queue 0, inflateq)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeflateBuffer(QueueBuffer):
    """Pages the guest took back from the balloon (queue 1, deflateq)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsBuffer(QueueBuffer):
    """A memory statistics buffer (queue 2, statsq); QEMU traces no page for it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherBuffer(QueueBuffer):
    """A buffer on another queue (3 free_page_vq, 4 reporting_vq, ...)."""


# ---------------------------------------------------------------------------- QMP events


@dataclass(frozen=True, slots=True, kw_only=True)
class QmpEvent:
    """Base of every QMP log event: its 1-based ``line`` and the host epoch ``time`` (``t``)."""

    line: int
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BalloonCommand(QmpEvent):
    """The host sent ``balloon``: ``target_bytes`` is the target guest RAM size, not the balloon's."""

    id: object
    target_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BalloonQueryReply(QmpEvent):
    """QEMU answered ``query-balloon``: ``actual_bytes`` is the guest RAM the guest now has."""

    id: object
    actual_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BalloonChange(QmpEvent):
    """QEMU's ``BALLOON_CHANGE`` event (rate-limited): guest RAM ``actual_bytes``.

    ``event_time`` is QEMU's own timestamp of the event (epoch seconds), None if absent.
    """

    actual_bytes: int
    event_time: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiatedFeatures(QmpEvent):
    """Feature bits of the balloon from an ``x-query-virtio-status`` reply.

    ``guest`` are the features the driver accepted, ``host`` those the device offered, both
    as virtio-balloon bit masks (bits 0..5, see :data:`BALLOON_FEATURES`); ``status`` is
    the virtio status names the reply listed.

    >>> f = NegotiatedFeatures(line=1, time=0.0, path="p", guest=0b10, host=0b10010, status=())
    >>> f.guest_names, f.host_names
    (('STATS_VQ',), ('STATS_VQ', 'PAGE_POISON'))
    """

    path: str
    guest: int
    host: int
    status: tuple[str, ...]

    @property
    def guest_names(self) -> tuple[str, ...]:
        """Names of the accepted (negotiated) feature bits."""
        return decode_features(self.guest)

    @property
    def host_names(self) -> tuple[str, ...]:
        """Names of the offered feature bits."""
        return decode_features(self.host)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandError(QmpEvent):
    """QEMU answered one of the balloon-related commands with an error."""

    id: object
    command: str
    error_class: str
    description: str


def decode_features(bits: int) -> tuple[str, ...]:
    """Names of the virtio-balloon feature bits set in ``bits``, lowest bit first.

    >>> decode_features(0b100110)
    ('STATS_VQ', 'DEFLATE_ON_OOM', 'PAGE_REPORTING')
    """
    return tuple(name for bit, name in BALLOON_FEATURES.items() if bits >> bit & 1)


# ------------------------------------------------------------------------------ input


def _source_name(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "<lines>"


@contextmanager
def _open_lines(source: Source, file: str) -> Iterator[Iterable[str]]:
    """The lines of ``source`` (a path, plain or xz, or an iterable of lines), newline kept.

    Files are read as UTF-8 with undecodable bytes kept as surrogates, so that a stray byte
    in an unrelated line costs nothing and one in a known event fails to parse there.
    """
    if not isinstance(source, (str, os.PathLike)):
        yield _checked(source, file)
        return
    path = os.fspath(source)
    with open(path, "rb") as probe:
        compressed = probe.read(6) == b"\xfd7zXZ\x00"
    if compressed:
        with lzma.open(path, "rt", encoding="utf-8", errors="surrogateescape") as stream:
            yield _bounded(stream, file)
    else:
        with open(path, encoding="utf-8", errors="surrogateescape") as plain:
            yield _bounded(plain, file)


def _bounded(stream: IO[str], file: str) -> Iterator[str]:
    try:
        yield from bounded_lines(stream, file, MAX_LINE_BYTES)
    except InputError as exc:
        raise QemuLogError(file, exc.line, exc.message) from None


def _checked(lines: Iterable[str], file: str) -> Iterator[str]:
    for number, text in enumerate(lines, 1):
        if not isinstance(text, str):
            raise QemuLogError(file, number, f"expected a line of text, got {type(text).__name__}")
        if len(text) > MAX_LINE_BYTES:
            raise QemuLogError(file, number, f"line longer than {MAX_LINE_BYTES:,} characters")
        yield text


def _damaged(file: str, number: int, exc: Exception) -> QemuLogError:
    return QemuLogError(file, number + 1, f"corrupt or truncated xz data: {exc}")


# ----------------------------------------------------------------------- trace reader

_PAGE: Final = 0
_BAD_ADDR: Final = 1
_QUEUE_NOTIFY: Final = 2
_NOTIFY: Final = 3
_GET_CONFIG: Final = 4
_SET_CONFIG: Final = 5
_TO_TARGET: Final = 6
_SET_STATUS: Final = 7
_BALLOON_EVENT: Final = 8

_EVENTS: Final[dict[str, int]] = {
    "virtio_balloon_handle_output": _PAGE,
    "virtio_balloon_bad_addr": _BAD_ADDR,
    "virtio_queue_notify": _QUEUE_NOTIFY,
    "virtio_notify": _NOTIFY,
    "virtio_balloon_get_config": _GET_CONFIG,
    "virtio_balloon_set_config": _SET_CONFIG,
    "virtio_balloon_to_target": _TO_TARGET,
    "virtio_set_status": _SET_STATUS,
    "balloon_event": _BALLOON_EVENT,
}

_BUFFER_CLASS: Final[dict[int, type[QueueBuffer]]] = {
    QUEUE_INFLATE: InflateBuffer,
    QUEUE_DEFLATE: DeflateBuffer,
    QUEUE_STATS: StatsBuffer,
}

_PAGE_ARGS_HEAD: Final = "section name: "
_PAGE_ARGS_GPA: Final = " gpa: 0x"


class _Queue:
    """The queue a thread is serving since its last ``virtio_queue_notify``."""

    __slots__ = ("vdev", "queue", "vq")

    def __init__(self, vdev: str, queue: int, vq: str) -> None:
        self.vdev = vdev
        self.queue = queue
        self.vq = vq


class _Open:
    """A buffer being read: where it began and its pages so far."""

    __slots__ = ("ctx", "line", "time", "thread", "pfns", "bad")

    def __init__(self, ctx: _Queue, line: int, time: float | None, thread: int | None) -> None:
        self.ctx = ctx
        self.line = line
        self.time = time
        self.thread = thread
        self.pfns: list[int] = []
        self.bad: list[int] = []

    def close(self, acknowledged: bool, end_line: int, end_time: float | None) -> QueueBuffer:
        cls = _BUFFER_CLASS.get(self.ctx.queue, OtherBuffer)
        return cls(
            line=self.line,
            time=self.time,
            thread=self.thread,
            vdev=self.ctx.vdev,
            vq=self.ctx.vq,
            queue=self.ctx.queue,
            pfns=tuple(self.pfns),
            bad_pfns=tuple(self.bad),
            acknowledged=acknowledged,
            end_line=end_line,
            end_time=end_time,
        )


_HEX: Final = re.compile(r"0x[0-9a-fA-F]{1,16}")


def _int(text: str, base: int = 10) -> int:
    """A number as QEMU prints it: ASCII digits only, at most 64 bits' worth.

    (Python's ``int`` would also take other scripts' digits, ``_``, spaces and any length.)
    """
    if base == 16:
        if not _HEX.fullmatch(text):
            raise ValueError(text)
        return int(text[2:], 16)
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 20):
        raise ValueError(text)
    return int(text, base)


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` accepts superscripts and other scripts' digits)."""
    return text.isascii() and text.isdigit()


def _u32(value: int) -> int:
    """QEMU prints some uint32 fields with %d: undo the sign."""
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(value)
    return value & 0xFFFFFFFF


def _fields(args: str, keys: tuple[str, ...]) -> list[str]:
    """Values of ``key value key value ...`` with exactly ``keys`` in that order."""
    tokens = args.split()
    if len(tokens) != 2 * len(keys) or any(tokens[2 * i] != k for i, k in enumerate(keys)):
        raise ValueError(args)
    return tokens[1::2]


def _pointer(text: str) -> str:
    if text == "(nil)" or (text.startswith("0x") and text.isascii() and 2 < len(text) <= 18
                           and text[2:].isalnum() and int(text[2:], 16) >= 0):
        return text
    raise ValueError(text)


def _parse_other(kind: int, args: str, line: int, time: float | None, thread: int | None) -> TraceEvent:
    """Events other than pages, queue notifications and virtio_notify (which carry state)."""
    if kind == _GET_CONFIG:
        num_pages, actual = _fields(args, ("num_pages:", "actual:"))
        return ConfigRead(
            line=line, time=time, thread=thread, num_pages=_u32(_int(num_pages)), actual=_u32(_int(actual))
        )
    if kind == _SET_CONFIG:
        actual, old = _fields(args, ("actual:", "oldactual:"))
        return ConfigWrite(
            line=line, time=time, thread=thread, actual=_u32(_int(actual)), old_actual=_u32(_int(old))
        )
    if kind == _TO_TARGET:
        if not args.startswith("balloon target: "):
            raise ValueError(args)
        target, num_pages = _fields(args[len("balloon "):], ("target:", "num_pages:"))
        return HostTarget(
            line=line, time=time, thread=thread, target_bytes=_int(target, 16), num_pages=_u32(_int(num_pages))
        )
    if kind == _SET_STATUS:
        vdev, value = _fields(args, ("vdev", "val"))
        return DeviceStatus(line=line, time=time, thread=thread, vdev=_pointer(vdev), value=_int(value))
    if kind == _BALLOON_EVENT:
        opaque, addr = _fields(args, ("opaque", "addr"))
        return BalloonRequest(line=line, time=time, thread=thread, device=_pointer(opaque), target_bytes=_int(addr))
    raise AssertionError(kind)  # pragma: no cover


_SYNTAX: Final[dict[int, str]] = {
    _PAGE: "section name: NAME gpa: 0xADDR",
    _BAD_ADDR: "0xADDR",
    _QUEUE_NOTIFY: "vdev PTR n QUEUE vq PTR",
    _NOTIFY: "vdev PTR vq PTR",
    _GET_CONFIG: "num_pages: N actual: N",
    _SET_CONFIG: "actual: N oldactual: N",
    _TO_TARGET: "balloon target: 0xBYTES num_pages: N",
    _SET_STATUS: "vdev PTR val N",
    _BALLOON_EVENT: "opaque PTR addr BYTES",
}


def read_trace(source: Source, *, name: str | None = None) -> Iterator[TraceEvent]:
    """Yield the balloon events of a QEMU trace log, streaming.

    ``source`` is a path (plain or xz) or an iterable of lines (a ``str`` is a path);
    ``name`` names it in errors (default: the path, or ``<lines>``).  Raises
    :class:`QemuLogError` on a malformed line of a known event, a page with no queue
    notification before it in its thread (a trace without ``virtio_queue_notify``, or a
    KVM run with ioeventfd: use ``-device virtio-balloon-pci,ioeventfd=off``), or a
    damaged file.

    >>> list(read_trace(["virtio_set_status vdev 0x1 val 15", "unrelated text"]))
    [DeviceStatus(line=1, time=None, thread=None, vdev='0x1', value=15)]
    >>> try:
    ...     list(read_trace(["virtio_balloon_set_config actual: x oldactual: 0"]))
    ... except QemuLogError as exc:
    ...     print(exc.line, exc.message)
    1 malformed virtio_balloon_set_config: expected 'actual: N oldactual: N', got 'actual: x oldactual: 0'
    """
    file = _source_name(source, name)
    if isinstance(source, (str, os.PathLike)):
        try:
            yield from _trace_events(_bulk_items(os.fspath(source), file), file)
        except (lzma.LZMAError, EOFError) as exc:
            raise QemuLogError(file, None, f"corrupt or truncated xz data: {exc}") from None
        return
    with _open_lines(source, file) as stream:
        yield from _trace_events(stream, file)


class _PageRun:
    """Pages of consecutive ``virtio_balloon_handle_output`` lines of one thread, parsed in bulk."""

    __slots__ = ("key", "pfns")

    def __init__(self, key: str, pfns: list[int]) -> None:
        self.key = key
        self.pfns = pfns


_BULK_CHUNK: Final = 1 << 17
_BULK_EVENTS: Final = (b" vdev ", b" actual: ", b"_to_target ", b"balloon_event ", b"_bad_addr ")
"""Words that find every line of a known event other than a page, in few passes: `` vdev ``
(queue notify, notify, set status), `` actual: `` (get and set config).  A line they find
by chance goes to the line reader as it is, which is always right; a line they miss only
makes its stretch fall back to line-by-line reading."""
_BULK_PAGE: Final = b"virtio_balloon_handle_output section name: "
_BULK_GPA: Final = re.compile(rb" gpa: 0x([0-9a-fA-F]+)000\n")
_BULK_PFN_LIMIT: Final = 1 << 52
"""PFNs of 64-bit addresses are below this; a run with a larger one goes line by line."""


def _bulk_items(path: str, file: str | None = None) -> Iterator[str | _PageRun]:
    """The lines of a trace file for :func:`_trace_events`, with runs of page lines of one
    thread collapsed into :class:`_PageRun` items (the first page line of each run stays a
    line, so that it opens or continues its buffer exactly as a line would).

    The page lines are found and parsed by C-level searches over 128 KiB blocks rather than
    line by line.  A stretch that is not plainly "page lines of one thread, page-aligned"
    is handed over line by line, so the line reader decides (and reports errors) as before.
    """
    with open(path, "rb") as probe:
        compressed = probe.read(6) == b"\xfd7zXZ\x00"
    opener = lzma.open if compressed else open
    with opener(path, "rb") as raw:
        rest = b""
        lines = 0
        while True:
            block = raw.read(_BULK_CHUNK)
            if not block:
                if rest:
                    yield from _bulk_lines(rest)
                return
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) > MAX_LINE_BYTES:  # else each block re-copies the line: quadratic
                    raise QemuLogError(file or path, lines + 1,
                                        f"line longer than {MAX_LINE_BYTES:,} bytes")
                rest = data
                continue
            rest = data[cut:]
            lines += data.count(b"\n", 0, cut)
            if data.isascii():
                yield from _bulk_block(data[:cut])
            else:  # rare: other scripts' digits must reach the line reader, which refuses them
                yield from _bulk_lines(data[:cut])


def _bulk_lines(data: bytes) -> Iterator[str]:
    for line in data.splitlines(keepends=True):
        yield line.decode("utf-8", "surrogateescape")


def _bulk_block(data: bytes) -> Iterator[str | _PageRun]:
    """Items of a block of whole lines."""
    starts: set[int] = set()
    for word in _BULK_EVENTS:
        i = data.find(word)
        while i >= 0:
            starts.add(data.rfind(b"\n", 0, i) + 1)
            i = data.find(word, data.find(b"\n", i))
    pos = 0
    for start in sorted(starts):
        if start > pos:
            yield from _bulk_gap(data, pos, start)
        end = data.find(b"\n", start) + 1
        yield data[start:end].decode("utf-8", "surrogateescape")
        pos = end
    if pos < len(data):
        yield from _bulk_gap(data, pos, len(data))


def _bulk_gap(data: bytes, pos: int, end: int) -> Iterator[str | _PageRun]:
    """The lines ``data[pos:end]`` between two known events: normally the pages of one
    buffer, collapsed into one run when every line is plainly a page of one thread."""
    lines = data.count(b"\n", pos, end)
    first_end = data.find(b"\n", pos) + 1
    at = data.find(b"@", pos, first_end)
    key = data[pos:at] if at > pos and data[pos:at].isdigit() else b""
    head = b"\n" + key + b"@" if key else b"\n" + _BULK_PAGE
    if (lines > 1 and data.count(_BULK_PAGE, pos, end) == lines
            and data.count(head, first_end - 1, end) == lines - 1):
        hexes = _BULK_GPA.findall(data, first_end, end)
        if len(hexes) == lines - 1:
            pfns = list(map(int, hexes, repeat(16)))
            if max(pfns) < _BULK_PFN_LIMIT:
                yield data[pos:first_end].decode("utf-8", "surrogateescape")
                yield _PageRun(key.decode(), pfns)
                return
    yield from _bulk_lines(data[pos:end])


def _prefix(prefix: str) -> tuple[int, float] | None:
    """``TID@SECONDS.MICROS`` -> (thread, time), or None when malformed."""
    tid, _, stamp = prefix.partition("@")
    sec, dot, micro = stamp.partition(".")
    if tid.isdigit() and sec.isdigit() and dot and micro.isdigit() and prefix.isascii():
        return int(tid), float(stamp)
    return None


def _trace_events(stream: Iterable[str | _PageRun], file: str) -> Iterator[TraceEvent]:
    # Per QEMU thread (keyed by the prefix's TID text, "" without a prefix): the queue it is
    # serving since its last virtio_queue_notify, and the buffer it is reading.
    queues: dict[str, _Queue] = {}
    buffers: dict[str, _Open] = {}
    vq_queue: dict[str, int] = {}  # vq pointer -> queue index, as notified
    events = _EVENTS
    page_event = "virtio_balloon_handle_output " + _PAGE_ARGS_HEAD
    gpa_mark = _PAGE_ARGS_GPA
    gpa_skip = len(gpa_mark)
    page_mask = PAGE_SIZE - 1
    number = 0
    try:
        for text in stream:
            if isinstance(text, _PageRun):
                # Further pages of the buffer the line just before opened or continued,
                # already checked and parsed in bulk by _bulk_items.
                run = text
                pfns = buffers[run.key].pfns
                pfns.extend(run.pfns)
                number += len(run.pfns)
                if len(pfns) > MAX_BUFFER_PAGES:
                    raise QemuLogError(file, number, f"buffer of more than {MAX_BUFFER_PAGES} pages")
                continue
            number += 1
            # Hot path: one line a page, "TID@SEC.USEC:virtio_balloon_handle_output section ...".
            colon = text.find(":")
            if text.startswith(page_event, colon + 1):
                at = text.find("@", 0, colon)
                key = text[:at]
                if at <= 0 or not (key.isdigit() and text.isascii()) and (
                        not _digits(key) or _prefix(text[:colon]) is None):
                    raise QemuLogError(file, number, "malformed TID@SECONDS.MICROS: prefix before a page")
            elif text.startswith(page_event):
                colon = -1
                key = ""
            else:
                colon = -2
                key = ""
            if colon != -2:
                cut = text.rfind(gpa_mark)
                hex_text = text[cut + gpa_skip :]
                try:
                    # At most 16 hex digits (64 bits) and a newline; ASCII only.
                    gpa = int(hex_text, 16) if len(hex_text) <= 18 and hex_text.isascii() else -1
                except ValueError:
                    gpa = -1
                if cut < 0 or gpa < 0 or gpa & page_mask:
                    raise QemuLogError(
                        file, number, f"malformed virtio_balloon_handle_output: expected {_SYNTAX[_PAGE]!r}, "
                        f"got {text[colon + 1 + len('virtio_balloon_handle_output '):].rstrip()!r}"
                    )
                open_buffer = buffers.get(key)
                if open_buffer is None:
                    ctx = queues.get(key)
                    if ctx is None:
                        raise QemuLogError(
                            file,
                            number,
                            "page without a virtio_queue_notify before it in its thread; trace "
                            "virtio_queue_notify (and under KVM set ioeventfd=off on the device)",
                        )
                    where = _prefix(text[:colon]) if colon >= 0 else None
                    if colon >= 0 and where is None:
                        raise QemuLogError(file, number, "malformed TID@SECONDS.MICROS: prefix before a page")
                    open_buffer = buffers[key] = _Open(
                        ctx, number, where[1] if where else None, where[0] if where else None
                    )
                pfns = open_buffer.pfns
                pfns.append(gpa >> PAGE_SHIFT)
                if len(pfns) > MAX_BUFFER_PAGES:
                    raise QemuLogError(file, number, f"buffer of more than {MAX_BUFFER_PAGES} pages")
                continue

            # Every other line: split off the prefix, find the event.
            text = text.rstrip("\r\n")
            thread: int | None = None
            time: float | None = None
            body = text
            bad_prefix = False
            key = ""
            if text[:1].isdigit():  # any script's digit: _prefix then insists on ASCII
                colon = text.find(":")
                at = text.find("@", 0, colon)
                if at > 0:
                    body = text[colon + 1 :]
                    where = _prefix(text[:colon])
                    if where is None:
                        bad_prefix = True
                    else:
                        thread, time = where
                        key = text[:at]
            space = body.find(" ")
            if space < 0:
                event, args = body, ""
            else:
                event, args = body[:space], body[space + 1 :]
            kind = events.get(event)
            if kind is None:
                continue
            if bad_prefix:
                raise QemuLogError(file, number, f"malformed TID@SECONDS.MICROS: prefix before {event}")
            try:
                if kind == _PAGE:
                    raise ValueError(args)  # a page line the fast path did not recognise
                if kind == _BAD_ADDR:
                    gpa = _int(args.strip(), 16)
                    open_buffer = buffers.get(key)
                    if open_buffer is None:
                        ctx = queues.get(key)
                        if ctx is None:
                            raise QemuLogError(file, number, "bad address outside any queue notification")
                        open_buffer = buffers[key] = _Open(ctx, number, time, thread)
                    open_buffer.bad.append(gpa >> PAGE_SHIFT)
                    continue
                if kind == _NOTIFY:
                    vdev, vq = _fields(args, ("vdev", "vq"))
                    _pointer(vdev)
                    _pointer(vq)
                    open_buffer = buffers.get(key)
                    if open_buffer is not None and open_buffer.ctx.vq == vq and open_buffer.ctx.vdev == vdev:
                        del buffers[key]
                        yield open_buffer.close(True, number, time)
                    else:
                        yield DeviceNotify(
                            line=number, time=time, thread=thread, vdev=vdev, vq=vq, queue=vq_queue.get(vq)
                        )
                    continue
                # Any other event of this thread ends the buffer it was reading.
                open_buffer = buffers.pop(key, None)
                if open_buffer is not None:
                    yield open_buffer.close(False, number, time)
                if kind == _QUEUE_NOTIFY:
                    vdev, queue_text, vq = _fields(args, ("vdev", "n", "vq"))
                    queue = _int(queue_text)
                    if queue < 0:
                        raise ValueError(queue_text)
                    ctx = queues[key] = _Queue(_pointer(vdev), queue, _pointer(vq))
                    if len(vq_queue) < 4096:
                        vq_queue[vq] = queue
                    buffers[key] = _Open(ctx, number, time, thread)
                    continue
                queues.pop(key, None)
                yield _parse_other(kind, args, number, time, thread)
            except ValueError as exc:
                if isinstance(exc, QemuLogError):
                    raise
                raise QemuLogError(
                    file, number, f"malformed {event}: expected {_SYNTAX[kind]!r}, got {args!r}"
                ) from None
    except (lzma.LZMAError, EOFError) as exc:
        raise _damaged(file, number, exc) from None
    for key in list(buffers):
        # End of input: buffers still open were never acknowledged in the trace.
        open_buffer = buffers.pop(key)
        yield open_buffer.close(False, open_buffer.line, open_buffer.time)


# ------------------------------------------------------------------------- QMP reader

_TRACKED_COMMANDS: Final = frozenset({"balloon", "query-balloon", "x-query-virtio-status"})


def feature_bits(value: object) -> int:
    """The virtio-balloon feature mask of an ``x-query-virtio-status`` features field.

    The field is either QEMU 7.2's decoded object (``dev-features`` names such as
    ``"VIRTIO_BALLOON_F_STATS_VQ: ..."``) or a plain integer; ``ValueError`` if neither.

    >>> feature_bits({"dev-features": ["VIRTIO_BALLOON_F_STATS_VQ: Guest memory stats VQ available"]})
    2
    >>> feature_bits(0x100000016)
    22
    """
    if isinstance(value, bool):
        raise ValueError("features")
    if isinstance(value, int):
        return value & ((1 << len(BALLOON_FEATURES)) - 1)
    if not isinstance(value, dict):
        raise ValueError("features")
    names = value.get("dev-features", [])
    if not isinstance(names, list):
        raise ValueError("dev-features")
    bits = 0
    for item in names:
        if not isinstance(item, str):
            raise ValueError("dev-features")
        head = item.split(":", 1)[0].strip()
        if head.startswith("VIRTIO_BALLOON_F_"):
            bit = _FEATURE_BIT_BY_NAME.get(head[len("VIRTIO_BALLOON_F_") :])
            if bit is not None:
                bits |= 1 << bit
    return bits


def _qmp_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is not an integer: {value!r}")
    return value


def _key(ident: object) -> object:
    return ident if isinstance(ident, (int, str)) and not isinstance(ident, bool) else json.dumps(ident)


def read_qmp(source: Source, *, name: str | None = None) -> Iterator[QmpEvent]:
    """Yield the balloon events of a QMP log (JSON lines ``{"t", "dir", "msg"}``), streaming.

    Replies are matched to commands by ``id`` (or, without one, in order).  Blank lines are
    skipped; any other line that is not such an object raises :class:`QemuLogError`.

    >>> log = ['{"t": 2.0, "dir": "send", "msg": {"execute": "query-balloon", "id": 4}}',
    ...        '{"t": 2.1, "dir": "recv", "msg": {"return": {"actual": 536870912}, "id": 4}}']
    >>> list(read_qmp(log))
    [BalloonQueryReply(line=2, time=2.1, id=4, actual_bytes=536870912)]
    """
    file = _source_name(source, name)
    with _open_lines(source, file) as stream:
        yield from _qmp_events(stream, file)


def _qmp_events(stream: Iterable[str], file: str) -> Iterator[QmpEvent]:
    pending: OrderedDict[object, tuple[str, object]] = OrderedDict()  # key -> (command, args)
    anonymous = 0
    number = 0
    try:
        for number, text in enumerate(stream, 1):
            if not text.strip():
                continue
            try:
                record = loads_record(text, file, number)
            except InputError as exc:
                decode = exc.message.startswith("not valid JSON")
                raise QemuLogError(file, number, f"not a JSON object: {exc.message}" if decode
                                   else exc.message) from None
            try:
                if not isinstance(record, dict):
                    raise ValueError("expected a JSON object")
                time = record.get("t")
                if isinstance(time, bool) or not isinstance(time, (int, float)):
                    raise ValueError("'t' must be a number (host epoch seconds)")
                direction = record.get("dir")
                msg = record.get("msg")
                if direction not in ("send", "recv"):
                    raise ValueError("'dir' must be 'send' or 'recv'")
                if not isinstance(msg, dict):
                    raise ValueError("'msg' must be an object")
                t = float(time)
                if direction == "send":
                    command = msg.get("execute", msg.get("exec-oob"))
                    if not isinstance(command, str):
                        raise ValueError("a sent message needs 'execute'")
                    arguments = msg.get("arguments", {})
                    if not isinstance(arguments, dict):
                        raise ValueError("'arguments' must be an object")
                    ident = msg.get("id")
                    if command in _TRACKED_COMMANDS:
                        if "id" in msg:
                            key = _key(ident)
                        else:
                            key = ("anonymous", anonymous)
                            anonymous += 1
                        pending[key] = (command, arguments)
                        if len(pending) > _PENDING_LIMIT:
                            pending.popitem(last=False)
                    if command == "balloon":
                        value = _qmp_int(arguments.get("value"), "balloon 'value'")
                        yield BalloonCommand(line=number, time=t, id=ident, target_bytes=value)
                    continue
                # Received: greeting, event, or reply.
                event = msg.get("event")
                if event is not None:
                    if event == "BALLOON_CHANGE":
                        data = msg.get("data")
                        if not isinstance(data, dict):
                            raise ValueError("BALLOON_CHANGE without 'data'")
                        stamp = msg.get("timestamp")
                        event_time: float | None = None
                        if isinstance(stamp, dict):
                            event_time = _qmp_int(stamp.get("seconds"), "timestamp seconds") + (
                                _qmp_int(stamp.get("microseconds"), "timestamp microseconds") / 1e6
                            )
                        actual = _qmp_int(data.get("actual"), "BALLOON_CHANGE 'actual'")
                        yield BalloonChange(line=number, time=t, actual_bytes=actual, event_time=event_time)
                    continue
                if "return" not in msg and "error" not in msg:
                    continue  # greeting or something else
                if "id" in msg:
                    found = pending.pop(_key(msg["id"]), None)
                else:
                    found = next((k for k in pending if isinstance(k, tuple) and k[:1] == ("anonymous",)), None)
                    found = pending.pop(found, None) if found is not None else None
                if found is None:
                    continue
                command, arguments = found
                ident = msg.get("id")
                if "error" in msg:
                    error = msg["error"]
                    if not isinstance(error, dict):
                        raise ValueError("'error' must be an object")
                    yield CommandError(
                        line=number,
                        time=t,
                        id=ident,
                        command=command,
                        error_class=str(error.get("class", "")),
                        description=str(error.get("desc", "")),
                    )
                    continue
                answer = msg["return"]
                if command == "query-balloon":
                    if not isinstance(answer, dict):
                        raise ValueError("query-balloon must return an object")
                    actual = _qmp_int(answer.get("actual"), "query-balloon 'actual'")
                    yield BalloonQueryReply(line=number, time=t, id=ident, actual_bytes=actual)
                elif command == "x-query-virtio-status":
                    if not isinstance(answer, dict):
                        raise ValueError("x-query-virtio-status must return an object")
                    if answer.get("name") != "virtio-balloon" and answer.get("device-id") != 5:
                        continue
                    status_field = answer.get("status", {})
                    statuses: tuple[str, ...] = ()
                    if isinstance(status_field, dict) and isinstance(status_field.get("statuses"), list):
                        statuses = tuple(str(s).split(":", 1)[0] for s in status_field["statuses"])
                    path = arguments.get("path", "") if isinstance(arguments, dict) else ""
                    yield NegotiatedFeatures(
                        line=number,
                        time=t,
                        path=str(path),
                        guest=feature_bits(answer.get("guest-features")),
                        host=feature_bits(answer.get("host-features")),
                        status=statuses,
                    )
            except ValueError as exc:
                raise QemuLogError(file, number, str(exc)) from None
    except (lzma.LZMAError, EOFError) as exc:
        raise _damaged(file, number, exc) from None
