"""Turning what the explorer found into replayable traces on disk.

Safety violations and lassos go through
:func:`ballast.reports.counterexample.write_counterexample`, which replays them
through the reference model before writing (for a lasso: the cycle must return
to the state it started from). A lasso is checked here first for what the
replay cannot see: the cycle never reaches the target, keeps the targets fixed
and is fair under the fairness the verdict assumed (weakly fair to the module
and the VMM; with ``strong-accept``, also taking the VMM's acceptance of a
whole inflate report whenever the cycle passes a state where it is enabled). It is one
trace: the prefix, then the cycle, with ``header.expect.lasso_start`` = the number of
the cycle's first step (so the state before that step is where the cycle starts and
ends), ``expect.vm`` = the VM whose balloon it starves and ``expect.fairness`` = the
fairness choice. :func:`check_lasso` reads such a trace back (``ballast
replay``) and checks the lasso again: the cycle closes and is fair.
Deadlocks and states from which the target cannot be reached break no
property a replay checks; they are confirmed by a replay of their own (every
step allowed, the claimed situation holds at the end) before they are written.
A state from which a property over runs (``host_recovers_to_target``) cannot reach its
goal is confirmed the same way, and the model's own steps are searched once more from it
(:func:`goal_unreachable`): no run of the steps the property allows reaches the goal.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ballast.errors import InputError

from ballast.model.actions import Action
from ballast.model.config import model_size
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.model.trace import Trace, TraceHeader, TraceStep, atomic_write_text, write_trace_to
from ballast.reports.counterexample import (
    CounterexampleNotReproduced,
    markdown_explanation,
    write_counterexample,
)
from ballast.model.invariants import honest_vms
from ballast.model.recovery import REACH_PROPERTIES, ReachProperty
from ballast.model.replay import model_for, replay
from ballast.statespace.deadlock import DEADLOCK, ProtocolMoves, stalled_among, unsettled
from ballast.statespace.explore import Exploration, Finding
from ballast.statespace.liveness import (
    CAN_REACH,
    FAIRNESS_CHOICES,
    FAIRNESS_TEXTS,
    REACHES,
    WEAK,
    _TARGET_SETTERS,
    LivenessResult,
    at_target,
    fairness_class,
    feasible_target,
    strong_fairness_class,
)

__all__ = ["SEARCHED_SIZE_LIMIT", "SEARCH_LIMIT", "EndCheck", "LassoCheck", "check_end",
           "check_lasso", "goal_unreachable", "lasso_claim", "lasso_start", "make_trace", "reaches",
           "run_actions", "verify_lasso", "write_finding", "write_liveness"]

CHECKER = "explore"


def make_trace(model: BalloonModel, actions: Sequence[Action], expect: dict[str, object],
               query: str) -> Trace:
    """A trace of ``actions`` from the model's initial state."""
    header = TraceHeader(model.cfg, model.faults,
                         source={"checker": CHECKER, "seed": None, "query": query},
                         expect=dict(expect))
    return Trace(header, tuple(TraceStep(i + 1, a) for i, a in enumerate(actions)))


def run_actions(model: BalloonModel, actions: Sequence[Action]) -> list[State]:
    """Every state of the run (initial state first); raises GuardError on an illegal step."""
    s = model.init_states()[0]
    out = [s]
    for act in actions:
        s = model.next_state(s, act)
        out.append(s)
    return out


def write_finding(ex: Exploration, finding: Finding, out_dir: Path, name: str) -> Path:
    """Write the shortest trace of a safety violation or deadlock; returns the trace path."""
    model = ex.model
    actions = ex.path(finding.state) + ([finding.action] if finding.action else [])
    expect = {"property": finding.property, "step": len(actions), "message": finding.message}
    trace = make_trace(model, actions, expect, f"shortest path to {finding.property}")
    if finding.form != "deadlock":
        return Path(write_counterexample(trace, out_dir, name).trace_path)
    states = run_actions(model, actions)
    end = states[-1]
    moving = ProtocolMoves(model, end)
    if not stalled_among(model.cfg, moving, lambda v: unsettled(model.cfg, end, v)) and \
            moving.any_step() is not None:
        raise CounterexampleNotReproduced("the deadlock does not reproduce on the reference model")
    return _write_own(trace, out_dir, name, f"the protocol is stalled after step {len(actions)}: "
                      f"{finding.message}")


