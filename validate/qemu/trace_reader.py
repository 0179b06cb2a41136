"""Read QEMU's virtio-balloon trace log, streaming.

The reader is a generator that holds at most one virtio buffer's page numbers (per QEMU
thread) and a few counters, whatever the size of the file, and reads plain or xz files
alike (an xz file also costs its decoder's dictionary, 64 MiB for ``xz -9``).  Events are
those of :mod:`ballast.validate.qemu.events`.

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

Malformed input raises :class:`~ballast.validate.qemu.source.QemuLogError` naming the
file and the line.

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
"""

from __future__ import annotations

import lzma
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from ballast.model.config import MAX_MODEL_SIZE
from ballast.validate.qemu.bulk import PageRun, bulk_items
from ballast.validate.qemu.events import (
    PAGE_SHIFT,
    PAGE_SIZE,
    QUEUE_DEFLATE,
    QUEUE_INFLATE,
    QUEUE_STATS,
    BalloonRequest,
    ConfigRead,
    ConfigWrite,
    DeflateBuffer,
    DeviceNotify,
    DeviceStatus,
    Discard,
    HostTarget,
    InflateBuffer,
    OtherBuffer,
    QueueBuffer,
    RamDiscard,
    StatsBuffer,
    TraceEvent,
)
from ballast.validate.qemu.fields import ascii_digits, fields, parse_int, parse_prefix, pointer, u32
from ballast.validate.qemu.source import QemuLogError, Source, damaged_xz, open_lines, source_name

__all__ = ["MAX_BUFFER_PAGES", "MAX_DISCARD_BYTES", "VIRTIO_QUEUE_MAX", "IgnoredLines",
           "read_trace"]

VIRTIO_QUEUE_MAX: Final = 1024
"""QEMU's bound on a virtio device's queues: a queue index at or beyond it is malformed."""

MAX_DISCARD_BYTES: Final = MAX_MODEL_SIZE * PAGE_SIZE
"""Longest RAM discard read: one larger than the largest guest the model holds cannot be a
guest's (and its pages would be listed one by one)."""

MAX_BUFFER_PAGES: Final = 1 << 20
"""A buffer larger than this many pages is taken for a malformed trace (bounds memory)."""

_NOT_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\udc80-\udcff]")
"""A control character or a byte that is no UTF-8 (kept as a surrogate): no trace line has one."""


@dataclass
class IgnoredLines:
    """The lines of a log that are no event the reader knows: other trace events, other
    text, or damage. A log may hold them by right (every virtio device's events, QEMU's own
    messages), but a damaged balloon event is one of them too, and a verdict read from a log
    that lost one says so (:mod:`~ballast.validate.qemu.validation`).

    >>> ignored = IgnoredLines()
    >>> list(read_trace(["virtqueue_pop vq 0x1", "virtio_set_status vdev 0x1 val 15"],
    ...                 ignored=ignored))[0].value
    15
    >>> ignored.count, ignored.first, ignored.first_text
    (1, 1, 'virtqueue_pop vq 0x1')
    """

    count: int = 0
    first: int | None = None
    """The first one's line."""
    first_text: str = ""
    """Its text (at most 80 characters)."""
    not_text: int | None = None
    """The first line with a control character or a byte that is no UTF-8 text."""

    def add(self, number: int, text: str) -> None:
        """Note line ``number`` (``text``), ignored."""
        self.count += 1
        if self.first is None:
            self.first = number
            self.first_text = text[:80]
        if self.not_text is None and _NOT_TEXT.search(text):
            self.not_text = number


_PAGE: Final = 0
_BAD_ADDR: Final = 1
_QUEUE_NOTIFY: Final = 2
_NOTIFY: Final = 3
_GET_CONFIG: Final = 4
_SET_CONFIG: Final = 5
_TO_TARGET: Final = 6
_SET_STATUS: Final = 7
_BALLOON_EVENT: Final = 8
_DISCARD: Final = 9

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
    "ram_block_discard_range": _DISCARD,
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

    __slots__ = ("ctx", "line", "time", "thread", "pfns", "bad", "discards")

    def __init__(self, ctx: _Queue, line: int, time: float | None, thread: int | None) -> None:
        self.ctx = ctx
        self.line = line
        self.time = time
        self.thread = thread
        self.pfns: list[int] = []
        self.bad: list[int] = []
        self.discards: list[Discard] = []

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
            discards=tuple(self.discards),
        )


def _parse_discard(args: str) -> tuple[str, int, int]:
    """``(block, hva, length)`` of ``BLOCK@0xHVA + 0xLENGTH: madvise: N fallocate: N ret: N``."""
    at = args.rfind("@", 0, args.find(" + "))
    block, rest = args[:at], args[at + 1:]
    hva_text, _, tail = rest.partition(" + ")
    length_text = tail.split(":", 1)[0]
    if at <= 0:
        raise ValueError(args)
    hva, length = parse_int(hva_text, 16), parse_int(length_text, 16)
    if length <= 0 or hva % PAGE_SIZE or length % PAGE_SIZE:
        raise ValueError(args)
    return block, hva, length



