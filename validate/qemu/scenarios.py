"""Named captures of the real system: what the host and the guest do, and what is judged.

Each :class:`Scenario` is one :func:`~ballast.validate.qemu.capture.capture` of a Linux
guest under QEMU with a given device and a given sequence of host requests and guest
activity; ``ballast capture qemu --scenario NAME`` runs one and validates it with both
judges (the VirtIO rules and the reference model) and the QMP cross-checks.

Some device features put buffers on queues the model has no action for (the statistics
queue, free page hinting, free page reporting).  Those buffers are counted and named in
the result (:func:`unjudged_buffers`), so that a capture of such a feature says what was
not judged instead of passing as if it had been.

>>> sorted(SCENARIOS)[:3]
['basic', 'compaction', 'deflate-on-oom']
>>> queue_names(frozenset({"STATS_VQ", "PAGE_REPORTING"}))
('inflateq', 'deflateq', 'statsq', 'reporting_vq')
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ballast.validate.qemu.capture import CaptureResult, capture
from ballast.validate.qemu.events import QUEUE_DEFLATE, QUEUE_INFLATE, QueueBuffer, decode_features
from ballast.validate.qemu.guest import DeviceOptions
from ballast.validate.qemu.trace_reader import read_trace

__all__ = ["SCENARIOS", "NOT_CAPTURED", "Scenario", "ScenarioRun", "queue_names", "run_scenario",
           "unjudged_buffers"]


@dataclass(frozen=True)
class Scenario:
    """A named capture: the device, the host's targets (MiB of guest RAM) and the guest's activity."""

    name: str
    summary: str
    options: DeviceOptions
    targets_mib: tuple[int, ...]
    compaction: bool = False
    resets: int = 0
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
             DeviceOptions(guest_mib=256, deflate_on_oom=True, pressure_mib=150), (128,), settle_s=20.0),
    Scenario("stats", "the statistics queue polled every second while the balloon moves",
             DeviceOptions(guest_mib=256, stats_interval_s=1), (192, 256), idle_s=3.0),
    Scenario("free-page-reporting", "free page reporting on: the guest reports free pages after deflating",
             DeviceOptions(guest_mib=256, free_page_reporting=True), (192, 256), idle_s=5.0),
    Scenario("free-page-hint", "free page hinting negotiated while the balloon moves",
             DeviceOptions(guest_mib=256, free_page_hint=True), (192, 256),
             notes=("no hint cycle: QEMU starts one only for a migration, which this capture does not run",)),
    Scenario("reset", "reboot the guest with a full balloon: the device resets, the new driver inflates again",
             DeviceOptions(guest_mib=256), (192,), resets=1),
)}
"""Every scenario by name."""

NOT_CAPTURED: dict[str, str] = {
    "huge-pages": "guest RAM backed by 2 MiB host huge pages needs huge pages reserved on the host "
                  "(/proc/sys/vm/nr_hugepages); a capture does not change the host's settings",
}
"""Parts of the real system no scenario captures yet, and why."""


def queue_names(features: frozenset[str]) -> tuple[str, ...]:
    """The balloon's virtqueues in index order for the negotiated ``features``."""
    names = ["inflateq", "deflateq"]
    if "STATS_VQ" in features:
        names.append("statsq")
    if "FREE_PAGE_HINT" in features:
        names.append("free_page_vq")
    if "PAGE_REPORTING" in features:
        names.append("reporting_vq")
    return tuple(names)


def unjudged_buffers(trace_log: str | os.PathLike[str], features: frozenset[str]) -> dict[str, int]:
    """Buffers on queues other than inflateq and deflateq, by queue name: the model has no
    action for them, so neither judge says anything about what they carried."""
    names = queue_names(features)
    counts: Counter[str] = Counter()
    for ev in read_trace(trace_log):
        if isinstance(ev, QueueBuffer) and ev.queue not in (QUEUE_INFLATE, QUEUE_DEFLATE):
            counts[names[ev.queue] if ev.queue < len(names) else f"queue {ev.queue}"] += 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class ScenarioRun:
    """A scenario's capture, the negotiated features and the buffers no judge looked into."""

    scenario: Scenario
    result: CaptureResult
    features: frozenset[str]
    unjudged: dict[str, int]

    def coverage_lines(self) -> list[str]:
        """What the judges did not see, one line each (empty when they saw everything)."""
        lines = [f"not judged: {n} buffer(s) on {q} (the model has no action for that queue)"
                 for q, n in self.unjudged.items()]
        return lines + [f"not shown: {note}" for note in self.scenario.notes]


def run_scenario(name: str, out_dir: str | os.PathLike[str], *, timeout_s: float | None = None) -> ScenarioRun:
    """Capture scenario ``name`` into ``out_dir`` (raises KeyError for an unknown name)."""
    sc = SCENARIOS[name]
    result = capture(out_dir, list(sc.targets_mib), settle_s=sc.settle_s,
                     timeout_s=timeout_s if timeout_s is not None else sc.timeout_s,
                     compaction=sc.compaction, resets=sc.resets, options=sc.options, idle_s=sc.idle_s)
    features = frozenset(decode_features(result.guest_features or 0))
    if result.guest_features is None and sc.options.deflate_on_oom:
        features = frozenset({"DEFLATE_ON_OOM"})
    return ScenarioRun(sc, result, features, unjudged_buffers(Path(result.trace_log), features))