SEARCH_LIMIT = 1_000_000
"""States searched from a stuck state before its claim is left undecided."""

SEARCHED_SIZE_LIMIT = 4_096
"""Largest configuration (pages, slots and processors, :func:`model_size`) searched from a
trace's last state: the search lists every step of every state it meets, as the explorer
does, and on a larger guest the page sets an actor may choose are too many to list (a claim
about such a trace's last state is left undecided, never searched until memory runs out)."""


def reaches(model: BalloonModel, start: State, goal: Callable[[State], bool],
            moves: Callable[[Action], bool], limit: int = SEARCH_LIMIT) -> tuple[bool | None, int]:
    """(whether some run of the steps ``moves`` allows leads from ``start`` to a state
    ``goal`` accepts, the states searched), on the model's own steps; None when ``limit``
    states were searched without deciding."""
    seen = {start}
    todo = [start]
    while todo:
        s = todo.pop()
        if goal(s):
            return True, len(seen)
        for act, t in model.successors(s):
            if moves(act) and t not in seen:
                if len(seen) >= limit:
                    return None, len(seen)
                seen.add(t)
                todo.append(t)
    return False, len(seen)


def goal_unreachable(model: BalloonModel, prop: ReachProperty, start: State,
                     limit: int = SEARCH_LIMIT) -> bool:
    """Whether no run of the steps ``prop`` allows leads from ``start`` to its goal, searched
    on the model's own steps (at most ``limit`` states: beyond that, not confirmed)."""
    return reaches(model, start, lambda s: prop.goal(model.cfg, s), prop.moves, limit)[0] \
        is False


def verify_lasso(model: BalloonModel, vm: int, prefix: Sequence[Action],
                 cycle: Sequence[Action], fairness: str = WEAK) -> str | None:
    """Why ``prefix`` + ``cycle`` is not a lasso avoiding VM ``vm``'s target that is fair
    under the fairness choice ``fairness``, or None."""
    states = run_actions(model, list(prefix) + list(cycle))
    loop = states[len(prefix):]
    if not cycle:
        return "the cycle is empty"
    if loop[0] != loop[-1]:
        return "the cycle does not return to its first state"
    for s in loop:
        if at_target(s, vm) or not feasible_target(model.cfg, s.vms[vm].target):
            return "a state of the cycle is at its target or has an infeasible target"
    if any(a.name in _TARGET_SETTERS for a in cycle):
        return "the cycle changes a target"
    taken = {fairness_class(a) for a in cycle}
    for s in loop[:-1]:
        always = {fairness_class(a) for a, _ in model.successors(s)} - {None}
        for other in loop[:-1]:
            always &= {fairness_class(a) for a, _ in model.successors(other)}
        missing = always - taken
        if missing:
            return f"the cycle is not weakly fair to {sorted(map(str, missing))}"
        break
    # Strong fairness: a class enabled anywhere on the cycle must be taken on it.
    cfg = model.cfg
    strong = {strong_fairness_class(cfg, s, a, fairness) for s in loop[:-1]
              for a, _ in model.successors(s)} - {None}
    missing = strong - {strong_fairness_class(cfg, s, a, fairness) for s, a in zip(loop, cycle)}
    if missing:
        return f"the cycle is not strongly fair to {sorted(map(str, missing))}"
    return None


