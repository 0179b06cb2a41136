"""Which of the model's actions, properties and scenarios the frontier engine runs by their
kernels.

Per action, its kernel where the configuration and the seeded faults leave it one
(:func:`kernel_of`) and its candidates where they do not depend on the state (:class:`Plan`);
per state property its kernel (:func:`property_kernel_of`), per step property its step form
(:func:`step_kernel_of`), per scenario its witness (:func:`scenario_kernel_of`), whether a
VM's balloon has protocol work to do (:func:`unsettled_kernel_of`); and what the
model's code answers without reading a state, found by running it on a stand-in that refuses
to be read (:data:`UNREAD`, :func:`without_state`).
"""

from __future__ import annotations

from typing import Any, Callable, cast

from ballast.model.action_kernels import FAULT_KERNELS, KERNELS, MEMORY_KERNELS
from ballast.model.actions import ACTIONS, ActionSpec
from ballast.model.encodings import declared_gaps_on
from ballast.model.faults import FAULTS
from ballast.model.invariants import Property
from ballast.model.ops import Kernel
from ballast.model.property_kernels import (PROPERTY_KERNELS, STEP_KERNELS, PropertyKernel,
                                             StepKernel)
from ballast.model.scenario_kernels import ScenarioKernel, kernel_for
from ballast.model.sometimes import Scenario
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.numeric.encodes import gaps_in
from ballast.numeric.invariants import NUMERIC_INVARIANTS
from ballast.statespace.deadlock import unsettled_kernel
from ballast.statespace.transitions import ReadElsewhere

__all__ = ["Plan", "UNREAD", "kernel_of", "property_kernel_of", "scenario_kernel_of",
           "step_kernel_of", "unsettled_kernel_of", "without_state"]


class _NotRead(ReadElsewhere, AttributeError):
    """A check read the stand-in of a state (an AttributeError too, so ``hasattr`` is False)."""


class _Unread:
    """Stands in for a state that a check must not read: any attribute read raises."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        raise _NotRead(name)


UNREAD = cast(State, object.__new__(_Unread))

def without_state(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, answer) when ``fn`` answers without reading a state, else (False, None)."""
    try:
        return True, fn()
    except Exception:  # noqa: BLE001 - any failure on a stand-in means "it reads the state"
        return False, None


def kernel_of(model: BalloonModel, spec: ActionSpec) -> Kernel | None:
    """The kernel of ``spec`` in ``model`` (with its seeded faults), or None when the action
    has no kernel yet or a fault replaces it by a step that has none.

    A kernel that uses the memory operations runs only where the NumPy encoding covers
    everything the configuration switches on: the state of the features it lacks
    (:func:`ballast.numeric.encodes.gaps_in`) changes what those steps do, so there the
    model's step is taken. A kernel that needs an operation the frontier's rows lack (page
    poisoning's writes, the VMM's flood bound, a reset that copies the queues in flight,
    the dirty log of free page hinting, the VMM's choice of an MPN in a host page of the
    same VM) is found when it first runs (:class:`~ballast.statespace.frontier_rows.RowsLack`),
    and its action's steps are the model's from then on.

    >>> from ballast.model.config import Config
    >>> m = BalloonModel(Config(), ["release_keeps_balloon_set"])
    >>> kernel_of(m, m.table["vmm_release"]) is FAULT_KERNELS["release_keeps_balloon_set"][1]
    True
    >>> kernel_of(m, m.table["guest_read"]) is KERNELS["guest_read"]
    True
    """
    name = spec.name
    if declared_gaps_on(model.cfg):
        # A feature the kernels do not know yet may change an encoded action's guard too
        # (a frozen guest takes no step; the VMM grants vCPUs against the host's target).
        return None
    memory_ok = not gaps_in(model.cfg, model.faults)
    if spec.effect is ACTIONS[name].effect:
        return KERNELS.get(name) if memory_ok or name not in MEMORY_KERNELS else None
    for fault in reversed(model.faults):
        if FAULTS[fault].action == name and spec.effect is FAULTS[fault].effect:
            got = FAULT_KERNELS.get(fault)
            if fault in MEMORY_KERNELS and not memory_ok:
                return None
            return got[1] if got is not None and got[0] == name else None
    return None


