# mypy: disable-error-code="no-any-return"
"""The numeric core as part of ``ballast check``: seeded random runs at scale.

The configuration's features are kept and its sizes scaled (``SUITE_SIZE``: 1,024
VMs x 1,024 PPNs); the work is counted, not timed: ``budget.numeric_seeds`` seeds
of ``budget.numeric_batches`` batches each (4 x 200 by default, about 200,000
operations, every invariant after every batch: some 30 seconds on one core). The same
seed gives the same operations and figures on any machine. Only a wall-clock limit the
user asked for (``--max-seconds``) can stop it early, and then the result is
inconclusive, never a pass. So is a property a seeded fault is there to break when the
fault's step never did otherwise than the model's own in any seed
(:class:`~ballast.numeric.fault_watch.FaultWatch`): its branch was never exercised.

>>> from pathlib import Path
>>> from ballast.budget import WorkBudget
>>> from ballast.model.config import preset
>>> r = suite_check(preset("core"), report_dir=Path("/nonexistent"), budget=WorkBudget(),
...                 size=SuiteSize(vms=4, pages=16, seeds=1, batches=20))
>>> sorted({x.verdict.value for x in r.results if x.kind == "invariant"})
['pass']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ballast.model.encodings import Gaps
from ballast.budget import WorkBudget, out_of_time
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.numeric.encodes import gaps_in
from ballast.numeric.runner import CHECKER, SeedResult, finding_line, fuzz_seed
from ballast.numeric.scale import scaled, with_faults
from ballast.numeric.workload import drawn_actions
from ballast.progress import Meter, meter
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["SUITE_SIZE", "SuiteSize", "suite_check"]


@dataclass(frozen=True)
class SuiteSize:
    """How much random checking ``ballast check`` does on the numeric core."""

    vms: int = 1024
    pages: int = 1024
    seeds: int = 8
    batches: int = 400
    check_every: int = 1
    """Batches between invariant sweeps: every batch, since a violation one batch makes
    can be undone by the next (a free MPN left dirty is overwritten when it is reused)."""


SUITE_SIZE = SuiteSize()
"""The sizes: 1024 VMs x 1024 PPNs (2**20 guest pages); seeds and batches come from
the work budget (:class:`~ballast.budget.WorkBudget`) unless a size is given."""


def _batches_on(shown: Meter, before: int, note: str) -> Callable[[int], None]:
    """A seed's batch callback counting on ``shown`` after the ``before`` batches of the
    seeds already run."""
    return lambda n: shown.update(before + n, note=note)


def suite_check(cfg: Config, *, faults: tuple[str, ...] = (), seed: int = 0,
                report_dir: Path, budget: WorkBudget = WorkBudget(),
                size: SuiteSize | None = None) -> CheckResult:
    """Run ``size.seeds`` seeds from ``seed`` at scale; one result per property.

    Without ``size``: ``SUITE_SIZE`` with the budget's seeds and batches."""
    if size is None:
        size = replace(SUITE_SIZE, seeds=budget.numeric_seeds, batches=budget.numeric_batches)
    t0 = time.perf_counter()
    gaps = gaps_in(cfg, faults)
    if gaps.blocking:
        return _not_checked(cfg, gaps, t0)
    big = with_faults(scaled(cfg, vms=size.vms, pages=size.pages), faults, keep_sizes=True)
    deadline = None if budget.max_seconds is None else t0 + budget.max_seconds
    runs: list[SeedResult] = []
    found: SeedResult | None = None
    shown = meter("numeric", total=size.seeds * size.batches, unit="batches")
    for s in range(seed, seed + size.seeds):
        if deadline is not None and time.perf_counter() > deadline:
            break
        r = fuzz_seed(big, seed=s, faults=faults, batches=size.batches,
                      check_every=size.check_every, report_dir=report_dir, deadline=deadline,
                      on_batch=_batches_on(shown, sum(r.batches for r in runs),
                                           f"seed {s - seed + 1} of {size.seeds}, "
                                           f"{big.vms} VMs x {big.guest_pages} PPNs"))
        runs.append(r)
        if r.violation is not None:
            found = r
            break
    shown.close()
    complete = found is None and len(runs) == size.seeds and \
        all(r.batches == size.batches for r in runs)
    ops = sum(r.ops for r in runs)
    sweeps = sum(r.checks for r in runs)
    evidence = {"ops": ops, "invariant_sweeps": sweeps, "seeds": len(runs),
                "batches": sum(r.batches for r in runs), "vms": big.vms,
                "guest_pages": big.vms * big.guest_pages, "first_seed": seed}
    results = []
    # A violation is filed under the property its trace breaks when the reference model
    # replays it (shrinking may end on another property than the whole run's first), and
    # worded as that replay words it.
    broken = None if found is None or found.violation is None else \
        found.reported.property if found.reported is not None else found.violation[0]
    for name, prop in INVARIANTS.items():
        if not prop.feature(big):
            continue
        if found is not None and found.violation is not None and name == broken:
            ok = found.counterexample is not None
            results.append(PropertyResult(
                name, CHECKER, Verdict.VIOLATION if ok else Verdict.INCONCLUSIVE,
                detail=finding_line(found, big) if ok else
                f"seed {found.seed}: {found.violation[1]} ({found.error})",
                evidence={**evidence, "seed": found.seed, "shrunk_steps": found.shrunk_steps,
                          "found": {"property": found.violation[0],
                                    "message": found.violation[1]},
                          **({"trace": found.reported.to_dict()} if found.reported else {})},
                counterexample=Path(found.counterexample) if found.counterexample else None))
        elif complete:
            results.append(PropertyResult(
                name, CHECKER, Verdict.PASS,
                detail=f"held over {ops:,} operations on {big.vms} VMs x {big.guest_pages} "
                       f"PPNs ({len(runs)} seeds, {sweeps} sweeps)", evidence=evidence))
        elif found is not None:
            results.append(PropertyResult(
                name, CHECKER, Verdict.INCONCLUSIVE,
                detail=f"another property broke first, after {ops:,} operations",
                evidence=evidence))
        else:
            done = sum(r.batches for r in runs)
            why = out_of_time(f"stopped after {ops:,} operations ({done:,} of "
                              f"{size.seeds * size.batches:,} batches)",
                              budget.max_seconds or 0)
            results.append(PropertyResult(name, CHECKER, Verdict.INCONCLUSIVE, detail=why,
                                          evidence=evidence))
    results = [_with_gap(r, gaps) for r in results]
    deviated = {f: sum(1 for r in runs if f in r.fault_deviated) for f in dict.fromkeys(faults)}
    if found is None:
        done = sum(r.batches for r in runs)
        for fault in (f for f, n in deviated.items() if not n):
            results = _unexercised(results, fault, len(runs), done)
    seen: dict[str, int] = {}
    for r in runs:
        for k, v in r.actions_seen.items():
            seen[k] = seen.get(k, 0) + v
    results += _action_coverage(big, seen, sum(r.batches for r in runs))
    return CheckResult(CHECKER, results, seconds=time.perf_counter() - t0,
                       stats={"config": big.to_dict(), "ops": ops, "actions": seen,
                              "fault_seeds": deviated,
                              "bytes_per_guest_page": runs[0].bytes_per_page if runs else 0})


