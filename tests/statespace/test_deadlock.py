"""Deadlock's "unsettled": its kernel over rows against its readable form on reachable states."""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import numpy.typing as npt
import pytest

from ballast.model.action_kernels import inflate_room
from ballast.model.faults import FAULTS
from ballast.model.invariants import honest_vms
from ballast.model.ops import StateOps, Value
from ballast.model.system import BalloonModel
from ballast.statespace.configs import EXPLORE_CONFIGS, fault_config
from ballast.statespace.deadlock import _unsettled_ops, unsettled, unsettled_kernel
from ballast.statespace.explore import Budget, explore
from ballast.statespace.frontier_kernels import unsettled_kernel_of
from ballast.statespace.frontier_rows import property_holds_on_rows
from ballast.statespace.rowcodec import RowLayout

STATES = 800


@functools.cache
def _reached(name: str) -> tuple[RowLayout, npt.NDArray[np.int16], list[list[bool]]]:
    """The first :data:`STATES` states ``MODELS[name]`` reaches, as rows, and per honest VM
    whether it is unsettled in each (the readable form's answers)."""
    model = MODELS[name]
    cfg = model.cfg
    ex = explore(model, budget=Budget(max_states=STATES))
    states = [ex.state(i) for i in range(ex.states)]
    lay = RowLayout(cfg)
    rows = np.array([lay.encode(s) for s in states], dtype=np.int16)
    return lay, rows, [[unsettled(cfg, s, v) for s in states] for v in honest_vms(cfg)]


def _answers(name: str, kernel: Callable[[StateOps], Value]) -> tuple[int, int, int]:
    """(answers compared, of which unsettled, of which ``kernel`` and the readable form
    differ) over the states of :func:`_reached`, every honest VM of each."""
    lay, rows, wanted = _reached(name)
    compared = busy = differ = 0
    for v, want in zip(honest_vms(MODELS[name].cfg), wanted):
        got = property_holds_on_rows(kernel, lay, rows, v).tolist()
        compared += len(want)
        busy += sum(want)
        differ += sum(g != w for g, w in zip(got, want))
    return compared, busy, differ


def _all_models() -> dict[str, BalloonModel]:
    """Every pinned configuration and every seeded fault's configuration, by name."""
    models = {name: BalloonModel(cfg) for name, cfg in EXPLORE_CONFIGS.items()}
    models.update((f, BalloonModel(fault_config(f), [f])) for f in FAULTS)
    return models


MODELS = _all_models()
BY_KERNEL = sorted(name for name, m in MODELS.items()
                   if unsettled_kernel_of(m) is not None and list(honest_vms(m.cfg)))


def test_the_engine_takes_the_kernel_on_most_configurations() -> None:
    """The comparison below covers most of what is explored; the rest (balloon units of
    several pages, features or faults the kernels lack, no honest VM) keep the model's
    reading of each state."""
    assert len(BY_KERNEL) * 2 > len(MODELS)
    assert unsettled_kernel(MODELS["one-vm-large-units"].cfg) is None


@pytest.mark.parametrize("name", BY_KERNEL)
def test_the_kernel_is_unsettled_on_every_reachable_state(name: str) -> None:
    """Where the frontier engine takes the kernel, it answers as :func:`unsettled` on every
    state reached, for every honest VM."""
    kernel = unsettled_kernel_of(MODELS[name])
    assert kernel is not None
    compared, busy, differ = _answers(name, kernel)
    assert differ == 0 and compared > 0


def test_the_states_compared_are_both_settled_and_unsettled() -> None:
    """The comparison is not vacuous: the configurations reach both answers."""
    compared, busy, differ = _answers("two-vms", _unsettled_ops)
    assert differ == 0 and 0 < busy < compared


_CLAUSES = ["target unread", "inflate queue", "deflate queue", "acked inflate",
            "acked refused", "acked deflate", "refused held", "balloon above target",
            "room to inflate"]


def _without(clause: str) -> Callable[[StateOps], Value]:
    """The kernel with one clause of :func:`unsettled` left out (a seeded fault)."""
    def kernel(o: StateOps) -> Value:
        parts = {
            "target unread": o.ne(o.vm("module.target"), o.vm("target")),
            "inflate queue": o.lt(0, o.queue_len("inflate_queue")),
            "deflate queue": o.lt(0, o.queue_len("deflate_queue")),
            "acked inflate": o.any(o.pages("acked_inflate")),
            "acked refused": o.or_(o.any(o.pages("acked_refused")), o.beyond("acked_refused")),
            "acked deflate": o.any(o.pages("acked_deflate")),
            "refused held": o.any(o.pages("module.refused")),
            "balloon above target": o.lt(o.vm("module.target"),
                                         o.count(o.pages("module.balloon"))),
            "room to inflate": o.lt(0, inflate_room(o)),
        }
        return o.or_(*[x for name, x in parts.items() if name != clause])
    return kernel


@pytest.mark.parametrize("clause", _CLAUSES)
def test_a_kernel_missing_a_clause_is_caught(clause: str) -> None:
    """Each clause matters on some reachable state of a small configuration: the comparison
    above would catch a kernel that left it out."""
    differ = sum(_answers(name, _without(clause))[2] for name in ("two-vms", "one-vm-refusal"))
    assert differ > 0
