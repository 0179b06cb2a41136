"""The Z3 interpreter of the action kernels (:mod:`ballast.model.action_kernels`).

A kernel runs once per step with Python values where the step is concrete (the
configuration, the VM, arguments the instance lists fix) and Z3 terms where the
state is symbolic: a page vector is a list of one term per PPN of the VM, so
the kernel unrolls over pages. Operations fold constants, so a fixed argument
(``ppns=(0, 2)``) leaves no trace of the pages it does not name. The guard is
the conjunction of the kernel's requirements, the post-state its writes.

The model's field names meet the encoding's keys in one place, :data:`KEYS`.

>>> from ballast.model.action_kernels import KERNELS
>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.proofs.encoding import encode
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> guard, post = run_kernel(KERNELS["host_set_target"], encode(cfg, initial_state(cfg)),
...                          {"vm": 0, "pages": 1})
>>> z3.simplify(guard), z3.simplify(post.i("target", 0))
(True, 1)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import z3

from ballast.model.invariants import INVARIANTS
from ballast.model.ops import Kernel, Value, vector_width
from ballast.model.actions import ACTIONS, vmm_keeps_host_pages
from ballast.model.property_kernels import PropertyKernel, StepKernel
from ballast.model.state import UNBACKED
from ballast.proofs.encoding import (Key, Num, SymState, at_least, at_most, exactly, num,
                                     queue_cap)

__all__ = ["KEYS", "Z3Ops", "Z3StateOps", "fault_in", "free_mpn", "property_formula",
           "run_kernel", "step_formula", "unback", "write_page"]

KEYS: dict[str, str] = {
    "p2m": "p2m",
    "ballooned": "ballooned",
    "acked_inflate": "acked_inflate",
    "acked_refused": "acked_refused",
    "acked_deflate": "acked_deflate",
    "module.balloon": "balloon",
    "module.refused": "refused",
    "guest.ppn_use": "ppn_use",
    "inflate_queue": "inflate_queue",
    "deflate_queue": "deflate_queue",
    "target": "target",
    "cpu_target": "cpu_target",
    "module.target": "module.target",
    "module.cpu_target": "module.cpu_target",
    "module.actual": "actual",
    "guest.vcpus": "vcpus",
    "parked_vcpus": "parked_vcpus",
    "guest.lru": "lru",
    "guest.disk": "disk",
    "idle_pcpus": "idle_pcpus",
    "report_queue": "report_queue",
    "acked_report": "acked_report",
    "discarded": "discarded",
    "module.reporting": "reporting",
    "stats_free": "stats_free",
    # reports in flight across a guest reset
    "stale_inflate": "stale_inflate",
    "stale_deflate": "stale_deflate",
    # free page hinting and hibernation
    "hinted": "hinted",
    "hint_rewritten": "hint_rewritten",
    "hint_cmd_id": "hint_cmd_id",
    "module.hinting_for": "hinting_for",
    "module.frozen": "frozen",
    "module.migrating": "migrating",
}
"""The model's field name -> the key of :mod:`ballast.proofs.encoding` holding it."""


def _is_const(x: Any) -> bool:
    return isinstance(x, (bool, int))


def _term(x: Any) -> z3.ExprRef:
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return num(x)
    assert isinstance(x, z3.ExprRef)
    return x


def _true(x: Any) -> bool:
    return x is True or (isinstance(x, z3.BoolRef) and z3.is_true(x))


def _false(x: Any) -> bool:
    return x is False or (isinstance(x, z3.BoolRef) and z3.is_false(x))


def _and(items: Iterable[Any]) -> Any:
    rest = []
    for x in items:
        if _false(x):
            return False
        if not _true(x):
            rest.append(x)
    if not rest:
        return True
    return rest[0] if len(rest) == 1 else z3.And(rest)


def _or(items: Iterable[Any]) -> Any:
    rest = []
    for x in items:
        if _true(x):
            return True
        if not _false(x):
            rest.append(x)
    if not rest:
        return False
    return rest[0] if len(rest) == 1 else z3.Or(rest)


def _not(x: Any) -> Any:
    if _true(x):
        return False
    if _false(x):
        return True
    return z3.Not(x)


def _ite(c: Any, a: Any, b: Any) -> Any:
    if _true(c):
        return a
    if _false(c):
        return b
    if _is_const(a) and _is_const(b) and a == b and type(a) is type(b):
        return a
    if not _is_const(a) and not _is_const(b) and a.eq(b):
        return a
    return z3.If(c, _term(a), _term(b))


def _count(bools: list[Any]) -> Any:
    """How many hold (a constant when all are)."""
    fixed = sum(1 for b in bools if _true(b))
    terms = [z3.If(b, num(1), num(0)) for b in bools if not _true(b) and not _false(b)]
    if not terms:
        return fixed
    out: Num = z3.Sum(terms) if len(terms) > 1 else terms[0]
    return out + fixed if fixed else out


