"""Campaign mode on a Dask cluster: the seeds mapped over its workers.

Each seed runs on some worker exactly as :func:`ballast.numeric.campaign.run_campaign`
runs it here (:func:`ballast.numeric.runner.fuzz_seed`, the same arguments), so a
seed's figures, verdict and counterexample are the same wherever it ran. A worker
writes nothing: a failing seed's shrunk trace comes back as trace text, and is
replayed through the reference model here and written under ``report_dir``
(:func:`ballast.numeric.runner.write_seed_trace`), as a local run writes it.

Budgets are work (batches per seed); the wall-clock limit of a local campaign is
not offered, since the workers' clocks are not this machine's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ballast.model.config import Config
from ballast.model.trace import Trace, parse_trace
from ballast.numeric.campaign import SeedJob
from ballast.numeric.runner import SeedResult, fuzz_seed, write_seed_trace

__all__ = ["SeedJob", "run_campaign_on", "run_seed_job", "trace_from_text"]


def run_seed_job(job: SeedJob) -> SeedResult:
    """Run one seed on a worker; a counterexample is kept as trace text, not written."""
    return fuzz_seed(job.cfg, seed=job.seed, faults=job.faults, batches=job.batches,
                     frac=job.frac, check_every=job.check_every, report_dir=None,
                     keep_trace=True)


def trace_from_text(text: str, seed: int) -> Trace:
    """The trace a worker sent, as the run made it (steps not tied to lines of a file)."""
    trace = parse_trace(text.splitlines(), f"seed {seed}'s counterexample")
    return Trace(trace.header, tuple(replace(step, line=None) for step in trace.steps))


def run_campaign_on(client: Any, cfg: Config, seeds: Iterable[int], *,
                    faults: Sequence[str] = (), batches: int = 200, frac: float = 0.5,
                    check_every: int = 1, report_dir: Path | None = None
                    ) -> Iterator[SeedResult]:
    """Yield each seed's result as it finishes (any order), its counterexample (if any)
    replayed and written under ``report_dir``. ``client``: a Dask client
    (:func:`ballast.cluster.connected`)."""
    import distributed

    as_completed: Any = distributed.as_completed  # untyped in Dask
    jobs = [SeedJob(cfg, s, tuple(faults), batches, frac, check_every) for s in seeds]
    futures = client.map(run_seed_job, jobs, pure=False)
    try:
        for future in as_completed(futures):
            result: SeedResult = future.result()
            trace, result.trace = result.trace, None
            if trace is not None and report_dir is not None:
                write_seed_trace(result, trace_from_text(trace, result.seed), report_dir)
            yield result
    finally:
        client.cancel(futures)
