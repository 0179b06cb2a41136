"""Turn a QEMU virtio-balloon trace into virtio profile events and into model steps.

:func:`profile_events` maps the typed events of :mod:`ballast.validate.qemu.events` onto the
model's virtio profile (:mod:`ballast.model.virtio`):

==============================  ============================================
QEMU trace                      profile event (model action)
==============================  ============================================
``virtio_balloon_to_target``    ``set_target`` (``host_set_target``)
``virtio_balloon_get_config``   ``read_target`` when ``num_pages`` changed
                                (``balloon_poll``)
inflateq buffer                 ``inflate`` (``balloon_inflate``), then at its
                                ``virtio_notify`` ``inflate_ack`` (``vmm_reclaim``)
deflateq buffer                 ``deflate`` (``balloon_deflate``), then at its
                                ``virtio_notify`` ``deflate_ack`` (``vmm_release``)
``virtio_balloon_set_config``   ``write_actual`` (``balloon_complete``)
``virtio_set_status ... val 0`` ``reset`` (``guest_reset``)
``ram_block_discard_range``     ``discard`` (no step: the device's part of
while reading an inflateq       ``vmm_reclaim``), the host page of the page
buffer                          just read
reporting_vq buffer, its pages  ``report`` (``balloon_report_free_pages``), at
those QEMU discarded            its ``virtio_notify`` ``report_ack``
                                (``vmm_discard_reported``, then
                                ``balloon_report_done``)
==============================  ============================================

**Where guest RAM lies.**  QEMU's trace names a discarded range by its host address,
so :class:`GuestRam` learns the host address of guest-physical address 0 from the first
discard an inflate buffer's page caused (the host page holding that page) and locates
every later discard with it: of an inflate, to check that the device gave back only
ballooned pages (with guest RAM on 2 MiB huge pages, a host page goes back only once all
its 512 pages are in the balloon); of a free page report, to know which pages were
reported.  One address serves a q35 or pc guest smaller than 2.75 GiB (all its RAM lies
below 4 GiB at guest-physical address = offset in the RAM block); for a larger guest, or
before the first located discard, a discard is counted as not located and judged by no
one.

**Use of a page** is not visible to QEMU: the device learns that the guest wants a
page back only from deflateq (rule 5), so each deflated PFN is *used* right after its
deflate (without MUST_TELL_HOST, which QEMU never offers) or after the deflate's
acknowledgement (with it).  A page used before its inflate was acknowledged therefore
shows as a deflate buffer naming a PFN whose inflate buffer the device has not yet
completed: both rule 8 and rule 7 break on that line.  An inflate buffer that ends
without ``virtio_notify`` stays in flight until a later ``virtio_notify`` on inflateq.

>>> from ballast.validate.qemu.trace_reader import read_trace
>>> lines = ["virtio_balloon_to_target balloon target: 0x0 num_pages: 2",
...          "virtio_balloon_get_config num_pages: 2 actual: 0",
...          "virtio_queue_notify vdev 0x1 n 0 vq 0x2",
...          "virtio_balloon_handle_output section name: pc.ram gpa: 0x5000",
...          "virtio_notify vdev 0x1 vq 0x2",
...          "virtio_balloon_set_config actual: 1 oldactual: 0"]
>>> [(n, e.kind) for n, e in profile_events(read_trace(lines), frozenset())]
[(1, 'set_target'), (2, 'read_target'), (3, 'inflate'), (5, 'inflate_ack'), (6, 'write_actual')]
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from ballast.model.actions import Action
from ballast.model.config import Config, GuestPolicyName
from ballast.model.trace import TraceHeader, TraceStep
from ballast.model.virtio import DEFLATE_ON_OOM, MUST_TELL_HOST, VirtioEvent
from ballast.validate.qemu.events import (
    PAGE_SIZE,
    QUEUE_DEFLATE,
    QUEUE_INFLATE,
    BalloonRequest,
    ConfigRead,
    ConfigWrite,
    DeflateBuffer,
    DeviceNotify,
    DeviceStatus,
    Discard,
    HostTarget,
    InflateBuffer,
    QueueBuffer,
    TraceEvent,
    queue_names,
)

__all__ = ["ACTION_OF", "LINUX_BUFFER_PAGES", "LINUX_REPORT_PAGES", "MAX_WRITE_LAG", "GuestRam",
           "GuestSize", "MovedWrites",
           "StepConverter", "in_driver_order", "model_steps", "profile_events", "trace_config",
           "trace_header"]

ACTION_OF = {
    "set_target": "host_set_target",
    "read_target": "balloon_poll",
    "inflate": "balloon_inflate",
    "inflate_ack": "vmm_reclaim",
    "deflate": "balloon_deflate",
    "deflate_ack": "vmm_release",
    "write_actual": "balloon_complete",
    "reset": "guest_reset",
    "report": "balloon_report_free_pages",
    "report_ack": "vmm_discard_reported",
}
"""The model action each profile event of a QEMU trace stands for (``use`` and ``discard``
have none; after ``vmm_discard_reported`` the module takes the report back,
``balloon_report_done``)."""


class GuestSize:
    """Guest RAM as the trace reveals it (``virtio_balloon_to_target``: target + balloon)."""

    def __init__(self) -> None:
        self.pages: int | None = None


class GuestRam:
    """Where QEMU keeps the guest's RAM, as the trace reveals it, and what it gave back.

    >>> ram = GuestRam()
    >>> ram.locate(Discard(7, hva=0x7f0000205000, length=0x1000, after=1), (0x205,), None)
    (517,)
    >>> hex(ram.base), ram.locate(Discard(9, 0x7f0000400000, 0x200000, 0), (), None)[:2]
    ('0x7f0000000000', (1024, 1025))
    """

    LOW_RAM_BYTES = 0xB000_0000
    """A q35 or pc guest with less RAM than this has all of it below 4 GiB, at
    guest-physical address = offset in its RAM block (one host address locates it all)."""

    def __init__(self) -> None:
        self.base: int | None = None
        """The host address of guest-physical address 0 (None: not yet known)."""
        self.discards = 0
        """Discards located while the device read an inflate buffer."""
        self.discarded_pages = 0
        """Pages those discards gave back to the host."""
        self.host_page_bytes = 0
        """The largest such discard: the host page size (4 KiB, or 2 MiB on huge pages)."""
        self.reports = 0
        """Free page reports whose pages were located (judged)."""
        self.unlocated = 0
        """Discards (and reports) that could not be located, so judged by no one."""

    def as_dict(self) -> dict[str, int]:
        """The counts, for ``--json``."""
        return {"discards": self.discards, "pages_discarded": self.discarded_pages,
                "host_page_bytes": self.host_page_bytes, "free_page_reports": self.reports,
                "not_located": self.unlocated}

    def summary(self) -> str | None:
        """One line on what QEMU gave back to the host (None: no discard traced).

        >>> ram = GuestRam(); ram.discards, ram.discarded_pages, ram.host_page_bytes = 2, 2, 4096
        >>> ram.summary()
        'given back to the host: 2 pages in 2 discards of inflated pages (host pages of 4 KiB)'
        """
        parts = []
        if self.discards:
            parts.append(f"{self.discarded_pages:,} pages in {self.discards:,} discards of "
                         f"inflated pages (host pages of {_size(self.host_page_bytes)})")
        if self.reports:
            parts.append(f"the pages of {self.reports:,} free page reports")
        if self.unlocated:
            parts.append(f"{self.unlocated:,} discards or reports not located (not judged)")
        return "given back to the host: " + "; ".join(parts) if parts else None

    def locate(self, d: Discard, pfns: tuple[int, ...], guest_pages: int | None
               ) -> tuple[int, ...] | None:
        """The pages of discard ``d`` (None: not located, as a discard that runs past the
        guest's RAM is).  ``pfns`` are the buffer's pages; the page read just before the
        discard, if any, teaches the base address."""
        if guest_pages is not None and guest_pages * PAGE_SIZE >= self.LOW_RAM_BYTES:
            return None
        if self.base is None and d.after > 0:
            start = pfns[d.after - 1] * PAGE_SIZE // d.length * d.length
            self.base = d.hva - start
        if self.base is None or d.hva < self.base:
            return None
        first = (d.hva - self.base) // PAGE_SIZE
        end = first + d.length // PAGE_SIZE
        if guest_pages is not None and end > guest_pages:
            return None
        return tuple(range(first, end))


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _acknowledged(ev: QueueBuffer, pending: list[int]) -> tuple[int, ...]:
    """The pages the device acknowledged with buffer ``ev``: those of earlier buffers of its
    queue it completed without notify (``pending``, emptied), then ``ev``'s own; none if
    ``ev`` itself ended without notify (its pages join ``pending``)."""
    if not ev.acknowledged:
        pending.extend(ev.pfns)
        return ()
    pfns = tuple(pending) + ev.pfns
    pending.clear()
    return pfns


def profile_events(events: Iterable[TraceEvent], features: frozenset[str],
                   size: GuestSize | None = None, moved: MovedWrites | None = None,
                   ram: GuestRam | None = None) -> Iterator[tuple[int, VirtioEvent]]:
    """``(trace line, profile event)`` for each balloon event of a QEMU trace, streaming, in
    the order the driver made them (:func:`in_driver_order`, which notes in ``moved`` the
    writes it moved); ``ram`` learns where guest RAM lies and counts what was discarded."""
    return in_driver_order(_device_events(events, features, size, ram), moved)


MAX_WRITE_LAG = 8
"""Most profile events an ``actual`` write is moved past (see :func:`in_driver_order`)."""


class MovedWrites:
    """The ``actual`` writes :func:`in_driver_order` judged after the report they already
    counted: how many, and the trace lines of the first :data:`SHOWN` (bounded memory)."""

    SHOWN = 16

    def __init__(self) -> None:
        self.count = 0
        self.lines: list[int] = []

    def note(self, line: int) -> None:
        """One more write moved, logged at ``line``."""
        self.count += 1
        if len(self.lines) < self.SHOWN:
            self.lines.append(line)


def in_driver_order(events: Iterable[tuple[int, VirtioEvent]],
                    moved: MovedWrites | None = None) -> Iterator[tuple[int, VirtioEvent]]:
    """The profile events with each ``actual`` write put after the one report the driver
    had already counted when it wrote it.

    The device logs a report when it takes the buffer, and an ``actual`` write when the
    driver writes it; a driver with two threads makes these two orders differ.  Linux
    counts a page in or out of its balloon (``num_pages``) when it takes it from or gives it
    to its list, under the balloon lock, and tells the device afterwards; its worker writes
    ``actual`` from that count without the lock.  So when the deflate-on-OOM notifier has
    taken a page out and not yet sent its deflate buffer, the worker's write already leaves
    the page out, and the device sees the write first (and the same for an inflate that
    the worker has begun while the notifier writes).  In the driver's order the report came
    first, and rule 9 ("actual is the balloon's size") holds.

    So a write whose value differs from the balloon the device knows (pages acknowledged
    in, less pages reported out) waits while the reports that follow move the balloon
    towards its value, each without passing it: deflate buffers (and their acknowledgements)
    when the value is below the balloon, inflate buffers and their acknowledgements when it
    is above.  When the balloon reaches the value the write follows; at any other event, a
    report that would pass the value, or after :data:`MAX_WRITE_LAG` events, it is given
    where it was logged, and rule 9 judges it there.  Nothing else moves, and a write is never
    moved past another write, a reset or a report in the other direction, so a driver whose
    ``actual`` is wrong is still caught, at the write's own line.

    >>> ev = [(1, VirtioEvent("inflate_ack", (5, 6))), (2, VirtioEvent("write_actual", value=1)),
    ...       (3, VirtioEvent("deflate", (5,))), (4, VirtioEvent("deflate_ack", (5,)))]
    >>> [(n, e.kind) for n, e in in_driver_order(ev)]
    [(1, 'inflate_ack'), (3, 'deflate'), (2, 'write_actual'), (4, 'deflate_ack')]
    """
    balloon = 0  # pages acknowledged into the balloon, less pages reported out
    held: tuple[int, VirtioEvent] | None = None
    lag = 0
    for item in events:
        e = item[1]
        k = e.kind
        if held is not None:
            want = held[1].value
            moves = lag < MAX_WRITE_LAG and (
                k in _BESIDE_A_WRITE
                or (k == "deflate" and balloon - len(e.pfns) >= want)
                or (k in ("use", "deflate_ack") and want < balloon)
                or (k == "inflate" and want > balloon)
                or (k == "inflate_ack" and balloon + len(e.pfns) <= want))
            if moves:
                lag += 1
                balloon = _balloon_after(balloon, e)
                yield item
                if balloon == want:
                    if moved is not None:
                        moved.note(held[0])
                    yield held
                    held = None
                continue
            yield held
            held = None
        if k == "write_actual" and e.value != balloon:
            held, lag = item, 0
            continue
        balloon = _balloon_after(balloon, e)
        yield item
    if held is not None:
        yield held


_BESIDE_A_WRITE = frozenset({"set_target", "read_target", "stats", "discard", "report",
                             "report_ack"})
"""Profile events that say nothing of the balloon's size: a waiting write lets them by."""


def _balloon_after(balloon: int, e: VirtioEvent) -> int:
    """The balloon's size, as the device knows it, after event ``e``."""
    k = e.kind
    if k == "inflate_ack":
        return balloon + len(e.pfns)
    if k == "deflate":
        return max(0, balloon - len(e.pfns))
    if k == "reset":
        return 0
    return balloon


def _device_events(events: Iterable[TraceEvent], features: frozenset[str],
                   size: GuestSize | None = None, ram: GuestRam | None = None
                   ) -> Iterator[tuple[int, VirtioEvent]]:
    """``(trace line, profile event)`` for each balloon event of a QEMU trace, in the
    order the device logged them."""
    tell = MUST_TELL_HOST in features
    names = queue_names(features)
    reporting = names.index("reporting_vq") if "reporting_vq" in names else -1
    ram = ram if ram is not None else GuestRam()
    balloon_dev: str | None = None
    pending_inflate: list[int] = []  # PFNs of inflate buffers QEMU completed without notify
    pending_deflate: list[int] = []
    pending_report: list[int] = []
    for ev in events:
        line = ev.line
        if isinstance(ev, QueueBuffer):
            if ev.pfns or ev.bad_pfns:
                balloon_dev = ev.vdev
            if ev.queue == reporting and not isinstance(ev, (InflateBuffer, DeflateBuffer)):
                yield from _report_events(ev, ram, size, pending_report)
            elif isinstance(ev, InflateBuffer):
                if not ev.pfns:
                    continue
                yield line, VirtioEvent("inflate", ev.pfns)
                yield from _discard_events(ev, ram, size)
                acked = _acknowledged(ev, pending_inflate)
                if acked:
                    yield ev.end_line, VirtioEvent("inflate_ack", acked)
            elif isinstance(ev, DeflateBuffer):
                if not ev.pfns:
                    continue
                yield line, VirtioEvent("deflate", ev.pfns)
                if not tell:
                    yield line, VirtioEvent("use", ev.pfns)
                acked = _acknowledged(ev, pending_deflate)
                if acked:
                    yield ev.end_line, VirtioEvent("deflate_ack", acked)
                    if tell:
                        yield ev.end_line, VirtioEvent("use", acked)
        elif isinstance(ev, HostTarget):
            if size is not None:
                size.pages = ev.target_bytes // PAGE_SIZE + ev.num_pages
            yield line, VirtioEvent("set_target", value=ev.num_pages)
        elif isinstance(ev, ConfigRead):
            # Every read counts: the real driver re-reads an unchanged target (the model's
            # ``reread_target``), and the model follows each read.
            yield line, VirtioEvent("read_target", value=ev.num_pages)
        elif isinstance(ev, ConfigWrite):
            yield line, VirtioEvent("write_actual", value=ev.actual)
        elif isinstance(ev, DeviceNotify):
            if balloon_dev is not None and ev.vdev != balloon_dev:
                continue
            if ev.queue == QUEUE_INFLATE and pending_inflate:
                yield line, VirtioEvent("inflate_ack", tuple(pending_inflate))
                pending_inflate = []
            elif ev.queue == QUEUE_DEFLATE and pending_deflate:
                yield line, VirtioEvent("deflate_ack", tuple(pending_deflate))
                if tell:
                    yield line, VirtioEvent("use", tuple(pending_deflate))
                pending_deflate = []
        elif isinstance(ev, DeviceStatus):
            if ev.value == 0 and (balloon_dev is None or ev.vdev == balloon_dev):
                pending_inflate, pending_deflate, pending_report = [], [], []
                yield line, VirtioEvent("reset")
        elif isinstance(ev, BalloonRequest):
            balloon_dev = ev.device


def _discard_events(ev: QueueBuffer, ram: GuestRam, size: GuestSize | None
                    ) -> Iterator[tuple[int, VirtioEvent]]:
    """What the device gave back while it read inflate buffer ``ev``, each discard located
    by the page read just before it (counted as not located where that cannot be done)."""
    for d in ev.discards:
        pages = ram.locate(d, ev.pfns, size.pages if size else None)
        if pages is None:
            ram.unlocated += 1
            continue
        ram.discards += 1
        ram.discarded_pages += len(pages)
        ram.host_page_bytes = max(ram.host_page_bytes, d.length)
        yield d.line, VirtioEvent("discard", pages)


def _report_events(ev: QueueBuffer, ram: GuestRam, size: GuestSize | None,
                   pending: list[int]) -> Iterator[tuple[int, VirtioEvent]]:
    """A free page report: its pages are those QEMU discarded while reading it (none
    traced, or one not located: the report is counted as not located, and skipped)."""
    located = [ram.locate(d, (), size.pages if size else None) for d in ev.discards]
    if not located or any(p is None for p in located):
        ram.unlocated += 1
        return
    pfns = tuple(p for pages in located if pages is not None for p in pages)
    ram.reports += 1
    yield ev.line, VirtioEvent("report", pfns)
    if not ev.acknowledged:  # returned with a later buffer's notification
        pending.extend(pfns)
        return
    yield ev.end_line, VirtioEvent("report_ack", tuple(pending) + pfns)
    pending.clear()


class StepConverter:
    """Turns profile events into model steps (project trace format), one event at a time.

    Each step keeps the QEMU trace line in ``source_line``; a driver's ``actual`` write
    becomes ``balloon_complete`` with ``actual`` as an observation.  ``use`` events and
    writes with no acknowledgement pending (the model's module writes ``actual`` only as
    it takes acknowledgements) become no step.  Values are taken from the log, never
    searched for: the target of ``host_set_target``, the pages of each report.

    Which module action a buffer stands for follows from counts the converter keeps
    (the model's, not guessed): a one-page inflate while the balloon is already at the
    target the driver read is a page migration (``balloon_migrate``), and the one-page
    deflate after its acknowledgement the old page's release
    (``balloon_migrate_release``), after whose acknowledgement the module takes both
    acknowledgements (``balloon_complete``, no ``actual`` written: Linux's migration
    callback puts the new page on its balloon list and drops the old one with the balloon
    lock held, and the size is unchanged); a deflate below the target the driver read is the
    DEFLATE_ON_OOM notifier (``balloon_oom_deflate``) when that feature was negotiated.
    Anything else is passed on as the plain action, for the model to judge.
    """

    def __init__(self, vm: int = 0, features: frozenset[str] = frozenset()) -> None:
        self.vm = vm
        self.n = 0
        self.target = 0
        self.oom = DEFLATE_ON_OOM in features
        self.polled = 0
        self.balloon = 0  # pages in the module's balloon (acknowledgements taken)
        self.inflating = 0  # pages on the inflate queue
        self.acked_in = 0  # inflated pages acknowledged, not yet taken by the module
        self.acked_out = False  # a deflate acknowledged, not yet taken by the module
        self.migrating = False
        self.releasing = False  # a migration's old page reported, not yet acknowledged
        # An ``actual`` write seen while a migration holds the balloon lock, taken with it.
        self.deferred: dict[str, object] | None = None

    def _reset(self) -> None:
        self.polled = self.balloon = self.inflating = self.acked_in = 0
        self.acked_out = self.migrating = self.releasing = False
        self.deferred = None

    def _take(self, line: int, observe: dict[str, object] | None = None) -> TraceStep:
        """The module takes the acknowledgements waiting for it (``balloon_complete``),
        with the ``actual`` it writes when the log shows the write."""
        self.balloon += self.acked_in
        self.acked_in, self.acked_out = 0, False
        self.n += 1
        return TraceStep(self.n, Action.of("balloon_complete", vm=self.vm), observe=observe,
                         line=line, extra={"source_line": line})

    def _step(self, line: int, act: Action,
              observe: dict[str, object] | None = None) -> list[TraceStep]:
        """The next step: ``act`` at trace line ``line``."""
        self.n += 1
        return [TraceStep(self.n, act, observe=observe, line=line, extra={"source_line": line})]

    def feed(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        """The steps (zero or more) that event ``e`` of trace line ``line`` stands for."""
        handle = _ON_EVENT.get(e.kind)
        return handle(self, line, e) if handle is not None else []

    def _set_target(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        if e.value == self.target:
            return []
        self.target = e.value
        return self._step(line, Action.of("host_set_target", vm=self.vm, pages=e.value))

    def _read_target(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        self.polled = e.value
        # The driver must read what the host set: the model's target, observed.
        return self._step(line, Action.of("balloon_poll", vm=self.vm),
                          {f"vms/{self.vm}/module/target": e.value})

    def _inflate(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        held = self.balloon + self.inflating + self.acked_in
        if len(e.pfns) == 1 and self.balloon and held >= self.polled and not self.migrating:
            act = Action.of("balloon_migrate", vm=self.vm, new=e.pfns[0])
            self.migrating = True
        else:
            # Order within a buffer means nothing to the protocol; the model names a set of
            # pages in its canonical (sorted) order.
            act = Action.of("balloon_inflate", vm=self.vm, ppns=sorted(e.pfns))
        self.inflating += len(e.pfns)
        return self._step(line, act)

    def _inflate_ack(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        self.acked_in += self.inflating
        self.inflating = 0
        return self._step(line, Action.of("vmm_reclaim", vm=self.vm, refuse=[]))

    def _deflate(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        vm = self.vm
        if self.migrating and len(e.pfns) == 1 and self.acked_in:
            act = Action.of("balloon_migrate_release", vm=vm, old=e.pfns[0])
            self.migrating = False
            self.releasing = True
        elif self.oom and len(e.pfns) > self.balloon - self.polled:
            if self.acked_in or self.acked_out:
                # Linux deflates on OOM from its shrinker, which may run between an
                # inflate's acknowledgement and the driver's next ``actual`` write; the
                # pages joined the driver's balloon list when the device returned the
                # buffer, so the module takes the acknowledgements first (no write seen).
                taken = self._take(line)
                return [taken, *self.feed(line, e)]
            act = Action.of("balloon_oom_deflate", vm=vm, ppns=sorted(e.pfns))
        else:
            act = Action.of("balloon_deflate", vm=vm, ppns=sorted(e.pfns))
        self.balloon = max(0, self.balloon - len(e.pfns))
        return self._step(line, act)

    def _deflate_ack(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        self.acked_out = True
        released = self._step(line, Action.of("vmm_release", vm=self.vm))
        if not self.releasing:
            return released
        # The migration is over: the module takes both pages' acknowledgements.
        self.releasing = False
        deferred, self.deferred = self.deferred, None
        return [*released, self._take(line, deferred)]

    def _write_actual(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        if not (self.acked_in or self.acked_out):
            return []
        observe: dict[str, object] = {f"vms/{self.vm}/module/actual": e.value}
        if self.migrating:
            # Linux writes ``actual`` (its page count, which a migration leaves as it is)
            # outside the balloon lock, so the write of an earlier fill may come while a
            # migration is under way; the model's module takes those acknowledgements with
            # the migration's, once the old page is released.
            self.deferred = observe
            return []
        return [self._take(line, observe)]

    def _reset_event(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        self._reset()
        return self._step(line, Action.of("guest_reset", vm=self.vm))

    def _report(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        return self._step(line, Action.of("balloon_report_free_pages", vm=self.vm,
                                          ppns=sorted(e.pfns)))

    def _report_ack(self, line: int, e: VirtioEvent) -> list[TraceStep]:
        # The device returned the report; Linux's reporting worker, which waits for it,
        # puts the pages back on the free list at once.
        return (self._step(line, Action.of("vmm_discard_reported", vm=self.vm))
                + self._step(line, Action.of("balloon_report_done", vm=self.vm)))


_ON_EVENT: dict[str, Callable[[StepConverter, int, VirtioEvent], list[TraceStep]]] = {
    "set_target": StepConverter._set_target,
    "read_target": StepConverter._read_target,
    "inflate": StepConverter._inflate,
    "inflate_ack": StepConverter._inflate_ack,
    "deflate": StepConverter._deflate,
    "deflate_ack": StepConverter._deflate_ack,
    "write_actual": StepConverter._write_actual,
    "reset": StepConverter._reset_event,
    "report": StepConverter._report,
    "report_ack": StepConverter._report_ack,
}
"""What :meth:`StepConverter.feed` does with each kind of profile event (any other kind,
such as ``use``, stands for no step)."""


def model_steps(events: Iterable[tuple[int, VirtioEvent]], vm: int = 0,
                features: frozenset[str] = frozenset()) -> Iterator[TraceStep]:
    """The model steps a stream of profile events stands for (see :class:`StepConverter`).

    >>> ev = [(1, VirtioEvent("set_target", value=1)), (2, VirtioEvent("read_target", value=1))]
    >>> [str(s.action) for s in model_steps(ev)]
    ['host_set_target(vm=0, pages=1)', 'balloon_poll(vm=0)']
    """
    conv = StepConverter(vm, features)
    for line, e in events:
        yield from conv.feed(line, e)


def trace_config(guest_pages: int, features: frozenset[str]) -> Config:
    """The model configuration a QEMU guest of ``guest_pages`` 4 KiB pages stands for.

    One VM, the machine as large as the guest, no host use, no guest processes (the
    guest's own use of memory is not in a QEMU trace), Linux's 256-PFN buffers, an
    allocator that may hand out any free page, what a real driver does: re-reading
    an unchanged target, page migration, and (with DEFLATE_ON_OOM) the OOM notifier, and
    what QEMU's device does: acknowledging every page of an inflate buffer, beyond a target
    the host lowered meanwhile too; with PAGE_REPORTING, Linux's free page reports of up to
    :data:`LINUX_REPORT_PAGES` pages.
    """
    oom = DEFLATE_ON_OOM in features
    reporting = "PAGE_REPORTING" in features
    return Config(vms=1, guest_pages=guest_pages, machine_pages=guest_pages, guest_data_pages=0,
                  guest_disk_slots=0, host_swap_slots=0, batch=LINUX_BUFFER_PAGES, tokens=1,
                  guest_policy=GuestPolicyName.ANY, host_use=False, reset=True,
                  must_tell_host=MUST_TELL_HOST in features, deflate_on_oom=oom,
                  reread_target=True, migration=True, oom_notifier=oom,
                  accept_beyond_target=True, free_page_reporting=reporting,
                  report_pages=LINUX_REPORT_PAGES if reporting else 0)


LINUX_BUFFER_PAGES = 256
"""Most PFNs a Linux guest puts in one inflate or deflate buffer."""

LINUX_REPORT_PAGES = 32 * 1024
"""Most PFNs in one Linux free page report: 32 free blocks (PAGE_REPORTING_CAPACITY) of up
to 4 MiB (order 10) each."""


def trace_header(guest_pages: int, features: frozenset[str], source: str) -> TraceHeader:
    """The header of a converted QEMU trace."""
    return TraceHeader(trace_config(guest_pages, features),
                       source={"checker": "qemu", "seed": None, "trace": source,
                               "features": sorted(features),
                               # Every model step the log stands for is in the trace.
                               "unlogged_actions": []},
                       comment="converted from a QEMU virtio-balloon trace by ballast validate")
