"""Bounded model checking: is a property broken within ``k`` steps of the initial state?

The path ``s0 -> s1 -> ... -> sk`` is unrolled with one fresh symbolic state
per step and one choice variable per step naming which action (with which
arguments) was taken. A satisfying assignment is decoded into a trace in the
project's trace format, which the caller replays through the Python model
before reporting it.

>>> from ballast.model.config import Config
>>> cfg = Config(vms=1, guest_pages=1, machine_pages=1, guest_data_pages=1, tokens=1)
>>> bmc(cfg, "memory_conservation", depth=2).found
False
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import z3

from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.state import initial_state
from ballast.model.trace import Trace, TraceHeader, TraceStep
from ballast.proofs.encoding import SymState, encode, fresh, well_formed
from ballast.proofs.faults import effects_with
from ballast.proofs.limits import BMC_RLIMIT, SolverLimit, checked, why_unknown
from ballast.proofs.properties import SAFETY, STEPS, strengthening
from ballast.proofs.transitions import Step, choose, encoded_actions, instances, step

__all__ = ["BmcResult", "bmc"]


@dataclass(frozen=True)
class BmcResult:
    """The outcome of one bounded search."""

    target: str
    depth: int
    """The depth searched (complete up to here unless ``unknown``)."""
    found: bool
    unknown: bool
    seconds: float
    trace: Trace | None = None
    rlimit: int = 0
    """Z3 resource units the search used (all depths)."""
    why: str = ""
    """For ``unknown``: which budget ran out and which flag raises it."""


def _target(name: str, pre: SymState, post: SymState,
            steps: list[tuple[str, dict[str, object], z3.BoolRef, SymState]],
            choice: z3.ArithRef) -> z3.BoolRef:
    """The formula "``name`` is broken by this step" (state form on ``post`` or step form)."""
    bad: list[z3.BoolRef] = []
    if name in SAFETY:
        bad.append(z3.Not(SAFETY[name](post)))
    elif name in well_formed(post) or name in strengthening(post):
        conj = {**well_formed(post), **strengthening(post)}
        bad.append(z3.Not(conj[name]))
    if name in STEPS:
        for i, (act, args, _guard, spost) in enumerate(steps):
            bad.append(z3.And(choice == i, z3.Not(STEPS[name](pre, act, args, spost))))
    return z3.Or(bad) if bad else z3.BoolVal(False)


def bmc(cfg: Config, target: str, *, depth: int = 6, faults: tuple[str, ...] = (),
        limit: SolverLimit = SolverLimit(BMC_RLIMIT, flag="--bmc-rlimit"),
        query: str | None = None) -> BmcResult:
    """Search for a path of at most ``depth`` steps that breaks ``target``.

    ``target`` is a model property (state and/or step form) or a conjunct of the
    inductive invariant. Returns the first (shortest) trace found. The depths share
    one ``limit``.
    """
    t0 = time.perf_counter()
    effects = effects_with(faults)
    table = [(n, a) for n in encoded_actions(cfg) for a in instances(cfg, n)]
    solver = z3.Solver()
    spent = 0
    states: list[SymState] = [encode(cfg, initial_state(cfg))]
    choices: list[z3.ArithRef] = []
    chosen_steps: dict[int, list[Step]] = {}
    for k in range(1, depth + 1):
        pre = states[-1]
        post = fresh(cfg, f"s{k}")
        choice = z3.Int(f"choice{k}")
        steps = []
        for i, (name, args) in enumerate(table):
            st = step(cfg, pre, name, args, effects, tag=str(k))
            steps.append((name, st.sym, st.guard, st.post))
            chosen_steps.setdefault(k, []).append(st)
            solver.add(z3.Implies(choice == i, z3.And(st.guard, post.equals(st.post))))
        solver.add(choice >= 0, choice < len(table))
        states.append(post)
        choices.append(choice)
        solver.push()
        solver.add(_target(target, pre, post, steps, choice))
        r, used = checked(solver, limit, spent)
        spent += used
        if r == z3.sat:
            model = solver.model()
            tsteps = []
            for j, ch in enumerate(choices):
                st = chosen_steps[j + 1][model.eval(ch, model_completion=True).as_long()]
                tsteps.append(TraceStep(j + 1, Action.of(st.name, **choose(st, model))))
            header = TraceHeader(cfg, tuple(faults),
                                 source={"checker": "prove", "seed": None,
                                         "query": query or f"bmc {target}"},
                                 expect={"property": target, "step": k})
            return BmcResult(target, k, True, False, time.perf_counter() - t0,
                             Trace(header, tuple(tsteps)), spent)
        solver.pop()
        if r == z3.unknown:
            return BmcResult(target, k - 1, False, True, time.perf_counter() - t0, None, spent,
                             why_unknown(limit, spent, solver.reason_unknown()))
    return BmcResult(target, depth, False, False, time.perf_counter() - t0, None, spent)