def _lift(fn: Any) -> Any:
    """An elementwise binary operation over VM values and vectors (lists)."""
    def op(self: "Z3Ops", a: Any, b: Any) -> Any:
        if isinstance(a, list) or isinstance(b, list):
            n = len(a) if isinstance(a, list) else len(b)
            aa = a if isinstance(a, list) else [a] * n
            bb = b if isinstance(b, list) else [b] * n
            return [fn(x, y) for x, y in zip(aa, bb)]
        return fn(a, b)
    return op


def _cmp(pyop: Any, zop: Any) -> Any:
    def fn(a: Any, b: Any) -> Any:
        if _is_const(a) and _is_const(b):
            return bool(pyop(a, b))
        return zop(_term(a), _term(b))
    return fn


def _arith(pyop: Any) -> Any:
    def fn(a: Any, b: Any) -> Any:
        if _is_const(a) and _is_const(b):
            return int(pyop(a, b))
        return pyop(_term(a), _term(b))
    return fn


def _minimum(a: Any, b: Any) -> Any:
    if _is_const(a) and _is_const(b):
        return min(a, b)
    return z3.If(_term(a) <= _term(b), _term(a), _term(b))


def _maximum(a: Any, b: Any) -> Any:
    if _is_const(a) and _is_const(b):
        return max(a, b)
    return z3.If(_term(a) >= _term(b), _term(a), _term(b))


def _mappers(s: SymState, mpn: Num) -> list[z3.BoolRef]:
    cfg = s.cfg
    return [s.i("p2m", v, p) == mpn for v in range(cfg.vms) for p in range(cfg.guest_pages)]


def unback(s: SymState, vm: int, ppn: int, by_balloon: bool, scrub: bool = True) -> SymState:
    """The VMM's ``actions.unback`` of one page: the PPN loses its MPN, which returns to
    the free pool (zeroed unless ``scrub`` is off) when no other guest page shares it."""
    mpn = s.i("p2m", vm, ppn)
    backed = mpn != UNBACKED
    s1 = s.set({("p2m", vm, ppn): num(UNBACKED)})
    others = _mappers(s1, mpn)
    shared = z3.Or(others)
    F = z3.BoolVal(False)
    upd: dict[Key, z3.ExprRef] = {}
    for m in range(s.cfg.machine_pages):
        here = z3.And(backed, mpn == m)
        upd["cow", m] = z3.If(z3.And(here, z3.Or(exactly(others, 1), z3.Not(shared))), F,
                              s.b("cow", m))
        if scrub:
            upd["content", m] = z3.If(z3.And(here, z3.Not(shared)), 0, s.i("content", m))
        upd["free", m] = z3.Or(s.b("free", m), z3.And(here, z3.Not(shared)))
        if by_balloon:
            upd["reclaimed", m] = z3.Or(s.b("reclaimed", m), z3.And(here, z3.Not(shared)))
    return s1.set(upd).ite(backed, s)


# --------------------------------------------------------------------------
# Memory operations (``ops.MemoryOps``): the VMM's fault-in and write of a page,
# contents tokens, the guest's LRU order (a flag and a rank per VPN), host pages.

KEYS.update({"host.swap": "swap", "guest.expected": "expected"})

_TOKEN_KEYS = {"host.swap": ("swap", "swap_token"), "guest.disk": ("disk", "disk_token")}
_MPN_KEYS = {"host.content": "content", "host.cow": "cow"}
_UNIT_KEYS = {"host.free": "free", "host.in_use": "in_use", "host.reclaimed": "reclaimed"}
T, F = z3.BoolVal(True), z3.BoolVal(False)


def _select(items: list[z3.ExprRef], idx: Num) -> z3.ExprRef:
    """``items[idx]`` for a symbolic index (the last item when out of range)."""
    out = items[-1]
    for i in range(len(items) - 2, -1, -1):
        out = z3.If(idx == i, items[i], out)
    return out


def _index(flags: list[Any]) -> Num | int:
    """The lowest index whose flag holds (-1 when none; a constant when the flags are)."""
    out: Any = -1
    for i in range(len(flags) - 1, -1, -1):
        out = _ite(flags[i], i, out)
    return out


def _host_page_backs(s: SymState, vm: int, host_page: int) -> z3.BoolRef:
    """Whether some page of VM ``vm`` is backed by a unit (MPN) of ``host_page``."""
    u = s.cfg.host_page_units
    low, high = host_page * u, (host_page + 1) * u
    return z3.Or([z3.And(s.i("p2m", vm, p) >= low, s.i("p2m", vm, p) < high)
                  for p in range(s.cfg.guest_pages)] or [F])


