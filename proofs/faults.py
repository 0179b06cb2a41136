"""The seeded faults of :mod:`ballast.model.faults` as broken transition relations.

Each entry replaces one action's encoding, exactly as the model's fault
replaces that action's step function; ``tests/proofs`` checks both agree on
random states. The proofs must refute every one of them (negative controls).
Every seeded fault has one, except the declared known gaps of the Z3 backend:

>>> from ballast.proofs.encodes import KNOWN_GAPS
>>> sorted(set(FAULTS) - set(FAULT_EFFECTS)) == sorted(n for k, n in KNOWN_GAPS if k == "faults")
True
"""

from __future__ import annotations

from typing import Callable, Mapping

import z3

from ballast.errors import InputError
from ballast.model.action_kernels import FAULT_KERNELS
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.proofs.encoding import UNBACKED, Key, SymState, num
from ballast.proofs.transitions import (
    ENCODED,
    Args,
    Effect,
    F,
    T,
    _units,
    kernel_effect,
    lowest,
    unback,
)
from ballast.proofs.transitions import _guest_write, _host_swap_out, _vmm_share

__all__ = ["FAULT_EFFECTS", "effects_with"]

FAULT_EFFECTS: dict[str, tuple[str, Effect]] = {}
"""Fault name -> (the action it replaces, its broken encoding)."""


def _fault(name: str) -> Callable[[Effect], Effect]:
    fault = FAULTS[name]

    def register(fn: Effect) -> Effect:
        FAULT_EFFECTS[name] = (fault.action, fn)
        return fn
    return register


# The faults of actions written once are kernels too (ballast.model.action_kernels).
for _name, (_action, _kernel) in FAULT_KERNELS.items():
    FAULT_EFFECTS[_name] = (_action, kernel_effect(_kernel))


def effects_with(faults: tuple[str, ...] | list[str] = ()) -> Mapping[str, Effect]:
    """The encoded action table with the named faults seeded in."""
    table = dict(ENCODED)
    for name in faults:
        if name not in FAULT_EFFECTS:
            raise InputError("<fault>", None, f"unknown fault {name!r}; expected one of "
                             f"{', '.join(sorted(FAULT_EFFECTS))}")
        action, fn = FAULT_EFFECTS[name]
        table[action] = fn
    return table


@_fault("vmm_reclaims_host_choice")
def _vmm_picks(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    guard, post = ENCODED["vmm_reclaim"](s.cfg, s, a)
    vm = a["vm"]
    earlier: z3.BoolRef = F
    out = post
    for p in range(s.cfg.guest_pages):
        pick = z3.And(post.i("p2m", vm, p) != UNBACKED, z3.Not(post.b("ballooned", vm, p)),
                      z3.Not(earlier))
        picked = unback(post, vm, p, by_balloon=True).set({("ballooned", vm, p): T})
        out = picked.ite(pick, out)
        earlier = z3.Or(earlier, pick)
    return guard, out


@_fault("host_takes_partial_page")
def _take_partial(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    units = _units(s.cfg, a["host_page"])
    upd: dict[Key, z3.ExprRef] = {}
    for m in units:
        upd["free", m], upd["in_use", m] = F, T
    return z3.Or([s.b("free", m) for m in units]), s.set(upd)


@_fault("host_takes_single_unit")
def _take_unit(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    units = list(_units(s.cfg, a["host_page"]))
    ok, first = lowest([s.b("free", m) for m in units])
    upd: dict[Key, z3.ExprRef] = {}
    for i, m in enumerate(units):
        upd["free", m] = z3.And(s.b("free", m), first != i)
        upd["in_use", m] = z3.Or(s.b("in_use", m), first == i)
    return ok, s.set(upd)


@_fault("share_without_cow")
def _share_rw(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    guard, post = _vmm_share(s.cfg, s, a)
    return guard, post.set({("cow", m): F for m in range(s.cfg.machine_pages)})


@_fault("cow_write_in_place")
def _cow_in_place(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    M = s.cfg.machine_pages
    plain = s.set({("cow", m): F for m in range(M)})
    guard, post = _guest_write(s.cfg, plain, a)
    pages = [(v, p) for v in range(s.cfg.vms) for p in range(s.cfg.guest_pages)]
    return guard, post.set({("cow", m): z3.And(s.b("cow", m), z3.Or(
        [post.i("p2m", v, p) == m for v, p in pages])) for m in range(M)})


@_fault("host_swap_loses_data")
def _swap_loses(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    guard, post = _host_swap_out(s.cfg, s, a)
    return guard, post.set({("swap_token", a["vm"], a["ppn"]): num(0)})
