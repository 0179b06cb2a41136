"""Re-run a trace through the reference model.

The replayer names the first step the model does not allow (with the guard's
reason), the first recorded state or observation that differs from the model's
(the header's ``observe`` is of the initial state: a difference there is at step 0,
before any step), or the first property that breaks. Every counterexample a checker
reports is replayed here before it is reported.

>>> from ballast.model.config import Config
>>> from ballast.model.actions import Action
>>> from ballast.model.trace import Trace, TraceHeader, TraceStep
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> bad = Trace(TraceHeader(cfg), (TraceStep(1, Action.of("vmm_release", vm=0)),))
>>> replay(bad).describe()
'step 1 (vmm_release(vm=0)) is not allowed: the guest has reported no page for deflation'
>>> seen = Trace(TraceHeader(cfg, observe={"host/free_count": 1}), ())
>>> print(replay(seen).describe())
the initial state (before step 1): observation differs: host/free_count is 2, observed 1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable

from ballast.errors import GuardError
from ballast.model.actions import Action
from ballast.model.incremental import StepChecker
from ballast.model.state import State, state_from_dict
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import Trace, TraceHeader, TraceStep, observe_matches

__all__ = ["ReplayOutcome", "ReplayResult", "replay", "replay_steps"]


class ReplayOutcome(str, Enum):
    """How a replay ended."""

    OK = "ok"
    """Every step allowed, every property held, every recorded state matched."""
    ILLEGAL = "illegal"
    """A step the model does not allow, or a recorded state the model does not produce."""
    VIOLATION = "violation"
    """A property broke."""


@dataclass(frozen=True)
class ReplayResult:
    """The result of a replay."""

    outcome: ReplayOutcome
    steps_run: int
    """Steps applied successfully."""
    step: int | None = None
    """The step where the replay stopped (1-based), if it stopped early; 0 for the initial
    state (a property it breaks, or the header's observation of it differs)."""
    line: int | None = None
    """The trace line of that step (1, the header, for the initial state's observation)."""
    action: Action | None = None
    reason: str | None = None
    violations: tuple[Violation, ...] = ()
    states: tuple[State, ...] = field(default=(), repr=False)
    """Every state visited: the initial state, then the state after each applied step."""
    witnessed: frozenset[str] = frozenset()

    def describe(self) -> str:
        """One line for a person."""
        if self.outcome is ReplayOutcome.OK:
            return f"replayed {self.steps_run} steps: every property holds"
        if self.step == 0 or self.action is None:
            where = "the initial state (before step 1)"
            if self.outcome is ReplayOutcome.ILLEGAL:
                return f"{where}: {self.reason}"
        else:
            where = f"step {self.step} ({self.action})"
        if self.outcome is ReplayOutcome.ILLEGAL:
            return f"{where} is not allowed: {self.reason}"
        v = self.violations[0]
        return f"{where} breaks {v.property}: {v.message}"


def replay_steps(model: BalloonModel, steps: Iterable[TraceStep],
                 initial: State | None = None, *, stop_at_violation: bool = True,
                 keep_states: bool = True,
                 on_step: Callable[[State, TraceStep, State], None] | None = None,
                 observe: dict[str, Any] | None = None) -> ReplayResult:
    """Apply ``steps`` from ``initial`` (default: the model's initial state).

    ``observe`` is what was observed of the initial state (a trace header's ``observe``):
    a difference stops the replay at step 0, before any step, as a step's observation
    does after it. ``on_step(pre, step, post)`` sees every applied step as it is applied
    (a report of a long trace reads it there instead of keeping every state)."""
    s = initial if initial is not None else model.init_states()[0]
    checker = StepChecker(model)
    states = [s] if keep_states else []
    seen: set[str] = set()
    if observe is not None:
        diff = observe_matches(s, observe)
        if diff is not None:
            return ReplayResult(ReplayOutcome.ILLEGAL, 0, 0, 1, None,
                                f"observation differs: {diff}", (), tuple(states))
    first = model.violations(s)
    if first:
        return ReplayResult(ReplayOutcome.VIOLATION, 0, 0, None, None, None, tuple(first),
                            tuple(states))
    n = 0
    for st in steps:
        try:
            post = model.next_state(s, st.action)
        except GuardError as exc:
            return ReplayResult(ReplayOutcome.ILLEGAL, n, st.step, st.line, st.action,
                                exc.reason, (), tuple(states), frozenset(seen))
        if st.state is not None and post.to_dict() != st.state:
            return ReplayResult(ReplayOutcome.ILLEGAL, n, st.step, st.line, st.action,
                                "the recorded state after this step differs from the model's",
                                (), tuple(states), frozenset(seen))
        if st.observe is not None:
            diff = observe_matches(post, st.observe)
            if diff is not None:
                return ReplayResult(ReplayOutcome.ILLEGAL, n, st.step, st.line, st.action,
                                    f"observation differs: {diff}", (), tuple(states),
                                    frozenset(seen))
        seen.update(model.witnessed(s, st.action, post))
        bad = checker.check(s, st.action, post)
        if on_step is not None:
            on_step(s, st, post)
        s = post
        n += 1
        if keep_states:
            states.append(s)
        if bad and stop_at_violation:
            return ReplayResult(ReplayOutcome.VIOLATION, n, st.step, st.line, st.action, None,
                                tuple(bad), tuple(states), frozenset(seen))
    return ReplayResult(ReplayOutcome.OK, n, states=tuple(states), witnessed=frozenset(seen))


def model_for(header: TraceHeader) -> BalloonModel:
    """The model a trace header describes (configuration and seeded faults)."""
    return BalloonModel(header.config, header.faults)


def replay(trace: Trace, *, keep_states: bool = True) -> ReplayResult:
    """Replay a whole trace through the model its header describes."""
    model = model_for(trace.header)
    initial = state_from_dict(trace.header.initial) if trace.header.initial else None
    return replay_steps(model, trace.steps, initial, keep_states=keep_states,
                        observe=trace.header.observe)
