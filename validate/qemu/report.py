"""A compact Markdown report of a QEMU capture's validation, sized for big guests.

A guest of hundreds of thousands of pages makes a step-by-step report (every state, every
page) as large as the guest; this one is as large as the number of host requests.  It
gives the verdicts of the three judges, one row per target the host set (when, how far the
guest moved, in how many buffers, what ``actual`` it reached), the first finding with its
trace line, and the commands that show the detail.

>>> from ballast.validate.qemu.trace_reader import read_trace
>>> rows = phases(read_trace(["virtio_balloon_to_target balloon target: 0x0 num_pages: 2",
...                           "virtio_queue_notify vdev 0x1 n 0 vq 0x2",
...                           "virtio_balloon_handle_output section name: pc.ram gpa: 0x5000",
...                           "virtio_notify vdev 0x1 vq 0x2",
...                           "virtio_balloon_set_config actual: 1 oldactual: 0"]))
>>> rows[0].num_pages, rows[0].inflated, rows[0].buffers, rows[0].actual
(2, 1, 1, 1)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ballast.validate.qemu.events import (
    ConfigWrite,
    DeflateBuffer,
    DeviceStatus,
    HostTarget,
    InflateBuffer,
    TraceEvent,
)
from ballast.validate.qemu.trace_reader import read_trace

__all__ = ["Phase", "compact_report", "phases"]

_MAX_ROWS = 200


@dataclass
class Phase:
    """What happened from one host target to the next."""

    line: int
    time: float | None
    num_pages: int
    inflated: int = 0
    deflated: int = 0
    buffers: int = 0
    actual: int | None = None
    resets: int = 0


def phases(events: Iterable[TraceEvent]) -> list[Phase]:
    """One :class:`Phase` per ``virtio_balloon_to_target`` (a first one from line 1 when the
    trace starts with something else), counting buffers, pages, resets and the last ``actual``."""
    rows: list[Phase] = []
    for ev in events:
        if isinstance(ev, HostTarget):
            rows.append(Phase(ev.line, ev.time, ev.num_pages))
            continue
        if not rows:
            rows.append(Phase(1, None, 0))
        row = rows[-1]
        if isinstance(ev, InflateBuffer) and ev.pfns:
            row.inflated += len(ev.pfns)
            row.buffers += 1
        elif isinstance(ev, DeflateBuffer) and ev.pfns:
            row.deflated += len(ev.pfns)
            row.buffers += 1
        elif isinstance(ev, ConfigWrite):
            row.actual = ev.actual
        elif isinstance(ev, DeviceStatus) and ev.value == 0:
            row.resets += 1
    return rows


def compact_report(trace_log: str | os.PathLike[str], outcome: Any, *,
                   title: str = "QEMU capture") -> str:
    """The Markdown report of ``outcome`` (a :class:`~ballast.cli.validate.QemuOutcome` of
    ``trace_log``)."""
    rows = phases(read_trace(trace_log))
    rep, model, qmp = outcome.report, outcome.model, outcome.qmp
    verdict = ("NOT clean" if not outcome.clean else
               "nothing judged" if outcome.nothing_judged is not None else "clean")
    out = [f"# {title}: {verdict}", ""]
    out.append(f"- trace: `{os.fspath(trace_log)}`; "
               f"guest: {outcome.guest_pages or 0:,} pages of 4 KiB; "
               f"features: {', '.join(sorted(outcome.features)) or 'none'}")
    v = rep.violation
    out.append("- VirtIO 5.5 rules: "
               + ("hold" if v is None else f"`{v.rule}` broken at line {v.line}: {v.message}")
               + f" ({rep.events:,} events, {rep.inflated:,} pages inflated, "
                 f"{rep.deflated:,} deflated)")
    if model is None:
        out.append("- reference model: not asked")
    elif model.ok:
        out.append(f"- reference model: {model.steps:,} steps explained, every property holds")
    else:
        what = f"breaks `{model.property}`" if model.property else "is not explained"
        out.append(f"- reference model: step {model.step} `{model.action}` (line {model.line}) "
                   f"{what}: {model.reason}")
    moved = getattr(outcome, "moved", None)
    if moved is not None and moved.count:
        out.append(f"- `actual` writes judged after the report they already counted (the driver's "
                   f"order): {moved.count:,}, first at line {moved.lines[0]}")
    ram = getattr(outcome, "ram", None)
    given_back = ram.summary() if ram is not None else None
    if given_back:
        out.append(f"- {given_back[0].upper()}{given_back[1:]}")
    if qmp is None:
        out.append("- QMP cross-checks: no QMP log")
    else:
        out.append("- QMP cross-checks: " + ("hold" if not qmp else
                   "; ".join(f"`{f.check}` broken ({f.file} line {f.line}): {f.message}"
                             for f in qmp)))
    out += ["", "| trace line | host target (pages) | buffers | pages inflated | pages deflated | "
            "actual after | status resets |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows[:_MAX_ROWS]:
        out.append(f"| {row.line} | {row.num_pages:,} | {row.buffers:,} | {row.inflated:,} | "
                   f"{row.deflated:,} | {'' if row.actual is None else f'{row.actual:,}'} | "
                   f"{row.resets} |")
    if len(rows) > _MAX_ROWS:
        out.append(f"| ... | {len(rows) - _MAX_ROWS:,} more targets | | | | | |")
    name = os.fspath(trace_log)
    out += ["", "Detail: `ballast validate --format qemu " + name + " --emit-trace model.jsonl` "
            "writes every step as a model trace for `ballast replay`."]
    return "\n".join(out) + "\n"
