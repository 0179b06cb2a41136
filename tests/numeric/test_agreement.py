"""The numeric core agrees with the model on every reachable state of one small
configuration per feature slice: arrays, invariants, enabled and refused steps."""

from __future__ import annotations

import functools

import pytest

from ballast.model.faults import FAULTS
from ballast.numeric.agreement import check_numeric_agreement
from ballast.numeric.engine import ENGINE_FAULTS
from ballast.proofs.agreement import (BOUNDED_ONLY, NUMERIC_PREFIX, NUMERIC_PREFIX_STATES,
                                      agreement_configs)
from ballast.proofs.reachability import ReachableSet, reachable

CONFIGS = agreement_configs()


def _ok(report: object) -> bool:
    """No disagreement, and no gap but the backend's declared known gaps (those are
    reported inconclusive by its checker, never compared here)."""
    from ballast.numeric.encodes import KNOWN_GAPS

    known = {name for _, name in KNOWN_GAPS}
    return not report.disagreements and set(report.gaps) <= known  # type: ignore[attr-defined]

MAX_STATES = 500
"""The default run checks the first states a breadth-first search finds (all of them
where a configuration has no more); the slow test checks every reachable state."""


@functools.lru_cache(maxsize=None)
def _reachable(name: str, max_states: int | None = MAX_STATES) -> ReachableSet:
    return reachable(CONFIGS[name], max_states=max_states)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_engine_agrees_on_reachable_states(name: str) -> None:
    rs = _reachable(name)
    report = check_numeric_agreement(CONFIGS[name], rs.states, steps=rs.steps)
    assert _ok(report), (report.summary(), [(str(rs.path(i)), w) for i, w in report.disagreements])
    assert report.states == len(rs.states) and report.enabled_steps > 0
    assert report.invariant_checks > 0


def test_several_configurations_are_checked_completely() -> None:
    complete = [n for n in CONFIGS if _reachable(n).complete]
    assert len(complete) >= 4, complete


QUICK_FAULTS = ("reclaim_keeps_mapping", "host_takes_single_unit", "release_keeps_balloon_set",
               "migrate_forgets_old_page", "oom_deflate_without_report")
"""Faults the default run seeds into the engine; the slow run seeds every one."""


@pytest.mark.parametrize("fault", [f if f in QUICK_FAULTS else
                                   pytest.param(f, marks=pytest.mark.slow)
                                   for f in sorted(ENGINE_FAULTS)])
def test_a_wrong_engine_is_caught(fault: str) -> None:
    """Each seeded fault put into the engine alone (the model stays correct) is found."""
    f = FAULTS[fault]
    for name, cfg in sorted(CONFIGS.items(), key=lambda kv: len(_reachable(kv[0]).states)):
        if not all(getattr(cfg, k) == v for k, v in f.config.items() if isinstance(v, bool)):
            continue
        rs = _reachable(name)
        if f.action not in {a.name for steps in rs.steps for a, _ in steps}:
            continue
        report = check_numeric_agreement(cfg, rs.states, steps=rs.steps,
                                         engine_faults=(fault,), max_disagreements=1)
        if report.disagreements:
            return
    pytest.fail(f"{fault}: no configuration shows the wrong engine")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(CONFIGS) - set(BOUNDED_ONLY)))
def test_engine_agrees_on_every_reachable_state(name: str) -> None:
    """Every reachable state; the breadth-first prefix of ``NUMERIC_PREFIX_STATES`` states of
    the configurations in ``NUMERIC_PREFIX`` (each with its reason)."""
    bounded = name in NUMERIC_PREFIX
    rs = _reachable(name, NUMERIC_PREFIX_STATES if bounded else None)
    assert rs.complete != bounded, (name, len(rs.states))
    report = check_numeric_agreement(CONFIGS[name], rs.states, steps=rs.steps)
    assert _ok(report), report.summary()


def test_a_violation_can_be_undone_by_the_next_step() -> None:
    """Why the numeric core checks after every batch: a state that breaks a property can
    step to one that breaks none, so checking every K > 1 batches can miss the fault."""
    from ballast.model.system import BalloonModel
    fault = "vmm_reclaims_host_choice"
    cfg = CONFIGS["default/protocol"].replace(**FAULTS[fault].config)
    rs = reachable(cfg, (fault,), max_states=20_000)
    model = BalloonModel(cfg, (fault,))
    undone = [(i, j) for i, s in enumerate(rs.states) if model.violations(s)
              for _, j in rs.steps[i] if not model.violations(rs.states[j])]
    assert undone, "no transient violation in this configuration"
