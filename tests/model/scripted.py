"""Scripted runs shared by the model's tests: actions named in domain words, applied in order."""

from __future__ import annotations

from ballast.model.actions import Action, apply
from ballast.model.config import Config
from ballast.model.faults import action_table
from ballast.model.state import State, initial_state

__all__ = ["a", "run"]


def a(name: str, **args: object) -> Action:
    """The action ``name`` with its arguments, as a trace writes it."""
    return Action.of(name, **args)


def run(cfg: Config, steps: list[Action], faults: tuple[str, ...] = ()) -> State:
    """The state after ``steps`` from the initial state (a refused guard raises)."""
    s = initial_state(cfg)
    table = action_table(list(faults))
    for act in steps:
        s = apply(cfg, s, act, table)
    return s