def write_liveness(ex: Exploration, result: LivenessResult, out_dir: Path, name: str) -> Path:
    """Confirm a liveness failure by replay and write it as a trace (a lasso when it has a
    cycle)."""
    model = ex.model
    assert result.vm is not None and not result.holds
    expect: dict[str, object] = {"property": result.property, "message": result.detail}
    if result.property == CAN_REACH:
        states = run_actions(model, result.prefix)
        if at_target(states[-1], result.vm):
            raise CounterexampleNotReproduced("the stuck state is at its target")
        expect["step"] = len(result.prefix)
        trace = make_trace(model, result.prefix, expect, "AG EF balloon at target")
        return _write_own(trace, out_dir, name, result.detail)
    reach = REACH_PROPERTIES.get(result.property)
    if reach is not None:
        end = run_actions(model, result.prefix)[-1]
        if not reach.assumed(model.cfg, end) or not goal_unreachable(model, reach, end):
            raise CounterexampleNotReproduced(
                f"{result.property}: the reference model reaches the goal from the last state")
        expect["step"] = len(result.prefix)
        expect["vm"] = result.vm
        trace = make_trace(model, result.prefix, expect, f"AG EF {result.property}")
        return _write_own(trace, out_dir, name, result.detail)
    why = verify_lasso(model, result.vm, result.prefix, result.cycle, result.fairness)
    if why is not None:
        raise CounterexampleNotReproduced(f"the lasso does not reproduce: {why}")
    expect["step"] = len(result.prefix) + len(result.cycle)
    expect["lasso_start"] = len(result.prefix) + 1
    expect["vm"] = result.vm
    expect["fairness"] = result.fairness
    trace = make_trace(model, list(result.prefix) + list(result.cycle), expect,
                       f"fair lasso ({FAIRNESS_TEXTS[result.fairness]})")
    return Path(write_counterexample(trace, out_dir, name).trace_path)


@dataclass(frozen=True)
class LassoCheck:
    """What replaying a lasso trace shows about the liveness property it claims broken."""

    property: str
    confirmed: bool
    """The cycle closes, never reaches the (feasible) target, keeps the targets fixed and
    is fair under ``fairness``."""
    reason: str
    """Why the lasso is not confirmed (empty when it is)."""
    vm: int | None
    fairness: str
    start: int
    """The number of the cycle's first step."""
    cycle_steps: int

    def describe(self) -> str:
        """One line for a person."""
        if self.confirmed:
            return (f"lasso confirmed: {self.property} (VM {self.vm}): the cycle of "
                    f"{self.cycle_steps} step(s) from step {self.start} returns to its first "
                    f"state without reaching the target, and is fair (fairness "
                    f"'{self.fairness}': {FAIRNESS_TEXTS[self.fairness]})")
        return f"lasso not confirmed ({self.property}): {self.reason}"


def lasso_start(trace: Trace, source: str = "<trace>") -> int | None:
    """The number of the cycle's first step of a lasso trace, or None for another trace;
    an input error if the header's ``lasso_start`` names no step of the trace."""
    expect = trace.header.expect or {}
    start = expect.get("lasso_start")
    if start is None:
        return None
    n = len(trace.steps)
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= n:
        raise InputError(source, 1, f"expect.lasso_start must be a step number from 1 to {n}, "
                         f"got {start!r}")
    return start


def lasso_claim(trace: Trace, source: str = "<trace>") -> tuple[int, str, int | None] | None:
    """The claim of a liveness trace's header (None for another trace): the cycle's first
    step, the fairness and the VM it names (None: every VM that follows the protocol); an
    input error (naming the field) where one is not of its form."""
    start = lasso_start(trace, source)
    if start is None:
        return None
    expect = trace.header.expect or {}
    fairness = expect.get("fairness", WEAK)
    if fairness not in FAIRNESS_CHOICES:
        raise InputError(source, 1, f"expect.fairness must be one of "
                         f"{', '.join(FAIRNESS_CHOICES)}, got {fairness!r}")
    honest = list(honest_vms(trace.header.config))
    vm = expect.get("vm")
    if vm is not None and (isinstance(vm, bool) or not isinstance(vm, int) or vm not in honest):
        raise InputError(source, 1, f"expect.vm must be a VM that follows the protocol "
                         f"({', '.join(map(str, honest)) or 'none'}), got {vm!r}")
    return start, str(fairness), vm