def _parse_other(kind: int, args: str, line: int, time: float | None,
                 thread: int | None) -> TraceEvent:
    """Events other than pages, queue notifications and virtio_notify (which carry state)."""
    if kind == _GET_CONFIG:
        num_pages, actual = fields(args, ("num_pages:", "actual:"))
        return ConfigRead(
            line=line, time=time, thread=thread, num_pages=u32(parse_int(num_pages)),
            actual=u32(parse_int(actual))
        )
    if kind == _SET_CONFIG:
        actual, old = fields(args, ("actual:", "oldactual:"))
        return ConfigWrite(
            line=line, time=time, thread=thread, actual=u32(parse_int(actual)),
            old_actual=u32(parse_int(old))
        )
    if kind == _TO_TARGET:
        if not args.startswith("balloon target: "):
            raise ValueError(args)
        target, num_pages = fields(args[len("balloon "):], ("target:", "num_pages:"))
        return HostTarget(
            line=line, time=time, thread=thread, target_bytes=parse_int(target, 16),
            num_pages=u32(parse_int(num_pages))
        )
    if kind == _SET_STATUS:
        vdev, value = fields(args, ("vdev", "val"))
        return DeviceStatus(line=line, time=time, thread=thread, vdev=pointer(vdev),
                            value=parse_int(value))
    if kind == _BALLOON_EVENT:
        opaque, addr = fields(args, ("opaque", "addr"))
        return BalloonRequest(line=line, time=time, thread=thread, device=pointer(opaque),
                              target_bytes=parse_int(addr))
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
    _DISCARD: "BLOCK@0xADDR + 0xLENGTH: madvise: N fallocate: N ret: N",
}



def read_trace(source: Source, *, name: str | None = None,
               ignored: IgnoredLines | None = None) -> Iterator[TraceEvent]:
    """Yield the balloon events of a QEMU trace log, streaming.

    ``source`` is a path (plain or xz) or an iterable of lines (a ``str`` is a path);
    ``name`` names it in errors (default: the path, or ``<lines>``); the lines of no known
    event are counted in ``ignored``, if given.  Raises :class:`QemuLogError` on a
    malformed line of a known event, a page with no queue notification before it in its
    thread (a trace without ``virtio_queue_notify``, or a KVM run with ioeventfd: use
    ``-device virtio-balloon-pci,ioeventfd=off``), a damaged file, a log of no line at
    all, or one of no known event with bytes that are no text (another kind of file).

    >>> list(read_trace(["virtio_set_status vdev 0x1 val 15", "unrelated text"]))
    [DeviceStatus(line=1, time=None, thread=None, vdev='0x1', value=15)]
    >>> try:  # doctest: +NORMALIZE_WHITESPACE
    ...     list(read_trace(["virtio_balloon_set_config actual: x oldactual: 0"]))
    ... except QemuLogError as exc:
    ...     print(exc.line, exc.message)
    1 malformed virtio_balloon_set_config: expected 'actual: N oldactual: N',
    got 'actual: x oldactual: 0'
    """
    file = source_name(source, name)
    ignored = IgnoredLines() if ignored is None else ignored
    if isinstance(source, (str, os.PathLike)):
        try:
            yield from _trace_events(bulk_items(os.fspath(source), file), file, ignored)
        except (lzma.LZMAError, EOFError) as exc:
            raise QemuLogError(file, None, f"corrupt or truncated xz data: {exc}") from None
        return
    with open_lines(source, file) as stream:
        yield from _trace_events(stream, file, ignored)



def _trace_events(stream: Iterable[str | PageRun], file: str,
                  ignored: IgnoredLines) -> Iterator[TraceEvent]:
    """The events of the lines (and bulk-parsed page runs) of ``stream``, in order."""
    reader = _Reader(file, ignored)
    known = False
    try:
        for text in stream:
            if isinstance(text, PageRun):
                reader.page_run(text)
            elif not reader.page_line(text):
                for event in reader.other_line(text):
                    known = True
                    yield event
            else:
                known = True
    except (lzma.LZMAError, EOFError) as exc:
        raise damaged_xz(file, reader.number, exc) from None
    if not reader.number:
        raise QemuLogError(file, None, "empty: no line; expected a QEMU trace log")
    if not known and ignored.not_text is not None:
        raise QemuLogError(file, ignored.not_text, "bytes that are no text and no balloon "
                           "event in the whole file; expected a QEMU trace log")
    yield from reader.unacknowledged()


