"""Read a QMP log, streaming.

**QMP log** (one JSON object a line: ``{"t": EPOCH, "dir": "send"|"recv", "msg": {...}}``).
:func:`read_qmp` yields :class:`BalloonCommand` (the ``balloon`` command: target guest RAM
in bytes), :class:`BalloonQueryReply` (answer to ``query-balloon``),
:class:`BalloonChange` (the ``BALLOON_CHANGE`` event), :class:`NegotiatedFeatures` (from an
``x-query-virtio-status`` reply about the balloon) and :class:`CommandError` (an error
answer to one of those commands).

Malformed input raises :class:`~ballast.validate.qemu.source.QemuLogError` naming the
file and the line.

>>> qmp = ['{"t": 1.5, "dir": "send", "msg": {"execute": "balloon", "id": 6,'
...        ' "arguments": {"value": 402653184}}}']
>>> list(read_qmp(qmp))
[BalloonCommand(line=1, time=1.5, id=6, target_bytes=402653184)]
"""

from __future__ import annotations

import json
import lzma
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Final

from ballast.errors import InputError
from ballast.model.trace import loads_record
from ballast.validate.qemu.events import (
    BALLOON_FEATURES,
    BalloonChange,
    BalloonCommand,
    BalloonQueryReply,
    CommandError,
    NegotiatedFeatures,
    QmpEvent,
)
from ballast.validate.qemu.source import QemuLogError, Source, damaged_xz, open_lines, source_name

__all__ = ["feature_bits", "read_qmp"]

# QEMU spells some names its own way ("VIRTIO_BALLOON_F_REPORTING").
_FEATURE_BIT_BY_NAME: Final[dict[str, int]] = {
    **{name: bit for bit, name in BALLOON_FEATURES.items()},
    "REPORTING": 5,
    "FREE_PAGE_REPORTING": 5,
}

_PENDING_LIMIT: Final = 4096

_TRACKED_COMMANDS: Final = frozenset({"balloon", "query-balloon", "x-query-virtio-status"})


_DEV_FEATURES_EXPECTED: Final = ('x-query-virtio-status "dev-features" must be a list of '
                                 'strings, the feature names such as '
                                 '"VIRTIO_BALLOON_F_STATS_VQ: Guest memory stats VQ available"')
_FEATURES_EXPECTED: Final = ('x-query-virtio-status features must be a feature mask (an integer) '
                             'or an object whose "dev-features" lists the feature names')


def feature_bits(value: object) -> int:
    """The virtio-balloon feature mask of an ``x-query-virtio-status`` features field.

    The field is either QEMU 7.2's decoded object (``dev-features`` names such as
    ``"VIRTIO_BALLOON_F_STATS_VQ: ..."``) or a plain integer; ``ValueError`` if neither.

    >>> feature_bits({"dev-features": ["VIRTIO_BALLOON_F_STATS_VQ: "
    ...                                "Guest memory stats VQ available"]})
    2
    >>> feature_bits(0x100000016)
    22
    """
    if isinstance(value, bool):
        raise ValueError(_FEATURES_EXPECTED + f", got {value!r}")
    if isinstance(value, int):
        return value & ((1 << len(BALLOON_FEATURES)) - 1)
    if not isinstance(value, dict):
        raise ValueError(_FEATURES_EXPECTED + f", got {value!r:.60}")
    names = value.get("dev-features", [])
    if not isinstance(names, list):
        raise ValueError(_DEV_FEATURES_EXPECTED + f", got {names!r:.60}")
    bits = 0
    for item in names:
        if not isinstance(item, str):
            raise ValueError(_DEV_FEATURES_EXPECTED + f", got an item {item!r:.60}")
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
    return (ident if isinstance(ident, (int, str)) and not isinstance(ident, bool)
            else json.dumps(ident))


