"""The model's safety properties as Z3 formulas, and the conjuncts that make them inductive.

:data:`SAFETY` holds the state form of each property of
:data:`ballast.model.invariants.INVARIANTS` by its model name; :data:`STEPS`
the step forms (over a pre- and a post-state and the action taken).
:func:`strengthening` gives the extra named conjuncts of the inductive
invariant: facts that hold in every reachable state and that the proofs need
(an MPN that is free is not also in copy-on-write, a swapped page is unbacked,
...). ``tests/proofs`` checks on random states that each formula evaluates like
the model's own check.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.proofs.encoding import encode
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> z3.simplify(SAFETY["memory_conservation"](encode(cfg, initial_state(cfg))))
True
"""

from __future__ import annotations

from typing import Any, Callable

import z3

from ballast.model.actions import ACTIONS, Actor
from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.proofs.encoding import (
    BALLOON,
    FREE,
    UNBACKED,
    Num,
    SymState,
    at_least,
    at_most,
    count,
    exactly,
    num,
    well_formed,
)

__all__ = ["SAFETY", "STEPS", "StateFormula", "StepFormula", "inductive_invariant",
           "strengthening"]

StateFormula = Callable[[SymState], z3.BoolRef]
StepFormula = Callable[[SymState, str, dict[str, Any], SymState], z3.BoolRef]

SAFETY: dict[str, StateFormula] = {}
"""State form of each encoded safety property, by model name."""
STEPS: dict[str, StepFormula] = {}
"""Step form of each encoded safety property, by model name."""


def _state(name: str) -> Callable[[StateFormula], StateFormula]:
    assert name in INVARIANTS, name

    def register(fn: StateFormula) -> StateFormula:
        SAFETY[name] = fn
        return fn
    return register


def _step(name: str) -> Callable[[StepFormula], StepFormula]:
    assert name in INVARIANTS, name

    def register(fn: StepFormula) -> StepFormula:
        STEPS[name] = fn
        return fn
    return register


def _honest(cfg: Config) -> list[int]:
    return [v for v in range(cfg.vms) if v not in cfg.hostile_vms]


def _pages(cfg: Config) -> list[tuple[int, int]]:
    return [(v, p) for v in range(cfg.vms) for p in range(cfg.guest_pages)]


def _mapped(s: SymState, m: int) -> z3.BoolRef:
    return z3.Or([s.i("p2m", v, p) == m for v, p in _pages(s.cfg)])


@_state("memory_conservation")
def _conservation(s: SymState) -> z3.BoolRef:
    out = []
    for m in range(s.cfg.machine_pages):
        places = [s.b("free", m), s.b("in_use", m), _mapped(s, m)]
        out.append(exactly(places, 1))
    return z3.And(out)


@_state("no_double_mapping")
def _no_double(s: SymState) -> z3.BoolRef:
    out = []
    for m in range(s.cfg.machine_pages):
        n = at_least([s.i("p2m", v, p) == m for v, p in _pages(s.cfg)], 2)
        out.append(z3.Implies(n, s.b("cow", m)))
        out.append(z3.Implies(s.b("cow", m), _mapped(s, m)))
    return z3.And(out)


@_state("guest_chooses_pages")
def _guest_chooses(s: SymState) -> z3.BoolRef:
    return z3.And([z3.Implies(s.b("ballooned", v, p), z3.Or(s.i("ppn_use", v, p) == BALLOON,
                                                            s.i("deflate_queue", v, p) > 0))
                   for v in _honest(s.cfg) for p in range(s.cfg.guest_pages)] or [z3.BoolVal(True)])


@_step("guest_chooses_pages")
def _guest_chooses_step(pre: SymState, name: str, args: dict[str, Any],
                        post: SymState) -> z3.BoolRef:
    spec = ACTIONS[name]
    if spec.actor not in (Actor.HOST, Actor.VMM) or spec.names_guest_page:
        return z3.BoolVal(True)
    return z3.And([z3.Implies(z3.And(post.b("ballooned", v, p), z3.Not(pre.b("ballooned", v, p))),
                              pre.i("inflate_queue", v, p) > 0) for v, p in _pages(pre.cfg)])


@_state("ballooned_pages_unbacked")
def _ballooned_unbacked(s: SymState) -> z3.BoolRef:
    return z3.And([z3.Implies(s.b("ballooned", v, p),
                              z3.And(s.i("p2m", v, p) == UNBACKED, z3.Not(s.b("swap", v, p))))
                   for v, p in _pages(s.cfg)])


