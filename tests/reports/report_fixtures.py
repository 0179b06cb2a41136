"""Fixed traces for the report tests, built by hand from the model's own actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.verdict import CheckResult, PropertyResult, Verdict

# A seeded fault (the VMM never unmaps reclaimed pages) caught by a short run:
# the guest writes, the host takes a page and swaps one of VM 1's pages out,
# VM 0's guest pages one out itself, then VM 0 inflates and the faulty reclaim
# leaves PPN 0 ballooned but still backed.
RECLAIM_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("guest_write", {"vm": 0, "vpn": 0, "token": 1}),
    ("guest_write", {"vm": 0, "vpn": 1, "token": 2}),
    ("guest_write", {"vm": 1, "vpn": 0, "token": 2}),
    ("host_take_page", {"host_page": 5}),
    ("host_swap_out", {"vm": 1, "ppn": 0}),
    ("guest_evict", {"vm": 0, "vpn": 0}),
    ("host_set_target", {"vm": 0, "pages": 2}),
    ("balloon_poll", {"vm": 0}),
    ("balloon_inflate", {"vm": 0, "ppns": [0, 2]}),
    ("vmm_reclaim", {"vm": 0, "refuse": []}),
]
RECLAIM_CONFIG = Config(host_swap=True)


def make_trace(steps: Sequence[tuple[str, Mapping[str, Any]]], cfg: Config, *,
               faults: tuple[str, ...] = (), source: dict[str, object] | None = None,
               expect: dict[str, object] | None = None) -> Trace:
    """A trace of the given actions (no recorded states)."""
    return Trace(TraceHeader(cfg, faults=faults, source=source or {}, expect=expect),
                 tuple(TraceStep(i, Action.of(name, **args))
                       for i, (name, args) in enumerate(steps, start=1)))


def reclaim_trace(seed: int = 7) -> Trace:
    return make_trace(RECLAIM_STEPS, RECLAIM_CONFIG, faults=("reclaim_keeps_mapping",),
                      source={"checker": "random", "seed": seed},
                      expect={"property": "ballooned_pages_unbacked", "step": len(RECLAIM_STEPS)})


def check_results(counterexample: Path) -> list[CheckResult]:
    """A fixed ``ballast check`` outcome: three checkers, one violation, one unknown, and
    scenario coverage pooled over all checkers (checker ``all``) as ``ballast check`` adds it."""
    inv = list(INVARIANTS)
    rnd = CheckResult("random", seconds=1.25, stats={
        "steps": 20000, "seed": 7, "actions": {"guest_write": 5000, "balloon_inflate": 700,
                                               "vmm_reclaim": 650}})
    for name in inv:
        if name == "ballooned_pages_unbacked":
            rnd.results.append(PropertyResult(
                name, "random", Verdict.VIOLATION,
                detail="VM 0: ballooned PPN 0 is still backed by MPN 0",
                evidence={"steps": 10, "seed": 7, "seconds": 0.5},
                counterexample=counterexample))
        elif name == "processor_conservation":
            rnd.results.append(PropertyResult(name, "random", Verdict.SKIPPED,
                                              detail="processors are switched off"))
        else:
            rnd.results.append(PropertyResult(name, "random", Verdict.PASS,
                                              evidence={"steps": 20000, "seconds": 0.1}))
    rnd.results.append(PropertyResult("partial_fill", "random", Verdict.PASS,
                                      evidence={"count": 12}, kind="scenario"))
    rnd.results.append(PropertyResult("deflate_under_memory_pressure", "random",
                                      Verdict.VACUOUS, kind="scenario"))
    explore = CheckResult("explore", seconds=3.5, stats={"states": 48213, "depth": 14})
    for name in inv[:4]:
        explore.results.append(PropertyResult(name, "explore", Verdict.PASS,
                                              evidence={"states": 48213, "seconds": 3.5}))
    prove = CheckResult("prove", seconds=0.75, stats={"queries": 5})
    prove.results.append(PropertyResult("memory_conservation", "prove", Verdict.PASS,
                                        evidence={"proved": True, "seconds": 0.25,
                                                  "query": "conservation_inductive"}))
    prove.results.append(PropertyResult("isolation", "prove", Verdict.INCONCLUSIVE,
                                        detail="solver returned unknown after 30 s",
                                        evidence={"seconds": 0.5, "query": "isolation_step"}))
    pooled = CheckResult("coverage", [
        PropertyResult("partial_fill", "all", Verdict.PASS, "exercised by random", kind="scenario"),
        PropertyResult("deflate_under_memory_pressure", "all", Verdict.VACUOUS,
                       "no checker exercised it", kind="scenario")])
    return [rnd, explore, prove, pooled]
