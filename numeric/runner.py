# mypy: disable-error-code="no-any-return"
"""One seeded numeric run at scale: random batches, invariants at an interval, shrink on failure.

A run is fully determined by (config, faults, seed, batches, frac): the same
arguments give the same operations, so every failing seed reproduces alone.
On a violation the operations become a trace in the project's format, are
shrunk (:mod:`ballast.numeric.shrink`) and written through
``write_counterexample``, which replays them through the reference model first.

>>> from ballast.model.config import Config
>>> r = fuzz_seed(Config(vms=4, guest_pages=16, machine_pages=48), seed=3, batches=30)
>>> r.violation is None and r.ops > 0
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.numeric.engine import Engine
from ballast.numeric.fault_watch import FaultWatch
from ballast.numeric.invariants import violations
from ballast.numeric.shrink import shrink_run
from ballast.numeric.workload import Batch, batch_actions, enabled_names, step_batch, WEIGHTS

if TYPE_CHECKING:  # the reports load only when a counterexample is written
    from ballast.reports.counterexample import TraceFinding

__all__ = ["SeedResult", "finding_line", "fuzz_seed", "make_trace", "report_violation",
           "shrunk_trace", "write_seed_trace"]

CHECKER = "numeric"


@dataclass
class SeedResult:
    """What one seed did."""

    seed: int
    ops: int = 0
    batches: int = 0
    checks: int = 0
    seconds: float = 0.0
    violation: tuple[str, str] | None = None
    """(property, message) found by the numeric core on the whole run: another VM, step,
    page and perhaps property than the trace written shows (:attr:`reported`)."""
    shrunk_steps: int | None = None
    counterexample: str | None = None
    """Path of the trace written (replayed through the reference model)."""
    reported: TraceFinding | None = None
    """What the trace written shows when the reference model replays it: the violation
    reported (:func:`finding_line`)."""
    error: str | None = None
    bytes_per_page: float = 0.0
    actions_seen: dict[str, int] = field(default_factory=dict)
    """Operations that took effect, per action."""
    fault_deviated: dict[str, int] = field(default_factory=dict)
    """Seeded fault -> the batch (counted from 1) in which its step first did otherwise than
    the model's own (:class:`~ballast.numeric.fault_watch.FaultWatch`); a seeded fault
    missing here never did: this seed did not exercise it."""
    trace: str | None = None
    """The shrunk counterexample as trace text, not yet replayed nor written (a run that
    keeps its trace for the machine that asked for it: :func:`write_seed_trace`)."""


def make_trace(cfg: Config, faults: Sequence[str], actions: Sequence[Action], seed: int,
               prop: str | None) -> Trace:
    """The operations as a trace of the project's format."""
    header = TraceHeader(
        config=cfg, faults=tuple(faults), source={"checker": CHECKER, "seed": seed},
        expect={"property": prop, "step": len(actions)} if prop else None)
    return Trace(header, tuple(TraceStep(i + 1, a) for i, a in enumerate(actions)))


def fuzz_seed(cfg: Config, *, seed: int, faults: Sequence[str] = (), batches: int = 200,
              frac: float = 0.5, check_every: int = 1, report_dir: Path | None = None,
              shrink: bool = True, deadline: float | None = None,
              on_batch: Callable[[int], None] | None = None,
              keep_trace: bool = False) -> SeedResult:
    """Run ``batches`` random batches from ``seed``; check invariants every ``check_every``
    batches and at the end; shrink and write a counterexample on a violation.
    ``on_batch`` is told the number of batches run so far, after each (progress).
    ``keep_trace`` (without ``report_dir``): shrink, and keep the trace as text in
    :attr:`SeedResult.trace` instead of writing it."""
    t0 = time.perf_counter()
    res = SeedResult(seed)
    eng = Engine(cfg, faults)
    res.bytes_per_page = eng.arr.nbytes() / (cfg.vms * cfg.guest_pages)
    rng = np.random.default_rng(seed)
    names = enabled_names(eng)
    w = np.array([WEIGHTS[n] for n in names], dtype=float)
    w /= w.sum()
    log: list[Batch] = []
    clean = 0  # operations known to keep every state invariant
    watch = FaultWatch(eng) if faults else None
    for i in range(batches):
        name = names[int(rng.choice(len(names), p=w))]
        b = step_batch(eng, rng, name, frac, watch, batch=i + 1)
        if b is not None:
            log.append(b)
            res.ops += len(b.vms)
            res.actions_seen[name] = res.actions_seen.get(name, 0) + len(b.vms)
        res.batches = i + 1
        if on_batch is not None:
            on_batch(res.batches)
        if eng.step_violations:
            sv = eng.step_violations[0]
            res.violation = (sv.property, sv.message)
            break
        if (i + 1) % check_every == 0 or i == batches - 1:
            res.checks += 1
            bad = violations(eng.arr)
            if bad:
                res.violation = bad[0]
                break
            clean = res.ops
        if deadline is not None and time.perf_counter() > deadline:
            break
    if res.violation is not None and report_dir is not None:
        actions = [a for b in log for a in batch_actions(b)]
        report_violation(res, cfg, faults, actions, report_dir, shrink=shrink,
                         clean_prefix=clean)
    elif res.violation is not None and keep_trace:
        from ballast.model.trace import trace_text
        actions = [a for b in log for a in batch_actions(b)]
        trace = shrunk_trace(res, cfg, faults, actions, shrink=shrink, clean_prefix=clean)
        res.trace = trace_text(trace) if trace is not None else None
    if watch is not None:
        res.fault_deviated = dict(watch.first)
    res.seconds = time.perf_counter() - t0
    return res


