"""The model as a Hypothesis state machine: one rule per action, one invariant per property.

Rules are declared from the model's action table. Each rule's arguments come
from a Hypothesis strategy built from the action's parameter domains
(:mod:`ballast.model.domains`: VM numbers, PPN lists, tokens, ...), mixed with
the model's candidates for the current state, because a blind draw of, say,
the exact pages the guest's allocator hands out would almost always be turned
down. A rule runs only where its action's guard admits some candidate (its
precondition); a drawn argument the guard rejects is discarded (the step does
nothing and is counted), never a failure. The guard stays the one definition of
what is allowed, and Hypothesis shrinks failures on the arguments themselves.

Every state invariant is a Hypothesis ``@invariant``; the step forms of the
properties are checked inside each rule. The shrunk failing run is kept as a
trace in the project's format (the runner is separate: :func:`run_machine`).

Shrinking is bounded by work: Hypothesis's own shrinker stops only after 500 improvements
or 300 seconds of wall-clock time, so on a loaded machine it would leave another
counterexample, after up to five minutes. After :data:`SHRINK_STEPS` steps past the first
failure, the machine's runs do nothing (Hypothesis's shrinker then finds no smaller failure
and stops) and the shortest failing run seen is kept: the same on any machine.

Runs are seeded (same seed, same run, whatever else the process has loaded:
:mod:`ballast.seeded_draws`) and sized by a settings profile (:data:`PROFILES`); the
example database, when given, replays earlier failures first.

>>> from ballast.model import BalloonModel, preset
>>> out = run_machine(BalloonModel(preset("core")), seed=1, examples=5, steps=10)
>>> out.violation is None and out.steps_run > 0
True
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Generator, cast

from hypothesis import HealthCheck, Phase, Verbosity, seed as hypothesis_seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ballast.errors import UsageError
from ballast.model.actions import Action, ActionSpec
from ballast.model.choices import sampled
from ballast.model.domains import (Choice, Domain, IntRange,
                                   PageList,  # noqa: F401 - used by the doctests
                                   action_domains)
from ballast.model.invariants import Property
from ballast.model.state import State
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.seeded_draws import seed_only_draws

__all__ = ["PROFILES", "SHRINK_STEPS", "MachineOutcome", "PropertyBroken",
           "default_profile", "domain_strategy", "machine_for", "model_key",
           "profile_settings", "run_machine"]


PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 100, "stateful_step_count": 100},
    "dev": {"max_examples": 100, "stateful_step_count": 100},
    "thorough": {"max_examples": 600, "stateful_step_count": 200},
}
"""Settings profiles: how many runs of how many steps (long runs: the protocol needs
several steps of several actors to reach a full balloon and give pages back). ``ci`` and
``dev`` differ only in the example database, which ``ballast check`` keeps off under
``ci``."""

_COMMON: dict[str, Any] = {
    "deadline": None, "database": None, "derandomize": False, "print_blob": False,
    "report_multiple_bugs": False,
    "verbosity": Verbosity.quiet, "suppress_health_check": list(HealthCheck),
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
}



def profile_settings(name: str) -> settings:
    """The Hypothesis settings of profile ``name`` (``ci``, ``dev``, ``thorough``): made for
    each run, not registered with Hypothesis, so importing Ballast changes no global setting
    of the program that imports it (Hypothesis refuses a profile registered from inside a
    test that has settings of its own).

    >>> profile_settings("thorough").max_examples
    600
    """
    if name not in PROFILES:
        raise UsageError(f"unknown Hypothesis profile {name!r}; expected one of "
                         f"{', '.join(PROFILES)}")
    return settings(**_COMMON, **PROFILES[name])


SHRINK_STEPS = 20_000
"""Steps of the machine past its first failure that Hypothesis may spend shrinking it (see
the module docstring); the shortest failing run seen by then is the counterexample. The
seeded faults the default suite catches take 2,000 to 11,500 such steps to shrink fully."""

def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def default_profile() -> str:
    """``ci`` when the environment says ``CI=true``, else ``dev``."""
    return "ci" if _in_ci() else "dev"


class PropertyBroken(AssertionError):
    """Raised inside the machine when a property of the model breaks."""

    def __init__(self, violation: Violation) -> None:
        self.violation = violation
        super().__init__(f"{violation.property}: {violation.message}")


class _OutOfTime(BaseException):
    """The wall-clock limit passed: raised out of Hypothesis's run, which re-raises what is
    no ``Exception`` rather than taking it for a failure to shrink."""


@dataclass
class _Recorder:
    """What the latest run of the machine did (Hypothesis replays the shrunk run last)."""

    steps: list[tuple[Action, State, tuple[str, ...]]] = field(default_factory=list)
    """(action, state after it, scenarios witnessed) of every step taken."""
    violation: Violation | None = None
    witnessed: set[str] = field(default_factory=set)
    fired: set[str] = field(default_factory=set)
    total_steps: int = 0
    discarded: int = 0
    """Drawn arguments the guard turned down (the step did nothing)."""
    blind: int = 0
    """Steps taken with arguments drawn from the domains rather than the candidates."""
    runs: int = 0
    on_run: Callable[[int], None] | None = None
    """Told the number of runs started so far, at the start of each (progress)."""
    shrink_steps: int = SHRINK_STEPS
    """Steps past the first failure before the machine's runs stop doing anything."""
    failure_at: int = 0
    """``total_steps`` when the first failure was seen."""
    shortest: tuple[list[tuple[Action, State, tuple[str, ...]]], Violation] | None = None
    """The shortest failing run so far (the first of its length), with its violation."""
    stop: Callable[[], bool] | None = None
    """Asked before every run and every step: True ends the whole search there."""
    stopped: bool = False
    """Whether :attr:`stop` ended it."""

    def go_on(self) -> None:
        """Raise :class:`_OutOfTime` where :attr:`stop` says the search is to end."""
        if self.stopped or (self.stop is not None and self.stop()):
            self.stopped = True
            raise _OutOfTime()

    @property
    def spent(self) -> bool:
        """Whether the shrinking budget is spent: runs now do nothing."""
        return self.shortest is not None and \
            self.total_steps - self.failure_at > self.shrink_steps

    def start(self) -> None:
        """A run starts."""
        self.go_on()
        self.steps = []
        self.violation = None
        self.runs += 1
        if self.on_run is not None:
            self.on_run(self.runs)

    def failed(self, violation: Violation) -> None:
        """The run broke ``violation``'s property."""
        self.violation = violation
        if self.shortest is None:
            self.failure_at = self.total_steps
        if self.shortest is None or len(self.steps) < len(self.shortest[0]):
            self.shortest = (list(self.steps), violation)


