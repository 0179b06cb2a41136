"""The numeric core against the model, on every state of a list (every reachable state).

:func:`check_numeric_agreement` checks, on each state ``s`` given:

* the arrays hold ``s`` exactly (``SystemArrays.from_state(s).to_state() == s``);
* every vector invariant says what the model's own check says, and
  :func:`~ballast.numeric.invariants.violations` lists the model's violations in
  the model's order;
* every step the model enables is applied by the engine (``Engine.apply``) with
  exactly the model's successor, and the step forms the engine reports are the
  model's;
* every action of the alphabet (every step enabled in *some* state of the list)
  that the model does not enable in ``s`` is refused by the engine, leaving the
  arrays as they were, or admitted by the model's own guard too with the same
  successor;
* an enabled step of an action the engine lacks is a named gap, never a pass.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
...              machine_pages=1, host_swap_slots=0, tokens=1, batch=1)
>>> r = check_numeric_agreement(cfg, [initial_state(cfg)])
>>> r.ok, r.states, r.enabled_steps > 0
(True, 1, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ballast.errors import GuardError
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.numeric.arrays import SystemArrays
from ballast.numeric.engine import Engine
from ballast.numeric.invariants import NUMERIC_INVARIANTS, violations

__all__ = ["NumericAgreement", "check_numeric_agreement"]


@dataclass
class NumericAgreement:
    """What one check covered and found."""

    cfg: Config
    faults: tuple[str, ...]
    states: int = 0
    invariant_checks: int = 0
    enabled_steps: int = 0
    refused_steps: int = 0
    outside_candidates: int = 0
    gaps: dict[str, int] = field(default_factory=dict)
    disagreements: list[tuple[int, str]] = field(default_factory=list)
    """(index of the state, what differs)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No disagreement and no gap."""
        return not self.disagreements and not self.gaps

    def summary(self) -> str:
        """One line of figures."""
        return (f"{self.states} states, {self.invariant_checks} invariant checks, "
                f"{self.enabled_steps} enabled steps, {self.refused_steps} refused, "
                f"{self.outside_candidates} outside the model's candidates; "
                f"{len(self.disagreements)} disagreements"
                + (f"; not in the engine: {', '.join(sorted(self.gaps))}" if self.gaps else ""))


def check_numeric_agreement(cfg: Config, states: Sequence[State], faults: Sequence[str] = (),
                            *, steps: Sequence[Sequence[tuple[Action, int]]] | None = None,
                            engine_faults: Sequence[str] | None = None,
                            max_disagreements: int = 10) -> NumericAgreement:
    """Compare the engine with the model on every state of ``states`` (see the module text).

    ``steps``: per state, every enabled step as (action, index of the successor in
    ``states``), as the explorer found them (default: ``BalloonModel.successors``).
    ``engine_faults`` (default ``faults``) seeds faults into the engine alone.
    """
    t0 = time.perf_counter()
    faults = tuple(faults)
    eng_faults = faults if engine_faults is None else tuple(engine_faults)
    model = BalloonModel(cfg, faults)
    report = NumericAgreement(cfg, faults)
    props = [p for p in model.properties() if p.state is not None]
    for p in props:
        if p.name not in NUMERIC_INVARIANTS:  # a property the engine lacks: a named gap
            report.gaps[p.name] = 0
    props = [p for p in props if p.name in NUMERIC_INVARIANTS]

    def differ(i: int, what: str) -> None:
        report.disagreements.append((i, what))

    def enabled_at(i: int, s: State) -> list[tuple[Action, State]]:
        if steps is None:
            return list(model.successors(s))
        return [(a, states[j]) for a, j in steps[i]]

    alphabet: dict[Action, None] = {}
    for i, s in enumerate(states):
        for a, _ in enabled_at(i, s):
            alphabet.setdefault(a)
    for i, s in enumerate(states):
        if len(report.disagreements) >= max_disagreements:
            break
        report.states += 1
        # One conversion per state; every engine below starts from a copy of it.
        arr = SystemArrays.from_state(cfg, s)
        if arr.to_state() != s:
            differ(i, "the arrays do not hold the state exactly")
            continue
        for p in props:
            report.invariant_checks += 1
            want = p.check_state(cfg, s)
            got = NUMERIC_INVARIANTS[p.name](arr)
            if (want is None) != (got is None):
                differ(i, f"{p.name}: the engine says {got or 'holds'}, "
                          f"the model {want or 'holds'}")
        if [n for n, _ in violations(arr)] != [v.property for v in model.violations(s)]:
            differ(i, "the engine's violations are not the model's, in the model's order")
        enabled = enabled_at(i, s)
        names = {a for a, _ in enabled}
        for act, post in enabled:
            if not hasattr(Engine, act.name):
                report.gaps[act.name] = report.gaps.get(act.name, 0) + 1
                continue
            report.enabled_steps += 1
            _compare(cfg, s, arr, act, post, eng_faults, lambda w: differ(i, w))
        probe = Engine(cfg, eng_faults, arr.copy())
        for act in alphabet:
            if act in names or not hasattr(Engine, act.name):
                continue
            try:
                probe.apply(act)
            except GuardError:
                report.refused_steps += 1
                continue
            admitted = model.try_next_state(s, act)
            if admitted is None:
                differ(i, f"the engine applies {act}, the model refuses it")
            else:
                report.outside_candidates += 1
                # The probe has taken the step: judge its successor as an enabled one's.
                _judge(cfg, s, probe, act, admitted, lambda w: differ(i, w))
            probe = Engine(cfg, eng_faults, arr.copy())
        if probe.arr.to_state() != s:
            differ(i, "a step the engine refused changed its arrays")
    report.seconds = time.perf_counter() - t0
    return report


def _compare(cfg: Config, s: State, arr: SystemArrays, act: Action, post: State,
             faults: tuple[str, ...], differ: Callable[[str], None]) -> None:
    eng = Engine(cfg, faults, arr.copy())
    try:
        eng.apply(act)
    except GuardError as exc:
        differ(f"the model enables {act}, the engine refuses it ({exc})")
        return
    _judge(cfg, s, eng, act, post, differ)


def _judge(cfg: Config, s: State, eng: Engine, act: Action, post: State,
           differ: Callable[[str], None]) -> None:
    """``eng``, which has just applied ``act`` to ``s``, holds the model's successor
    ``post`` and reports exactly the step forms the model says ``act`` breaks."""
    if eng.arr.to_state() != post:
        differ(f"the engine's successor of {act} is not the model's")
        return
    want = sorted({p.name for p in INVARIANTS.values()
                   if p.feature(cfg) and p.check_step(cfg, s, act, post) is not None})
    got = sorted({v.property for v in eng.step_violations})
    if got != want:
        differ(f"step forms broken by {act}: the engine says {got}, the model {want}")
