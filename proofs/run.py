"""One proof run: the three induction steps, what a failure means, the policy proof.

:func:`prove` runs every query, and for each counterexample to induction (CTI)
decides whether it points at a real bug (a violation reachable from the
initial state, written as a replayed trace) or at an invariant that needs
strengthening: bounded model checking to ``bmc_depth`` first, then, when the
configuration has at most ``reach_states`` reachable states, every one of them
(:mod:`ballast.proofs.reachability`), which makes "unreachable" exact; above
that bound the CTI is only "not reached within ``bmc_depth`` steps". Nothing
here prints; :mod:`ballast.cli.prove` reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ballast.model.encodings import Gaps
from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.replay import ReplayOutcome, replay
from ballast.model.trace import Trace
from ballast.progress import active as progress_shown, meter
from ballast.proofs.bmc import BmcResult, bmc
from ballast.proofs.encodes import gaps_in
from ballast.proofs.induction import CTI, ProofVerdict, QueryResult, induction_queries
from ballast.proofs.limits import BMC_RLIMIT, SolverLimit
from ballast.proofs.policy import prove_policy
from ballast.proofs.properties import SAFETY, STEPS
from ballast.proofs.queries import count_queries, select
from ballast.proofs.reachability import EXACT_MAX_STATES, CtiReach, decide_cti
from ballast.proofs.transitions import ENCODED
from ballast.reports.counterexample import (
    CounterexampleNotReproduced,
    TraceFinding,
    state_diff,
    trace_finding,
    write_counterexample,
)

__all__ = ["Finding", "ProofReport", "coverage", "prove"]


@dataclass
class Finding:
    """What a failed consecution query means."""

    conjunct: str
    action: str
    cti: CTI
    diff: list[tuple[str, object, object]]
    reachability: str
    """``reachable`` (a real bug), ``unreachable`` (proved against every reachable state:
    needs strengthening), ``not-reached`` (no violation within the bounded search's depth;
    too many states to decide exactly), ``strengthening-broken`` (a conjunct that is not a
    model property fails in a reachable state) or ``unknown`` (out of time)."""
    bmc: BmcResult | None = None
    counterexample: Path | None = None
    exact: CtiReach | None = None
    """What enumerating the reachable states decided (None when not tried)."""
    trace: TraceFinding | None = None
    """For a reachable violation: what its trace (:attr:`counterexample`) shows when the
    reference model replays it, the violation reported. The CTI is another state (one that
    satisfies the inductive invariant, reachable or not), often with other VMs and pages."""

    @property
    def reported(self) -> str:
        """The property a reachable violation is reported under: the one its trace breaks
        when replayed (a run to the conjunct may break another property first), else the
        conjunct."""
        return self.trace.property if self.trace is not None else self.conjunct

    @property
    def cti_line(self) -> str:
        """The counterexample to induction in words: the query that failed."""
        what = f"invariant {self.conjunct} is not preserved by action {self.cti.action}"
        if self.cti.out_of_domain is not None:
            what += (f" (the model's successor leaves the encoding's domain: "
                     f"{self.cti.out_of_domain})")
        return what

    @property
    def headline(self) -> str:
        """One line in the issue's words: for a reachable violation, what its trace shows
        when replayed (the words ``ballast replay`` prints), then the CTI it came from."""
        what = self.cti_line
        steps = (len(self.exact.trace.steps) if self.exact is not None and self.exact.trace
                 else self.bmc.depth if self.bmc else "?")
        if self.reachability == "reachable" and self.trace is not None:
            n = self.trace.steps
            return (f"{self.trace.line}; a real bug, reachable in {n} step"
                    f"{'' if n == 1 else 's'}, found from a counterexample to induction: {what}")
        if self.reachability == "reachable":
            other = self.exact.trace.header.expect if self.exact and self.exact.trace else None
            prop = (other or {}).get("property", self.conjunct)
            also = f" ({prop} breaks)" if prop != self.conjunct else ""
            return f"{what}: a real bug, reachable in {steps} steps{also}"
        if self.reachability == "strengthening-broken":
            return (f"{what}: the conjunct fails in a reachable state ({steps} steps); the "
                    f"strengthening is wrong, no model property is shown broken")
        if self.reachability == "unreachable" and self.exact is not None:
            return (f"{what}: unreachable ({self.exact.detail}); the invariant needs "
                    f"strengthening")
        if self.reachability == "not-reached":
            why = f"; {self.exact.detail}" if self.exact is not None else ""
            return (f"{what}: not reached within {self.bmc.depth if self.bmc else '?'} steps "
                    f"of the initial state (reachability not decided{why}); the invariant "
                    f"may need strengthening")
        if self.cti.out_of_domain is not None:
            return f"{what}: reachability not decided by the encoding (inconclusive)"
        why = self.bmc.why if self.bmc is not None and self.bmc.why else "budget ran out"
        return f"{what}: reachability unknown (bounded search: {why})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"conjunct": self.conjunct, "action": str(self.cti.action),
                "headline": self.headline, "reachability": self.reachability,
                "property": self.reported,
                "trace": self.trace.to_dict() if self.trace is not None else None,
                "cti": self.cti_line,
                "pre_state": self.cti.pre.to_dict(),
                "post_diff": [[p, a, b] for p, a, b in self.diff],
                "python_pre_violations": list(self.cti.python_pre_violations),
                "python_post_message": self.cti.python_post_message,
                "out_of_domain": self.cti.out_of_domain,
                "exact": (None if self.exact is None else
                          {"verdict": self.exact.verdict, "states": self.exact.states,
                           "detail": self.exact.detail}),
                "counterexample": str(self.counterexample) if self.counterexample else None}


@dataclass
class ProofReport:
    """Everything one proof run established."""

    cfg: Config
    faults: tuple[str, ...]
    queries: list[QueryResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    gaps: Gaps | None = None
    """What the encoding lacks of the configuration: the properties it touches are never
    proved (see :mod:`ballast.proofs.encodes`)."""

    @property
    def scope(self) -> str:
        """What the proofs cover, in words."""
        c = self.cfg
        return (f"bounded: every state of {c.vms} VMs x {c.guest_pages} PPNs, "
                f"{c.machine_pages} MPNs, {c.guest_data_pages} VPNs per guest "
                f"(reachable or not) that satisfies the inductive invariant; "
                f"other sizes need their own run")

    def property_verdict(self, name: str) -> ProofVerdict:
        """Proved only if every query of the run is proved (the invariant is one whole)."""
        if any(f.reachability == "reachable" and f.reported == name for f in self.findings):
            return ProofVerdict.VIOLATED
        if self.gaps is not None and self.gaps.affects(name):
            return ProofVerdict.UNKNOWN
        if all(q.verdict is ProofVerdict.PROVED for q in self.queries):
            return ProofVerdict.PROVED
        return ProofVerdict.UNKNOWN

    @property
    def exit_code(self) -> int:
        """0 all proved, 1 a reachable violation, 3 anything inconclusive."""
        if any(f.reachability == "reachable" for f in self.findings) or any(
                q.kind == "bmc" and q.verdict is ProofVerdict.VIOLATED for q in self.queries):
            return 1
        if all(q.verdict is ProofVerdict.PROVED for q in self.queries) and not self.gaps:
            return 0
        return 3

    def gap_lines(self) -> list[str]:
        """One line per property the encoding's gaps keep from being proved."""
        gaps = self.gaps
        if not gaps:
            return []
        return [gaps.reason(n, "proved") for n, p in INVARIANTS.items()
                if p.feature(self.cfg) and gaps.affects(n)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"config": self.cfg.to_dict(), "faults": list(self.faults), "scope": self.scope,
                "coverage": coverage(self.cfg), "seconds": round(self.seconds, 3),
                "gaps": self.gap_lines(),
                "exit_code": self.exit_code,
                "queries": [q.to_dict() for q in self.queries],
                "findings": [f.to_dict() for f in self.findings]}


