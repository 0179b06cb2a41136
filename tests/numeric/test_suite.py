"""``suite_check`` for ``ballast check`` at a tiny size."""

from __future__ import annotations

from ballast.model.config import preset
from ballast.numeric.suite import SuiteSize, suite_check
from ballast.verdict import Verdict

TINY = SuiteSize(vms=8, pages=32, seeds=2, batches=40)


def test_passes_on_the_model(tmp_path):
    r = suite_check(preset("default"), report_dir=tmp_path, budget_s=60, size=TINY)
    assert r.verdict is Verdict.PASS
    assert {x.property for x in r.results} >= {"memory_conservation", "isolation"}
    assert all(x.evidence["ops"] > 0 for x in r.results)


def test_fault_gives_a_confirmed_violation(tmp_path):
    size = SuiteSize(vms=8, pages=32, seeds=6, batches=300)
    r = suite_check(preset("default"), faults=("free_without_scrub",), report_dir=tmp_path,
                    budget_s=120, size=size)
    assert r.verdict is Verdict.VIOLATION
    bad = [x for x in r.results if x.verdict is Verdict.VIOLATION]
    assert bad[0].property == "isolation" and bad[0].counterexample.exists()


def test_budget_out_is_inconclusive(tmp_path):
    r = suite_check(preset("default"), report_dir=tmp_path, budget_s=0.0, size=TINY)
    assert r.verdict is Verdict.INCONCLUSIVE
