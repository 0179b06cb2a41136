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
    file = source_name(source, name)
    with open_lines(source, file) as stream:
        yield from _qmp_events(stream, file)


def _qmp_events(stream: Iterable[str], file: str) -> Iterator[QmpEvent]:
    pending: OrderedDict[object, tuple[str, object]] = OrderedDict()  # key -> (command, args)
    anonymous = 0
    number = 0
    records = 0
    try:
        for number, text in enumerate(stream, 1):
            if not text.strip():
                continue
            records += 1
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
        raise damaged_xz(file, number, exc) from None
    if not records:
        # Nothing recorded: its cross-checks would judge the trace against a session that
        # never happened (every target "asked for by no one").
        raise QemuLogError(file, None, 'no QMP message: expected the JSON lines {"t", "dir", '
                           '"msg"} of a QMP session, which starts with QEMU\'s greeting')