_PAGE_EVENT: Final = "virtio_balloon_handle_output " + _PAGE_ARGS_HEAD
"""A page line's event and the start of its arguments."""


class _Reader:
    """What the reader keeps between lines: per QEMU thread (keyed by the prefix's TID
    text, "" without a prefix) the queue it is serving since its last
    ``virtio_queue_notify`` and the buffer it is reading; the queue each notified vq pointer
    names; the number of the last line read."""

    def __init__(self, file: str, ignored: IgnoredLines) -> None:
        self.file = file
        self.ignored = ignored
        self.queues: dict[str, _Queue] = {}
        self.buffers: dict[str, _Open] = {}
        self.vq_queue: dict[str, int] = {}
        self.number = 0

    def page_run(self, run: PageRun) -> None:
        """Further pages of the buffer the line just before opened or continued, already
        checked and parsed in bulk by :func:`~ballast.validate.qemu.bulk.bulk_items`."""
        pfns = self.buffers[run.key].pfns
        pfns.extend(run.pfns)
        self.number += len(run.pfns)
        if len(pfns) > MAX_BUFFER_PAGES:
            # Named at the line that passed the bound, as line by line.
            raise QemuLogError(self.file, self.number - (len(pfns) - MAX_BUFFER_PAGES - 1),
                               f"buffer of more than {MAX_BUFFER_PAGES} pages")

    def page_line(self, text: str) -> bool:
        """Read line ``text`` where it is a page (``TID@SEC.USEC:virtio_balloon_handle_output
        section ...``, the hot path: one line a page); False where it is not one."""
        self.number += 1
        number, file = self.number, self.file
        colon = text.find(":")
        if text.startswith(_PAGE_EVENT, colon + 1):
            at = text.find("@", 0, colon)
            key = text[:at]
            if at <= 0 or not (key.isdigit() and text.isascii()) and (
                    not ascii_digits(key) or parse_prefix(text[:colon]) is None):
                raise QemuLogError(file, number,
                                   "malformed TID@SECONDS.MICROS: prefix before a page")
        elif text.startswith(_PAGE_EVENT):
            colon = -1
            key = ""
        else:
            return False
        gpa = _page_address(text, colon, file, number)
        open_buffer = self.buffers.get(key)
        if open_buffer is None:
            open_buffer = self._open_for_page(key, text, colon)
        pfns = open_buffer.pfns
        pfns.append(gpa >> PAGE_SHIFT)
        if len(pfns) > MAX_BUFFER_PAGES:
            raise QemuLogError(file, number, f"buffer of more than {MAX_BUFFER_PAGES} pages")
        return True

    def _open_for_page(self, key: str, text: str, colon: int) -> _Open:
        """The buffer thread ``key``'s first page (line ``text``) opens, on the queue the
        thread was last notified of."""
        ctx = self.queues.get(key)
        if ctx is None:
            raise QemuLogError(
                self.file, self.number,
                "page without a virtio_queue_notify before it in its thread; trace "
                "virtio_queue_notify (and under KVM set ioeventfd=off on the device)")
        where = parse_prefix(text[:colon]) if colon >= 0 else None
        if colon >= 0 and where is None:
            raise QemuLogError(self.file, self.number,
                               "malformed TID@SECONDS.MICROS: prefix before a page")
        open_buffer = self.buffers[key] = _Open(
            ctx, self.number, where[1] if where else None, where[0] if where else None)
        return open_buffer

    def other_line(self, text: str) -> Iterator[TraceEvent]:
        """The events of line ``text``, not a page: its prefix split off, its event found
        (a line of no known event is ignored)."""
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
                body = text[colon + 1:]
                where = parse_prefix(text[:colon])
                if where is None:
                    bad_prefix = True
                else:
                    thread, time = where
                    key = text[:at]
        space = body.find(" ")
        event, args = (body, "") if space < 0 else (body[:space], body[space + 1:])
        kind = _EVENTS.get(event)
        if kind is None:
            self.ignored.add(self.number, text)
            return
        if bad_prefix:
            raise QemuLogError(self.file, self.number,
                               f"malformed TID@SECONDS.MICROS: prefix before {event}")
        try:
            yield from self._event(kind, args, key, thread, time)
        except ValueError as exc:
            if isinstance(exc, QemuLogError):
                raise
            raise QemuLogError(
                self.file, self.number,
                f"malformed {event}: expected {_SYNTAX[kind]!r}, got {args!r}") from None

    def _event(self, kind: int, args: str, key: str, thread: int | None,
               time: float | None) -> Iterator[TraceEvent]:
        """The events of one event line of thread ``key`` (raises ValueError where its
        arguments are malformed)."""
        number = self.number
        if kind == _PAGE:
            raise ValueError(args)  # a page line the fast path did not recognise
        if kind == _BAD_ADDR:
            gpa = parse_int(args.strip(), 16)
            self._buffer_of(key, time, thread, "bad address outside any queue notification"
                            ).bad.append(gpa >> PAGE_SHIFT)
            return
        if kind == _DISCARD:
            yield from self._discard(args, key, thread, time)
            return
        if kind == _NOTIFY:
            yield self._notify(args, key, time, thread)
            return
        # Any other event of this thread ends the buffer it was reading.
        open_buffer = self.buffers.pop(key, None)
        if open_buffer is not None:
            yield open_buffer.close(False, number, time)
        if kind == _QUEUE_NOTIFY:
            vdev, queue_text, vq = fields(args, ("vdev", "n", "vq"))
            queue = parse_int(queue_text)
            if not 0 <= queue < VIRTIO_QUEUE_MAX:  # QEMU has no queue beyond that
                raise ValueError(queue_text)
            ctx = self.queues[key] = _Queue(pointer(vdev), queue, pointer(vq))
            if len(self.vq_queue) < 4096:
                self.vq_queue[vq] = queue
            self.buffers[key] = _Open(ctx, number, time, thread)
            return
        self.queues.pop(key, None)
        yield _parse_other(kind, args, number, time, thread)

    def _buffer_of(self, key: str, time: float | None, thread: int | None,
                   outside: str) -> _Open:
        """The buffer thread ``key`` is reading, opened here on its queue where none is
        (no queue: an error saying ``outside``)."""
        open_buffer = self.buffers.get(key)
        if open_buffer is None:
            ctx = self.queues.get(key)
            if ctx is None:
                raise QemuLogError(self.file, self.number, outside)
            open_buffer = self.buffers[key] = _Open(ctx, self.number, time, thread)
        return open_buffer

    def _discard(self, args: str, key: str, thread: int | None,
                 time: float | None) -> Iterator[TraceEvent]:
        """A RAM discard: part of the buffer thread ``key`` is reading, else an event."""
        block, hva, length = _parse_discard(args)
        if length > MAX_DISCARD_BYTES:
            raise QemuLogError(self.file, self.number,
                               f"a discard of {length:#x} bytes: more than the largest guest "
                               f"the model holds ({MAX_MODEL_SIZE:,} pages of {PAGE_SIZE} bytes)")
        open_buffer = self.buffers.get(key)
        if open_buffer is None:
            yield RamDiscard(line=self.number, time=time, thread=thread, block=block,
                             hva=hva, length=length)
        elif len(open_buffer.discards) < MAX_BUFFER_PAGES:
            open_buffer.discards.append(Discard(self.number, hva, length,
                                                len(open_buffer.pfns)))
        else:
            raise QemuLogError(self.file, self.number,
                               f"buffer of more than {MAX_BUFFER_PAGES} discards")

    def _notify(self, args: str, key: str, time: float | None,
                thread: int | None) -> TraceEvent:
        """A ``virtio_notify``: the end of the buffer thread ``key`` read on that queue,
        acknowledged, else a notification of its own."""
        vdev, vq = fields(args, ("vdev", "vq"))
        pointer(vdev)
        pointer(vq)
        open_buffer = self.buffers.get(key)
        if (open_buffer is not None and open_buffer.ctx.vq == vq
                and open_buffer.ctx.vdev == vdev):
            del self.buffers[key]
            return open_buffer.close(True, self.number, time)
        return DeviceNotify(line=self.number, time=time, thread=thread, vdev=vdev, vq=vq,
                            queue=self.vq_queue.get(vq))

    def unacknowledged(self) -> Iterator[TraceEvent]:
        """At the end of input, the buffers still open: never acknowledged in the trace."""
        for key in list(self.buffers):
            open_buffer = self.buffers.pop(key)
            yield open_buffer.close(False, open_buffer.line, open_buffer.time)


def _page_address(text: str, colon: int, file: str, number: int) -> int:
    """The page-aligned guest physical address after a page line's last ``" gpa: 0x"``."""
    cut = text.rfind(_PAGE_ARGS_GPA)
    hex_text = text[cut + len(_PAGE_ARGS_GPA):]
    try:
        # At most 16 hex digits (64 bits) and a newline; ASCII only.
        gpa = int(hex_text, 16) if len(hex_text) <= 18 and hex_text.isascii() else -1
    except ValueError:
        gpa = -1
    if cut < 0 or gpa < 0 or gpa & (PAGE_SIZE - 1):
        raise QemuLogError(
            file, number, "malformed virtio_balloon_handle_output: "
            f"expected {_SYNTAX[_PAGE]!r}, "
            f"got {text[colon + 1 + len('virtio_balloon_handle_output '):].rstrip()!r}")
    return gpa