def domain_strategy(domain: Domain) -> st.SearchStrategy[Any]:
    """The Hypothesis strategy of a parameter domain (shrinking toward small values).

    >>> from hypothesis import find
    >>> find(domain_strategy(PageList(0, 3, 1, 2)), lambda ppns: sum(ppns) >= 4,
    ...      settings=settings(database=None))
    (1, 3)
    """
    if isinstance(domain, IntRange):
        return st.integers(domain.low, domain.high)
    if isinstance(domain, Choice):
        return st.sampled_from(domain.values)
    return st.lists(st.integers(domain.low, domain.high), unique=True,
                    min_size=domain.min_len, max_size=domain.max_len
                    ).map(lambda xs: tuple(sorted(xs)))


class _BalloonMachine(RuleBasedStateMachine):
    """Protocol runs of the Ballast model with generated arguments: the machine of
    :func:`machine_for`, which names the model, the recorder and the rules."""

    model: ClassVar[BalloonModel]
    recorder: ClassVar[_Recorder]
    blind: ClassVar[dict[str, st.SearchStrategy[dict[str, Any]] | None]]
    """Per action, the draw of its arguments from their domains (None: no domains)."""
    state: State

    def __init__(self) -> None:
        super().__init__()
        rec = self.recorder
        self.state = self.model.init_states()[0]
        self._admitted: dict[str, list[dict[str, Any]]] = {}
        self._enabled: dict[str, bool] = {}
        self._checked: State | None = None
        """The state every property was last checked on (inside the step)."""
        rec.start()

    def _candidates(self, spec: ActionSpec) -> Generator[dict[str, Any], None, None]:
        """The candidates of ``spec`` in this state that its guard admits, as found."""
        # Of the sets of pages an actor may choose, a few of each size where there
        # are more (a large guest has billions): drawn by a generator seeded alike
        # in every state, so a run is the same whatever ran before it.
        model = self.model
        with sampled(random.Random(0)):
            for args in spec.candidates(model.cfg, self.state):
                if model.try_next_state(self.state, Action.of(spec.name, **args)) \
                        is not None:
                    yield dict(args)

    def admitted(self, spec: ActionSpec) -> list[dict[str, Any]]:
        """The candidates of ``spec`` in this state that its guard admits."""
        got = self._admitted.get(spec.name)
        if got is None:
            got = self._admitted[spec.name] = list(self._candidates(spec))
        return got

    def any_admitted(self, spec: ActionSpec) -> bool:
        """Whether the guard of ``spec`` admits a candidate here: the first one found
        answers (Hypothesis asks every rule's precondition and takes one rule a step,
        and on a large guest each candidate's guard costs a step of the model)."""
        known = self._enabled.get(spec.name)
        if known is None:
            got = self._admitted.get(spec.name)
            if got is not None:
                known = bool(got)
            else:
                first = self._candidates(spec)
                known = next(first, None) is not None
                first.close()
                if not known:
                    self._admitted[spec.name] = []
            self._enabled[spec.name] = known
        return known

    def arguments(self, spec: ActionSpec) -> st.SearchStrategy[dict[str, Any]]:
        """An admitted candidate three times out of four, else a draw from the
        parameter domains (shrinking toward the first candidate)."""
        if self.recorder.spent:
            return st.just({})
        admitted = self.admitted(spec)
        wide = self.blind[spec.name]
        if wide is None:
            return st.sampled_from(admitted)
        marked = wide.map(lambda a: {**a, "_blind": True})
        if not admitted:
            return marked
        near = st.sampled_from(admitted)
        return st.integers(0, 3).flatmap(lambda k: marked if k == 3 else near)

    def take(self, spec: ActionSpec, args: dict[str, Any]) -> None:
        """The step of ``spec`` with ``args`` where the guard allows it (else counted as
        discarded); its step properties and scenarios checked, the run recorded."""
        model, rec = self.model, self.recorder
        if rec.spent:
            return
        rec.go_on()
        drawn_blind = bool(args.pop("_blind", False))
        act = Action.of(spec.name, **args)
        pre = self.state
        post = model.try_next_state(pre, act)
        if post is None:
            rec.discarded += 1  # the guard's answer: not allowed here
            return
        rec.blind += drawn_blind
        bad = model.step_violations(pre, act, post)
        wit = model.witnessed(pre, act, post)
        rec.witnessed.update(wit)
        rec.fired.add(act.name)
        rec.total_steps += 1
        rec.steps.append((act, post, tuple(wit)))
        self.state = post
        self._checked = post
        self._admitted = {}
        self._enabled = {}
        if bad:
            rec.failed(bad[0])
            raise PropertyBroken(bad[0])

    def check(self, prop: Property) -> None:
        """``prop`` on the current state, unless the step that led here checked it."""
        if self._checked is self.state or self.recorder.spent:
            return  # the step that led here checked every property on this state
        msg = prop.check_state(self.model.cfg, self.state)
        if msg is not None:
            v = Violation(prop.name, msg, "state")
            self.recorder.failed(v)
            raise PropertyBroken(v)