def property_kernel_of(model: BalloonModel, prop: Property) -> PropertyKernel | None:
    """The kernel that checks state property ``prop`` on whole batches of rows, or None
    where the model's check runs: the property has no kernel (or no vector form in the
    NumPy backend), or the configuration switches on a feature the kernels lack (the
    same conditions as the actions' memory kernels in :func:`kernel_of`).

    >>> from ballast.model.config import Config
    >>> from ballast.model.invariants import INVARIANTS
    >>> m = BalloonModel(Config())
    >>> property_kernel_of(m, INVARIANTS["memory_conservation"]).name
    'memory_conservation'
    """
    cfg = model.cfg
    if declared_gaps_on(cfg) or gaps_in(cfg, model.faults) or prop.name not in NUMERIC_INVARIANTS:
        return None
    return PROPERTY_KERNELS.get(prop.name)


def unsettled_kernel_of(model: BalloonModel) -> Callable[[Any], Any] | None:
    """The kernel that tells, over whole batches of rows, whether a VM's balloon has protocol
    work to do (:func:`~ballast.statespace.deadlock.unsettled_kernel`), or None where the
    model's reading of each state answers: as for :func:`property_kernel_of`, a feature
    the kernels lack or a seeded fault that changes the steps the kernel's reads stand on.

    >>> from ballast.model.config import Config
    >>> unsettled_kernel_of(BalloonModel(Config())) is not None
    True
    """
    cfg = model.cfg
    if declared_gaps_on(cfg) or gaps_in(cfg, model.faults):
        return None
    return unsettled_kernel(cfg)


def step_kernel_of(model: BalloonModel, prop: Property) -> StepKernel | None:
    """The step form of ``prop`` that checks whole batches of steps over rows, or None where
    the model's step check runs on the states: the property has no step kernel, or the
    configuration switches on a feature the kernels lack (as for
    :func:`property_kernel_of`).

    >>> from ballast.model.config import Config
    >>> from ballast.model.invariants import INVARIANTS
    >>> step_kernel_of(BalloonModel(Config()), INVARIANTS["isolation"]).covers
    'others'
    """
    cfg = model.cfg
    if declared_gaps_on(cfg) or gaps_in(cfg, model.faults) or prop.step is None:
        return None
    return STEP_KERNELS.get(prop.name)


def scenario_kernel_of(model: BalloonModel, scenario: Scenario) -> ScenarioKernel | None:
    """The kernel that witnesses ``scenario`` over whole batches of steps, or None where the
    model's predicate runs on the states: the scenario has no kernel, a seeded fault
    replaces an action whose steps may witness it, or the configuration switches on a
    feature the kernels lack (as for :func:`property_kernel_of`).

    >>> from ballast.model.config import Config
    >>> from ballast.model.sometimes import SOMETIMES
    >>> sc = SOMETIMES["host_reuses_reclaimed_page"]
    >>> scenario_kernel_of(BalloonModel(Config(host_use=True)), sc).actions
    frozenset({'host_take_page'})
    >>> m = BalloonModel(Config(host_use=True, host_page_units=2), ["host_takes_single_unit"])
    >>> scenario_kernel_of(m, sc) is None
    True
    """
    cfg = model.cfg
    if declared_gaps_on(cfg) or gaps_in(cfg, model.faults):
        return None
    return kernel_for(scenario.name, [FAULTS[f].action for f in model.faults])


class Plan:
    """How each action of the model is stepped: kernel or model, fixed candidates or not."""

    def __init__(self, model: BalloonModel) -> None:
        cfg = model.cfg
        self.specs = model.action_specs()
        self.kernels = [kernel_of(model, spec) for spec in self.specs]
        self.fixed: list[list[dict[str, Any]] | None] = []
        for spec in self.specs:
            ok, cands = without_state(lambda: list(spec.candidates(cfg, UNREAD)))
            self.fixed.append(cands if ok else None)
