"""The model's safety properties as Z3 formulas, and the conjuncts that make them inductive.

:data:`SAFETY` holds the state form of each property of
:data:`ballast.model.invariants.INVARIANTS` by its model name: the formula of its
kernel (:data:`ballast.model.property_kernels.PROPERTY_KERNELS`, read by
:func:`ballast.proofs.interpret.property_formula`). :data:`STEPS` holds the
step forms (over a pre- and a post-state and the action taken), each from its kernel
(:data:`ballast.model.property_kernels.STEP_KERNELS`, read by
:func:`ballast.proofs.interpret.step_formula`).
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

from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.property_kernels import PROPERTY_KERNELS, STEP_KERNELS, StepKernel
from ballast.proofs.encoding import (
    BALLOON,
    UNBACKED,
    SymState,
    at_least,
    at_most,
    exactly,
    well_formed,
)
from ballast.model.reporting_kernels import REPORTING_PROPERTIES, reads_clean
from ballast.model.feature_kernels import FEATURE_PROPERTIES, quiescent
from ballast.model.granular_kernels import GRANULAR_HOST_PROPERTIES, GRANULAR_PROPERTIES
from ballast.proofs.interpret import Z3StateOps, property_formula, step_formula

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


def _kernel_formula(name: str) -> StateFormula:
    """The state form of property ``name`` from its kernel (named where the kernel is)."""
    kernel = PROPERTY_KERNELS[name]

    def formula(s: SymState) -> z3.BoolRef:
        return property_formula(kernel, s)
    part = kernel.host or kernel.each_vm
    assert part is not None
    formula.__module__, formula.__qualname__ = part.__module__, part.__qualname__
    return formula


# In the order the proofs have always listed them (the inductive invariant's conjuncts).
for _name in ("memory_conservation", "no_double_mapping", "guest_chooses_pages",
              "ballooned_pages_unbacked", "balloon_accounting_exact", "module_pages_pinned",
              "isolation", "guest_data_intact"):
    _state(_name)(_kernel_formula(_name))


for _name in ("host_pages_whole", "processor_conservation", "migration_loses_nothing"):
    _state(_name)(_kernel_formula(_name))


# --------------------------------------------------------------------------
# Free page reporting, page poisoning, the statistics queue, the flood bound: the state
# forms from their kernels.

for _name in REPORTING_PROPERTIES:
    _state(_name)(_kernel_formula(_name))


def _step_formula(kernel: StepKernel) -> StepFormula:
    """The step form of a property from its kernel (named where the kernel is)."""
    def formula(pre: SymState, act: str, args: dict[str, Any], post: SymState) -> z3.BoolRef:
        return step_formula(kernel, pre, act, args, post)
    formula.__module__, formula.__qualname__ = kernel.check.__module__, kernel.check.__qualname__
    return formula


# Every step form from its kernel (ballast.model.property_kernels.STEP_KERNELS).
for _name, _kernel in STEP_KERNELS.items():
    _step(_name)(_step_formula(_kernel))


# The state forms of free page hinting (ballast.model.feature_kernels); the step forms of
# every feature are in STEP_KERNELS above.
for _name in FEATURE_PROPERTIES:
    _state(_name)(_kernel_formula(_name))

# Balloon units of several pages, host pages kept to one VM, the generic guest system
# (ballast.model.granular_kernels).
for _name in (*GRANULAR_PROPERTIES, *GRANULAR_HOST_PROPERTIES):
    _state(_name)(_kernel_formula(_name))


# --------------------------------------------------------------------------
# Strengthening: facts of every reachable state the safety properties rest on.


_Add = Callable[..., None]
"""``add(name, *facts)``: facts joined to the strengthening conjunct called ``name``."""


def strengthening(s: SymState) -> dict[str, z3.BoolRef]:
    """Named extra conjuncts of the inductive invariant (each proved preserved too)."""
    out: dict[str, list[z3.BoolRef]] = {}

    def add(name: str, *fs: z3.BoolRef) -> None:
        out.setdefault(name, []).extend(fs)

    # In this order: the order of a conjunct's facts is the order of its Z3 terms.
    _host_facts(s, add)
    _guest_facts(s, add)
    _protocol_facts(s, add)
    if s.cfg.balloon_unit_pages > 1:
        _unit_facts(s, add)
    if s.cfg.free_page_reporting:
        _reporting_facts(s, add)
    if s.cfg.hibernation:
        # A driver freezes with no report in flight, and a hibernated guest sends none.
        for v in _honest(s.cfg):
            add("frozen_quiescent", z3.Implies(s.i("frozen", v) != 0,
                                               quiescent(Z3StateOps(s, v))))
    return {k: z3.And(fs) for k, fs in out.items()}


def _host_facts(s: SymState, add: _Add) -> None:
    """The MPNs' flags agree with one another; host swap holds unbacked pages only."""
    cfg = s.cfg
    pages = _pages(cfg)
    for m in range(cfg.machine_pages):
        add("free_not_cow", z3.Implies(s.b("free", m), z3.Not(s.b("cow", m))))
        add("in_use_not_cow", z3.Implies(s.b("in_use", m), z3.Not(s.b("cow", m))))
        add("reclaimed_is_free", z3.Implies(s.b("reclaimed", m), s.b("free", m)))
        add("in_use_scrubbed", z3.Implies(s.b("in_use", m), s.i("content", m) == 0))
        add("cow_shared", z3.Implies(s.b("cow", m), at_least(
            [s.i("p2m", v, p) == m for v, p in pages], 2)))
    for v, p in pages:
        add("swapped_unbacked", z3.Implies(s.b("swap", v, p), s.i("p2m", v, p) == UNBACKED))
    add("host_swap_bounded", at_most([s.b("swap", v, p) for v, p in pages], cfg.host_swap_slots))