def coverage(cfg: Config) -> dict[str, list[str]]:
    """Which actions and properties of the model the encoding covers in ``cfg``."""
    acts = [n for n, s in ACTIONS.items() if s.feature(cfg)]
    props = [n for n, p in INVARIANTS.items() if p.feature(cfg)]
    return {
        "actions_encoded": [a for a in acts if a in ENCODED],
        "actions_not_encoded": [a for a in acts if a not in ENCODED],
        "invariants_encoded": [p for p in props if p in SAFETY or p in STEPS],
        "step_forms_encoded": [p for p in props if p in STEPS],
        "invariants_not_encoded": [p for p in props if (INVARIANTS[p].state is not None
                                                        and p not in SAFETY)
                                   or (INVARIANTS[p].step is not None and p not in STEPS)],
    }


def _analyse(cfg: Config, faults: tuple[str, ...], q: QueryResult, bmc_depth: int,
             bmc_limit: SolverLimit, report_dir: Path | None,
             reach_states: int = EXACT_MAX_STATES) -> Finding:
    assert q.cti is not None and q.action is not None
    cti = q.cti
    if cti.out_of_domain is not None:
        # The bounded search runs on the same encoding, so it cannot reach such a state.
        return Finding(q.conjunct, q.action, cti, state_diff(cti.pre, cti.post), "unknown")
    res = bmc(cfg, q.conjunct, depth=bmc_depth, faults=faults, limit=bmc_limit, query=q.name)
    exact = None
    trace = res.trace if res.found else None
    if trace is None and reach_states > 0:
        # Not found within the depth: decide it against every reachable state if few enough.
        exact = decide_cti(cfg, faults, q.conjunct, cti.action, cti.pre,
                           max_states=reach_states, query=q.name)
        trace = exact.trace
    reach, path, shown = _reached(trace, report_dir)
    if reach == "strengthening-broken" and faults:
        # A seeded fault breaks a fact the proof rests on a step before it breaks the
        # property it is named with (the module forgets a report it sent; the guest reuses
        # the page next): search for that property's violation instead.
        for prop in _named_properties(cfg, faults):
            found = bmc(cfg, prop, depth=bmc_depth, faults=faults, limit=bmc_limit, query=q.name)
            if found.found and found.trace is not None:
                reach, path, shown = _reached(found.trace, report_dir)
                return Finding(prop, q.action, cti, state_diff(cti.pre, cti.post), reach,
                               found, path, exact, shown)
    if trace is None:
        if exact is not None and exact.verdict == "unreachable":
            reach = "unreachable"
        else:
            reach = "unknown" if res.unknown else "not-reached"
    return Finding(q.conjunct, q.action, cti, state_diff(cti.pre, cti.post), reach, res, path,
                   exact, shown)


