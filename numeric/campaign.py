# mypy: disable-error-code="no-any-return"
"""Campaign mode: many seeds spread over local worker processes.

Each seed is an independent run (:func:`ballast.numeric.runner.fuzz_seed`);
a failing seed reproduces alone with the same arguments. Results arrive as
they finish so the command line can show progress; nothing here prints.

>>> from ballast.model.config import Config
>>> out = list(run_campaign(Config(vms=2, guest_pages=8, machine_pages=12), range(2),
...                         workers=1, batches=10))
>>> sorted(r.seed for r in out)
[0, 1]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ballast.argtypes import whole_number
from ballast.forked import forked_stream
from ballast.model.config import Config
from ballast.numeric.runner import SeedResult, fuzz_seed

__all__ = ["MAX_SEED", "MAX_SEEDS", "CampaignSummary", "SeedJob", "parse_seeds", "run_campaign",
           "summarise"]

MAX_SEED = 2**63 - 1
"""The largest seed, as ``--seed`` takes it (:func:`ballast.argtypes.seed`): what a trace
records and NumPy's generators take."""

MAX_SEEDS = 1_000_000
"""The most seeds one campaign runs: each is a run of its own with a result kept in memory,
so a longer range is a typing slip (and ``len`` of a range past 2**63 cannot be taken)."""


@dataclass(frozen=True)
class SeedJob:
    """One seed's run: the arguments of :func:`~ballast.numeric.runner.fuzz_seed` that fix
    its figures, verdict and counterexample, wherever it runs (a local worker process or a
    Dask worker)."""

    cfg: Config
    seed: int
    faults: tuple[str, ...]
    batches: int
    frac: float
    check_every: int


@dataclass(frozen=True)
class _Job(SeedJob):
    """A seed run here: it also writes its counterexample and stops at the wall-clock limit."""

    report_dir: Path | None = None
    deadline: float | None = None


def _run(job: _Job) -> SeedResult:
    if job.deadline is not None and time.perf_counter() > job.deadline:
        return SeedResult(job.seed)  # not started: the wall-clock limit was reached
    return fuzz_seed(job.cfg, seed=job.seed, faults=job.faults, batches=job.batches,
                     frac=job.frac, check_every=job.check_every, report_dir=job.report_dir,
                     deadline=job.deadline)


def parse_seeds(text: str) -> range:
    """``A..B`` (inclusive) or a single seed, each from 0 to :data:`MAX_SEED` and written
    with the digits 0-9, at most :data:`MAX_SEEDS` of them; ValueError says which rule
    ``text`` breaks.

    >>> parse_seeds("3..5"), parse_seeds("17")
    (range(3, 6), range(17, 18))
    >>> parse_seeds("0..1000000")
    Traceback (most recent call last):
    ...
    ValueError: a range holds at most 1,000,000 seeds, this one 1,000,001
    >>> parse_seeds("-1..2")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: a seed is a whole number from 0 to 9223372036854775807 (2**63-1, as --seed
    takes), got -1
    """
    a, dots, b = text.partition("..")
    parts = (a, b) if dots else (a,)
    values = [whole_number(part) for part in parts]
    if None in values:  # not a number, a blank, another script's digits, ...
        raise ValueError("expected A..B (inclusive) or one seed N, written with the digits "
                         "0-9")
    bounds = [v for v in values if v is not None]
    for part, value in zip(parts, bounds):
        if not 0 <= value <= MAX_SEED:
            raise ValueError(f"a seed is a whole number from 0 to {MAX_SEED} (2**63-1, as "
                             f"--seed takes), got {part}")
    lo, hi = bounds[0], bounds[-1]
    if hi < lo:
        raise ValueError("the range is empty (A..B needs A <= B)")
    if hi - lo + 1 > MAX_SEEDS:
        raise ValueError(f"a range holds at most {MAX_SEEDS:,} seeds, this one "
                         f"{hi - lo + 1:,}")
    return range(lo, hi + 1)


def run_campaign(cfg: Config, seeds: Iterable[int], *, workers: int = 1,
                 faults: Sequence[str] = (), batches: int = 200, frac: float = 0.5,
                 check_every: int = 1, report_dir: Path | None = None,
                 max_seconds: float | None = None) -> Iterator[SeedResult]:
    """Yield each seed's result as it finishes (any order).

    With ``workers`` above one, the seeds are shared out in slices, each run in a fresh
    process forked from this one that sends each seed's result as it has it
    (:func:`~ballast.forked.forked_stream`): a worker killed before it finished its slice
    is :class:`~ballast.errors.WorkerLost` naming its seeds, at once.

    ``max_seconds`` (wall clock, only when asked) stops every seed's batches at that
    time; a seed cut short has fewer than ``batches`` batches."""
    # perf_counter is the system-wide monotonic clock, the same in forked workers.
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    jobs = [_Job(cfg, s, tuple(faults), batches, frac, check_every, report_dir, deadline)
            for s in seeds]
    if workers <= 1:
        for job in jobs:
            yield _run(job)
        return
    size = max(1, math.ceil(len(jobs) / (workers * _SLICES_PER_WORKER)))
    slices = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    yield from forked_stream(_run_slice, slices, workers=workers, name=_slice_name)