def _blind_draws(model: BalloonModel) -> dict[str, st.SearchStrategy[dict[str, Any]] | None]:
    """Per action of ``model``, its arguments drawn from their parameter domains."""
    blind: dict[str, st.SearchStrategy[dict[str, Any]] | None] = {}
    for spec in model.action_specs():
        doms = action_domains(model.cfg, spec.params)
        blind[spec.name] = None if doms is None else st.fixed_dictionaries(
            {p: domain_strategy(d) for p, d in doms.items()})
    return blind


def _add_rule(machine: type[_BalloonMachine], spec: ActionSpec) -> None:
    """The rule of action ``spec``: enabled where its guard admits a candidate."""
    def enabled(self: _BalloonMachine) -> bool:
        return self.recorder.spent or self.any_admitted(spec)

    def step(self: _BalloonMachine, args: dict[str, Any]) -> None:
        self.take(spec, dict(args))

    step.__name__ = spec.name
    step.__doc__ = spec.doc
    args = st.runner().flatmap(lambda machine: machine.arguments(spec))
    setattr(machine, spec.name, precondition(enabled)(rule(args=args)(step)))


def _add_invariant(machine: type[_BalloonMachine], prop: Property) -> None:
    """The invariant of state property ``prop``."""
    def check(self: _BalloonMachine) -> None:
        self.check(prop)

    check.__name__ = f"invariant_{prop.name}"
    check.__doc__ = prop.doc
    setattr(machine, check.__name__, invariant()(check))