def free_mpn(s: SymState, vm: int | None = None) -> tuple[z3.BoolRef, Num]:
    """Whether a free MPN is left, and the one the VMM backs a page of VM ``vm`` with
    (``actions._vm_free_mpn``; the one place that choice is made): the lowest; where the VMM
    keeps host pages to one VM, the lowest in a host page that backs no page of another VM.
    ``vm`` None: the lowest free MPN whatever the configuration (a seeded fault's VMM)."""
    cfg = s.cfg
    flags = [s.b("free", m) for m in range(cfg.machine_pages)]
    if vm is not None and vmm_keeps_host_pages(cfg):
        u = cfg.host_page_units
        foreign = [z3.Or([_host_page_backs(s, w, h) for w in range(cfg.vms) if w != vm] or [F])
                   for h in range(cfg.host_pages)]
        flags = [z3.And(f, z3.Not(foreign[m // u])) for m, f in enumerate(flags)]
    return (z3.Or(flags) if flags else F), _term(_index(flags))


def _store_mpn(s: SymState, name: str, mpn: Num, value: z3.ExprRef,
               when: z3.BoolRef = T) -> dict[Key, z3.ExprRef]:
    return {(name, m): z3.If(z3.And(when, mpn == m), value, s[name, m])
            for m in range(s.cfg.machine_pages)}


def fault_in(s: SymState, vm: int, ppn: Num | int, lowest: bool = False
             ) -> tuple[z3.BoolRef, SymState, Num]:
    """``actions.fault_in``: (guard, post, the MPN now backing ``ppn``); ``ppn`` may be
    symbolic. In a generic guest system the page's own machine page backs it (it must be
    free), unless ``lowest`` (a seeded fault's resource manager)."""
    G = s.cfg.guest_pages
    at = _term(ppn)
    mpn: Num = _select([s.i("p2m", vm, p) for p in range(G)], at)
    backed = mpn != UNBACKED
    if s.cfg.guest_system and not lowest:
        new: Num = vm * G + at
        ok = _select([s.b("free", m) for m in range(s.cfg.machine_pages)], new)
    else:
        ok, new = free_mpn(s, None if lowest else vm)
    swapped = _select([s.b("swap", vm, p) for p in range(G)], at)
    stok = _select([s.i("swap_token", vm, p) for p in range(G)], at)
    token: Num = z3.If(swapped, stok, 0)
    miss = z3.Not(backed)
    upd: dict[Key, z3.ExprRef] = {}
    upd.update(_store_mpn(s, "content", new, token, miss))
    upd.update(_store_mpn(s, "free", new, F, miss))
    upd.update(_store_mpn(s, "reclaimed", new, F, miss))
    for p in range(G):
        here = z3.And(miss, at == p)
        upd["swap", vm, p] = z3.And(s.b("swap", vm, p), z3.Not(here))
        upd["swap_token", vm, p] = z3.If(here, 0, s.i("swap_token", vm, p))
        upd["p2m", vm, p] = z3.If(here, new, s.i("p2m", vm, p))
        upd["ballooned", vm, p] = z3.And(s.b("ballooned", vm, p), z3.Not(here))
    return z3.Or(backed, ok), s.set(upd), z3.If(backed, mpn, new)


def write_page(s: SymState, vm: int, ppn: Num | int, token: Num, cow: bool = True,
               lowest: bool = False) -> tuple[z3.BoolRef, SymState, Num]:
    """``actions.write_page``: (guard, post, the MPN written); ``ppn`` may be symbolic.
    ``cow=False`` writes a shared page in place (a seeded fault)."""
    G = s.cfg.guest_pages
    at = _term(ppn)
    g1, s, mpn = fault_in(s, vm, at, lowest)
    if not cow:
        return g1, s.set(_store_mpn(s, "content", mpn, token)), mpn
    shared = _select([s.b("cow", m) for m in range(s.cfg.machine_pages)], mpn)
    ok, copy = free_mpn(s, None if lowest else vm)
    upd: dict[Key, z3.ExprRef] = {}
    upd.update(_store_mpn(s, "free", copy, F, shared))
    upd.update(_store_mpn(s, "reclaimed", copy, F, shared))
    for p in range(G):
        upd["p2m", vm, p] = z3.If(z3.And(shared, at == p), copy, s.i("p2m", vm, p))
    s2 = s.set(upd)
    left = at_most(_mappers(s2, mpn), 1)
    s2 = s2.set(_store_mpn(s2, "cow", mpn, F, z3.And(shared, left)))
    final: Num = z3.If(shared, copy, mpn)
    s2 = s2.set(_store_mpn(s2, "content", final, token))
    return z3.And(g1, z3.Or(z3.Not(shared), ok)), s2, final


def _const_index(onehot: list[Any]) -> int:
    """The entry of a constant one-hot vector (the instance lists fix these)."""
    idx = _index(onehot)
    assert isinstance(idx, int), "this operation needs a fixed page"
    return idx


class _Z3Memory:
    """The memory operations of :class:`Z3Ops` (``ops.MemoryOps``)."""

    cfg: Any
    s: SymState
    vm_index: int
    args: Mapping[str, Any]
    guards: list[Any]
    _writing: bool

    def _write(self, updates: dict[Key, Any]) -> None:
        raise NotImplementedError

    # -- arguments ------------------------------------------------------------------------
    def arg_page(self, name: str) -> Value:
        p = self.args[name]
        return [p == i for i in range(self.cfg.guest_pages)]

    def arg_vpn(self, name: str) -> Value:
        d = self.args[name]
        return [d == i for i in range(self.cfg.guest_data_pages)]

    def arg_is(self, name: str, value: str) -> Value:
        return bool(self.args[name] == value)

    def hostile(self) -> Value:
        return self.vm_index in self.cfg.hostile_vms

    def this_vm(self) -> Value:
        return self.vm_index

    # -- reading --------------------------------------------------------------------------
    def tokens(self, field: str) -> Value:
        flag, tok = _TOKEN_KEYS[field]
        n = self.cfg.guest_pages if field == "host.swap" else self.cfg.guest_data_pages
        return [_ite(self.s[flag, self.vm_index, i], self.s[tok, self.vm_index, i], 0)
                for i in range(n)]

    def _at_mpn(self, key: str, mpn: Any, default: Any = None) -> Any:
        if default is None:
            default = False if key == "cow" else 0
        if _is_const(mpn):
            return default if mpn == UNBACKED else self.s[key, mpn]
        out: Any = default
        for m in range(self.cfg.machine_pages - 1, -1, -1):
            out = _ite(mpn == m, self.s[key, m], out)
        return out

    def at_mpn(self, field: str, mpn: Value, otherwise: Value = None) -> Value:
        key = _MPN_KEYS[field]
        if isinstance(mpn, list):
            alt = otherwise if isinstance(otherwise, list) else [otherwise] * len(mpn)
            return [self._at_mpn(key, m, d) for m, d in zip(mpn, alt)]
        return self._at_mpn(key, mpn, otherwise)

    def units(self, field: str) -> Value:
        u = self.cfg.host_page_units
        hp = int(self.args["host_page"])
        return [self.s[_UNIT_KEYS[field], m] for m in range(hp * u, (hp + 1) * u)]

    def lru_victim(self) -> Value:
        v = self.vm_index
        return [_and([self.s["lru", v, d], self.s.i("lru_rank", v, d) == 0])
                for d in range(self.cfg.guest_data_pages)]

    def pick(self, values: Value, onehot: Value) -> Value:
        out: Any = False if any(isinstance(x, (bool, z3.BoolRef)) for x in values) else 0
        for i in range(len(values) - 1, -1, -1):
            out = _ite(onehot[i], values[i], out)
        return out

    def token_at(self, field: str, at: Value) -> Value:
        return self.pick(self.tokens(field), at)

    def other_mpn(self, other_vm: Value, other_at: Value) -> Value:
        return self.pick([self.s["p2m", int(other_vm), p] for p in range(self.cfg.guest_pages)],
                         other_at)

    # -- effects --------------------------------------------------------------------------
    def set_units(self, field: str, value: Value) -> None:
        u = self.cfg.host_page_units
        hp = int(self.args["host_page"])
        self._write({(_UNIT_KEYS[field], m): x
                     for m, x in zip(range(hp * u, (hp + 1) * u), value)})

    def set_vpns(self, field: str, value: Value) -> None:
        key = KEYS[field]
        self._write({(key, self.vm_index, d): x for d, x in enumerate(value)})

    def set_tokens(self, field: str, mask: Value, token: Value) -> None:
        flag, tok = _TOKEN_KEYS[field]
        v = self.vm_index
        tokens = token if isinstance(token, list) else [token] * len(mask)
        upd: dict[Key, Any] = {}
        for i, (m, t) in enumerate(zip(mask, tokens)):
            if _false(m):
                continue
            upd[flag, v, i] = _or([self.s[flag, v, i], m])
            upd[tok, v, i] = _ite(m, t, self.s[tok, v, i])
        self._write(upd)

    def drop_tokens(self, field: str, mask: Value) -> None:
        flag, tok = _TOKEN_KEYS[field]
        v = self.vm_index
        upd: dict[Key, Any] = {}
        for i, m in enumerate(mask):
            if _false(m):
                continue
            upd[flag, v, i] = _and([self.s[flag, v, i], _not(m)])
            upd[tok, v, i] = _ite(m, 0, self.s[tok, v, i])
        self._write(upd)

    def queue_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        if _false(when):
            return
        k, cap, G = KEYS[field], queue_cap(self.cfg), self.cfg.guest_pages
        q = int(ppn) if 0 <= int(ppn) < G else G
        x = self.s.i(k, self.vm_index, q)
        self._write({(k, self.vm_index, q): _ite(when, z3.If(x >= cap, num(cap), x + 1), x)})

    def queue_copy(self, dst: str, src: str) -> None:
        v, a, b = self.vm_index, KEYS[dst], KEYS[src]
        self._write({(a, v, q): self.s.i(b, v, q) for q in range(self.cfg.guest_pages + 1)})

    def set_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        if _false(when):
            return
        k, G = KEYS[field], self.cfg.guest_pages
        q = int(ppn) if 0 <= int(ppn) < G else G
        self._write({(k, self.vm_index, q): _or([self.s[k, self.vm_index, q], when])})

    def _lru_count(self) -> Num:
        v = self.vm_index
        return _term(_count([self.s["lru", v, d] for d in range(self.cfg.guest_data_pages)]))

    def _lru_remove(self, vpn: int) -> None:
        s, v = self.s, self.vm_index
        r = s.i("lru_rank", v, vpn)
        upd: dict[Key, Any] = {("lru", v, vpn): False, ("lru_rank", v, vpn): 0}
        for d in range(self.cfg.guest_data_pages):
            if d != vpn:
                rd = s.i("lru_rank", v, d)
                upd["lru_rank", v, d] = z3.If(
                    z3.And(s.b("lru", v, vpn), s.b("lru", v, d), rd > r), rd - 1, rd)
        self._write(upd)

    def lru_use(self, vpn: Value, resident: Value) -> None:
        d, v = _const_index(vpn), self.vm_index
        if d < 0:
            return
        before = self.s
        listed, rank = before.b("lru", v, d), before.i("lru_rank", v, d)
        self._lru_remove(d)
        self._write({("lru", v, d): True, ("lru_rank", v, d): self._lru_count()})
        hit = self.s
        miss = before.set({("lru", v, d): T, ("lru_rank", v, d): z3.If(
            listed, rank, _term(_count([before["lru", v, x]
                                        for x in range(self.cfg.guest_data_pages)])))})
        self.s = hit if _true(resident) else miss if _false(resident) else hit.ite(resident, miss)

    def lru_remove(self, mask: Value) -> None:
        for d, m in enumerate(mask):
            if _false(m):
                continue
            assert _true(m), "the VPNs leaving the LRU order are fixed"
            self._lru_remove(d)

    def touch(self, at: Value, token: Value, write: Value, cow: bool = True,
              lowest: bool = False) -> Value:
        self._writing = True
        ppn = _index(at)
        tok = _term(token)
        if _false(write):
            guard, post, mpn = fault_in(self.s, self.vm_index, ppn, lowest)
        elif _true(write):
            guard, post, mpn = write_page(self.s, self.vm_index, ppn, tok, cow, lowest)
        else:
            gf, pf, mf = fault_in(self.s, self.vm_index, ppn, lowest)
            gw, pw, mw = write_page(self.s, self.vm_index, ppn, tok, cow, lowest)
            guard, post, mpn = z3.If(write, gw, gf), pw.ite(write, pf), z3.If(write, mw, mf)
        self.guards.append(guard)
        self.s = post
        return mpn

    def write_pages(self, mask: Value, token: Value) -> None:
        self._writing = True
        v, tok = self.vm_index, _term(token)
        for p, m in enumerate(mask):
            if _false(m):
                continue
            s = self.s
            when = _and([m, _or([s.i("p2m", v, p) != UNBACKED, s["swap", v, p]])])
            guard, post, _ = write_page(s, v, p, tok)
            self.guards.append(_or([_not(when), guard]))
            self.s = post if _true(when) else post.ite(when, s)

    def share(self, at: Value, other_vm: Value, other_at: Value, cow: bool = True) -> None:
        self._writing = True
        p, w, q = _const_index(at), int(other_vm), _const_index(other_at)
        keep = self.s.i("p2m", self.vm_index, p)
        post = unback(self.s, w, q, by_balloon=False)
        post = post.set({("p2m", w, q): keep})
        post = post.set(_store_mpn(post, "cow", keep, T))
        if not cow:
            post = post.set({("cow", m): F for m in range(self.cfg.machine_pages)})
        self.s = post

    def swap_out_oldest(self) -> None:
        self._writing = True
        s, cfg = self.s, self.cfg
        pages = [(v, p) for v in range(cfg.vms) for p in range(cfg.guest_pages)]
        mpn = {vp: s.i("p2m", *vp) for vp in pages}
        held = {vp: _and([mpn[vp] != UNBACKED, _not(self._at_mpn("cow", mpn[vp]))])
                for vp in pages}
        post = s
        for v, p in pages:
            # Held pages have MPNs of their own: the one with the lowest is the oldest.
            oldest = _and([held[v, p], *[_not(_and([held[o], mpn[o] < mpn[v, p]]))
                                         for o in pages if o != (v, p)]])
            stored = s.set({("swap", v, p): T, ("swap_token", v, p): self._at_mpn(
                "content", mpn[v, p])})
            post = unback(stored, v, p, by_balloon=False).ite(_term(oldest), post)
        self.s = post

    def _claim_swap(self, n: Value) -> None:
        cfg, s = self.cfg, self.s
        flags = [s.b("swap", v, p) for v in range(cfg.vms) for p in range(cfg.guest_pages)]
        self.guards.append(at_most(flags, cfg.host_swap_slots - int(n)))
        self._writing = True


class Z3Ops(_Z3Memory):
    """:class:`~ballast.model.ops.Ops` for one step of VM ``vm`` from a symbolic state."""

    def __init__(self, s: SymState, vm: int, args: Mapping[str, Any]) -> None:
        self.cfg = s.cfg
        self.s = s
        self.vm_index = vm
        self.args = args
        self.guards: list[Any] = []
        self._writing = False

    # -- reading ---------------------------------------------------------------------
    def _key(self, field: str) -> str:
        return KEYS[field]

    def vm(self, field: str) -> Value:
        return self.s[self._key(field), self.vm_index]

    def pages(self, field: str) -> Value:
        k = self._key(field)
        return [self.s[k, self.vm_index, p] for p in range(self.cfg.guest_pages)]

    def vcpus(self, field: str) -> Value:
        k = self._key(field)
        return [self.s[k, self.vm_index, c] for c in range(self.cfg.vcpus)]

    def vpns(self, field: str) -> Value:
        k = self._key(field)
        return [self.s[k, self.vm_index, d] for d in range(self.cfg.guest_data_pages)]

    def host(self, field: str) -> Value:
        return self.s[(self._key(field),)]

    def queued(self, field: str) -> Value:
        k = self._key(field)
        return [self.s.i(k, self.vm_index, q) > 0 for q in range(self.cfg.guest_pages)]

    def queue_len(self, field: str) -> Value:
        k = self._key(field)
        return z3.Sum([self.s.i(k, self.vm_index, q) for q in range(self.cfg.guest_pages + 1)])

    def beyond(self, field: str) -> Value:
        k, G = self._key(field), self.cfg.guest_pages
        if field == "acked_refused":
            return self.s[k, self.vm_index, G]
        return self.s.i(k, self.vm_index, G) > 0

    # -- arguments ---------------------------------------------------------------------
    def arg(self, name: str) -> Value:
        return self.args[name]

    def _bits(self, name: str) -> list[Any]:
        """Per PPN ``0..G`` (``G``: any out of range), whether the argument names it: from
        a tuple of PPNs or a symbolic bit mask (bit ``q`` for PPN ``q``)."""
        raw, G = self.args[name], self.cfg.guest_pages
        if isinstance(raw, tuple):
            return [q in raw for q in range(G)] + [any(not 0 <= p < G for p in raw)]
        return [z3.Extract(q, q, raw) == 1 for q in range(G + 1)]

    def arg_pages(self, name: str) -> Value:
        return self._bits(name)[:-1]

    def arg_size(self, name: str) -> Value:
        raw = self.args[name]
        return len(raw) if isinstance(raw, tuple) else _count(self._bits(name))

    def arg_distinct(self, name: str) -> Value:
        raw = self.args[name]
        return len(set(raw)) == len(raw) if isinstance(raw, tuple) else True

    def arg_beyond(self, name: str) -> Value:
        return self._bits(name)[-1]

    def arg_beyond_within(self, name: str, field: str) -> Value:
        return self.implies(self.arg_beyond(name), self.beyond(field))

    def arg_vcpu(self, name: str) -> Value:
        c = self.args[name]
        return [c == i for i in range(self.cfg.vcpus)]

    # -- arithmetic and logic -------------------------------------------------------------
    def _vec(self, xs: tuple[Any, ...], fn: Any) -> Any:
        n = next((len(x) for x in xs if isinstance(x, list)), None)
        if n is None:
            return fn(xs)
        cols = [x if isinstance(x, list) else [x] * n for x in xs]
        return [fn(row) for row in zip(*cols)]

    def and_(self, *xs: Value) -> Value:
        return self._vec(xs, _and)

    def or_(self, *xs: Value) -> Value:
        return self._vec(xs, _or)

    def not_(self, x: Value) -> Value:
        return [_not(e) for e in x] if isinstance(x, list) else _not(x)

    def implies(self, a: Value, b: Value) -> Value:
        return self.or_(self.not_(a), b)

    eq = _lift(_cmp(lambda a, b: a == b, lambda a, b: a == b))
    ne = _lift(_cmp(lambda a, b: a != b, lambda a, b: a != b))
    lt = _lift(_cmp(lambda a, b: a < b, lambda a, b: a < b))
    le = _lift(_cmp(lambda a, b: a <= b, lambda a, b: a <= b))
    add = _lift(_arith(lambda a, b: a + b))
    sub = _lift(_arith(lambda a, b: a - b))
    minimum = _lift(_minimum)
    maximum = _lift(_maximum)

    def where(self, cond: Value, a: Value, b: Value) -> Value:
        return self._vec((cond, a, b), lambda t: _ite(*t))

    # -- reductions and selections ---------------------------------------------------------
    def count(self, mask: Value) -> Value:
        return _count(list(mask))

    def any(self, mask: Value) -> Value:
        return _or(mask)

    def all(self, mask: Value) -> Value:
        return _and(mask)

    def lowest(self, mask: Value, k: Value) -> Value:
        out: list[Any] = []
        for m in mask:
            out.append(_and([m, self.lt(_count(out), k)]))
        return out

    def up_to_last(self, mask: Value) -> Value:
        out: list[Any] = []
        later: Any = False
        for m in reversed(mask):
            later = _or([m, later])
            out.append(later)
        return out[::-1]

    def unit_whole(self, mask: Value) -> Value:
        u, pages = self.cfg.balloon_unit_pages, list(mask)
        return [_and(pages[p - p % u:p - p % u + u]) for p in range(len(pages))]

    def filled(self, kind: str, value: Value) -> Value:
        return [value] * vector_width(self.cfg, kind)

    def unit_first(self) -> Value:
        u = self.cfg.balloon_unit_pages
        return [p % u == 0 for p in range(self.cfg.guest_pages)]

    # -- guard and effect ---------------------------------------------------------------------
    def require(self, cond: Value) -> None:
        assert not self._writing, "a kernel requires nothing after its effect"
        self.guards.append(cond)

    def _write(self, updates: dict[Key, Any]) -> None:
        self._writing = True
        changed = {}
        for k, v in updates.items():
            old = self.s[k]
            if not _is_const(v) and v.eq(old):
                continue
            changed[k] = _term(v)
        if changed:
            self.s = self.s.set(changed)

    def set_vm(self, field: str, value: Value) -> None:
        self._write({(self._key(field), self.vm_index): value})

    def set_pages(self, field: str, value: Value) -> None:
        k = self._key(field)
        self._write({(k, self.vm_index, p): v for p, v in enumerate(value)})

    def set_vcpus(self, field: str, value: Value) -> None:
        self.set_pages(field, value)

    def set_add(self, field: str, mask: Value) -> None:
        self.set_pages(field, self.or_(self.pages(field), mask))

    def set_remove(self, field: str, mask: Value) -> None:
        self.set_pages(field, self.and_(self.pages(field), self.not_(mask)))

    def holding(self, vpn: Value) -> Value:
        return self.eq(self.pages("guest.ppn_use"), vpn)

    def lowest_holding(self, value: Value) -> tuple[Value, Value]:
        held = self.eq(self.pages("guest.ppn_use"), value)
        return self.lowest(held, 1), self.any(held)

    def set_at(self, field: str, at: Value, value: Value) -> None:
        k, v = self._key(field), self.vm_index
        now = [self.s[k, v, i] for i in range(len(at))]
        self._write({(k, v, i): x for i, x in enumerate(self.where(at, value, now))})

    def queue_add(self, field: str, mask: Value) -> None:
        k, cap = self._key(field), queue_cap(self.cfg)
        upd: dict[Key, Any] = {}
        for p, m in enumerate(mask):
            if _false(m):
                continue
            x = self.s.i(k, self.vm_index, p)
            upd[k, self.vm_index, p] = _ite(m, z3.If(x >= cap, num(cap), x + 1), x)
        self._write(upd)

    def queue_clear(self, field: str) -> None:
        k = self._key(field)
        self._write({(k, self.vm_index, q): 0 for q in range(self.cfg.guest_pages + 1)})

    def carry_beyond(self, dst: str, src: str) -> None:
        key = (self._key(dst), self.vm_index, self.cfg.guest_pages)
        self._write({key: _or([self.s[key], self.beyond(src)])})

    def clear_beyond(self, field: str) -> None:
        self._write({(self._key(field), self.vm_index, self.cfg.guest_pages): False})

    def claim(self, field: str, n: Value) -> None:
        if field == "host.swap_room":
            self._claim_swap(n)
            return
        have = self.host(field)
        self.guards.append(self.le(n, have))
        self._write({(self._key(field),): self.sub(have, n)})

    def give(self, field: str, n: Value) -> None:
        self._write({(self._key(field),): self.add(self.host(field), n)})

    def unback(self, mask: Value, by_balloon: bool, scrub: bool = True) -> None:
        self._writing = True
        post = self.s
        for p, m in enumerate(mask):
            if _false(m):
                continue
            done = unback(post, self.vm_index, p, by_balloon, scrub)
            post = done if _true(m) else done.ite(m, post)
        self.s = post

    def drop_swap(self, mask: Value) -> None:
        v = self.vm_index
        upd: dict[Key, Any] = {}
        for p, m in enumerate(mask):
            if _false(m):
                continue
            upd["swap", v, p] = _and([self.s["swap", v, p], _not(m)])
            upd["swap_token", v, p] = _ite(m, 0, self.s["swap_token", v, p])
        self._write(upd)


def run_kernel(kernel: Kernel, s: SymState, args: Mapping[str, Any]) -> tuple[z3.BoolRef, SymState]:
    """(guard, post-state) of ``kernel`` for VM ``args["vm"]`` from ``s``."""
    o = Z3Ops(s, int(args.get("vm", -1)), args)
    kernel(o)
    guard = _and(o.guards)
    return (z3.BoolVal(guard) if isinstance(guard, bool) else guard), o.s



# --------------------------------------------------------------------------
# Property kernels (ballast.model.property_kernels): a formula over one symbolic state.


class Z3StateOps(Z3Ops):
    """:class:`~ballast.model.ops.StateOps` over a symbolic state, reading VM ``vm``."""

    def __init__(self, s: SymState, vm: int) -> None:
        super().__init__(s, vm, {})
        self._counted: dict[int, tuple[Any, list[Any]]] = {}

    def count(self, mask: Value) -> Value:
        out = super().count(mask)
        if isinstance(mask, list) and not _is_const(out):
            self._counted[out.get_id()] = (out, mask)
        return out

    def le(self, a: Value, b: Value) -> Value:
        # A count bounded by a constant is a cardinality constraint (cheaper for the solver).
        hit = self._counted.get(a.get_id()) if not _is_const(a) and _is_const(b) else None
        if hit is None:
            return super().le(a, b)
        bools = [x for x in hit[1] if not _true(x) and not _false(x)]
        return at_most(bools, int(b) - sum(1 for x in hit[1] if _true(x)))

    def mpns(self, field: str) -> Value:
        return [self.s[field, m] for m in range(self.cfg.machine_pages)]

    def _backs(self, m: int) -> list[list[Any]]:
        """Per VM, per PPN: whether the page is backed by MPN ``m``."""
        cfg = self.cfg
        return [[self.s.i("p2m", v, p) == m for p in range(cfg.guest_pages)]
                for v in range(cfg.vms)]

    def mapped(self) -> Value:
        return [_or([b for row in self._backs(m) for b in row])
                for m in range(self.cfg.machine_pages)]

    def shared(self, across_vms: bool) -> Value:
        out = []
        for m in range(self.cfg.machine_pages):
            rows = self._backs(m)
            items = [_or(row) for row in rows] if across_vms else [b for row in rows for b in row]
            out.append(at_least(items, 2))
        return out

    def swapped(self) -> Value:
        return [self.s["swap", self.vm_index, p] for p in range(self.cfg.guest_pages)]

    def own_mpns(self) -> Value:
        G = self.cfg.guest_pages
        return [self.vm_index * G + p for p in range(G)]

    def vms_count(self, field: str) -> Value:
        k = self._key(field)
        return _count([self.s[k, v, c] for v in range(self.cfg.vms) for c in range(self.cfg.vcpus)])

    def _units(self, mask: Value) -> list[list[Any]]:
        u = self.cfg.host_page_units
        return [list(mask[h * u:(h + 1) * u]) for h in range(len(mask) // u)]

    def host_page_all(self, mask: Value) -> Value:
        return [_and(units) for units in self._units(mask)]

    def host_page_any(self, mask: Value) -> Value:
        return [_or(units) for units in self._units(mask)]

    def host_page_backs_two_vms(self) -> Value:
        return [at_least([_host_page_backs(self.s, v, h) for v in range(self.cfg.vms)], 2)
                for h in range(self.cfg.host_pages)]

    def matches_vpn(self, x: Value, values: Value, vpn: Value) -> Value:
        # One implication per VPN, not a chain of if-then-else: the solver works far less.
        return [_and([self.implies(self.eq(at, d), self.eq(here, value))
                      for d, value in enumerate(values)]) for here, at in zip(x, vpn)]

    def held(self, once: bool) -> Value:
        use = self.pages("guest.ppn_use")
        G = len(use)
        out = []
        for d in range(self.cfg.guest_data_pages):
            at = [self.eq(u, d) for u in use]
            out.append(_and([_not(_and([at[p], at[q]])) for p in range(G)
                             for q in range(p + 1, G)]) if once else _or(at))
        return out

    def unchanged(self, before: Any) -> Value:
        return before.s.vm_equals(self.s, self.vm_index)


def property_formula(kernel: PropertyKernel, s: SymState) -> z3.BoolRef:
    """The formula of a property kernel over ``s``: its host part, and its per-VM part for
    every VM the property covers."""
    cfg = s.cfg
    parts: list[Any] = []
    if kernel.host is not None:
        parts.append(kernel.host(Z3StateOps(s, 0)))
    if kernel.each_vm is not None:
        parts += [kernel.each_vm(Z3StateOps(s, v))
                  for v in INVARIANTS[kernel.name].checked_vms(cfg)]
    out = _and(parts)
    return z3.BoolVal(out) if isinstance(out, bool) else out


def step_formula(kernel: StepKernel, pre: SymState, action: str, args: Mapping[str, Any],
                 post: SymState) -> z3.BoolRef:
    """The formula of a step kernel over a step of ``action`` (arguments ``args``) from
    ``pre`` to ``post``: its check for every VM it covers (true for a step it does not
    constrain)."""
    if not kernel.constrains(ACTIONS[action]):
        return z3.BoolVal(True)
    out = _and([kernel.check(Z3StateOps(pre, v), Z3StateOps(post, v))
                for v in kernel.vms(pre.cfg, args.get("vm"))])
    return z3.BoolVal(out) if isinstance(out, bool) else out
