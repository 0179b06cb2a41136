"""Named captures of the real system: what the host and the guest do, and what is judged.

Each :class:`Scenario` is one :func:`~ballast.validate.qemu.capture.capture` of a Linux
guest under QEMU with a given device and a given sequence of host requests and guest
activity; ``ballast capture qemu --scenario NAME`` runs one and validates it with both
judges (the VirtIO rules and the reference model) and the QMP cross-checks.

Some buffers carry what QEMU's trace does not show: the statistics queue's values, the
command ids and pages of free page hinting, and a free page report whose pages QEMU did not
discard (page poisoning) or that came before any discard showed where guest RAM lies.
Those buffers are counted and named in the result (:func:`unjudged_buffers`), so that a
capture of such a feature says what was not judged instead of passing as if it had been.
A free page report whose pages QEMU discarded is judged by both judges
(:class:`~ballast.validate.qemu.steps.GuestRam`).

>>> sorted(SCENARIOS)[:3]
['basic', 'compaction', 'deflate-on-oom']
>>> queue_names(frozenset({"STATS_VQ", "PAGE_REPORTING"}))
('inflateq', 'deflateq', 'statsq', 'reporting_vq')
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ballast.validate.qemu.capture import CaptureResult, capture
from ballast.validate.qemu.events import (
    PAGE_SIZE,
    QUEUE_DEFLATE,
    QUEUE_INFLATE,
    QueueBuffer,
    TraceEvent,
    decode_features,
    queue_names,
)
from ballast.validate.qemu.guest import DeviceOptions
from ballast.validate.qemu.steps import GuestRam, GuestSize, profile_events
from ballast.validate.qemu.trace_reader import read_trace

__all__ = ["SCENARIOS", "NOT_CAPTURED", "Scenario", "ScenarioRun", "huge_pages_given_back",
           "queue_names", "run_scenario", "unjudged_buffers"]


@dataclass(frozen=True)
class Scenario:
    """A named capture: the device, the host's targets (MiB of guest RAM) and the guest's
    activity."""

    name: str
    summary: str
    options: DeviceOptions
    targets_mib: tuple[int, ...]
    compaction: bool = False
    resets: int = 0
    migrations: int = 0
    idle_s: float = 0.0
    """Seconds to leave the guest alone before quitting (free page reporting waits ~2 s)."""
    settle_s: float = 15.0
    timeout_s: float = 180.0
    notes: tuple[str, ...] = field(default=())
    """What the scenario does not show, said once."""


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("basic", "inflate to 192 MiB of guest RAM, deflate back to 256 MiB",
             DeviceOptions(guest_mib=256), (192, 256)),
    Scenario("compaction", "inflate, then the guest compacts memory: balloon pages migrate",
             DeviceOptions(guest_mib=256), (192,), compaction=True),
    Scenario("deflate-on-oom", "DEFLATE_ON_OOM: the guest fills 150 MiB and deflates on its own",
             DeviceOptions(guest_mib=256, deflate_on_oom=True, pressure_mib=150), (128,),
             settle_s=20.0),
    Scenario("stats", "the statistics queue polled every second while the balloon moves",
             DeviceOptions(guest_mib=256, stats_interval_s=1), (192, 256), idle_s=3.0),
    Scenario("free-page-reporting", "free page reporting on: the guest reports free pages after "
             "deflating",
             DeviceOptions(guest_mib=256, free_page_reporting=True), (192, 256), idle_s=5.0),
    Scenario("free-page-hint", "free page hinting: the balloon moves, then a live migration "
             "makes QEMU start a hint cycle",
             DeviceOptions(guest_mib=256, free_page_hint=True), (192, 256), migrations=1,
             notes=("the hint cycle's command id and hinted pages: QEMU traces neither, so its "
                    "free_page_vq buffers are counted, not judged",)),
    Scenario("huge-pages", "guest RAM on 2 MiB host huge pages: a host page is 512 balloon "
             "pages, given back only when all are in the balloon",
             DeviceOptions(guest_mib=256, huge_pages=True), (192, 256)),
    Scenario("reset", "reboot the guest with a full balloon: the device resets, the new driver "
             "inflates again",
             DeviceOptions(guest_mib=256), (192,), resets=1),
)}
"""Every scenario by name."""

NOT_CAPTURED: dict[str, str] = {
    "hint contents": "the command ids and pages of a free page hint cycle: QEMU 7.2 traces "
                     "neither (no trace event in its free page hint path)",
}
"""Parts of the real system no scenario captures yet, and why."""


def unjudged_buffers(trace_log: str | os.PathLike[str], features: frozenset[str]) -> dict[str, int]:
    """Buffers on queues other than inflateq and deflateq whose contents neither judge saw,
    by queue name (a free page report whose pages were located is judged, so not counted)."""
    names = queue_names(features)
    counts: Counter[str] = Counter()
    ram = GuestRam()

    def counted() -> Iterator[TraceEvent]:
        for ev in read_trace(trace_log):
            if isinstance(ev, QueueBuffer) and ev.queue not in (QUEUE_INFLATE, QUEUE_DEFLATE):
                counts[names[ev.queue] if ev.queue < len(names) else f"queue {ev.queue}"] += 1
            yield ev

    for _ in profile_events(counted(), features, GuestSize(), ram=ram):
        pass
    if ram.reports:
        counts["reporting_vq"] -= ram.reports
    return {name: n for name, n in sorted(counts.items()) if n > 0}


def huge_pages_given_back(trace_log: str | os.PathLike[str], host_page_pages: int = 512
                          ) -> tuple[int, int]:
    """``(host pages wholly in the balloon at its largest, host pages QEMU gave back)``:
    what a guest on huge pages could have returned to the host, and what it did."""
    balloon: set[int] = set()
    largest, whole, given = 0, 0, 0
    for ev in read_trace(trace_log):
        if isinstance(ev, QueueBuffer) and ev.queue == QUEUE_INFLATE:
            balloon.update(ev.pfns)
            given += sum(1 for d in ev.discards if d.length >= host_page_pages * PAGE_SIZE)
            if len(balloon) > largest:
                largest = len(balloon)
                per_host_page = Counter(p // host_page_pages for p in balloon)
                whole = sum(1 for n in per_host_page.values() if n == host_page_pages)
        elif isinstance(ev, QueueBuffer) and ev.queue == QUEUE_DEFLATE:
            balloon.difference_update(ev.pfns)
    return whole, given


@dataclass(frozen=True)
class ScenarioRun:
    """A scenario's capture, the negotiated features and the buffers no judge looked into."""

    scenario: Scenario
    result: CaptureResult
    features: frozenset[str]
    unjudged: dict[str, int]
    huge_pages: tuple[int, int] | None = None
    """On huge pages: host pages wholly in the balloon at its largest, and given back."""

    def coverage_lines(self) -> list[str]:
        """What the judges did not see, one line each (empty when they saw everything)."""
        lines = [f"not judged: {n} buffer(s) on {q} (QEMU's trace does not show what they carried)"
                 for q, n in self.unjudged.items()]
        if self.huge_pages is not None:
            whole, given = self.huge_pages
            lines.append(f"huge pages: {whole} host pages of 2 MiB were wholly in the balloon, "
                         f"QEMU gave {given} back to the host (it gives one back only when all "
                         "512 of its pages come in the buffers of one queue notification, and "
                         "Linux sends one buffer of at most 256 pages at a time)")
        return lines + [f"not shown: {note}" for note in self.scenario.notes]


def run_scenario(name: str, out_dir: str | os.PathLike[str], *,
                 timeout_s: float | None = None) -> ScenarioRun:
    """Capture scenario ``name`` into ``out_dir`` (raises KeyError for an unknown name)."""
    sc = SCENARIOS[name]
    result = capture(out_dir, list(sc.targets_mib), settle_s=sc.settle_s,
                     timeout_s=timeout_s if timeout_s is not None else sc.timeout_s,
                     compaction=sc.compaction, resets=sc.resets, options=sc.options,
                     idle_s=sc.idle_s, migrations=sc.migrations)
    features = frozenset(decode_features(result.guest_features or 0))
    if result.guest_features is None and sc.options.deflate_on_oom:
        features = frozenset({"DEFLATE_ON_OOM"})
    huge = huge_pages_given_back(Path(result.trace_log)) if sc.options.huge_pages else None
    return ScenarioRun(sc, result, features, unjudged_buffers(Path(result.trace_log), features),
                       huge)
