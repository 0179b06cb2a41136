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

import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ballast.model.config import Config
from ballast.numeric.runner import SeedResult, fuzz_seed

__all__ = ["CampaignSummary", "SeedJob", "parse_seeds", "run_campaign", "summarise"]


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
    """``A..B`` (inclusive) or a single seed.

    >>> parse_seeds("3..5"), parse_seeds("17")
    (range(3, 6), range(17, 18))
    """
    if ".." in text:
        a, b = text.split("..", 1)
        lo, hi = int(a), int(b)
    else:
        lo = hi = int(text)
    if hi < lo or lo < 0:
        raise ValueError(f"bad seed range {text!r}")
    return range(lo, hi + 1)


def run_campaign(cfg: Config, seeds: Iterable[int], *, workers: int = 1,
                 faults: Sequence[str] = (), batches: int = 200, frac: float = 0.5,
                 check_every: int = 1, report_dir: Path | None = None,
                 max_seconds: float | None = None) -> Iterator[SeedResult]:
    """Yield each seed's result as it finishes (any order).

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
    # fork: workers start at once and need nothing from the main module.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers) as pool:
        yield from pool.imap_unordered(_run, jobs)


@dataclass(frozen=True)
class CampaignSummary:
    """Totals over a campaign."""

    seeds: int
    ops: int
    checks: int
    seconds: float
    failing: tuple[int, ...]
    properties: tuple[str, ...]
    cut_short: tuple[int, ...] = ()
    """Seeds without a violation that did not run all their batches (wall-clock limit)."""
    never_fired: tuple[str, ...] = ()
    """Actions the workload draws that took effect in no seed: the campaign checked nothing
    that follows them (inconclusive, as a never-exercised action is to ``ballast check``)."""


def summarise(results: Sequence[SeedResult], batches: int | None = None,
              drawn: Sequence[str] = ()) -> CampaignSummary:
    """Totals, failing seeds (sorted), the properties they broke, and which of the actions
    ``drawn`` (:func:`~ballast.numeric.workload.drawn_actions`) never took effect."""
    bad = sorted((r for r in results if r.violation is not None), key=lambda r: r.seed)
    fired = {name for r in results for name, n in r.actions_seen.items() if n}
    return CampaignSummary(
        seeds=len(results), ops=sum(r.ops for r in results),
        checks=sum(r.checks for r in results), seconds=sum(r.seconds for r in results),
        failing=tuple(r.seed for r in bad),
        properties=tuple(sorted({r.violation[0] for r in bad if r.violation})),
        cut_short=tuple(sorted(r.seed for r in results if batches is not None
                               and r.violation is None and r.batches < batches)),
        never_fired=tuple(name for name in drawn if name not in fired))
