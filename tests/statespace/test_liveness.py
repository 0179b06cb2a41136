"""Liveness: AG EF and fair eventual reach, with lassos that replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace
from ballast.statespace.configs import EXPLORE_CONFIGS
from ballast.statespace.explore import explore
from ballast.statespace.liveness import CAN_REACH, REACHES, check_liveness
from ballast.statespace.traces import verify_lasso, write_liveness


def _liveness(model: BalloonModel) -> dict[str, object]:
    ex = explore(model, keep_edges=True)
    return {r.property: r for r in check_liveness(ex)}, ex  # type: ignore[return-value]


def test_both_hold_on_the_plain_protocol() -> None:
    results, _ = _liveness(BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"]))
    assert results[CAN_REACH].holds and results[REACHES].holds  # type: ignore[union-attr]


def test_refusal_starves_the_balloon_under_weak_fairness(tmp_path: Path) -> None:
    # The VMM may refuse every inflate forever: weak fairness of vmm_reclaim is met
    # by the refusing variant, so the balloon need not reach its target, though it can.
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"])
    results, ex = _liveness(model)
    assert results[CAN_REACH].holds  # type: ignore[union-attr]
    lasso = results[REACHES]
    assert not lasso.holds and lasso.cycle  # type: ignore[union-attr]
    assert any(a.name == "vmm_reclaim" and a.kwargs["refuse"] for a in lasso.cycle)  # type: ignore[union-attr]
    assert verify_lasso(model, 0, lasso.prefix, lasso.cycle) is None  # type: ignore[union-attr]
    path = write_liveness(ex, lasso, tmp_path, "lasso")  # type: ignore[arg-type]
    trace = read_trace(path)
    assert trace.header.expect is not None
    assert trace.header.expect["lasso_start"] == len(lasso.prefix) + 1  # type: ignore[union-attr]
    assert len(trace.steps) == len(lasso.prefix) + len(lasso.cycle)  # type: ignore[union-attr]
    assert (tmp_path / "lasso.md").read_text().startswith("#")
    from ballast.model.replay import replay
    states = replay(trace).states
    assert states[len(lasso.prefix)] == states[-1]  # type: ignore[union-attr]


def test_an_unfair_cycle_is_rejected() -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-refusal"])
    results, _ = _liveness(model)
    lasso = results[REACHES]
    # Drop the steps of the cycle: prefix + nothing is no lasso.
    assert verify_lasso(model, 0, lasso.prefix, []) is not None  # type: ignore[union-attr]


def test_a_module_that_never_completes_cannot_reach_its_target(tmp_path: Path) -> None:
    model = BalloonModel(EXPLORE_CONFIGS["one-vm-no-host-use"])
    model.table = {k: v for k, v in ACTIONS.items() if k != "balloon_complete"}
    results, ex = _liveness(model)
    stuck = results[CAN_REACH]
    assert not stuck.holds and stuck.prefix  # type: ignore[union-attr]
    path = write_liveness(ex, stuck, tmp_path, "stuck")  # type: ignore[arg-type]
    assert read_trace(path).header.expect["property"] == CAN_REACH  # type: ignore[index]


def test_liveness_refuses_a_reduced_graph() -> None:
    ex = explore(BalloonModel(EXPLORE_CONFIGS["one-vm"]), symmetry=True, keep_edges=True)
    with pytest.raises(UsageError):
        check_liveness(ex)
