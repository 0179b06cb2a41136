"""Shrink a failing action sequence by delta debugging, checked by the reference model.

A candidate is kept only if the reference model still allows every step and
still breaks the *same* property, so the shrunk trace fails the way the
original did.

>>> from ballast.model import BalloonModel, preset
>>> from ballast.simulation.randomwalk import random_run
>>> m = BalloonModel(preset("default").replace(host_page_units=2), ["host_takes_partial_page"])
>>> run = random_run(m, seed=0, steps=200)
>>> small = shrink_actions(m, [st.action for st in run.trace.steps], run.violation.property)
>>> len(small) <= len(run.trace.steps)
True
"""

from __future__ import annotations

from typing import Sequence

from ballast.errors import GuardError
from ballast.model.actions import Action
from ballast.model.system import BalloonModel

__all__ = ["fails_with", "shrink_actions"]


def fails_with(model: BalloonModel, actions: Sequence[Action], prop: str) -> bool:
    """True if every step is allowed and the last step breaks ``prop`` (and no earlier one
    breaks anything)."""
    s = model.init_states()[0]
    for i, act in enumerate(actions):
        try:
            post = model.next_state(s, act)
        except GuardError:
            return False
        bad = model.step_violations(s, act, post)
        if bad:
            return i == len(actions) - 1 and any(v.property == prop for v in bad) \
                and bad[0].property == prop
        s = post
    return False


def shrink_actions(model: BalloonModel, actions: Sequence[Action], prop: str,
                   *, max_checks: int = 5000) -> list[Action]:
    """A shorter action list that still breaks ``prop`` at its last step (ddmin over steps)."""
    current = list(actions)
    if not fails_with(model, current, prop):
        return current
    checks = 0
    chunk = max(1, len(current) // 2)
    while chunk >= 1 and checks < max_checks:
        i = 0
        removed = False
        while i < len(current) - 1 and checks < max_checks:
            # never remove the final, failing step
            candidate = current[:i] + current[min(i + chunk, len(current) - 1):]
            checks += 1
            if len(candidate) < len(current) and fails_with(model, candidate, prop):
                current = candidate
                removed = True
            else:
                i += chunk
        if not removed:
            chunk //= 2
    return current
