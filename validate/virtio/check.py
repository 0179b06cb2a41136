"""Check a stream of virtio profile events against the rules of VirtIO section 5.5.

The checker is the model's own :class:`~ballast.model.virtio.VirtioTracker` and rules
(:data:`~ballast.model.virtio.VIRTIO_RULES`): before each event every rule that judges
that kind of event is asked, then the profile advances.  Memory is the balloon's PFN set
(one ``int`` a page) and nothing per line, so a trace of any length streams through.
The first event that breaks a MUST ends the check; broken SHOULDs are collected as
warnings (at the end of the trace).

>>> from ballast.model.virtio import VirtioEvent as E
>>> r = check_virtio([(1, E("set_target", value=1)), (2, E("read_target", value=1)),
...                   (3, E("inflate", (5,))), (4, E("inflate_ack", (5,))),
...                   (5, E("deflate", (6,)))], frozenset())
>>> r.violation.rule, r.violation.line
('virtio_5_5_6_1_rule5_deflate_only_balloon_pages', 5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from ballast.model.virtio import (
    DEFLATE_ON_OOM,
    Level,
    VirtioEvent,
    VirtioTracker,
    VirtioView,
    end_warnings,
)

__all__ = ["Finding", "VirtioReport", "check_virtio", "possible_events"]


@dataclass(frozen=True)
class Finding:
    """A broken rule: which, how bad, where and why."""

    rule: str
    level: Level
    message: str
    line: int | None
    event: VirtioEvent | None
    also: tuple[str, ...] = ()
    """Other rules the same event breaks."""


@dataclass
class VirtioReport:
    """The outcome of a check."""

    events: int = 0
    pages: int = 0
    """PFNs carried by inflate and deflate events."""
    inflated: int = 0
    deflated: int = 0
    violation: Finding | None = None
    warnings: list[Finding] = field(default_factory=list)
    last_ok: VirtioView | None = None
    """The profile just before the violating event (the last state that matched)."""
    possible: tuple[str, ...] = ()
    """What the profile allowed there instead."""
    final: VirtioView | None = None
    max_balloon: int = 0

    @property
    def clean(self) -> bool:
        """No MUST broken."""
        return self.violation is None


def possible_events(t: VirtioTracker) -> tuple[str, ...]:
    """In words, the events the rules allow next from the profile ``t``."""
    out = [f"the host sets a new target (now {t.num_pages} pages)",
           f"the driver reads the target ({t.num_pages} pages)",
           "an inflate of PFNs neither in the balloon nor in flight"]
    if t.inflating:
        out.append(f"the device acknowledges the {len(t.inflating)} PFNs in flight on inflateq")
    room = len(t.balloon) - t.polled
    if t.balloon and (room > 0 or DEFLATE_ON_OOM in t.features):
        most = len(t.balloon) if DEFLATE_ON_OOM in t.features else room
        out.append(f"a deflate of at most {most} of the {len(t.balloon)} balloon PFNs")
    if t.deflating:
        out.append(f"the device acknowledges the {len(t.deflating)} PFNs on deflateq")
    out.append(f"the driver writes actual = {len(t.balloon)}")
    return tuple(out)


def check_virtio(events: Iterable[tuple[int | None, VirtioEvent]], features: frozenset[str],
                 *, guest_can_give: bool = True, start: VirtioView | None = None,
                 on_event: Callable[[int], None] | None = None) -> VirtioReport:
    """Run ``(line, event)`` pairs through the rules; stop at the first broken MUST.

    ``on_event`` (optional) is called with the running event count every 4096 events
    (a progress hook for the command line).
    """
    t = VirtioTracker(features, start)
    rep = VirtioReport()
    n = 0
    biggest = 0
    stream = iter(events)
    for line, e in stream:
        n += 1
        broken = t.violations(e)
        if broken:
            rule, msg = broken[0]
            rep.last_ok = t.view()
            rep.possible = possible_events(t)
            also = [r.name for r, _ in broken[1:]]
            # The same trace line may stand for more events (a deflate is also a use):
            # name what they break too.
            t.apply(e)
            for later_line, later in stream:
                if later_line != line:
                    break
                also += [r.name for r, _ in t.violations(later) if r.name not in also]
                t.apply(later)
            rep.violation = Finding(rule.name, rule.level, msg, line, e, tuple(also))
            break
        t.apply(e)
        if e.kind == "inflate":
            rep.inflated += len(e.pfns)
            if len(t.balloon) + len(t.inflating) > biggest:
                biggest = len(t.balloon) + len(t.inflating)
        elif e.kind == "deflate":
            rep.deflated += len(e.pfns)
        if on_event is not None and not n & 4095:
            on_event(n)
    rep.events = n
    rep.pages = rep.inflated + rep.deflated
    rep.max_balloon = biggest
    if rep.violation is None:
        rep.final = t.view()
        rep.warnings = [Finding(rule.name, rule.level, msg, None, None)
                        for rule, msg in end_warnings(t, guest_can_give=guest_can_give)]
    return rep
