"""A model extended without the other encodings: every checker catches the problem or names
the gap, inconclusive; none passes and none fails with a traceback.

The model's tables are extended for the test only (``monkeypatch``), with an action
that loses a machine page, an invariant that is always broken and a seeded fault; the
Python-model-driven checkers (random, Hypothesis, explore) must catch them, the
checkers with encodings of their own (prove, numeric, the virtio projection) must name
what they lack.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ballast.budget import WorkBudget
from ballast.suites.check import CheckOptions, check_hypothesis, check_random
from ballast.cli import main
from ballast.errors import UsageError
from ballast.model.actions import ACTIONS, ActionSpec, Actor, Partition, require
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS, Property
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.verdict import CheckResult, Verdict

CFG = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0, machine_pages=1,
             host_swap_slots=0, tokens=1, batch=1, pin_limit=1)
"""Small enough that every checker runs in a second or two."""

LOSE = "dummy_lose_page"
BROKEN = "dummy_always_broken"
FAULT = "dummy_release_forgets"


def _lose_page(cfg: Config, s: State) -> State:
    """The VMM drops a free machine page from every record."""
    require(bool(s.host.free), LOSE, "no free MPN")
    return State(replace(s.host, free=s.host.free - {min(s.host.free)}), s.vms)


def _one(cfg: Config, s: State) -> list[dict[str, Any]]:
    return [{}]


def _always_broken(cfg: Config, s: State) -> str:
    return "this invariant never holds"


@pytest.fixture
def lose_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ACTIONS, LOSE, ActionSpec(
        LOSE, Actor.VMM, _lose_page, _one, (), lambda cfg: True, False,
        doc=_lose_page.__doc__ or "", partition=Partition.SYSTEM))


@pytest.fixture
def always_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(INVARIANTS, BROKEN, Property(BROKEN, "Never holds.", "host",
                                                     state=_always_broken))


@pytest.fixture
def unencoded_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of release_keeps_balloon_set under a name no backend encodes."""
    monkeypatch.setitem(FAULTS, FAULT, replace(FAULTS["release_keeps_balloon_set"], name=FAULT))


@pytest.fixture(autouse=True)
def no_qemu_sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BALLAST_QEMU_SAMPLE", str(tmp_path / "no-sample"))


def _opts(tmp_path: Path) -> CheckOptions:
    return CheckOptions(random_runs=20, random_steps=30, hypothesis_examples=20,
                        hypothesis_steps=20, report_dir=tmp_path)


def _verdicts(res: CheckResult) -> dict[str, Verdict]:
    return {r.property: r.verdict for r in res.results
            if r.kind == "invariant" and r.verdict is not Verdict.SKIPPED}


def _detail(res: CheckResult, prop: str) -> str:
    return next(r.detail for r in res.results if r.property == prop and r.kind == "invariant")


def _explore(cfg: Config, tmp_path: Path, faults: tuple[str, ...] = (),
             slices: dict[str, Config] | None = None) -> CheckResult:
    """The explorer as ``ballast check`` runs it, on one slice: ``cfg`` itself (the real
    slices take tens of seconds)."""
    from ballast.statespace import suite

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite, "feature_slices", lambda c: slices or {"protocol": cfg})
        return suite.suite_check(cfg, faults=faults, report_dir=tmp_path, budget=WorkBudget())


def _prove(cfg: Config, tmp_path: Path, faults: tuple[str, ...] = ()) -> CheckResult:
    from ballast.proofs.suite import suite_check

    return suite_check(cfg, faults=faults, report_dir=tmp_path, budget=WorkBudget())


def _numeric(cfg: Config, tmp_path: Path, faults: tuple[str, ...] = ()) -> CheckResult:
    from ballast.numeric.suite import SuiteSize, suite_check

    return suite_check(cfg, faults=faults, report_dir=tmp_path, budget=WorkBudget(),
                       size=SuiteSize(vms=4, pages=8, seeds=1, batches=20))


def _validate(cfg: Config, tmp_path: Path, faults: tuple[str, ...] = ()) -> CheckResult:
    from ballast.validate.suite import suite_check

    return suite_check(cfg, faults=faults, report_dir=tmp_path, budget=WorkBudget())


# -- an action that loses a machine page ----------------------------------------------------

@pytest.mark.usefixtures("lose_page")
def test_model_driven_checkers_catch_the_lost_page(tmp_path: Path) -> None:
    model = BalloonModel(CFG)
    for res in (check_random(model, _opts(tmp_path)), check_hypothesis(model, _opts(tmp_path)),
                _explore(CFG, tmp_path)):
        assert _verdicts(res)["memory_conservation"] is Verdict.VIOLATION, res.checker
        assert res.verdict is Verdict.VIOLATION


@pytest.mark.usefixtures("lose_page")
def test_prove_names_the_action_it_cannot_encode(tmp_path: Path) -> None:
    res = _prove(CFG, tmp_path)
    assert res.stats["queries"] > 0  # the encoded actions are still proved
    verdicts = _verdicts(res)
    assert set(verdicts.values()) == {Verdict.INCONCLUSIVE}
    assert _detail(res, "memory_conservation") == (
        "prove: no Z3 encoding of action dummy_lose_page; memory_conservation not proved")
    assert res.verdict is Verdict.INCONCLUSIVE


