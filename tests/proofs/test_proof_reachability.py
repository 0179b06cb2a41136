"""A counterexample to induction is decided against every reachable state when there are
few enough of them; otherwise it is only 'not reached within depth K'."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import z3

from ballast.model.config import Config
from ballast.proofs import properties
from ballast.proofs.reachability import decide_cti, reachable
from ballast.proofs.run import prove
from ballast.model.actions import Action
from ballast.model.state import initial_state

ONE_VM = Config(vms=1, guest_pages=2, guest_data_pages=1, guest_disk_slots=0, machine_pages=1,
                host_swap_slots=0, tokens=1, batch=1)


def _without(name: str) -> Any:
    """The strengthening with one conjunct left out (so that a proof needs more)."""
    real = properties.strengthening

    def weaker(s: Any) -> dict[str, z3.BoolRef]:
        return {k: v for k, v in real(s).items() if k != name}
    return mock.patch.object(properties, "strengthening", weaker)


def test_an_unreachable_cti_is_proved_unreachable(tmp_path: Path) -> None:
    with _without("ai_ballooned"):
        report = prove(ONE_VM, jobs=1, bmc_depth=2, report_dir=tmp_path, policy=False)
    assert report.findings and report.exit_code == 3
    for f in report.findings:
        assert f.reachability == "unreachable", f.headline
        assert f.exact is not None and f.exact.verdict == "unreachable"
        assert "needs strengthening" in f.headline and "reachable states" in f.headline


def test_too_many_states_is_not_reached_never_unreachable(tmp_path: Path) -> None:
    with _without("ai_ballooned"):
        report = prove(ONE_VM, jobs=1, bmc_depth=2, report_dir=tmp_path, policy=False,
                       reach_states=100)
    assert report.findings
    for f in report.findings:
        assert f.reachability == "not-reached", f.headline
        assert "not reached within 2 steps" in f.headline and "unreachable" not in f.headline


def test_bounded_search_alone_when_asked(tmp_path: Path) -> None:
    with _without("ai_ballooned"):
        report = prove(ONE_VM, jobs=1, bmc_depth=1, report_dir=tmp_path, policy=False,
                       reach_states=0)
    assert report.findings and all(f.exact is None and f.reachability == "not-reached"
                                   for f in report.findings)


def test_a_deep_real_bug_is_found_past_the_bounded_depth(tmp_path: Path) -> None:
    """The accounting fault needs a ten-step round trip: depth 2 misses it, the
    reachable set has it, with a replayed counterexample."""
    cfg = ONE_VM.replace(guest_pages=1, host_use=False)
    report = prove(cfg, faults=("release_keeps_balloon_set",), jobs=1, bmc_depth=2,
                   report_dir=tmp_path, policy=False)
    assert report.exit_code == 1
    real = [f for f in report.findings if f.reachability == "reachable"]
    assert real and real[0].counterexample is not None and real[0].counterexample.exists()
    assert real[0].exact is not None and real[0].exact.trace is not None
    assert len(real[0].exact.trace.steps) > 2


def test_decide_cti_finds_a_reachable_pre_state() -> None:
    rs = reachable(ONE_VM)
    deep = rs.states[-1]
    act = rs.steps[len(rs.states) - 1][0][0]
    got = decide_cti(ONE_VM, (), "module_pages_pinned", act, deep)
    assert got.verdict == "reachable" and got.trace is not None
    assert len(got.trace.steps) == len(rs.path(len(rs.states) - 1)) + 1
    assert decide_cti(ONE_VM, (), "module_pages_pinned", act, initial_state(ONE_VM),
                      max_states=10).verdict in ("reachable",)


def test_an_unreachable_state_is_unreachable() -> None:
    s = initial_state(ONE_VM)
    import dataclasses
    bogus = dataclasses.replace(s, host=dataclasses.replace(s.host, free=frozenset()))
    got = decide_cti(ONE_VM, (), "module_pages_pinned", Action.of("balloon_poll", vm=0), bogus)
    assert got.verdict == "unreachable" and got.states == len(reachable(ONE_VM).states)
    assert decide_cti(ONE_VM, (), "module_pages_pinned", Action.of("balloon_poll", vm=0),
                      bogus, max_states=10).verdict == "undecided"