def check_lasso(trace: Trace, source: str = "<trace>") -> LassoCheck | None:
    """Check the lasso of a liveness trace (None if ``trace`` has none): replayed from the
    model's initial state, the steps from ``lasso_start`` on must return to the state
    before that step, never reach the target and be fair under the recorded fairness.
    The steps must be allowed (replay the trace first); an illegal one raises GuardError.
    """
    claim = lasso_claim(trace, source)
    if claim is None:
        return None
    start, fairness, vm = claim
    expect = trace.header.expect or {}
    model = model_for(trace.header)
    honest = list(honest_vms(model.cfg))
    prop = str(expect.get("property", REACHES))
    actions = [st.action for st in trace.steps]
    prefix, cycle = actions[:start - 1], actions[start - 1:]
    reasons = []
    for v in [vm] if isinstance(vm, int) else honest:
        why = verify_lasso(model, v, prefix, cycle, str(fairness))
        if why is None:
            return LassoCheck(prop, True, "", v, str(fairness), start, len(cycle))
        reasons.append(why if vm is not None or len(honest) == 1 else f"VM {v}: {why}")
    return LassoCheck(prop, False, "; ".join(reasons) or "no VM follows the protocol",
                      vm if isinstance(vm, int) else None, str(fairness), start, len(cycle))


@dataclass(frozen=True)
class EndCheck:
    """What replaying a trace that ends in a stuck state shows about the claim it makes.

    A deadlock, a state from which the balloon can never reach its target
    (``balloon_can_reach_target``) and a state from which a property over runs
    (``host_recovers_to_target``) cannot reach its goal break no property a replay
    checks step by step: the claim is about the last state, and is decided again here on
    the model's own steps."""

    property: str
    confirmed: bool | None
    """The claim holds of the last state; None: the search from it was not finished within
    :data:`SEARCH_LIMIT` states, or the configuration is larger than
    :data:`SEARCHED_SIZE_LIMIT`."""
    detail: str
    """What was found, in words."""
    step: int
    """The number of the trace's last step."""

    def describe(self) -> str:
        """One line for a person."""
        verdict = {True: "confirmed", False: "not confirmed", None: "undecided"}[self.confirmed]
        return f"{self.property} {verdict} after step {self.step}: {self.detail}"


