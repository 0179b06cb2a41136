"""``ballast check`` on the hostile preset with the encoded checkers: the VMM paging out a VM
over its target is read by Z3 and NumPy from its kernels, so both check it, and both catch
the seeded fault whose VMM pages out another VM's page as the starvation property."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.model.config import preset
from ballast.suites.check import CheckOptions, run_check
from ballast.verdict import CheckResult, Verdict

FAULT = "vmm_swaps_honest_page"
PROPERTY = "honest_memory_not_taken"

ONE_PAGE = preset("hostile").replace(guest_pages=1, guest_data_pages=1, machine_pages=2)
"""The hostile preset on one page a VM: every feature, fewer proof queries (an honest VM's
one page is the oldest on the host when the other VM goes over its target)."""


def _violated(res: CheckResult) -> set[str]:
    return {p.property for p in res.results if p.verdict is Verdict.VIOLATION}


def test_prove_catches_the_vmm_taking_an_honest_vms_page(tmp_path: Path) -> None:
    from ballast.proofs.suite import suite_check

    assert PROPERTY in _violated(suite_check(ONE_PAGE, faults=(FAULT,), report_dir=tmp_path))


def test_numeric_catches_the_vmm_taking_an_honest_vms_page(tmp_path: Path) -> None:
    from ballast.numeric.suite import SuiteSize, suite_check

    res = suite_check(preset("hostile"), faults=(FAULT,), report_dir=tmp_path,
                      size=SuiteSize(vms=16, pages=16, seeds=4, batches=300))
    assert PROPERTY in _violated(res), [(p.property, p.verdict, p.detail) for p in res.results
                                        if p.verdict is not Verdict.PASS]


@pytest.mark.slow
def test_ballast_check_names_the_property_from_both_backends_on_the_preset(
        tmp_path: Path) -> None:
    opts = CheckOptions(checkers=("prove", "numeric"), report_dir=tmp_path)
    report = run_check(preset("hostile"), (FAULT,), opts)
    assert report.verdict is Verdict.VIOLATION
    assert {r.checker: PROPERTY in _violated(r) for r in report.results} == {
        "prove": True, "numeric": True}


@pytest.mark.slow
def test_prove_and_numeric_pass_the_hostile_preset(tmp_path: Path) -> None:
    opts = CheckOptions(checkers=("prove", "numeric"), report_dir=tmp_path)
    report = run_check(preset("hostile"), (), opts)
    for res in report.results:
        assert res.verdict is Verdict.PASS, (res.checker, [
            (p.property, p.verdict, p.detail) for p in res.results
            if p.kind == "invariant" and p.verdict is not Verdict.PASS])
