"""``ballast check`` integration: the proof suite as one checker among others.

Every property of the model gets one :class:`~ballast.verdict.PropertyResult`
from the ``prove`` checker: pass when every query of the inductive invariant
is proved, violation when a counterexample to induction turned out reachable
(with its replayed trace), inconclusive otherwise (a solver ``unknown``, a
timeout, the budget, or an invariant that needs strengthening).
"""

from __future__ import annotations

import time
from pathlib import Path

from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.proofs.induction import ProofVerdict
from ballast.proofs.run import prove
from ballast.verdict import CheckResult, PropertyResult, Verdict

__all__ = ["suite_check"]

_MAP = {ProofVerdict.PROVED: Verdict.PASS, ProofVerdict.VIOLATED: Verdict.VIOLATION,
        ProofVerdict.UNKNOWN: Verdict.INCONCLUSIVE}


def suite_check(cfg: Config, *, faults: tuple[str, ...] = (), seed: int = 0,
                report_dir: Path, budget_s: float) -> CheckResult:
    """Run the proofs within ``budget_s`` seconds; ``seed`` is unused (the proofs are exhaustive)."""
    t0 = time.perf_counter()
    n_queries = 1 + 2 * len(INVARIANTS)
    per_query = max(1.0, budget_s / max(1, n_queries))
    report = prove(cfg, faults=faults, timeout_s=per_query, report_dir=report_dir,
                   bmc_timeout_s=max(1.0, budget_s / 4))
    over = time.perf_counter() - t0 > budget_s
    results = []
    for name, prop in INVARIANTS.items():
        if not prop.feature(cfg):
            results.append(PropertyResult(name, "prove", Verdict.SKIPPED,
                                          "feature switched off in this configuration"))
            continue
        verdict = _MAP[report.property_verdict(name)]
        if over and verdict is Verdict.PASS:
            verdict = Verdict.INCONCLUSIVE
        mine = [q for q in report.queries if q.conjunct == name]
        finding = next((f for f in report.findings if f.conjunct == name), None)
        gap = report.gaps is not None and report.gaps.affects(name) \
            and verdict is not Verdict.VIOLATION
        detail = (report.gaps.reason(name, "proved") if gap and report.gaps is not None else
                  finding.headline if finding is not None else
                  f"{'proved' if verdict is Verdict.PASS else verdict.value} by "
                  f"{len(mine)} of {len(report.queries)} queries, {report.scope}")
        results.append(PropertyResult(
            name, "prove", verdict, detail,
            evidence={"queries": len(mine), "seconds": round(sum(q.seconds for q in mine), 3),
                      "proved": sum(q.verdict is ProofVerdict.PROVED for q in mine),
                      "cores": sorted({c for q in mine for c in q.core})},
            counterexample=finding.counterexample if finding is not None else None))
    return CheckResult("prove", results, time.perf_counter() - t0,
                       stats={"queries": len(report.queries), "scope": report.scope,
                              "findings": len(report.findings)})
