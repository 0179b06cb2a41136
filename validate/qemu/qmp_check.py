"""Cross-check the QMP side of a QEMU capture with its trace side.

Three checks, each named, all on the same host clock (the QMP log's ``t`` and QEMU's
trace prefix are both host epoch seconds):

- :data:`REQUEST_REACHES_DEVICE` -- the n-th ``balloon`` request QEMU accepted is the
  n-th target the device took (``virtio_balloon_to_target``), clamped to the guest's RAM
  as QEMU does, and the device took no target nobody asked for;
- :data:`ACTUAL_MATCHES_DEVICE` -- every ``BALLOON_CHANGE`` event and every
  ``query-balloon`` answer is the guest's RAM minus an ``actual`` the driver had written
  (or the initial 0) around that moment (:data:`SLACK_S` either side of QEMU's event
  timestamp; up to :data:`REPLY_DELAY_S` before an answer was received);
- :data:`RAM_SIZE_CONSTANT` -- every target the device took implies the same guest RAM
  size (``target + num_pages * 4096``), and no QMP answer reports more than it.

The QMP log is small (a few messages a second); the trace streams by: the checker keeps
the QMP events and, from the trace, the targets and the ``actual`` values in effect
during the open QMP windows.

>>> from ballast.validate.qemu.events import BalloonCommand, ConfigWrite, HostTarget
>>> chk = QmpCrossCheck([BalloonCommand(line=3, time=1.0, id=1, target_bytes=8192)])
>>> chk.trace_event(HostTarget(line=9, time=1.1, thread=1, target_bytes=4096, num_pages=1))
>>> [f.check for f in chk.finish()]
['qmp_balloon_request_reaches_device']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ballast.validate.qemu.events import (
    PAGE_SIZE,
    BalloonChange,
    BalloonCommand,
    BalloonQueryReply,
    CommandError,
    ConfigWrite,
    HostTarget,
    QmpEvent,
    TraceEvent,
)

__all__ = ["ACTUAL_MATCHES_DEVICE", "QMP_CHECKS", "RAM_SIZE_CONSTANT", "REPLY_DELAY_S",
           "REQUEST_REACHES_DEVICE", "SLACK_S", "QmpCrossCheck", "QmpFinding"]

REQUEST_REACHES_DEVICE = "qmp_balloon_request_reaches_device"
ACTUAL_MATCHES_DEVICE = "qmp_actual_matches_device"
RAM_SIZE_CONSTANT = "qmp_ram_size_constant"

QMP_CHECKS: dict[str, str] = {
    REQUEST_REACHES_DEVICE: "each balloon request QEMU accepted becomes the device's target, "
                            "in order, and the device takes no target nobody asked for",
    ACTUAL_MATCHES_DEVICE: "BALLOON_CHANGE and query-balloon report the guest's RAM minus the "
                           "actual the driver wrote",
    RAM_SIZE_CONSTANT: "the guest's RAM size stays what QEMU was started with",
}
"""Every QMP cross-check by name, with what it means."""

SLACK_S = 0.05
"""Seconds either side of a QMP moment within which a driver's write may count (QEMU
sends BALLOON_CHANGE just before it traces the write; the QMP client stamps on receipt)."""


REPLY_DELAY_S = 1.0
"""Seconds before a ``query-balloon`` answer was received within which QEMU may have made it."""


@dataclass(frozen=True)
class QmpFinding:
    """A broken cross-check: which, where in the QMP log (or trace), and why."""

    check: str
    line: int | None
    message: str
    file: str = "qmp"
    """``qmp`` or ``trace``: which log ``line`` is in."""


class _Window:
    """A QMP report of guest RAM and the ``actual`` values in effect while it was made."""

    __slots__ = ("event", "lo", "hi", "seen")

    def __init__(self, event: QmpEvent, lo: float, hi: float) -> None:
        self.event, self.lo, self.hi = event, lo, hi
        self.seen: set[int] = set()


class QmpCrossCheck:
    """Feed the trace's events (:meth:`trace_event`), then :meth:`finish` for the findings."""

    def __init__(self, qmp: Iterable[QmpEvent]) -> None:
        events = list(qmp)
        self.requests = [e for e in events if isinstance(e, BalloonCommand)]
        failed = {repr(e.id) for e in events if isinstance(e, CommandError)
                  and e.command == "balloon"}
        self.requests = [e for e in self.requests if repr(e.id) not in failed]
        windows: list[_Window] = []
        for e in events:
            if isinstance(e, BalloonChange):
                t = e.event_time if e.event_time is not None else e.time
                windows.append(_Window(e, t - SLACK_S, t + SLACK_S))
            elif isinstance(e, BalloonQueryReply):
                # The reply is stamped on receipt, after QEMU answered: on a loaded host
                # that can be long after, so the window reaches back REPLY_DELAY_S.
                windows.append(_Window(e, e.time - REPLY_DELAY_S, e.time + SLACK_S))
        windows.sort(key=lambda w: w.lo)
        self.pending = windows
        self.open: list[_Window] = []
        self.closed: list[_Window] = []
        self.actual = 0
        self.next_request = 0
        self.ram: int | None = None
        self.findings: list[QmpFinding] = []

    def _advance(self, t: float) -> None:
        """Open the windows that start by ``t`` and close those that ended before it."""
        while self.pending and self.pending[0].lo <= t:
            w = self.pending.pop(0)
            w.seen.add(self.actual)
            self.open.append(w)
        still: list[_Window] = []
        for w in self.open:
            (self.closed if w.hi < t else still).append(w)
        self.open = still
        for w in self.closed:
            self._judge(w)
        self.closed = []

    def _judge(self, w: _Window) -> None:
        if self.ram is None or ACTUAL_MATCHES_DEVICE in {f.check for f in self.findings}:
            return
        e = w.event
        value = e.actual_bytes if isinstance(e, (BalloonChange, BalloonQueryReply)) else 0
        what = "BALLOON_CHANGE" if isinstance(e, BalloonChange) else "query-balloon"
        if value > self.ram:
            self._add(RAM_SIZE_CONSTANT, e.line, f"{what} reports {value} bytes of guest RAM, "
                      f"more than the guest's {self.ram}")
            return
        expected = sorted(self.ram - a * PAGE_SIZE for a in w.seen)
        if value not in expected:
            self._add(ACTUAL_MATCHES_DEVICE, e.line,
                      f"{what} reports {value} bytes but the driver's actual then gave "
                      f"{', '.join(str(x) for x in expected[:3])} (RAM {self.ram} minus actual "
                      f"pages of 4096 bytes)")

    def _add(self, check: str, line: int | None, message: str, file: str = "qmp") -> None:
        if all(f.check != check for f in self.findings):
            self.findings.append(QmpFinding(check, line, message, file))

    def trace_event(self, ev: TraceEvent) -> None:
        """Take one event of the QEMU trace (in trace order)."""
        if isinstance(ev, HostTarget):
            if ev.target_bytes:
                ram = ev.target_bytes + ev.num_pages * PAGE_SIZE
                if self.ram is None:
                    self.ram = ram
                elif ram != self.ram:
                    self._add(RAM_SIZE_CONSTANT, ev.line,
                              f"the device's target {ev.target_bytes} with {ev.num_pages} pages "
                              f"implies {ram} bytes of guest RAM, not {self.ram}", "trace")
            if ev.time is not None:
                self._advance(ev.time)
            if self.next_request >= len(self.requests):
                self._add(REQUEST_REACHES_DEVICE, ev.line,
                          f"the device took target {ev.target_bytes} bytes but no balloon "
                          f"request asked for it", "trace")
                self.next_request += 1
                return
            req = self.requests[self.next_request]
            self.next_request += 1
            want = req.target_bytes if self.ram is None else min(req.target_bytes, self.ram)
            if ev.target_bytes != want:
                self._add(REQUEST_REACHES_DEVICE, req.line,
                          f"balloon request for {req.target_bytes} bytes, but the device took "
                          f"{ev.target_bytes} (trace line {ev.line})")
        elif isinstance(ev, ConfigWrite):
            if ev.time is not None:
                self._advance(ev.time)
                for w in self.open:
                    w.seen.add(ev.actual)
            self.actual = ev.actual

    def finish(self) -> list[QmpFinding]:
        """The findings, once the whole trace was fed."""
        self._advance(float("inf"))
        for w in self.open:
            self._judge(w)
        self.open = []
        if self.next_request < len(self.requests):
            req = self.requests[self.next_request]
            self._add(REQUEST_REACHES_DEVICE, req.line,
                      f"balloon request for {req.target_bytes} bytes never reached the device")
        return self.findings
