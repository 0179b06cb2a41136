"""What the host can always do against a guest that will not cooperate: take its memory back.

A safety property says what holds in every state or step; this one says what the host and the
VMM can always *bring about*, alone, whatever the guest has done before: a property over the
graph of reachable states (AG EF), checked by the explorer's backward reachability
(``ballast.statespace.liveness``). The model says what the property is: the states it
promises can be reached (:attr:`ReachProperty.goal`), the steps a run towards them may take
(:attr:`ReachProperty.moves`: the others' actors take none) and what it assumes
(:attr:`ReachProperty.assumed`, :attr:`ReachProperty.unmet`).

>>> from ballast.model.config import Config
>>> prop = REACH_PROPERTIES[RECOVERY]
>>> prop.feature(Config(vmm_reclaims_over_target=True)), prop.feature(Config())
(True, False)
>>> prop.unmet(Config(vmm_reclaims_over_target=True, host_swap_slots=0))
'no host swap slot to page the excess out to (host_swap_slots = 0)'
>>> (moves(Action.of("vmm_swap_over_target", vm=0, ppn=1)),
...  moves(Action.of("guest_read", vm=0, vpn=0)))
(True, False)
>>> moves(Action.of("host_set_target", vm=0, pages=0))
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ballast.model.actions import ACTIONS, Action, Actor, over_target, within_allowance
from ballast.model.config import Config
from ballast.model.state import State

__all__ = ["RECOVERY", "REACH_PROPERTIES", "TARGET_SETTERS", "ReachProperty", "moves",
           "swap_covers_excess"]

RECOVERY = "host_recovers_to_target"
"""The host recovering a VM's memory down to its target by host swap."""

TARGET_SETTERS = ("host_set_target", "host_set_cpu_target")
"""The host's steps that change what it allows a VM: held fixed while a property over runs
is judged (they may happen before)."""


@dataclass(frozen=True)
class ReachProperty:
    """A named property over runs: from every reachable state that meets its assumption,
    some run of the allowed steps reaches a goal state."""

    name: str
    doc: str
    """What can always be reached, by whom, and what that assumes, in domain words."""
    scope: str
    """``host``: it holds whatever the guests do."""
    each_vm: Callable[[Config, State, int], bool]
    """What the goal asks of each VM: the property promises a state where every VM has it."""
    moves: Callable[[Action], bool]
    """The steps a run towards the goal may take; every other actor takes no step."""
    assumed: Callable[[Config, State], bool]
    """Whether a state meets the assumption (the property claims nothing of the others)."""
    unmet: Callable[[Config], str | None]
    """Why a configuration can meet the assumption in no state, or None."""
    assumes: str
    """The assumption in words (every verdict states it)."""
    feature: Callable[[Config], bool] = lambda cfg: True
    """Whether the property means anything in a configuration."""

    def goal(self, cfg: Config, s: State) -> bool:
        """Whether ``s`` is a state the property promises can be reached."""
        return all(self.each_vm(cfg, s, v) for v in range(cfg.vms))

    def off_goal(self, cfg: Config, s: State) -> int | None:
        """The first VM that keeps ``s`` off the goal, or None."""
        return next((v for v in range(cfg.vms) if not self.each_vm(cfg, s, v)), None)

    @property
    def summary(self) -> str:
        """The first line of the docstring."""
        return self.doc.splitlines()[0]


REACH_PROPERTIES: dict[str, ReachProperty] = {}
"""Every property over runs the model defines, by name."""


def moves(act: Action) -> bool:
    """Whether ``act`` is a step of the host or the VMM that keeps the targets: what the
    host may do alone against guests that take no step."""
    spec = ACTIONS.get(act.name)
    return (spec is not None and spec.actor in (Actor.HOST, Actor.VMM)
            and act.name not in TARGET_SETTERS)


def swap_covers_excess(cfg: Config, s: State) -> bool:
    """Whether the free host swap slots hold every page the VMs have beyond what the host
    allows them."""
    excess = sum(over_target(cfg, s, v) for v in range(cfg.vms))
    return excess <= cfg.host_swap_slots - len(s.host.swap)


def _no_slots(cfg: Config) -> str | None:
    if cfg.host_swap_slots == 0:
        return "no host swap slot to page the excess out to (host_swap_slots = 0)"
    return None


REACH_PROPERTIES[RECOVERY] = ReachProperty(
    RECOVERY,
    "From every reachable state the host and the VMM alone can bring every VM within what the host "
    """allows it: the guest need not cooperate.

    Whatever a guest has done (touched pages beyond its target, popped or pinned its
    balloon, reported nothing), the VMM pages the excess out to host swap by itself
    (``vmm_swap_over_target``) until no VM holds more machine pages than ``guest_pages -
    target``. A run towards that takes host and VMM steps only (the guests and their modules
    take none) and keeps the targets (``host_set_target`` is left out). Assumptions: the VMM
    reclaims over target (``vmm_reclaims_over_target``); the free host swap slots hold the
    excess of every VM (a state where they do not is outside the claim, and a configuration
    without host swap slots is not checked); the host's own use of free pages and its
    targets are its choice.""",
    "host", within_allowance, moves, swap_covers_excess, _no_slots,
    "the VMM pages out a VM over its target (vmm_reclaims_over_target); the free host swap "
    "slots hold every VM's excess; the guests and their modules take no step; targets fixed",
    feature=lambda cfg: cfg.vmm_reclaims_over_target)