def report_violation(res: SeedResult, cfg: Config, faults: Sequence[str],
                     actions: list[Action], report_dir: Path, *, shrink: bool = True,
                     clean_prefix: int = 0) -> None:
    """Shrink the failing run and write it through ``write_counterexample``."""
    trace = shrunk_trace(res, cfg, faults, actions, shrink=shrink, clean_prefix=clean_prefix)
    if trace is not None:
        write_seed_trace(res, trace, report_dir)


def shrunk_trace(res: SeedResult, cfg: Config, faults: Sequence[str], actions: list[Action],
                 *, shrink: bool = True, clean_prefix: int = 0) -> Trace | None:
    """The failing run, shrunk, as a trace (:attr:`SeedResult.shrunk_steps` set); None, with
    :attr:`SeedResult.error` set, when the reference model does not reproduce it."""
    from ballast.reports.counterexample import CounterexampleNotReproduced
    assert res.violation is not None
    prop, message = res.violation
    try:
        if shrink:
            cfg, actions, prop = shrink_run(cfg, faults, actions, prop, message,
                                            clean_prefix=clean_prefix)
    except CounterexampleNotReproduced as exc:
        res.error = f"the reference model does not reproduce it: {exc}"
        return None
    res.shrunk_steps = len(actions)
    return make_trace(cfg, faults, actions, res.seed, prop)


def write_seed_trace(res: SeedResult, trace: Trace, report_dir: Path) -> None:
    """Replay ``trace`` (seed ``res.seed``'s counterexample) through the reference model and
    write it under ``report_dir``: :attr:`SeedResult.counterexample` is its path, or
    :attr:`SeedResult.error` says why the model does not reproduce it."""
    from ballast.reports.counterexample import CounterexampleNotReproduced, write_counterexample
    prop = (trace.header.expect or {}).get("property")
    name = f"numeric-{prop}-{'-'.join(trace.header.faults) or 'model'}-seed{res.seed}"
    try:
        cx = write_counterexample(trace, report_dir, name=name)
        res.counterexample = str(cx.trace_path)
        res.reported = cx.finding
    except CounterexampleNotReproduced as exc:
        res.error = f"the reference model does not reproduce it: {exc}"


def finding_line(res: SeedResult, cfg: Config) -> str:
    """The one line of seed ``res.seed``'s violation on ``cfg`` (the configuration it ran):
    what its trace shows when replayed (step, action and VM, property, the model's message:
    the words ``ballast replay`` prints), then how the seed found it on the whole run, which
    names other VMs and pages. Without a trace (the model did not reproduce it, or it was
    not written), what the seed found."""
    assert res.violation is not None
    prop, message = res.violation
    found = (f"found by seed {res.seed} on {cfg.vms:,} VMs x {cfg.guest_pages:,} PPNs after "
             f"{res.ops:,} operations")
    if res.reported is None:
        return f"{found}: {prop}: {message}"
    other = f"{prop}: " if prop != res.reported.property else ""
    n = res.reported.steps
    return (f"{res.reported.line}; {found} as {other}\"{message}\", shrunk to {n} "
            f"step{'' if n == 1 else 's'}")
