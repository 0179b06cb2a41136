"""The model as a Hypothesis state machine: one rule per action, one invariant per property.

Rules are declared from the model's action table, so the machine exercises
exactly the model's actions with the model's guards; each rule draws one of the
action's enabled argument choices. Every state invariant is a Hypothesis
``@invariant``; the step forms of the properties are checked inside each rule.
When a property breaks, Hypothesis shrinks the run, and the shrunk run is kept
as a trace in the project's format (the runner is separate: :func:`run_machine`).

>>> from ballast.model import BalloonModel, preset
>>> out = run_machine(BalloonModel(preset("core")), seed=1, examples=5, steps=10)
>>> out.violation is None and out.steps_run > 0
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, seed as hypothesis_seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ballast.model.actions import Action, ActionSpec
from ballast.model.invariants import Property
from ballast.model.state import State
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import Trace, TraceHeader, TraceStep

__all__ = ["MachineOutcome", "PropertyBroken", "machine_for", "run_machine"]


class PropertyBroken(AssertionError):
    """Raised inside the machine when a property of the model breaks."""

    def __init__(self, violation: Violation) -> None:
        self.violation = violation
        super().__init__(f"{violation.property}: {violation.message}")


@dataclass
class _Recorder:
    """What the latest run of the machine did (Hypothesis replays the shrunk run last)."""

    steps: list[TraceStep] = field(default_factory=list)
    violation: Violation | None = None
    witnessed: set[str] = field(default_factory=set)
    fired: set[str] = field(default_factory=set)
    total_steps: int = 0
    runs: int = 0


def machine_for(model: BalloonModel, recorder: _Recorder | None = None
                ) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class for ``model``: rules from its actions,
    invariants from its properties."""
    rec = recorder if recorder is not None else _Recorder()

    class BalloonMachine(RuleBasedStateMachine):
        """Random protocol runs of the Ballast model."""

        state: State

        def __init__(self) -> None:
            super().__init__()
            self.state = model.init_states()[0]
            self._options: dict[str, list[tuple[Action, State]]] | None = None
            rec.steps = []
            rec.violation = None
            rec.runs += 1

        def options(self, name: str) -> list[tuple[Action, State]]:
            if self._options is None:
                opts: dict[str, list[tuple[Action, State]]] = {}
                for act, post in model.successors(self.state):
                    opts.setdefault(act.name, []).append((act, post))
                self._options = opts
            return self._options.get(name, [])

        def take(self, act: Action, post: State) -> None:
            pre = self.state
            bad = model.step_violations(pre, act, post)
            wit = model.witnessed(pre, act, post)
            rec.witnessed.update(wit)
            rec.fired.add(act.name)
            rec.total_steps += 1
            rec.steps.append(TraceStep(len(rec.steps) + 1, act, state=post.to_dict(),
                                       witnesses=tuple(wit)))
            self.state = post
            self._options = None
            if bad:
                rec.violation = bad[0]
                raise PropertyBroken(bad[0])

    def add_rule(spec: ActionSpec) -> None:
        def enabled(self: Any) -> bool:
            return bool(self.options(spec.name))

        def step(self: Any, data: st.DataObject) -> None:
            act, post = data.draw(st.sampled_from(self.options(spec.name)), label=spec.name)
            self.take(act, post)

        step.__name__ = spec.name
        step.__doc__ = spec.doc
        setattr(BalloonMachine, spec.name, precondition(enabled)(rule(data=st.data())(step)))

    def add_invariant(prop: Property) -> None:
        def check(self: Any) -> None:
            msg = prop.check_state(model.cfg, self.state)
            if msg is not None:
                v = Violation(prop.name, msg, "state")
                rec.violation = v
                raise PropertyBroken(v)

        check.__name__ = f"invariant_{prop.name}"
        check.__doc__ = prop.doc
        setattr(BalloonMachine, check.__name__, invariant()(check))

    for spec in model.action_specs():
        add_rule(spec)
    for prop in model.properties():
        if prop.state is not None:
            add_invariant(prop)
    return BalloonMachine


@dataclass(frozen=True)
class MachineOutcome:
    """The result of running the Hypothesis machine."""

    violation: Violation | None
    trace: Trace | None
    """The shrunk counterexample, if a property broke."""
    witnessed: frozenset[str]
    fired: frozenset[str]
    steps_run: int
    runs: int
    flaky: bool = False


def run_machine(model: BalloonModel, *, seed: int, examples: int, steps: int,
                deadline_ms: int | None = None) -> MachineOutcome:
    """Run the machine for ``examples`` runs of up to ``steps`` steps, seeded."""
    rec = _Recorder()
    machine = machine_for(model, rec)
    conf = settings(max_examples=examples, stateful_step_count=steps, deadline=deadline_ms,
                    database=None, derandomize=False, print_blob=False,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate, Phase.shrink])
    hypothesis_seed(seed)(machine)
    flaky = False
    try:
        run_state_machine_as_test(machine, settings=conf)
    except PropertyBroken:
        pass
    except Flaky:
        flaky = True
    trace = None
    if rec.violation is not None:
        v = rec.violation
        header = TraceHeader(model.cfg, model.faults, {"checker": "hypothesis", "seed": seed},
                             {"property": v.property, "step": len(rec.steps),
                              "message": v.message})
        trace = Trace(header, tuple(rec.steps))
    return MachineOutcome(rec.violation, trace, frozenset(rec.witnessed), frozenset(rec.fired),
                          rec.total_steps, rec.runs, flaky)
