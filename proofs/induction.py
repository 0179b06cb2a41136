"""Inductive invariant checking in three steps, one named query per pair.

For the inductive invariant ``Inv`` (the conjunction of
:func:`~ballast.proofs.properties.inductive_invariant`):

1. ``init => c`` for every conjunct ``c``;
2. ``Inv and Next_a => c'`` for every action ``a`` and conjunct ``c``
   (and ``Inv and Next_a => P(pre, post)`` for every step property ``P``);
3. ``Inv => P`` for every safety property ``P``, proved from the conjuncts
   other than ``P`` itself (a property no other conjunct implies is reported
   as its own strengthening, not as derived).

Each query checks the negation; ``unsat`` means proved, with an unsat core
over the named conjuncts (which ones the proof needed); ``sat`` gives a
counterexample to induction (CTI), decoded into the model's own
:class:`~ballast.model.state.State` and re-checked with the model's Python
predicates; ``unknown`` (its resource limit, see :mod:`~ballast.proofs.limits`, ran out)
is inconclusive, never proved.

The state is sized by the configuration (VMs, PPNs, MPNs, VPNs), and every
action argument is enumerated, so a proof covers every state of that size,
reachable or not, that satisfies ``Inv``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator

import z3

from ballast.errors import GuardError
from ballast.forked import forked_map
from ballast.model.actions import Action
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.state import State, initial_state
from ballast.model.system import BalloonModel
from ballast.proofs.encoding import OutOfDomain, concrete_values, decode_model, encode, fresh
from ballast.proofs.faults import effects_with
from ballast.proofs.limits import SolverLimit, checked, why_unknown
from ballast.proofs.properties import STEPS, inductive_invariant
from ballast.proofs.transitions import choose, encoded_actions, instances, step

__all__ = ["CTI", "ProofVerdict", "QueryResult", "consecution", "induction_queries",
           "init_queries", "safety_queries"]


class ProofVerdict(str, Enum):
    """What one query established."""

    PROVED = "proved"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CTI:
    """A counterexample to induction: a pre-state satisfying Inv whose step breaks a conjunct."""

    conjunct: str
    action: Action
    pre: State
    post: State
    python_pre_violations: tuple[str, ...]
    """Model properties the model's own checks find broken in ``pre`` (expected: none)."""
    python_post_message: str | None
    """The model's own message for the broken property after the step (None if it holds)."""
    step_form: bool = False
    out_of_domain: str | None = None
    """Set when the model's successor is a state the encoding cannot represent (why)."""


