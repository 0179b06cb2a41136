"""``ballast check`` integration: the proof suite as one checker among others.

Every property of the model gets one :class:`~ballast.verdict.PropertyResult`
from the ``prove`` checker: pass when every query of the inductive invariant
is proved, violation when a counterexample to induction turned out reachable
(with its replayed trace), inconclusive otherwise (a query's Z3 resource limit
ran out, the wall-clock limit the user asked for, or an invariant that needs
strengthening). Every query works within ``budget.rlimit`` Z3 resource units,
so the verdict does not depend on the machine's speed or load.
"""

from __future__ import annotations

import time
from pathlib import Path

from ballast.budget import WorkBudget
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.proofs.induction import ProofVerdict
from ballast.proofs.limits import SolverLimit
from ballast.proofs.run import prove
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["suite_check"]

_MAP = {ProofVerdict.PROVED: Verdict.PASS, ProofVerdict.VIOLATED: Verdict.VIOLATION,
        ProofVerdict.UNKNOWN: Verdict.INCONCLUSIVE}


def suite_check(cfg: Config, *, faults: tuple[str, ...] = (), seed: int = 0,
                report_dir: Path, budget: WorkBudget = WorkBudget()) -> CheckResult:
    """Run the proofs within ``budget``; ``seed`` is unused (the proofs are exhaustive)."""
    t0 = time.perf_counter()
    deadline = budget.deadline().epoch
    report = prove(cfg, faults=faults, report_dir=report_dir,
                   limit=SolverLimit(budget.rlimit, deadline),
                   bmc_limit=SolverLimit(budget.bmc_rlimit, deadline, "--bmc-rlimit"))
    results = []
    for name, prop in INVARIANTS.items():
        if not prop.feature(cfg):
            results.append(PropertyResult(name, "prove", Verdict.SKIPPED,
                                          "feature switched off in this configuration"))
            continue
        verdict = _MAP[report.property_verdict(name)]
        mine = [q for q in report.queries if q.conjunct == name]
        # A reachable violation is reported under the property its trace breaks when
        # replayed, worded as that replay words it (Finding.headline); a conjunct whose run
        # breaks another property first is left open here, naming where it is reported.
        finding = next((f for f in report.findings if f.reported == name), None)
        elsewhere = next((f for f in report.findings
                          if f.conjunct == name and f.reported != name), None)
        gap = report.gaps is not None and report.gaps.affects(name) \
            and verdict is not Verdict.VIOLATION
        unknown = [q for q in report.queries if q.verdict is ProofVerdict.UNKNOWN]
        if gap and report.gaps is not None:
            detail = report.gaps.reason(name, "proved")
        elif finding is not None:
            detail = finding.headline
        elif elsewhere is not None and verdict is not Verdict.PASS:
            detail = (f"not proved: {elsewhere.cti_line}; the run that reaches it breaks "
                      f"{elsewhere.reported} first, reported there")
        elif verdict is Verdict.PASS:
            detail = f"proved by {len(mine)} of {len(report.queries)} queries, {report.scope}"
        elif unknown:
            # The invariant is one whole: any unknown query leaves every property open.
            reasons = sorted({q.detail for q in unknown})
            detail = (f"{len(unknown)} of {len(report.queries)} queries unknown: "
                      f"{'; '.join(reasons)}")
        else:
            detail = f"{verdict.value} by {len(mine)} of {len(report.queries)} queries"
        results.append(PropertyResult(
            name, "prove", verdict, detail,
            evidence={"queries": len(mine), "seconds": round(sum(q.seconds for q in mine), 3),
                      "proved": sum(q.verdict is ProofVerdict.PROVED for q in mine),
                      "rlimit": sum(int(q.evidence.get("rlimit", 0)) for q in mine),
                      "cores": sorted({c for q in mine for c in q.core})},
            counterexample=finding.counterexample if finding is not None else None))
    return CheckResult("prove", results, time.perf_counter() - t0,
                       stats={"queries": len(report.queries), "scope": report.scope,
                              "proved": sum(q.verdict is ProofVerdict.PROVED
                                            for q in report.queries),
                              "rlimit": sum(int(q.evidence.get("rlimit", 0))
                                            for q in report.queries),
                              "findings": len(report.findings)})