def _named_properties(cfg: Config, faults: tuple[str, ...]) -> list[str]:
    """The properties the seeded faults are named with (each fault's own, then the others
    it may break), those switched on in ``cfg``."""
    names = [p for f in faults if f in FAULTS for p in FAULTS[f].caught_as]
    return [p for p in dict.fromkeys(names) if p in INVARIANTS and INVARIANTS[p].feature(cfg)]


def _reached(trace: Trace | None, report_dir: Path | None
             ) -> tuple[str, Path | None, TraceFinding | None]:
    """What a run to a violation means, where its counterexample is written, and what the
    trace shows when the reference model replays it (the violation reported)."""
    if trace is None:
        return "", None, None
    if (trace.header.expect or {}).get("property") not in INVARIANTS:
        return "strengthening-broken", None, None
    if report_dir is None:
        result = replay(trace, keep_states=False)
        if result.outcome is not ReplayOutcome.VIOLATION:
            return "unknown", None, None
        return "reachable", None, trace_finding(trace, result)
    try:
        cx = write_counterexample(trace, report_dir)
    except CounterexampleNotReproduced:
        return "unknown", None, None
    return "reachable", cx.trace_path, cx.finding


def _bmc_query(name: str, res: BmcResult, report_dir: Path | None) -> QueryResult:
    label = f"bmc {name} to depth {res.depth}"
    if res.found and res.trace is not None:
        # Worded as the trace's replay words it (the step, the property the model sees
        # broken there and its message), which is what its file shows.
        path = None
        if report_dir is not None:
            cx = write_counterexample(res.trace, report_dir)
            path, shown = cx.trace_path, cx.finding
        else:
            shown = trace_finding(res.trace, replay(res.trace, keep_states=False))
        detail = (shown.line if shown is not None else f"violated after {res.depth} steps")
        return QueryResult(label, "bmc", name, None, ProofVerdict.VIOLATED, res.seconds,
                           detail=detail,
                           evidence={"counterexample": str(path) if path else None,
                                     "trace": shown.to_dict() if shown else None,
                                     "rlimit": res.rlimit})
    if res.unknown:
        return QueryResult(label, "bmc", name, None, ProofVerdict.UNKNOWN, res.seconds,
                           detail=f"no violation within {res.depth} steps; then {res.why}",
                           evidence={"rlimit": res.rlimit})
    return QueryResult(label, "bmc", name, None, ProofVerdict.PROVED, res.seconds,
                       detail=f"bounded: no path of at most {res.depth} steps breaks it",
                       evidence={"rlimit": res.rlimit})


