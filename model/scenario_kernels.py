"""Scenarios written again over :mod:`ballast.model.ops`, where a backend witnesses them over
whole batches of steps.

A scenario (:data:`ballast.model.sometimes.SOMETIMES`) is a predicate of one step, read
over the model's frozen states; it stays the reference. Its kernel here says when a step
witnesses it as a truth value over two interpretations of the operations, the pre-state's
and the post-state's (read for the acting VM, or for the host where the step has no VM),
on the steps of the actions named: the steps of any other action never witness it. A
backend with rows of states (the frontier engine) computes it over thousands of steps at
once instead of asking the model step by step; a scenario that a configuration never
reaches would otherwise be asked of every step that may witness it, for the whole run.

Each kernel is shown equal to the model's predicate on every step of the small
configurations' reachable states (``tests/model/test_scenario_kernels.py``). It holds for
the model's own actions: where a seeded fault replaces one of the actions named, its steps
are the fault's, and a backend asks the model (:func:`kernel_for`).

>>> sorted(SCENARIO_KERNELS)
['guest_pages_out_for_balloon', 'host_reuses_reclaimed_page']
>>> sorted(SCENARIO_KERNELS["host_reuses_reclaimed_page"].actions)
['host_take_page']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection

from ballast.model.action_kernels import inflate_limit
from ballast.model.ops import StateOps, Value
from ballast.model.sometimes import SOMETIMES
from ballast.model.state import FREE

__all__ = ["SCENARIO_KERNELS", "ScenarioKernel", "WitnessCheck", "guest_pages_out_for_balloon",
           "host_reuses_reclaimed_page", "kernel_for"]

WitnessCheck = Callable[[StateOps, StateOps], Value]
"""A truth value of one step over the pre-state's operations and the post-state's."""


@dataclass(frozen=True)
class ScenarioKernel:
    """One scenario's witness over the kernels' operations."""

    name: str
    """The scenario's name in :data:`~ballast.model.sometimes.SOMETIMES`."""
    witness: WitnessCheck
    """Whether a step of one of :attr:`actions` witnesses the scenario."""
    actions: frozenset[str]
    """The actions whose steps may witness it (the model's predicate is false on others)."""


SCENARIO_KERNELS: dict[str, ScenarioKernel] = {}
"""The kernel of every scenario that has one, by the model's name."""


def _scenario(name: str, witness: WitnessCheck, actions: Collection[str]) -> None:
    assert name in SOMETIMES, name
    SCENARIO_KERNELS[name] = ScenarioKernel(name, witness, frozenset(actions))


def host_reuses_reclaimed_page(pre: StateOps, post: StateOps) -> Value:
    """A machine page the VMM reclaimed from a balloon is in the host's own use after the
    step and was not before."""
    return pre.any(pre.and_(pre.mpns("reclaimed"), post.mpns("in_use"),
                            pre.not_(pre.mpns("in_use"))))


_scenario("host_reuses_reclaimed_page", host_reuses_reclaimed_page, ["host_take_page"])


def guest_pages_out_for_balloon(pre: StateOps, post: StateOps) -> Value:
    """(Read for the VM that acts) its balloon still wanted pages before the step and the
    guest had no free page left for it."""
    return pre.and_(pre.lt(0, inflate_limit(pre)),
                    pre.not_(pre.any(pre.eq(pre.pages("guest.ppn_use"), FREE))))


_scenario("guest_pages_out_for_balloon", guest_pages_out_for_balloon, ["guest_evict"])


def kernel_for(name: str, replaced: Collection[str]) -> ScenarioKernel | None:
    """The kernel of scenario ``name`` where the actions ``replaced`` (by seeded faults) are
    not the model's own, or None: the scenario has no kernel, or a fault replaces an action
    whose steps may witness it.

    >>> kernel_for("host_reuses_reclaimed_page", ["vmm_reclaim"]).name
    'host_reuses_reclaimed_page'
    >>> kernel_for("host_reuses_reclaimed_page", ["host_take_page"]) is None
    True
    """
    kernel = SCENARIO_KERNELS.get(name)
    if kernel is None or kernel.actions & set(replaced):
        return None
    return kernel
