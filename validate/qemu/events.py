"""The events of a QEMU virtio-balloon capture, one hierarchy for both of its logs.

Every event is a frozen :class:`LogEvent` that knows its 1-based ``line`` in the log it
came from.  :class:`TraceEvent` and its subclasses come from QEMU's trace log
(:mod:`ballast.validate.qemu.trace_reader`), with the ``TID@SECONDS.MICROS:`` prefix's
``thread`` and ``time`` when present; :class:`QmpEvent` and its subclasses from the QMP log
(:mod:`ballast.validate.qemu.qmp_reader`), with the host epoch ``time`` the client stamped.

Pages are given as 4096-byte page frame numbers (``gpa >> 12``), whatever the guest's
page size, as virtio-balloon counts them.

>>> ev = HostTarget(line=1, time=None, thread=None, target_bytes=0x18000000, num_pages=32768)
>>> isinstance(ev, LogEvent), ev.target_bytes // 2**20
(True, 384)
>>> isinstance(BalloonChange(line=2, time=1.0, actual_bytes=4096, event_time=None), LogEvent)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BALLOON_FEATURES",
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
    "Discard",
    "HostTarget",
    "InflateBuffer",
    "LogEvent",
    "NegotiatedFeatures",
    "OtherBuffer",
    "QmpEvent",
    "QueueBuffer",
    "RamDiscard",
    "StatsBuffer",
    "TraceEvent",
    "decode_features",
    "queue_names",
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


def queue_names(features: frozenset[str]) -> tuple[str, ...]:
    """The balloon's virtqueues in index order for the negotiated ``features`` (a Linux
    driver numbers only the queues it uses).

    >>> queue_names(frozenset({"STATS_VQ", "PAGE_REPORTING"}))
    ('inflateq', 'deflateq', 'statsq', 'reporting_vq')
    """
    names = ["inflateq", "deflateq"]
    if "STATS_VQ" in features:
        names.append("statsq")
    if "FREE_PAGE_HINT" in features:
        names.append("free_page_vq")
    if "PAGE_REPORTING" in features:
        names.append("reporting_vq")
    return tuple(names)


def decode_features(bits: int) -> tuple[str, ...]:
    """Names of the virtio-balloon feature bits set in ``bits``, lowest bit first.

    >>> decode_features(0b100110)
    ('STATS_VQ', 'DEFLATE_ON_OOM', 'PAGE_REPORTING')
    """
    return tuple(name for bit, name in BALLOON_FEATURES.items() if bits >> bit & 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEvent:
    """Base of every event of a capture's logs: its 1-based ``line`` in that log."""

    line: int


# --------------------------------------------------------------------------- trace log


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent(LogEvent):
    """Base of every trace log event: where it came from.

    ``time`` is the host epoch seconds of the
    ``TID@SECONDS.MICROS:`` prefix (None without a prefix); ``thread`` the QEMU thread id
    of the prefix (None without one).
    """

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
    """The guest wrote ``actual``, the balloon's size in 4 KiB pages
    (``virtio_balloon_set_config``)."""

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


@dataclass(frozen=True, slots=True)
class Discard:
    """QEMU gave ``length`` bytes of guest RAM at host address ``hva`` back to the host
    (``ram_block_discard_range``) while it read a buffer, after its first ``after`` pages."""

    line: int
    hva: int
    length: int
    after: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RamDiscard(TraceEvent):
    """A ``ram_block_discard_range`` outside any balloon buffer (another device's, or a
    migration's): RAM block ``block``, ``length`` bytes at host address ``hva``."""

    block: str
    hva: int
    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueBuffer(TraceEvent):
    """One buffer the guest made available on a balloon queue, as the device saw it.

    ``line``/``time``/``thread`` are those of the ``virtio_queue_notify`` (or of the first
    page, for a further buffer handled in the same notification); ``end_line``/``end_time``
    those of the line that ended it.  ``pfns`` are the pages in the order given
    (4 KiB frame numbers), ``bad_pfns`` those QEMU rejected as not guest memory
    (``virtio_balloon_bad_addr``).  ``acknowledged`` is True when the device's
    ``virtio_notify`` ended the buffer.  ``discards`` are the ranges of guest RAM QEMU gave
    back to the host while it read the buffer (traced where ``ram_block_discard_range`` is
    enabled: on inflateq the host pages the buffer's pages completed, on reporting_vq the
    reported free blocks).
    """

    vdev: str
    vq: str
    queue: int
    pfns: tuple[int, ...]
    bad_pfns: tuple[int, ...]
    acknowledged: bool
    end_line: int
    end_time: float | None
    discards: tuple[Discard, ...] = ()


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



# ----------------------------------------------------------------------------- QMP log


@dataclass(frozen=True, slots=True, kw_only=True)
class QmpEvent(LogEvent):
    """Base of every QMP log event: the host epoch ``time`` (``t``) its line was stamped with."""

    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BalloonCommand(QmpEvent):
    """The host sent ``balloon``: ``target_bytes`` is the target guest RAM size, not the
    balloon's."""

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