def check_end(trace: Trace, source: str = "<trace>", limit: int = SEARCH_LIMIT,
              model: BalloonModel | None = None) -> EndCheck | None:
    """Decide again the claim about its last state that a deadlock or stuck-state trace
    makes (None for another trace, a lasso included), on ``model`` (default: the one the
    trace's header describes). The steps must be allowed (replay the trace first); an
    illegal one raises GuardError.

    >>> from ballast.model.config import Config
    >>> from ballast.model.actions import Action
    >>> from ballast.model.system import BalloonModel
    >>> cfg = Config(vms=2, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
    ...              machine_pages=2, host_swap_slots=1, tokens=1, batch=1, host_use=False,
    ...              vmm_reclaims_over_target=True)
    >>> steps = [Action.of("host_set_target", vm=0, pages=1), Action.of("guest_read", vm=0, vpn=0)]
    >>> claim = {"property": "host_recovers_to_target", "step": 2, "vm": 0}
    >>> check_end(make_trace(BalloonModel(cfg), steps, claim, "AG EF")).confirmed
    False
    >>> bad = BalloonModel(cfg, ("vmm_stops_one_page_over",))
    >>> check_end(make_trace(bad, steps, claim, "AG EF")).confirmed
    True
    """
    expect = trace.header.expect or {}
    prop = expect.get("property")
    if lasso_start(trace, source) is not None or not trace.steps or \
            (prop not in REACH_PROPERTIES and prop not in (CAN_REACH, DEADLOCK)):
        return None
    model = model if model is not None else model_for(trace.header)
    cfg = model.cfg
    vm = expect.get("vm")
    if vm is not None and (isinstance(vm, bool) or not isinstance(vm, int)
                           or not 0 <= vm < cfg.vms):
        raise InputError(source, 1, f"expect.vm must be a VM number from 0 to {cfg.vms - 1}, "
                         f"got {vm!r:.40}")
    end = run_actions(model, [st.action for st in trace.steps])[-1]
    step = len(trace.steps)
    if prop == DEADLOCK:
        # Each VM's protocol actors are asked for one enabled step, not every step listed.
        moving = ProtocolMoves(model, end)
        stalled = stalled_among(cfg, moving, lambda v: unsettled(cfg, end, v))
        first = moving.any_step()
        if stalled or first is None:
            who = f"VM(s) {', '.join(map(str, stalled))} stalled" if stalled else "no step"
            return EndCheck(DEADLOCK, True, f"{who} in the last state", step)
        return EndCheck(DEADLOCK, False, "no VM's protocol is stalled: steps move the "
                        f"protocol on from the last state (one enabled: {first})", step)
    size = model_size(cfg)
    if size > SEARCHED_SIZE_LIMIT:
        return EndCheck(str(prop), None, f"a configuration of {size:,} pages, slots and "
                        f"processors: too large to search from the last state (at most "
                        f"{SEARCHED_SIZE_LIMIT:,}), so the claim is not decided", step)
    reach = REACH_PROPERTIES.get(str(prop))
    if reach is not None:
        if not reach.assumed(cfg, end):
            return EndCheck(reach.name, False, f"the last state does not meet the "
                            f"assumption ({reach.assumes})", step)
        found, searched = reaches(model, end, lambda s: reach.goal(cfg, s), reach.moves, limit)
        return EndCheck(reach.name, None if found is None else not found,
                        _searched(found, searched, "the goal"), step)
    vms = [vm] if vm is not None else list(honest_vms(cfg))
    for v in vms:
        if not 0 <= v < cfg.vms or at_target(end, v) or \
                not feasible_target(cfg, end.vms[v].target):
            continue
        found, searched = reaches(model, end, lambda s: at_target(s, v),
                                  lambda a: a.name not in _TARGET_SETTERS, limit)
        if found is not True:
            return EndCheck(CAN_REACH, None if found is None else True,
                            f"VM {v}: " + _searched(found, searched,
                                                    "its target (targets fixed)"), step)
    return EndCheck(CAN_REACH, False, "every VM that follows the protocol is at its target, or "
                    "has an infeasible one, or can reach it with the targets fixed", step)


def _searched(found: bool | None, searched: int, goal: str) -> str:
    states = f"{searched:,} state{'' if searched == 1 else 's'}"
    if found is None:
        return f"no run to {goal} found among the first {states} searched"
    if found:
        return f"a run of the allowed steps reaches {goal} ({states} searched)"
    return f"no run of the allowed steps reaches {goal} (every one of {states} searched)"


def _write_own(trace: Trace, out_dir: Path, name: str, what: str) -> Path:
    result = replay(trace)
    if result.steps_run != len(trace.steps):
        raise CounterexampleNotReproduced(f"the trace does not replay: {result.describe()}")
    out = Path(out_dir)
    buf = io.StringIO()
    write_trace_to(buf, trace)
    trace_path = out / f"{name}.jsonl"
    atomic_write_text(trace_path, buf.getvalue())
    md = markdown_explanation(trace, result, str(trace_path))
    expect = trace.header.expect or {}
    head = [f"# Counterexample: `{expect.get('property')}` fails", "", f"**What:** {what}", ""]
    # Keep the model's step table and state diff; the heading is ours (nothing "broke").
    body = md[md.find("**Found by:**"):] if "**Found by:**" in md else md
    atomic_write_text(out / f"{name}.md", "\n".join(head) + body)
    return trace_path