def prove(cfg: Config, *, faults: tuple[str, ...] = (), limit: SolverLimit = SolverLimit(),
          bmc_depth: int = 6,
          bmc_limit: SolverLimit = SolverLimit(BMC_RLIMIT, flag="--bmc-rlimit"),
          report_dir: Path | None = None,
          jobs: int | None = None, conjuncts: tuple[str, ...] | None = None,
          actions: list[str] | None = None, policy: bool = True, bmc_all: bool = False,
          on_result: Callable[[QueryResult], None] | None = None, query: str | None = None,
          reach_states: int = EXACT_MAX_STATES) -> ProofReport:
    """Run the whole proof suite on ``cfg`` (with seeded ``faults``).

    ``bmc_all`` adds one bounded model checking query per property (to ``bmc_depth``).
    Every query works within ``limit`` (Z3 resource units, and a wall-clock deadline
    only when one is given), every bounded search within ``bmc_limit``.
    ``query`` runs that one query alone (a name as the report prints it).
    ``reach_states``: a CTI's reachability is decided exactly when the configuration
    has at most this many reachable states (0: bounded model checking alone).
    """
    t0 = time.perf_counter()
    gaps = gaps_in(cfg, faults)
    report = ProofReport(cfg, tuple(faults), gaps=gaps)
    if gaps.blocking:
        return report  # a seeded fault without a Z3 encoding: nothing can be checked
    only = select(cfg, query) if query is not None else None
    if only is not None:
        conjuncts = (only.conjunct,) if only.kind in ("init", "consecution", "step",
                                                      "safety") else ()
        actions = [only.action] if only.action is not None else []
        policy, bmc_all = only.kind == "policy", only.kind == "bmc"

    # The total is worth its encoding only when someone is watching.
    whole = only is None and conjuncts is None and actions is None and progress_shown()
    shown = meter("prove", unit="queries", total=count_queries(
        cfg, policy=policy, bmc=bmc_all) if whole else 1 if only is not None else None)

    def record(q: QueryResult) -> None:
        if only is not None and not only.matches(q.name, q.kind, q.conjunct):
            return  # run alongside the query asked for (same conjunct), not asked for
        report.queries.append(q)
        shown.update(len(report.queries), note=" ".join(q.name.split()))
        if on_result is not None:
            on_result(q)

    for q in induction_queries(cfg, faults=tuple(faults), limit=limit, jobs=jobs,
                               conjuncts=conjuncts, actions=actions):
        record(q)
    if policy:
        for q in prove_policy(cfg, limit):
            record(q)
    if bmc_all:
        for name, prop in INVARIANTS.items():
            if (not prop.feature(cfg) or name in gaps.invariants
                    or (only is not None and only.conjunct != name)):
                continue
            res = bmc(cfg, name, depth=bmc_depth, faults=tuple(faults), limit=bmc_limit,
                      query=f"bmc {name}")
            q = _bmc_query(name, res, report_dir)
            record(q)
    shown.close()
    seen: set[str] = set()
    for q in report.queries:
        if q.cti is not None and q.conjunct not in seen:
            seen.add(q.conjunct)
            report.findings.append(_analyse(cfg, tuple(faults), q, bmc_depth, bmc_limit,
                                            report_dir, reach_states))
    report.seconds = time.perf_counter() - t0
    return report