@_state("balloon_accounting_exact")
def _accounting(s: SymState) -> z3.BoolRef:
    cfg = s.cfg
    G = cfg.guest_pages
    out = []
    for v in _honest(cfg):
        out += [z3.Implies(s.b("balloon", v, p), s.b("ballooned", v, p)) for p in range(G)]
        quiet = z3.And([s.i("inflate_queue", v, q) == 0 for q in range(G + 1)]
                       + [s.i("deflate_queue", v, q) == 0 for q in range(G + 1)]
                       + [z3.Not(s.b(n, v, p)) for n in ("acked_inflate", "acked_deflate") for p in range(G)]
                       + [z3.Not(s.b("acked_refused", v, q)) for q in range(G + 1)])
        size = count(s.b("balloon", v, p) for p in range(G))
        out.append(z3.Implies(quiet, z3.And(s.i("actual", v) == size,
                                            size == count(s.b("ballooned", v, p)
                                                          for p in range(G)))))
    return z3.And(out) if out else z3.BoolVal(True)


@_state("module_pages_pinned")
def _module_pages_pinned(s: SymState) -> z3.BoolRef:
    out = []
    for v, p in _pages(s.cfg):
        bal, ref = s.b("balloon", v, p), s.b("refused", v, p)
        out.append(z3.Not(z3.And(bal, ref)))
        out.append(z3.Implies(z3.Or(bal, ref), s.i("ppn_use", v, p) == BALLOON))
    return z3.And(out)


@_state("isolation")
def _isolation(s: SymState) -> z3.BoolRef:
    cfg = s.cfg
    out = []
    for m in range(cfg.machine_pages):
        by_vm = [z3.Or([s.i("p2m", v, p) == m for p in range(cfg.guest_pages)])
                 for v in range(cfg.vms)]
        out.append(z3.Implies(at_least(by_vm, 2), s.b("cow", m)))
        out.append(z3.Implies(s.b("free", m), s.i("content", m) == 0))
    return z3.And(out)


@_step("isolation")
def _isolation_step(pre: SymState, name: str, args: dict[str, Any],
                    post: SymState) -> z3.BoolRef:
    if ACTIONS[name].actor not in (Actor.GUEST, Actor.MODULE, Actor.ROGUE):
        return z3.BoolVal(True)
    cfg = pre.cfg
    actor = args.get("vm")
    out = []
    for w in range(cfg.vms):
        if w == actor:
            continue
        out.append(pre.vm_equals(post, w))
        for p in range(cfg.guest_pages):
            mpn = pre.i("p2m", w, p)
            for m in range(cfg.machine_pages):
                out.append(z3.Implies(mpn == m, pre.i("content", m) == post.i("content", m)))
    return z3.And(out) if out else z3.BoolVal(True)


def _token_of(s: SymState, v: int, p: int) -> Num:
    cfg = s.cfg
    mpn = s.i("p2m", v, p)
    content: Num = z3.If(s.b("swap", v, p), s.i("swap_token", v, p), 0)
    for m in range(cfg.machine_pages - 1, -1, -1):
        content = z3.If(mpn == m, s.i("content", m), content)
    return content


@_state("guest_data_intact")
def _data_intact(s: SymState) -> z3.BoolRef:
    cfg = s.cfg
    G, D = cfg.guest_pages, cfg.guest_data_pages
    out = []
    for v in _honest(cfg):
        for p in range(G):
            use = s.i("ppn_use", v, p)
            for d in range(D):
                out.append(z3.Implies(use == d, _token_of(s, v, p) == s.i("expected", v, d)))
        for d in range(D):
            resident = z3.Or([s.i("ppn_use", v, p) == d for p in range(G)])
            out.append(z3.Implies(s.b("disk", v, d), z3.And(
                z3.Not(resident), s.i("disk_token", v, d) == s.i("expected", v, d))))
            out.append(z3.Implies(s.i("expected", v, d) != 0,
                                  z3.Or(resident, s.b("disk", v, d))))
            for p in range(G):
                for q in range(p + 1, G):
                    out.append(z3.Not(z3.And(s.i("ppn_use", v, p) == d, s.i("ppn_use", v, q) == d)))
        out.append(at_most([s.b("disk", v, d) for d in range(D)], cfg.guest_disk_slots))
    return z3.And(out) if out else z3.BoolVal(True)


@_state("host_pages_whole")
def _whole(s: SymState) -> z3.BoolRef:
    cfg = s.cfg
    u = cfg.host_page_units
    out = []
    for hp in range(cfg.host_pages):
        units = [s.b("in_use", m) for m in range(hp * u, (hp + 1) * u)]
        out.append(z3.Or(z3.And(units), z3.Not(z3.Or(units))))
    return z3.And(out)


@_state("processor_conservation")
def _processors(s: SymState) -> z3.BoolRef:
    cfg = s.cfg
    if not cfg.processors:
        return z3.BoolVal(True)
    C = cfg.vcpus
    total = s.i("idle_pcpus") + z3.Sum([count(s.b("vcpus", v, c) for c in range(C))
                                  + count(s.b("parked_vcpus", v, c) for c in range(C))
                                  for v in range(cfg.vms)])
    out = [total == cfg.pcpus, s.i("idle_pcpus") >= 0]
    out += [z3.Not(z3.And(s.b("vcpus", v, c), s.b("parked_vcpus", v, c)))
            for v in range(cfg.vms) for c in range(C)]
    return z3.And(out)