@dataclass
class QueryResult:
    """One named query and its outcome."""

    name: str
    kind: str
    """``init``, ``consecution``, ``step``, ``safety``, ``policy`` or ``bmc``."""
    conjunct: str
    action: str | None
    verdict: ProofVerdict
    seconds: float
    core: tuple[str, ...] = ()
    detail: str = ""
    cti: CTI | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (states as plain data)."""
        out: dict[str, Any] = {"query": self.name, "kind": self.kind, "conjunct": self.conjunct,
                               "action": self.action, "verdict": self.verdict.value,
                               "seconds": round(self.seconds, 4), "core": list(self.core),
                               "detail": self.detail}
        if self.cti is not None:
            out["cti"] = {"action": str(self.cti.action), "pre": self.cti.pre.to_dict(),
                          "post_message": self.cti.python_post_message}
        out.update(self.evidence)
        return out


def _python_cti(cfg: Config, faults: tuple[str, ...], conjunct: str, act: Action,
                pre: State, step_form: bool) -> CTI:
    model = BalloonModel(cfg, faults)
    pre_bad = tuple(v.property for v in model.violations(pre))
    try:
        post = model.next_state(pre, act)
    except GuardError:
        post = pre
    try:
        concrete_values(cfg, post)
        outside = None
    except OutOfDomain as exc:
        outside = str(exc)
    msg = None
    if conjunct in INVARIANTS:
        prop = INVARIANTS[conjunct]
        msg = (prop.check_step(cfg, pre, act, post) if step_form
               else prop.check_state(cfg, post))
    return CTI(conjunct, act, pre, post, pre_bad, msg, step_form, outside)


def _wanted(cfg: Config, conjuncts: tuple[str, ...] | None) -> list[str]:
    names = list(inductive_invariant(encode(cfg, initial_state(cfg))))
    return [c for c in names if conjuncts is None or c in conjuncts]


def init_queries(cfg: Config, limit: SolverLimit = SolverLimit(),
                 conjuncts: tuple[str, ...] | None = None) -> list[QueryResult]:
    """Step 1: the initial state satisfies every conjunct."""
    inv0 = inductive_invariant(encode(cfg, initial_state(cfg)))
    out = []
    for c in _wanted(cfg, conjuncts):
        t0 = time.perf_counter()
        s = z3.Solver()
        s.add(z3.Not(inv0[c]))
        r, used = checked(s, limit)
        out.append(_verdict(f"init => {c}", "init", c, None, r, time.perf_counter() - t0, (),
                            limit, used, s))
    return out


def safety_queries(cfg: Config, limit: SolverLimit = SolverLimit(),
                   conjuncts: tuple[str, ...] | None = None) -> list[QueryResult]:
    """Step 3: every safety property from the *other* conjuncts of the inductive invariant.

    ``Inv => P`` holds trivially when ``P`` is itself a conjunct, so the query
    drops ``P`` from the hypothesis: ``unsat`` derives ``P`` from the conjuncts
    in its core (none of them ``P``). When the other conjuncts do not imply ``P``
    (``sat``), ``P`` is its own strengthening: it holds in every reachable state
    because steps 1 and 2 prove it initial and preserved, and the result says so
    (``evidence["derived"]`` is False) instead of claiming a derivation.
    """
    pre = fresh(cfg, "pre")
    inv = inductive_invariant(pre)
    tracks = {c: z3.Bool(f"inv!{c}") for c in inv}
    names = {str(b): c for c, b in tracks.items()}
    out = []
    for c in _wanted(cfg, conjuncts):
        if c not in INVARIANTS:
            continue
        t0 = time.perf_counter()
        s = z3.Solver()
        others = [k for k in inv if k != c]
        for k in others:
            s.add(z3.Implies(tracks[k], inv[k]))
        s.add(z3.Not(inv[c]))
        r, used = checked(s, limit, 0, *(tracks[k] for k in others))
        secs = time.perf_counter() - t0
        name = f"Inv => {c}"
        if r == z3.unsat:
            core = tuple(sorted(names[str(x)] for x in s.unsat_core()))
            detail = (f"derived without assuming {c} from: {', '.join(core)}" if core else
                      "holds in every state of this size (no conjunct needed)")
            out.append(_verdict(name, "safety", c, None, r, secs, core, limit, used, s,
                                detail=detail, evidence={"derived": True}))
            continue
        if r == z3.unknown:
            # Undecided within the limit: the property is not shown derived, and the
            # query says so rather than claiming anything.
            out.append(_verdict(name, "safety", c, None, r, secs, (), limit, used, s))
            continue
        out.append(_verdict(
            name, "safety", c, None, z3.unsat, secs, (), limit, used, s,
            detail=(f"not derived, its own strengthening: the other conjuncts do not imply "
                    f"it; it rests on init => {c} and {c} preserved by every action"),
            evidence={"derived": False}))
    return out


def consecution(cfg: Config, name: str, faults: tuple[str, ...] = (),
                limit: SolverLimit = SolverLimit(),
                conjuncts: tuple[str, ...] | None = None) -> list[QueryResult]:
    """Step 2 for one action: one query per conjunct (and per step property).

    A query covers every argument tuple of the action; its time and its Z3 resource
    units (one ``limit`` for them all) are the sums over them, its core the union
    of the cores, and it stops at the first CTI.
    """
    effects = effects_with(faults)
    pre = fresh(cfg, "pre")
    inv = inductive_invariant(pre)
    tracks = {c: z3.Bool(f"inv!{c}") for c in inv}
    names = {str(b): c for c, b in tracks.items()}
    solver = z3.Solver()
    for c, f in inv.items():
        solver.add(z3.Implies(tracks[c], f))
    assumptions = list(tracks.values())
    wanted = [c for c in inv if conjuncts is None or c in conjuncts]
    step_props = [p for p in STEPS if (conjuncts is None or p in conjuncts)
                  and INVARIANTS[p].feature(cfg)]
    labels = [(c, "consecution") for c in wanted] + [(p, "step") for p in step_props]
    seconds = {lab: 0.0 for lab in labels}
    rlimit = {lab: 0 for lab in labels}
    cores: dict[tuple[str, str], set[str]] = {lab: set() for lab in labels}
    done: dict[tuple[str, str], QueryResult] = {}
    for args in instances(cfg, name):
        st = step(cfg, pre, name, args, effects)
        post_inv = inductive_invariant(st.post)
        solver.push()
        solver.add(st.guard)
        for lab in labels:
            if lab in done:
                continue
            c, kind = lab
            if kind == "consecution" and post_inv[c].eq(inv[c]):
                # The step leaves every part of the conjunct unchanged: it needs only itself.
                cores[lab].add(c)
                continue
            prop = (post_inv[c] if kind == "consecution"
                    else STEPS[c](pre, name, st.sym, st.post))
            if z3.is_true(prop):
                continue
            bad = z3.Not(prop)
            solver.push()
            solver.add(bad)
            t0 = time.perf_counter()
            r, used = checked(solver, limit, rlimit[lab], *assumptions)
            rlimit[lab] += used
            seconds[lab] += time.perf_counter() - t0
            label = f"{c}{' [step]' if kind == 'step' else ''} preserved by {name}"
            if r == z3.unsat:
                cores[lab].update(names[str(x)] for x in solver.unsat_core())
            elif r == z3.sat:
                model = solver.model()
                pre_state = decode_model(pre, model)
                act = Action.of(name, **choose(st, model))
                cti = _python_cti(cfg, faults, c, act, pre_state, kind == "step")
                done[lab] = QueryResult(label, kind, c, name, ProofVerdict.VIOLATED, seconds[lab],
                                        detail=f"{c} is not preserved by action {act}", cti=cti)
            else:
                done[lab] = QueryResult(label, kind, c, name, ProofVerdict.UNKNOWN, seconds[lab],
                                        detail=why_unknown(limit, rlimit[lab],
                                                           solver.reason_unknown()))
            solver.pop()
        solver.pop()
    out = []
    for lab in labels:
        c, kind = lab
        if lab in done:
            done[lab].seconds = seconds[lab]
            done[lab].evidence["rlimit"] = rlimit[lab]
            out.append(done[lab])
        else:
            label = f"{c}{' [step]' if kind == 'step' else ''} preserved by {name}"
            out.append(QueryResult(label, kind, c, name, ProofVerdict.PROVED, seconds[lab],
                                   tuple(sorted(cores[lab])),
                                   evidence={"rlimit": rlimit[lab]}))
    return out


def _consecution_job(job: tuple[Config, str, tuple[str, ...], SolverLimit,
                                tuple[str, ...] | None]) -> list[QueryResult]:
    cfg, name, faults, limit, conjuncts = job
    return consecution(cfg, name, faults, limit, conjuncts)


def induction_queries(cfg: Config, *, faults: tuple[str, ...] = (),
                      limit: SolverLimit = SolverLimit(),
                      actions: list[str] | None = None,
                      conjuncts: tuple[str, ...] | None = None,
                      jobs: int | None = None) -> Iterator[QueryResult]:
    """All three steps, yielding one result per named query.

    ``jobs`` worker processes share the per-action work (default: one per CPU).
    Every action's queries run in a fresh worker forked from this process, so Z3
    starts each action from the same state whichever worker runs it, after
    whichever others: the resource units a query uses, its unsat core and so its
    verdict under a resource limit do not depend on scheduling or load.
    """
    yield from init_queries(cfg, limit, conjuncts)
    names = actions if actions is not None else encoded_actions(cfg)
    # The heaviest actions first, so that the workers finish together.
    heavy = ["guest_write", "vmm_reclaim", "guest_read", "vmm_share", "guest_evict",
             "rogue_touch", "host_swap_out"]
    names = sorted(names, key=lambda n: heavy.index(n) if n in heavy else len(heavy))
    work = [(cfg, n, tuple(faults), limit, conjuncts) for n in names]
    n_jobs = max(1, min(jobs if jobs is not None else (os.cpu_count() or 1), len(work)))
    for res in forked_map(_consecution_job, work, workers=n_jobs,
                          name=lambda job: f"the consecution queries of {job[1]}"):
        yield from res
    yield from safety_queries(cfg, limit, conjuncts)


def _verdict(name: str, kind: str, c: str, action: str | None, r: z3.CheckSatResult,
             seconds: float, core: tuple[str, ...], limit: SolverLimit, used: int,
             solver: z3.Solver, *, detail: str = "",
             evidence: dict[str, object] | None = None) -> QueryResult:
    spent: dict[str, object] = {"rlimit": used, **(evidence or {})}
    if r == z3.unsat:
        return QueryResult(name, kind, c, action, ProofVerdict.PROVED, seconds, core,
                           detail=detail, evidence=spent)
    if r == z3.sat:
        return QueryResult(name, kind, c, action, ProofVerdict.VIOLATED, seconds,
                           detail=detail or f"{c} does not hold", evidence=spent)
    return QueryResult(name, kind, c, action, ProofVerdict.UNKNOWN, seconds,
                       detail=why_unknown(limit, used, solver.reason_unknown()), evidence=spent)
