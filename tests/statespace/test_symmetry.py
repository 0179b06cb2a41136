"""Symmetry reduction is sound: same verdicts, same coverage, fewer states."""

from __future__ import annotations

import random

import pytest

from ballast.model.actions import Action, apply
from ballast.model.config import Config
from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS, fault_config
from ballast.statespace.explore import explore
from ballast.statespace.symmetry import canonical, liveness_warning, mpn_symmetry, vm_groups


def _summary(cfg: Config, faults: tuple[str, ...], symmetry: bool) -> tuple[object, ...]:
    ex = explore(BalloonModel(cfg, faults), symmetry=symmetry)
    assert ex.complete
    lengths = {p: f.steps(ex) for p, f in ex.violations.items()}
    return (lengths, sorted(ex.witnessed), sorted(ex.fired), ex.deadlock is None), ex.states


@pytest.mark.parametrize("name", ["one-vm-two-mpns", "two-vms"])
def test_same_verdicts_and_coverage_with_and_without_symmetry(name: str) -> None:
    cfg = EXPLORE_CONFIGS[name]
    full, n_full = _summary(cfg, (), False)
    reduced, n_reduced = _summary(cfg, (), True)
    assert full == reduced
    assert n_reduced < n_full


@pytest.mark.parametrize("fault", ["free_without_scrub", "share_without_cow"])
def test_faults_found_alike_with_and_without_symmetry(fault: str) -> None:
    cfg = fault_config(fault)
    a = explore(BalloonModel(cfg, [fault]), stop_on=True)
    b = explore(BalloonModel(cfg, [fault]), symmetry=True, stop_on=True)
    assert {p: f.steps(a) for p, f in a.violations.items()} == {
        p: f.steps(b) for p, f in b.violations.items()}
    assert a.violations


def test_canonical_form_is_idempotent_and_keeps_invariant_verdicts() -> None:
    cfg = EXPLORE_CONFIGS["two-vms-three-mpns"]
    model = BalloonModel(cfg)
    rng = random.Random(4)
    s = model.init_states()[0]
    for _ in range(400):
        _, s = rng.choice(list(model.successors(s)))
        c = canonical(cfg, s)
        assert canonical(cfg, c) == c
        assert [v.property for v in model.violations(c)] == [
            v.property for v in model.violations(s)]
        assert sorted(len(v.ballooned) for v in c.vms) == sorted(len(v.ballooned) for v in s.vms)


def test_swapping_vms_and_renumbering_mpns_give_the_same_representative() -> None:
    cfg = Config(vms=2, guest_pages=1, guest_data_pages=1, machine_pages=3, tokens=1)
    s = BalloonModel(cfg).init_states()[0]
    a = apply(cfg, s, Action.of("guest_write", vm=0, vpn=0, token=1))
    b = apply(cfg, apply(cfg, s, Action.of("host_take_page", host_page=0)),
              Action.of("guest_write", vm=1, vpn=0, token=1))
    b = apply(cfg, b, Action.of("host_return_page", host_page=0))
    assert a != b
    assert canonical(cfg, a) == canonical(cfg, b)


def test_what_is_symmetric() -> None:
    assert vm_groups(Config(vms=3, hostile_vms=frozenset({2}))) == [[0, 1]]
    assert vm_groups(Config(vms=1)) == []
    assert not mpn_symmetry(Config(machine_pages=4, host_page_units=2))
    assert liveness_warning(True) and liveness_warning(False) is None