def read_qmp(source: Source, *, name: str | None = None) -> Iterator[QmpEvent]:
    """Yield the balloon events of a QMP log (JSON lines ``{"t", "dir", "msg"}``), streaming.

    Replies are matched to commands by ``id`` (or, without one, in order).  Blank lines are
    skipped; any other line that is not such an object raises :class:`QemuLogError`.

    >>> log = ['{"t": 2.0, "dir": "send", "msg": {"execute": "query-balloon", "id": 4}}',
    ...        '{"t": 2.1, "dir": "recv", "msg": {"return": {"actual": 536870912}, "id": 4}}']
    >>> list(read_qmp(log))
    [BalloonQueryReply(line=2, time=2.1, id=4, actual_bytes=536870912)]
    """
    file = source_name(source, name)
    with open_lines(source, file) as stream:
        yield from _qmp_events(stream, file)


def _qmp_events(stream: Iterable[str], file: str) -> Iterator[QmpEvent]:
    """The balloon events of the QMP log lines ``stream`` (``file`` in errors), as read."""
    session = _QmpSession()
    number = 0
    records = 0
    try:
        for number, text in enumerate(stream, 1):
            if not text.strip():
                continue
            records += 1
            record = _load_record(text, file, number)
            try:
                event = session.event_of(record, number)
                if event is not None:
                    yield event
            except ValueError as exc:
                raise QemuLogError(file, number, str(exc)) from None
    except (lzma.LZMAError, EOFError) as exc:
        raise damaged_xz(file, number, exc) from None
    if not records:
        # Nothing recorded: its cross-checks would judge the trace against a session that
        # never happened (every target "asked for by no one").
        raise QemuLogError(file, None, 'no QMP message: expected the JSON lines {"t", "dir", '
                           '"msg"} of a QMP session, which starts with QEMU\'s greeting')


def _load_record(text: str, file: str, number: int) -> object:
    """The JSON value of line ``number``; :class:`QemuLogError` if it is not JSON."""
    try:
        return loads_record(text, file, number)
    except InputError as exc:
        decode = exc.message.startswith("not valid JSON")
        raise QemuLogError(file, number, f"not a JSON object: {exc.message}" if decode
                           else exc.message) from None


class _QmpSession:
    """A QMP session as read so far: the tracked commands still awaiting their replies.

    Each record is turned into at most one event; a malformed one raises ``ValueError``
    (the caller names the line).
    """

    def __init__(self) -> None:
        """A session with no command sent yet."""
        # key -> (command, args)
        self.pending: OrderedDict[object, tuple[str, object]] = OrderedDict()
        self.anonymous = 0
        """Tracked commands sent without an ``id`` so far (their replies come in order)."""

    def event_of(self, record: object, line: int) -> QmpEvent | None:
        """The balloon event of one JSON record (at ``line``), or None if it is none."""
        time, direction, msg = _record_parts(record)
        if direction == "send":
            return self.sent(msg, line, time)
        # Received: greeting, event, or reply.
        event = msg.get("event")
        if event is not None:
            return _balloon_change(msg, line, time) if event == "BALLOON_CHANGE" else None
        if "return" not in msg and "error" not in msg:
            return None  # greeting or something else
        return self.reply(msg, line, time)

    def sent(self, msg: dict[str, object], line: int, time: float) -> BalloonCommand | None:
        """A command sent to QEMU: tracked if its reply is read; ``balloon`` is an event."""
        command = msg.get("execute", msg.get("exec-oob"))
        if not isinstance(command, str):
            raise ValueError("a sent message needs 'execute'")
        arguments = msg.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError("'arguments' must be an object")
        if command in _TRACKED_COMMANDS:
            self._await_reply(msg, command, arguments)
        if command != "balloon":
            return None
        value = _qmp_int(arguments.get("value"), "balloon 'value'")
        return BalloonCommand(line=line, time=time, id=msg.get("id"), target_bytes=value)

    def _await_reply(self, msg: dict[str, object], command: str, arguments: object) -> None:
        """Remember a tracked command until its reply: by its ``id``, else in order."""
        if "id" in msg:
            key = _key(msg.get("id"))
        else:
            key = ("anonymous", self.anonymous)
            self.anonymous += 1
        self.pending[key] = (command, arguments)
        if len(self.pending) > _PENDING_LIMIT:
            self.pending.popitem(last=False)

    def reply(self, msg: dict[str, object], line: int, time: float) -> QmpEvent | None:
        """A reply (``return`` or ``error``): an event if it answers a tracked command."""
        found = self._answered(msg)
        if found is None:
            return None
        command, arguments = found
        ident = msg.get("id")
        if "error" in msg:
            return _command_error(msg["error"], command, ident, line, time)
        answer = msg["return"]
        if command == "query-balloon":
            return _query_balloon_reply(answer, ident, line, time)
        if command == "x-query-virtio-status":
            return _virtio_status_reply(answer, arguments, line, time)
        return None

    def _answered(self, msg: dict[str, object]) -> tuple[str, object] | None:
        """The pending command (name, arguments) a reply answers, taken off; None if none."""
        if "id" in msg:
            return self.pending.pop(_key(msg["id"]), None)
        oldest = next((k for k in self.pending
                       if isinstance(k, tuple) and k[:1] == ("anonymous",)), None)
        return self.pending.pop(oldest, None) if oldest is not None else None