def _unexercised(results: list[PropertyResult], fault: str, seeds: int,
                 batches: int) -> list[PropertyResult]:
    """The seeded ``fault`` never did otherwise than the model's own step: what the runs
    checked of the properties it is there to break (every one it may be caught as, or all
    where the configuration has none of those) is no pass, but inconclusive, naming it."""
    spec = FAULTS[fault]
    aimed = [name for name in spec.caught_as if any(r.property == name for r in results)]
    why = (f"the seeded fault {fault} was never exercised: its {spec.action} never did "
           f"otherwise than the model's in {batches:,} batches ({seeds} seeds), so no run "
           "could catch it; raise --numeric-seeds or --numeric-batches")
    return [PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE, why,
                           {**r.evidence, "fault_never_exercised": fault})
            if r.verdict is Verdict.PASS and r.kind == "invariant"
            and (not aimed or r.property in aimed) else r
            for r in results]


def _action_coverage(big: Config, seen: dict[str, int], batches: int) -> list[PropertyResult]:
    """Which of the actions the workload draws took effect (``seen``: operations per
    action): fired, or never fired in ``batches`` batches. An action it never draws is left
    out, so ``ballast check`` counts it out of this checker's reach."""
    return [PropertyResult(f"action:{name}", CHECKER,
                           Verdict.PASS if seen.get(name) else Verdict.VACUOUS,
                           f"fired {seen[name]:,} times" if seen.get(name) else
                           f"drawn, never took effect in {batches:,} batches", kind="action")
            for name in drawn_actions(big)]


def _with_gap(r: PropertyResult, gaps: Gaps) -> PropertyResult:
    """A pass on a property the numeric core does not fully encode becomes inconclusive."""
    if r.verdict is not Verdict.PASS or not gaps.affects(r.property):
        return r
    return PropertyResult(r.property, r.checker, Verdict.INCONCLUSIVE,
                          gaps.reason(r.property), {**r.evidence, "gap": gaps.what(r.property)})


def _not_checked(cfg: Config, gaps: Gaps, t0: float) -> CheckResult:
    """Every property inconclusive: a seeded fault the numeric core cannot run."""
    results = [PropertyResult(name, CHECKER, Verdict.INCONCLUSIVE, gaps.reason(name),
                              {"gap": gaps.what(name)})
               for name, prop in INVARIANTS.items() if prop.feature(cfg)]
    return CheckResult(CHECKER, results, seconds=time.perf_counter() - t0,
                       stats={"gap": gaps.what()})