_SLICES_PER_WORKER = 4
"""Slices of seeds per worker process: enough that a worker given slow seeds does not keep
the others waiting long, few enough that forking costs nothing next to the seeds' runs."""


def _run_slice(jobs: list[_Job]) -> Iterator[SeedResult]:
    for job in jobs:
        yield _run(job)


def _slice_name(jobs: list[_Job]) -> str:
    """``seed 7``, ``seeds 8..15``, or ``3 seeds from 40`` when they do not follow each other."""
    seeds = [job.seed for job in jobs]
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}..{seeds[-1]}"
    return f"{len(seeds)} seeds from {seeds[0]}"


@dataclass(frozen=True)
class CampaignSummary:
    """Totals over a campaign."""

    seeds: int
    ops: int
    checks: int
    seconds: float
    failing: tuple[int, ...]
    properties: tuple[str, ...]
    """The properties the failing seeds' traces break when the reference model replays
    them."""
    cut_short: tuple[int, ...] = ()
    """Seeds without a violation that did not run all their batches (wall-clock limit)."""
    never_fired: tuple[str, ...] = ()
    """Actions the workload draws that took effect in no seed: the campaign checked nothing
    that follows them (inconclusive, as a never-exercised action is to ``ballast check``)."""
    unconfirmed: tuple[int, ...] = ()
    """Seeds whose violation the reference model did not reproduce (no trace written): the
    NumPy core and the model disagree, a bug in Ballast; no verdict (inconclusive), as the
    numeric checker of ``ballast check`` says of it."""
    actions: dict[str, int] = field(default_factory=dict)
    """Operations that took effect per action, over every seed (the actions ``drawn``
    first, in the model's order, then any other)."""
    fault_seeds: dict[str, int] = field(default_factory=dict)
    """Seeded fault -> the seeds in which its step did otherwise than the model's own at
    least once (:class:`~ballast.numeric.fault_watch.FaultWatch`)."""
    never_deviated: tuple[str, ...] = ()
    """Seeded faults whose step did what the model's does in every batch of every seed: the
    fault's branch was never exercised, so no seed could catch it (inconclusive, never a
    pass)."""


def summarise(results: Sequence[SeedResult], batches: int | None = None,
              drawn: Sequence[str] = (), faults: Sequence[str] = ()) -> CampaignSummary:
    """Totals, failing seeds (sorted: those whose violation the reference model reproduced),
    the properties they broke, the seeds whose violation it did not reproduce, which of
    the actions ``drawn`` (:func:`~ballast.numeric.workload.drawn_actions`) never took
    effect, how often each action did, and in how many seeds each seeded fault of
    ``faults`` did otherwise than the model (those that never did).

    >>> from ballast.numeric.runner import SeedResult
    >>> s = summarise([SeedResult(0, actions_seen={"guest_read": 3}),
    ...                SeedResult(1, actions_seen={"guest_read": 2, "rogue_report": 1},
    ...                           fault_deviated={"vmm_accepts_flood": 40})],
    ...               drawn=["guest_read", "guest_write"], faults=["vmm_accepts_flood"])
    >>> s.actions, s.never_fired
    ({'guest_read': 5, 'guest_write': 0, 'rogue_report': 1}, ('guest_write',))
    >>> s.fault_seeds, s.never_deviated
    ({'vmm_accepts_flood': 1}, ())
    """
    found = sorted((r for r in results if r.violation is not None), key=lambda r: r.seed)
    # A violation is reported only once the model reproduced it (``error`` says why not).
    bad = [r for r in found if r.error is None]
    actions = dict.fromkeys(drawn, 0)
    for r in results:
        for name, n in r.actions_seen.items():
            actions[name] = actions.get(name, 0) + n
    deviated = {f: sum(1 for r in results if f in r.fault_deviated)
                for f in dict.fromkeys(faults)}
    return CampaignSummary(
        seeds=len(results), ops=sum(r.ops for r in results),
        checks=sum(r.checks for r in results), seconds=sum(r.seconds for r in results),
        failing=tuple(r.seed for r in bad),
        # What the traces written show when replayed, the violations reported.
        properties=tuple(sorted({r.reported.property if r.reported is not None
                                 else r.violation[0] for r in bad if r.violation})),
        cut_short=tuple(sorted(r.seed for r in results if batches is not None
                               and r.violation is None and r.batches < batches)),
        never_fired=tuple(name for name in drawn if not actions.get(name)),
        unconfirmed=tuple(r.seed for r in found if r.error is not None),
        actions=actions, fault_seeds=deviated,
        never_deviated=tuple(f for f, n in deviated.items() if not n))
