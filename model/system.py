"""The model as checkers see it: initial states, actions, next state, properties.

Kept apart from every checker (as in stateright's ``Model`` trait): the
explorer, the random runner, the Hypothesis machine and the trace replayer all
drive a :class:`BalloonModel` and never touch the step functions directly.

>>> from ballast.model.config import Config
>>> m = BalloonModel(Config(vms=1, guest_pages=2, machine_pages=2))
>>> s0 = m.init_states()[0]
>>> m.violations(s0)
[]
>>> [str(a) for a, _ in m.successors(s0)][:2]
['host_set_target(vm=0, pages=1)', 'host_set_target(vm=0, pages=2)']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from ballast.errors import GuardError
from ballast.model.actions import ACTIONS, Action, ActionSpec, apply, enabled
from ballast.model.config import Config
from ballast.model.faults import action_table
from ballast.model.invariants import INVARIANTS, Property
from ballast.model.sometimes import SOMETIMES, Scenario
from ballast.model.state import State, initial_state

__all__ = ["BalloonModel", "Violation"]


@dataclass(frozen=True)
class Violation:
    """A property that does not hold, with the model's explanation."""

    property: str
    """Name of the broken property (a key of INVARIANTS)."""
    message: str
    """What is wrong, in domain words."""
    form: str
    """``state`` or ``step``: which form of the property broke."""


class BalloonModel:
    """One configuration of the model, optionally with seeded faults."""

    def __init__(self, cfg: Config, faults: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.faults = tuple(faults)
        self.table: Mapping[str, ActionSpec] = action_table(self.faults) if faults else ACTIONS

    # -- the model ----------------------------------------------------------
    def init_states(self) -> list[State]:
        """The initial states (one: every guest freshly booted, every MPN free)."""
        return [initial_state(self.cfg)]

    def action_specs(self) -> list[ActionSpec]:
        """The actions that exist in this configuration."""
        return [spec for spec in self.table.values() if spec.feature(self.cfg)]

    def successors(self, s: State) -> Iterator[tuple[Action, State]]:
        """Every enabled action from ``s`` with its successor, in a fixed order."""
        return enabled(self.cfg, s, self.table)

    def next_state(self, s: State, act: Action) -> State:
        """The successor under ``act``; raises GuardError if the step is not allowed."""
        return apply(self.cfg, s, act, self.table)

    def try_next_state(self, s: State, act: Action) -> State | None:
        """The successor under ``act``, or None if the step is not allowed."""
        try:
            return self.next_state(s, act)
        except GuardError:
            return None

    # -- properties ---------------------------------------------------------
    def properties(self) -> list[Property]:
        """The safety properties that mean something in this configuration."""
        return [p for p in INVARIANTS.values() if p.feature(self.cfg)]

    def scenarios(self) -> list[Scenario]:
        """The "sometimes" scenarios that mean something in this configuration."""
        return [sc for sc in SOMETIMES.values() if sc.feature(self.cfg)]

    def violations(self, s: State) -> list[Violation]:
        """Every state invariant ``s`` breaks."""
        out = []
        for p in self.properties():
            msg = p.check_state(self.cfg, s)
            if msg is not None:
                out.append(Violation(p.name, msg, "state"))
        return out

    def step_violations(self, pre: State, act: Action, post: State) -> list[Violation]:
        """Every property the step breaks: step forms first, then state forms on ``post``."""
        out = []
        for p in self.properties():
            msg = p.check_step(self.cfg, pre, act, post)
            if msg is not None:
                out.append(Violation(p.name, msg, "step"))
        return out + self.violations(post)

    def witnessed(self, pre: State, act: Action, post: State) -> list[str]:
        """Names of the scenarios this step witnesses."""
        return [sc.name for sc in self.scenarios() if sc.witness(self.cfg, pre, act, post)]