def _guest_facts(s: SymState, add: _Add) -> None:
    """The guest's own bookkeeping, for guests that follow the protocol (a hostile
    guest's module may free a page a process still uses)."""
    cfg = s.cfg
    G, D = cfg.guest_pages, cfg.guest_data_pages
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


def _protocol_facts(s: SymState, add: _Add) -> None:
    """Where each page of an honest guest is in the balloon protocol."""
    cfg = s.cfg
    G = cfg.guest_pages
    for v in _honest(cfg):
        for p in range(G):
            pinned = s.i("ppn_use", v, p) == BALLOON
            inq, dq = s.i("inflate_queue", v, p) > 0, s.i("deflate_queue", v, p) > 0
            bal, ai = s.b("balloon", v, p), s.b("acked_inflate", v, p)
            ref, ar, ad = (s.b("refused", v, p), s.b("acked_refused", v, p),
                           s.b("acked_deflate", v, p))
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


def _unit_facts(s: SymState, add: _Add) -> None:
    """Balloon units move whole: each stage of the protocol holds every page of a unit
    or none (the module reports, and the VMM accepts and acknowledges, whole units)."""
    cfg = s.cfg
    u = cfg.balloon_unit_pages
    for v in _honest(cfg):
        def held(p: int, v: int = v) -> list[z3.BoolRef]:
            return [s.i("ppn_use", v, p) == BALLOON, s.i("inflate_queue", v, p) > 0,
                    s.i("deflate_queue", v, p) > 0, s.b("acked_inflate", v, p),
                    s.b("acked_refused", v, p), s.b("acked_deflate", v, p),
                    s.b("refused", v, p)]
        for first in range(0, cfg.guest_pages, u):
            for p in range(first + 1, first + u):
                add("units_move_whole", *[a == b for a, b in zip(held(first), held(p))])


def _reporting_facts(s: SymState, add: _Add) -> None:
    """One free page report at a time: what is on the reporting queue, or returned by
    the VMM, the module still holds off the free list, and a page is in one stage."""
    cfg = s.cfg
    for v in _honest(cfg):
        for p in range(cfg.guest_pages):
            queued, acked = s.b("report_queue", v, p), s.b("acked_report", v, p)
            add("report_held_by_module",
                z3.Implies(z3.Or(queued, acked), s.b("reporting", v, p)),
                z3.Not(z3.And(queued, acked)))
        if cfg.page_poison and cfg.poison_val:
            # The guest poisoned what it reported, and uses none of it until returned
            # (with a poison_val of zero it writes nothing: ``actions._poison``).
            clean = reads_clean(Z3StateOps(s, v))
            add("reported_pages_poisoned", *[z3.Implies(s.b("report_queue", v, p), c)
                                             for p, c in enumerate(clean)])


def inductive_invariant(s: SymState) -> dict[str, z3.BoolRef]:
    """Every named conjunct: encoding domain, strengthening, then the safety properties."""
    out = dict(well_formed(s))
    out.update(strengthening(s))
    for name, fn in SAFETY.items():
        if INVARIANTS[name].feature(s.cfg):
            out[name] = fn(s)
    return out