@pytest.mark.usefixtures("lose_page")
def test_ballast_prove_exits_inconclusive_naming_the_gap(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["prove", "--preset", "core", "--guest-pages", "1", "--machine-pages", "1",
                 "--jobs", "1", "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 3, out
    # One line for the gap, naming every property it keeps from being proved.
    [line] = [text for text in out.splitlines() if text.startswith("INCONCLUSIVE")]
    assert line.startswith("INCONCLUSIVE prove: no Z3 encoding of action dummy_lose_page; ")
    assert line.endswith(" not proved") and "memory_conservation" in line


@pytest.mark.usefixtures("lose_page")
def test_numeric_names_the_action_it_cannot_encode(tmp_path: Path) -> None:
    res = _numeric(CFG, tmp_path)
    assert set(_verdicts(res).values()) == {Verdict.INCONCLUSIVE}
    assert _detail(res, "memory_conservation") == (
        "numeric: no NumPy encoding of action dummy_lose_page; memory_conservation not checked")


@pytest.mark.usefixtures("lose_page")
def test_the_numeric_engine_refuses_the_action_in_words() -> None:
    from ballast.numeric.engine import Engine

    eng = Engine(CFG)  # no AttributeError for an action it lacks
    with pytest.raises(UsageError, match="no NumPy encoding of action dummy_lose_page"):
        eng.apply_batch(LOSE, [0])


@pytest.mark.usefixtures("lose_page")
def test_validate_names_the_action_the_virtio_profile_does_not_project(tmp_path: Path) -> None:
    res = _validate(CFG, tmp_path)
    assert _verdicts(res)["virtio_projection"] is Verdict.INCONCLUSIVE
    assert _detail(res, "virtio_projection").startswith(
        "validate: no virtio encoding of action dummy_lose_page")
    assert res.verdict is Verdict.INCONCLUSIVE


@pytest.mark.usefixtures("lose_page")
def test_ballast_check_is_never_a_pass_and_never_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--preset", "core", "--guest-pages", "1", "--machine-pages", "1",
                 "--checkers", "prove,validate", "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "prove: no Z3 encoding of action dummy_lose_page" in out


def test_explore_names_an_action_no_feature_slice_switches_on(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(ACTIONS, LOSE, ActionSpec(
        LOSE, Actor.VMM, _lose_page, _one, (), lambda cfg: cfg.guest_pages >= 3, False))
    res = _explore(CFG.replace(guest_pages=3), tmp_path, slices={"protocol": CFG})
    assert _verdicts(res)["memory_conservation"] is Verdict.INCONCLUSIVE
    assert _detail(res, "memory_conservation") == (
        "explore: no feature slice explores action dummy_lose_page; "
        "memory_conservation not explored")


# -- an invariant that is always broken -----------------------------------------------------

@pytest.mark.usefixtures("always_broken")
def test_model_driven_checkers_catch_the_broken_invariant(tmp_path: Path) -> None:
    model = BalloonModel(CFG)
    for res in (check_random(model, _opts(tmp_path)), check_hypothesis(model, _opts(tmp_path)),
                _explore(CFG, tmp_path)):
        assert _verdicts(res)[BROKEN] is Verdict.VIOLATION, res.checker


@pytest.mark.usefixtures("always_broken")
def test_prove_and_numeric_name_the_invariant_they_cannot_encode(tmp_path: Path) -> None:
    proved, checked = _prove(CFG, tmp_path), _numeric(CFG, tmp_path)
    for res, done, enc in ((proved, "proved", "Z3"), (checked, "checked", "NumPy")):
        verdicts = _verdicts(res)
        assert verdicts[BROKEN] is Verdict.INCONCLUSIVE, res.checker
        assert _detail(res, BROKEN) == (
            f"{res.checker}: no {enc} encoding of invariant {BROKEN}; {BROKEN} not {done}")
        # The encoded properties keep their own verdicts.
        assert verdicts["memory_conservation"] is Verdict.PASS, res.checker
        assert res.verdict is Verdict.INCONCLUSIVE


@pytest.mark.usefixtures("always_broken")
def test_validate_does_not_explain_runs_that_break_the_model(tmp_path: Path) -> None:
    res = _validate(CFG, tmp_path)
    explained = next(r for r in res.results if r.property == "trace_validation_explains_model_runs")
    assert explained.verdict is Verdict.INCONCLUSIVE


# -- a seeded fault without an encoding -----------------------------------------------------

@pytest.mark.usefixtures("unencoded_fault")
def test_a_fault_only_the_model_has(tmp_path: Path) -> None:
    cfg = CFG
    caught = _explore(cfg, tmp_path, (FAULT,))
    assert _verdicts(caught)["balloon_accounting_exact"] is Verdict.VIOLATION
    for res, enc in ((_prove(cfg, tmp_path, (FAULT,)), "Z3"),
                     (_numeric(cfg, tmp_path, (FAULT,)), "NumPy")):
        assert set(_verdicts(res).values()) == {Verdict.INCONCLUSIVE}, res.checker
        assert _detail(res, "balloon_accounting_exact") == (
            f"{res.checker}: no {enc} encoding of fault {FAULT}; cannot check that fault, "
            f"balloon_accounting_exact not {'proved' if enc == 'Z3' else 'checked'}")


@pytest.mark.usefixtures("unencoded_fault")
def test_ballast_fuzz_says_it_cannot_check_the_fault(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "--preset", "core", "--seeds", "0", "--fault", FAULT, "--vms", "2",
                 "--pages", "4", "--steps", "5", "--no-progress", "--report-dir", str(tmp_path)])
    assert code == 3
    assert f"numeric: no NumPy encoding of fault {FAULT}; cannot check that fault" in \
        capsys.readouterr().out


@pytest.mark.usefixtures("lose_page")
def test_ballast_fuzz_runs_what_it_has_and_stays_inconclusive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "--preset", "core", "--seeds", "0", "--vms", "2", "--pages", "4",
                 "--steps", "20", "--no-progress", "--report-dir", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 3, out
    assert "numeric: no NumPy encoding of action dummy_lose_page; no property checked" in out
