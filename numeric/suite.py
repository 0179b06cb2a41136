# mypy: disable-error-code="no-any-return"
"""The numeric core as part of ``ballast check``: seeded random runs at scale.

The configuration's features are kept and its sizes scaled (``SUITE_SIZE``, about
a minute on two cores); a run that does not finish its seeds within the budget
is inconclusive, never a pass.

>>> from pathlib import Path
>>> from ballast.model.config import preset
>>> r = suite_check(preset("core"), report_dir=Path("/nonexistent"), budget_s=60,
...                 size=SuiteSize(vms=4, pages=16, seeds=1, batches=20))
>>> sorted({x.verdict.value for x in r.results})
['pass']
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.numeric.runner import CHECKER, SeedResult, fuzz_seed
from ballast.numeric.scale import scaled, with_faults
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["SUITE_SIZE", "SuiteSize", "suite_check"]


@dataclass(frozen=True)
class SuiteSize:
    """How much random checking ``ballast check`` does on the numeric core."""

    vms: int = 1024
    pages: int = 1024
    seeds: int = 32
    batches: int = 600
    check_every: int = 1
    """Batches between invariant sweeps: every batch, since a violation one batch makes
    can be undone by the next (a free MPN left dirty is overwritten when it is reused)."""


SUITE_SIZE = SuiteSize()
"""The default: 1024 VMs x 1024 PPNs (2**20 guest pages), 32 seeds of 600 batches."""


def suite_check(cfg: Config, *, faults: tuple[str, ...] = (), seed: int = 0,
                report_dir: Path, budget_s: float, size: SuiteSize = SUITE_SIZE
                ) -> CheckResult:
    """Run ``size.seeds`` seeds from ``seed`` at scale; one result per property."""
    t0 = time.perf_counter()
    big = with_faults(scaled(cfg, vms=size.vms, pages=size.pages), faults, keep_sizes=True)
    deadline = t0 + budget_s
    runs: list[SeedResult] = []
    found: SeedResult | None = None
    for s in range(seed, seed + size.seeds):
        if time.perf_counter() > deadline:
            break
        r = fuzz_seed(big, seed=s, faults=faults, batches=size.batches,
                      check_every=size.check_every, report_dir=report_dir, deadline=deadline)
        runs.append(r)
        if r.violation is not None:
            found = r
            break
    complete = found is None and len(runs) == size.seeds and \
        all(r.batches == size.batches for r in runs)
    ops = sum(r.ops for r in runs)
    sweeps = sum(r.checks for r in runs)
    evidence = {"ops": ops, "invariant_sweeps": sweeps, "seeds": len(runs),
                "vms": big.vms, "guest_pages": big.vms * big.guest_pages,
                "first_seed": seed}
    results = []
    for name, prop in INVARIANTS.items():
        if not prop.feature(big):
            continue
        if found is not None and found.violation is not None and found.violation[0] == name:
            ok = found.counterexample is not None
            results.append(PropertyResult(
                name, CHECKER, Verdict.VIOLATION if ok else Verdict.INCONCLUSIVE,
                detail=f"seed {found.seed}: {found.violation[1]}"
                       + ("" if ok else f" ({found.error})"),
                evidence={**evidence, "seed": found.seed, "shrunk_steps": found.shrunk_steps},
                counterexample=Path(found.counterexample) if found.counterexample else None))
        elif complete:
            results.append(PropertyResult(
                name, CHECKER, Verdict.PASS,
                detail=f"held over {ops:,} operations on {big.vms} VMs x {big.guest_pages} "
                       f"PPNs ({len(runs)} seeds, {sweeps} sweeps)", evidence=evidence))
        else:
            why = "another property broke first" if found else "the time budget ran out"
            results.append(PropertyResult(name, CHECKER, Verdict.INCONCLUSIVE,
                                          detail=f"{why} after {ops:,} operations",
                                          evidence=evidence))
    seen: dict[str, int] = {}
    for r in runs:
        for k, v in r.actions_seen.items():
            seen[k] = seen.get(k, 0) + v
    return CheckResult(CHECKER, results, seconds=time.perf_counter() - t0,
                       stats={"config": big.to_dict(), "ops": ops, "actions": seen,
                              "bytes_per_guest_page": runs[0].bytes_per_page if runs else 0})
