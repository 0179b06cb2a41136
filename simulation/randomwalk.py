"""Deterministic random runs of the model: the same seed gives the same trace, byte for byte.

At each step the runner visits the model's actions in an order drawn from a
``random.Random(seed)`` and takes the first enabled candidate, so every action
that can fire gets a fair chance however many arguments the others have. Where an
actor may choose among more sets of pages of one size than
:data:`~ballast.model.choices.SAMPLE_LIMIT`, a random few of them are its candidates
(:func:`~ballast.model.choices.sampled`), so a step costs the same on a large guest. Every
property is checked after every step; a run stops at the first violation.

>>> from ballast.model import BalloonModel, preset
>>> run = random_run(BalloonModel(preset("core")), seed=3, steps=20)
>>> run.violation is None, len(run.trace.steps)
(True, 20)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from ballast import tally
from ballast.model.actions import Action
from ballast.model.choices import sampled
from ballast.model.state import State
from ballast.model.system import BalloonModel, Violation
from ballast.model.trace import Trace, TraceHeader, TraceStep

__all__ = ["RandomRun", "pick_step", "random_run"]


@dataclass(frozen=True)
class RandomRun:
    """What one random run did."""

    trace: Trace
    """Every step taken, with the state after it (the last one is the violating step, if any)."""
    violation: Violation | None
    """The first property broken, or None."""
    witnessed: frozenset[str]
    """Scenarios seen."""
    fired: frozenset[str] = field(default_factory=frozenset)
    """Actions taken at least once."""
    final: State | None = None
    """The last state reached."""
    cut_short: bool = False
    """Stopped by ``stop`` before its steps were taken (the run is a prefix)."""
    taken: int = 0
    """Steps taken (also those handed to a sink, which the trace does not hold)."""


def pick_step(model: BalloonModel, s: State, rng: random.Random) -> tuple[Action, State] | None:
    """One enabled step chosen by ``rng``, or None if no action is enabled."""
    specs = model.action_specs()
    rng.shuffle(specs)
    for spec in specs:
        # Of the sets of pages an actor may choose, a random few of each size where there
        # are more (a guest of 64 free pages has billions of ways to give the balloon 10).
        with sampled(rng):
            cands = list(spec.candidates(model.cfg, s))
        rng.shuffle(cands)
        for args in cands:
            act = Action.of(spec.name, **args)
            post = model.try_next_state(s, act)
            if post is not None:
                return act, post
    return None


def random_run(model: BalloonModel, seed: int, steps: int, *, record_states: bool = True,
               checker: str = "random", stop: Callable[[], bool] | None = None,
               sink: Callable[[TraceStep], None] | None = None) -> RandomRun:
    """Run ``steps`` random steps from the initial state, checking every property;
    ``stop`` (asked before each step) ends the run early, marked ``cut_short``. With
    ``sink``, each step is handed to it as it is taken and not kept: the run's trace then
    has its header and no step (:attr:`RandomRun.taken` counts them), and memory stays the
    same however long the run."""
    rng = random.Random(seed)
    s = model.init_states()[0]
    kept: list[TraceStep] = []
    seen: set[str] = set()
    fired: set[str] = set()
    violation: Violation | None = None
    cut_short = False
    length = 0
    counted = f"{checker} steps run"  # counted as they go: Ctrl-C says how far the run got
    for n in range(1, steps + 1):
        if stop is not None and stop():
            cut_short = True
            break
        picked = pick_step(model, s, rng)
        if picked is None:
            break
        act, post = picked
        bad = model.step_violations(s, act, post)
        wit = model.witnessed(s, act, post)
        seen.update(wit)
        fired.add(act.name)
        st = TraceStep(n, act, state=post.to_dict() if record_states else None,
                       witnesses=tuple(wit))
        if sink is None:
            kept.append(st)
        else:
            sink(st)
        length = n
        tally.add(counted, 1)
        s = post
        if bad:
            violation = bad[0]
            break
    expect = None
    if violation is not None:
        expect = {"property": violation.property, "step": length,
                  "message": violation.message}
    header = TraceHeader(model.cfg, model.faults,
                         {"checker": checker, "seed": seed, "unlogged_actions": []}, expect)
    return RandomRun(Trace(header, tuple(kept)), violation, frozenset(seen),
                     frozenset(fired), s, cut_short, length)
