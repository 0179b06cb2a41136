"""The three induction steps: named queries, proofs with cores, inconclusive on a spent budget."""

from __future__ import annotations

import pytest

from ballast.model.config import preset
from ballast.model.invariants import INVARIANTS
from ballast.proofs.induction import ProofVerdict, QueryResult, consecution, induction_queries
from ballast.proofs.limits import SolverLimit
from ballast.proofs.properties import SAFETY
from ballast.proofs.transitions import encoded_actions


@pytest.fixture(scope="module")
def core_results() -> list[QueryResult]:
    """Every induction query of the core preset, answered once for the tests that read them."""
    return list(induction_queries(preset("core"), jobs=1))


def test_core_preset_every_query_is_proved_with_a_core(core_results: list[QueryResult]) -> None:
    cfg = preset("core")
    results = core_results
    assert results and all(r.verdict is ProofVerdict.PROVED for r in results), \
        [r.name for r in results if r.verdict is not ProofVerdict.PROVED]
    kinds = {r.kind for r in results}
    assert {"init", "consecution", "step", "safety"} <= kinds
    names = {r.name for r in results}
    for action in encoded_actions(cfg):
        for prop in SAFETY:
            if INVARIANTS[prop].feature(cfg):
                assert f"{prop} preserved by {action}" in names
    # Consecution proofs name the conjuncts they needed (an empty core means the step
    # preserves the conjunct whatever the pre-state).
    cons = [r for r in results if r.kind == "consecution"]
    assert sum(bool(r.core) for r in cons) > len(cons) // 2
    reclaim = next(r for r in cons if r.name == "ballooned_pages_unbacked preserved by vmm_reclaim")
    assert "ballooned_pages_unbacked" in reclaim.core


def test_a_tiny_resource_limit_is_inconclusive_never_proved() -> None:
    cfg = preset("default")
    out = consecution(cfg, "guest_write", limit=SolverLimit(rlimit=1_000),
                      conjuncts=("memory_conservation",))
    assert out[0].verdict is ProofVerdict.UNKNOWN
    assert out[0].detail == ("Z3 resource limit of 1,000 (rlimit) ran out; "
                             "raise with --rlimit")
    # The query's calls share one budget: it stops once the budget is spent.
    assert 1_000 <= out[0].evidence["rlimit"] < 100_000


def test_a_wall_clock_deadline_is_inconclusive_and_says_so() -> None:
    import time

    past = SolverLimit(deadline=time.time() - 1)
    out = consecution(preset("core"), "guest_write", limit=past,
                      conjuncts=("memory_conservation",))
    assert out[0].verdict is ProofVerdict.UNKNOWN
    assert "(--max-seconds)" in out[0].detail


def test_every_query_reports_the_resource_units_it_used(core_results: list[QueryResult]
                                                       ) -> None:
    results = core_results
    assert results and all(isinstance(r.evidence.get("rlimit"), int) for r in results)
    assert all(r.evidence["rlimit"] >= 0 for r in results)
    assert sum(r.evidence["rlimit"] for r in results) > 0


def test_a_cti_is_decoded_and_rechecked_with_the_model() -> None:
    from ballast.model.config import Config
    cfg = Config(vms=1, guest_pages=2, guest_data_pages=1, machine_pages=2,
                 host_page_units=2, host_swap_slots=0)
    out = consecution(cfg, "host_take_page", ("host_takes_single_unit",), SolverLimit(),
                      ("host_pages_whole",))
    bad = [r for r in out if r.verdict is ProofVerdict.VIOLATED]
    assert bad and bad[0].cti is not None
    cti = bad[0].cti
    assert cti.python_pre_violations == ()
    assert cti.python_post_message is not None and "host page" in cti.python_post_message
    assert "host_pages_whole is not preserved by action host_take_page" in bad[0].detail


def test_step_3_never_assumes_the_property_it_proves() -> None:
    """Each safety query drops its own conjunct: a derivation lists other conjuncts only,
    and a property no other conjunct implies is said to be its own strengthening."""
    from ballast.proofs.induction import safety_queries
    cfg = preset("core")
    out = {q.conjunct: q for q in safety_queries(cfg)}
    assert set(out) == {p for p in SAFETY if INVARIANTS[p].feature(cfg)}
    for name, q in out.items():
        assert q.verdict is ProofVerdict.PROVED and name not in q.core
    derived = out["guest_chooses_pages"]
    assert derived.evidence["derived"] is True
    assert {"ballooned_stage", "module_pages_pinned"} <= set(derived.core)
    own = out["memory_conservation"]
    assert own.evidence["derived"] is False and own.core == ()
    assert "its own strengthening" in own.detail


def test_step_3_fails_when_the_other_conjuncts_are_dropped_too() -> None:
    """The derivation is a real proof: without the conjuncts in its core it does not go through."""
    import z3
    from ballast.proofs.encoding import fresh
    from ballast.proofs.properties import inductive_invariant
    cfg = preset("core")
    inv = inductive_invariant(fresh(cfg, "pre"))
    s = z3.Solver()
    for k, f in inv.items():
        if k not in ("guest_chooses_pages", "ballooned_stage"):
            s.add(f)
    s.add(z3.Not(inv["guest_chooses_pages"]))
    assert s.check() == z3.sat