def machine_for(model: BalloonModel, recorder: _Recorder | None = None
                ) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class for ``model``: rules from its actions (arguments
    from strategies), invariants from its properties."""
    machine = cast(type[_BalloonMachine], type("BalloonMachine", (_BalloonMachine,), {
        "model": model, "recorder": recorder if recorder is not None else _Recorder(),
        "blind": _blind_draws(model), "__doc__": _BalloonMachine.__doc__}))
    for spec in model.action_specs():
        _add_rule(machine, spec)
    for prop in model.properties():
        if prop.state is not None:
            _add_invariant(machine, prop)
    return machine


def model_key(model: BalloonModel) -> str:
    """A short name for the model's configuration and faults (the example database
    keeps each model's examples apart).

    >>> from ballast.model import BalloonModel, preset
    >>> model_key(BalloonModel(preset("core"))) == model_key(BalloonModel(preset("core")))
    True
    """
    text = json.dumps({"config": model.cfg.to_dict(), "faults": list(model.faults)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    discarded: int = 0
    """Drawn arguments the guards turned down."""
    blind: int = 0
    """Steps taken with arguments drawn from the parameter domains."""
    profile: str = "ci"
    database: Path | None = None
    cut_short: bool = False
    """The search ended at ``stop`` before its runs were done (the violation, if any, is
    the shortest failing run found by then)."""


def run_machine(model: BalloonModel, *, seed: int, examples: int | None = None,
                steps: int | None = None, profile: str = "ci",
                database: Path | None = None, deadline_ms: int | None = None,
                on_run: Callable[[int], None] | None = None,
                shrink_steps: int = SHRINK_STEPS,
                stop: Callable[[], bool] | None = None) -> MachineOutcome:
    """Run the machine, seeded by ``seed``: ``examples`` runs of up to ``steps`` steps
    (default: the profile's). With ``database``, failures are saved there (one folder per
    model) and replayed first on the next run. ``on_run`` is told the number of runs
    started so far, as each starts. ``shrink_steps`` bounds the shrinking (see the module
    docstring). ``stop`` (a wall-clock limit) is asked before every run and step; once it
    says True the search ends (:attr:`MachineOutcome.cut_short`)."""
    rec = _Recorder(on_run=on_run, shrink_steps=shrink_steps, stop=stop)
    machine = machine_for(model, rec)
    changes: dict[str, Any] = {"deadline": deadline_ms}
    if examples is not None:
        changes["max_examples"] = examples
    if steps is not None:
        changes["stateful_step_count"] = steps
    db_dir = Path(database) / model_key(model) if database is not None else None
    if db_dir is not None:
        changes["database"] = DirectoryBasedExampleDatabase(str(db_dir))
    conf = settings(profile_settings(profile), **changes)
    hypothesis_seed(seed)(machine)
    flaky = False
    try:
        with seed_only_draws():
            run_state_machine_as_test(machine, settings=conf)
    except PropertyBroken:
        pass
    except Flaky:
        # With the shrinking budget spent, Hypothesis's last run of its smallest failure
        # does nothing, which it takes for flakiness; so does a stop in that run. The
        # shortest failing run is kept.
        flaky = not (rec.spent or rec.stopped)
    except _OutOfTime:
        pass
    cut_short = rec.stopped
    if (rec.spent or cut_short) and rec.shortest is not None:
        rec.steps, rec.violation = rec.shortest
    trace = None
    if rec.violation is not None:
        v = rec.violation
        header = TraceHeader(model.cfg, model.faults,
                             {"checker": "hypothesis", "seed": seed, "profile": profile},
                             {"property": v.property, "step": len(rec.steps),
                              "message": v.message})
        trace = Trace(header, tuple(TraceStep(n, act, state=post.to_dict(), witnesses=wit)
                                    for n, (act, post, wit) in enumerate(rec.steps, start=1)))
    return MachineOutcome(rec.violation, trace, frozenset(rec.witnessed), frozenset(rec.fired),
                          rec.total_steps, rec.runs, flaky, rec.discarded, rec.blind,
                          profile, db_dir, cut_short)