# --------------------------------------------------------------------------
# Strengthening: facts of every reachable state the safety properties rest on.


def strengthening(s: SymState) -> dict[str, z3.BoolRef]:
    """Named extra conjuncts of the inductive invariant (each proved preserved too)."""
    cfg = s.cfg
    M, G, D = cfg.machine_pages, cfg.guest_pages, cfg.guest_data_pages
    pages = _pages(cfg)
    out: dict[str, list[z3.BoolRef]] = {}

    def add(name: str, *fs: z3.BoolRef) -> None:
        out.setdefault(name, []).extend(fs)

    for m in range(M):
        add("free_not_cow", z3.Implies(s.b("free", m), z3.Not(s.b("cow", m))))
        add("in_use_not_cow", z3.Implies(s.b("in_use", m), z3.Not(s.b("cow", m))))
        add("reclaimed_is_free", z3.Implies(s.b("reclaimed", m), s.b("free", m)))
        add("in_use_scrubbed", z3.Implies(s.b("in_use", m), s.i("content", m) == 0))
        add("cow_shared", z3.Implies(s.b("cow", m), at_least(
            [s.i("p2m", v, p) == m for v, p in pages], 2)))
    for v, p in pages:
        add("swapped_unbacked", z3.Implies(s.b("swap", v, p), s.i("p2m", v, p) == UNBACKED))
    add("host_swap_bounded", at_most([s.b("swap", v, p) for v, p in pages], cfg.host_swap_slots))
    # The guest's own bookkeeping, for guests that follow the protocol (a hostile
    # guest's module may free a page a process still uses).
    for v in _honest(cfg):
        for d in range(D):
            resident = z3.Or([s.i("ppn_use", v, p) == d for p in range(G)])
            add("lru_is_resident", s.b("lru", v, d) == resident)
            for p in range(G):
                for q in range(p + 1, G):
                    add("resident_once", z3.Not(z3.And(s.i("ppn_use", v, p) == d,
                                                       s.i("ppn_use", v, q) == d)))
            add("disk_not_resident", z3.Implies(s.b("disk", v, d), z3.Not(resident)))
        add("guest_disk_bounded", at_most([s.b("disk", v, d) for d in range(D)],
                                          cfg.guest_disk_slots))
    for v in _honest(cfg):
        for p in range(G):
            add("module_pages_pinned", z3.Implies(z3.Or(s.b("balloon", v, p), s.b("refused", v, p)),
                                                  s.i("ppn_use", v, p) == BALLOON))
    for v in _honest(cfg):
        for p in range(G):
            pinned = s.i("ppn_use", v, p) == BALLOON
            inq, dq = s.i("inflate_queue", v, p) > 0, s.i("deflate_queue", v, p) > 0
            bal, ai = s.b("balloon", v, p), s.b("acked_inflate", v, p)
            ref, ar, ad = s.b("refused", v, p), s.b("acked_refused", v, p), s.b("acked_deflate", v, p)
            # Where a balloon page is in the protocol: exactly one stage at a time.
            stages = [inq, ai, bal, ar, ref]
            if cfg.must_tell_host:
                stages += [dq, ad]
            add("balloon_stage", z3.Implies(pinned, exactly(stages, 1)))
            add("balloon_stage", z3.Implies(z3.Not(pinned), z3.Not(z3.Or(stages))))
            add("queue_once", s.i("inflate_queue", v, p) <= 1, s.i("deflate_queue", v, p) <= 1)
            add("ballooned_stage", z3.Implies(s.b("ballooned", v, p), z3.Or(bal, ai, dq)))
            if not cfg.must_tell_host:
                # Without MUST_TELL_HOST a deflated page is freed at once, and the module
                # does not take it back before the VMM has processed its deflate report.
                add("deflate_pending_unpinned", z3.Implies(dq, z3.Not(pinned)))
            # A page is reported again only after the VMM processed its deflation: with
            # MUST_TELL_HOST it stays pinned until then, without it the module's
            # allocations skip pages still on the deflate queue.
            add("ai_ballooned", z3.Implies(ai, s.b("ballooned", v, p)))
            add("inq_not_ballooned", z3.Implies(inq, z3.Not(s.b("ballooned", v, p))))
        add("no_stray_reports", s.i("inflate_queue", v, G) == 0, s.i("deflate_queue", v, G) == 0,
            z3.Not(s.b("acked_refused", v, G)))
    return {k: z3.And(fs) for k, fs in out.items()}


def inductive_invariant(s: SymState) -> dict[str, z3.BoolRef]:
    """Every named conjunct: encoding domain, strengthening, then the safety properties."""
    out = dict(well_formed(s))
    out.update(strengthening(s))
    for name, fn in SAFETY.items():
        if INVARIANTS[name].feature(s.cfg):
            out[name] = fn(s)
    return out