def _record_parts(record: object) -> tuple[float, str, dict[str, object]]:
    """The time, direction and message of one record ``{"t", "dir", "msg"}``."""
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
    return float(time), direction, msg


def _balloon_change(msg: dict[str, object], line: int, time: float) -> BalloonChange:
    """A ``BALLOON_CHANGE`` event: the balloon's new size, with QEMU's time of it if given."""
    data = msg.get("data")
    if not isinstance(data, dict):
        raise ValueError("BALLOON_CHANGE without 'data'")
    event_time = _event_time(msg.get("timestamp"))
    actual = _qmp_int(data.get("actual"), "BALLOON_CHANGE 'actual'")
    return BalloonChange(line=line, time=time, actual_bytes=actual, event_time=event_time)


def _event_time(stamp: object) -> float | None:
    """QEMU's time of an event from its ``timestamp`` object; None without one."""
    if not isinstance(stamp, dict):
        return None
    return _qmp_int(stamp.get("seconds"), "timestamp seconds") + (
        _qmp_int(stamp.get("microseconds"), "timestamp microseconds") / 1e6
    )


def _command_error(error: object, command: str, ident: object, line: int,
                   time: float) -> CommandError:
    """QEMU's ``error`` answer to a tracked command."""
    if not isinstance(error, dict):
        raise ValueError("'error' must be an object")
    return CommandError(
        line=line,
        time=time,
        id=ident,
        command=command,
        error_class=str(error.get("class", "")),
        description=str(error.get("desc", "")),
    )


def _query_balloon_reply(answer: object, ident: object, line: int,
                         time: float) -> BalloonQueryReply:
    """The answer to ``query-balloon``: the guest RAM the balloon leaves."""
    if not isinstance(answer, dict):
        raise ValueError("query-balloon must return an object")
    actual = _qmp_int(answer.get("actual"), "query-balloon 'actual'")
    return BalloonQueryReply(line=line, time=time, id=ident, actual_bytes=actual)


def _virtio_status_reply(answer: object, arguments: object, line: int,
                         time: float) -> NegotiatedFeatures | None:
    """The answer to ``x-query-virtio-status``: the features, if about the balloon device."""
    if not isinstance(answer, dict):
        raise ValueError("x-query-virtio-status must return an object")
    if answer.get("name") != "virtio-balloon" and answer.get("device-id") != 5:
        return None
    status_field = answer.get("status", {})
    statuses: tuple[str, ...] = ()
    if isinstance(status_field, dict) and isinstance(status_field.get("statuses"), list):
        statuses = tuple(str(s).split(":", 1)[0] for s in status_field["statuses"])
    path = arguments.get("path", "") if isinstance(arguments, dict) else ""
    return NegotiatedFeatures(
        line=line,
        time=time,
        path=str(path),
        guest=feature_bits(answer.get("guest-features")),
        host=feature_bits(answer.get("host-features")),
        status=statuses,
    )
