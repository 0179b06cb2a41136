"""Each action of :mod:`ballast.model.actions` as a Z3 transition relation.

An action with concrete arguments becomes a *step*: a guard (a Z3 formula over
the pre-state) and the post-state as terms over the pre-state, so the
relation is ``T(pre, post) = guard(pre) and post == effect(pre)``. Arguments
that index the state (VM, PPN, VPN, host page, token, vCPU, the set of PPNs the
guest's allocator hands out) are enumerated per configuration; the state stays
symbolic. Every step mirrors the Python function of the same name, and
``tests/proofs`` checks on random reachable states that both agree.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.proofs.encoding import encode
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> st = step(cfg, encode(cfg, initial_state(cfg)), "host_set_target", {"vm": 0, "pages": 1})
>>> z3.simplify(st.guard), z3.simplify(st.post["target", 0])
(True, 1)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import z3

from ballast.model.actions import ACTIONS
from ballast.model.config import Config, GuestPolicyName, ModuleKind
from ballast.proofs.encoding import (
    BALLOON,
    FREE,
    UNBACKED,
    Key,
    WIDTH,
    Num,
    SymState,
    at_most,
    count,
    exactly,
    num,
    saturating_inc,
)

__all__ = ["ENCODED", "Choice", "Step", "choose", "concrete_instances", "encoded_actions",
           "instances", "step"]

Args = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One action with concrete arguments applied to a symbolic pre-state."""

    name: str
    args: Args
    guard: z3.BoolRef
    post: SymState
    sym: Args = field(default_factory=dict)
    """The arguments as the effect saw them (Choice arguments as Z3 numbers)."""


Effect = Callable[[Config, SymState, Args], tuple[z3.BoolRef, SymState]]
ENCODED: dict[str, Effect] = {}
"""Every encoded action by its model name."""
_INSTANCES: dict[str, Callable[[Config], Iterator[Args]]] = {}


def _encodes(name: str, inst: Callable[[Config], Iterator[Args]]
             ) -> Callable[[Effect], Effect]:
    assert name in ACTIONS, name

    def register(fn: Effect) -> Effect:
        ENCODED[name] = fn
        _INSTANCES[name] = inst
        return fn
    return register


def encoded_actions(cfg: Config) -> list[str]:
    """The model's actions that exist in ``cfg`` and are encoded, in model order."""
    return [n for n, spec in ACTIONS.items() if spec.feature(cfg) and n in ENCODED]


def instances(cfg: Config, name: str) -> list[Args]:
    """Every argument tuple the encoding enumerates for an action in ``cfg``."""
    return list(_INSTANCES[name](cfg))


@dataclass(frozen=True)
class Choice:
    """An argument left symbolic: any whole number in ``lo..hi``.

    One query then covers every value at once (fewer, larger solver calls);
    ``value`` turns a number into the model's argument (``refuse=5`` is ``(0, 2)``).
    """

    lo: int
    hi: int
    kind: str = "int"
    """``int`` for a plain number, ``refuse`` for vmm_reclaim's refused PPNs as a bit mask
    (bit ``q`` for PPN ``q``; bit ``guest_pages`` for a PPN out of range)."""

    def value(self, n: int) -> Any:
        """The model's argument for the number ``n``."""
        if self.kind == "refuse":
            return tuple(q for q in range(n.bit_length()) if n >> q & 1)
        return n

    def values(self) -> list[Any]:
        """Every argument this choice stands for."""
        return [self.value(n) for n in range(self.lo, self.hi + 1)]


def concrete_instances(cfg: Config, name: str) -> list[Args]:
    """Every argument tuple with each :class:`Choice` expanded into its values."""
    out: list[Args] = []
    for args in instances(cfg, name):
        expanded: list[Args] = [{}]
        for k, v in args.items():
            vals = v.values() if isinstance(v, Choice) else [v]
            expanded = [{**e, k: x} for e in expanded for x in vals]
        out += expanded
    return out


def step(cfg: Config, s: SymState, name: str, args: Args,
         effects: Mapping[str, Effect] | None = None, tag: str = "") -> Step:
    """The guard and post-state of action ``name`` with ``args`` from ``s``.

    A :class:`Choice` argument becomes a fresh number ``arg!NAME!KEY!TAG``
    constrained to its range; :func:`choose` reads it back from a Z3 model.
    """
    fn = (effects or ENCODED)[name]
    sym: Args = {}
    ranges = []
    for k, v in args.items():
        if isinstance(v, Choice):
            var = z3.BitVec(f"arg!{name}!{k}!{tag}", WIDTH)
            ranges.append(z3.And(var >= v.lo, var <= v.hi))
            sym[k] = var
        else:
            sym[k] = v
    guard, post = fn(cfg, s, sym)
    return Step(name, args, z3.And(*ranges, guard) if ranges else guard, post, sym)


def choose(st: Step, model: z3.ModelRef) -> Args:
    """The concrete arguments a Z3 model picks for a step."""
    out: Args = {}
    for k, v in st.args.items():
        if isinstance(v, Choice):
            n = model.eval(st.sym[k], model_completion=True).as_signed_long()
            out[k] = v.value(int(n))
        else:
            out[k] = v
    return out


def _term(x: Num | int) -> Num:
    return num(x) if isinstance(x, int) else x


# --------------------------------------------------------------------------
# Symbolic building blocks, each the counterpart of a function in actions.py.

T = z3.BoolVal(True)
F = z3.BoolVal(False)


def select(items: list[z3.ExprRef], idx: Num) -> z3.ExprRef:
    """``items[idx]`` for a symbolic index (the last item when out of range)."""
    out = items[-1]
    for i in range(len(items) - 2, -1, -1):
        out = z3.If(idx == i, items[i], out)
    return out


def lowest(flags: list[z3.BoolRef]) -> tuple[z3.BoolRef, Num]:
    """Whether any flag holds and the lowest index that does."""
    out: Num = num(-1)
    for i in range(len(flags) - 1, -1, -1):
        out = z3.If(flags[i], i, out)
    return z3.Or(flags) if flags else F, out


def _free_mpn(s: SymState) -> tuple[z3.BoolRef, Num]:
    return lowest([s.b("free", m) for m in range(s.cfg.machine_pages)])


def _mappers(s: SymState, mpn: Num) -> list[z3.BoolRef]:
    cfg = s.cfg
    return [s.i("p2m", v, p) == mpn for v in range(cfg.vms) for p in range(cfg.guest_pages)]


def _store_mpn(s: SymState, name: str, mpn: Num, value: z3.ExprRef,
               when: z3.BoolRef = T) -> dict[Key, z3.ExprRef]:
    return {(name, m): z3.If(z3.And(when, mpn == m), value, s[name, m])
            for m in range(s.cfg.machine_pages)}


def unback(s: SymState, vm: int, ppn: int, by_balloon: bool) -> SymState:
    """Counterpart of ``actions.unback``."""
    mpn = s.i("p2m", vm, ppn)
    backed = mpn != UNBACKED
    s1 = s.set({("p2m", vm, ppn): num(UNBACKED)})
    others = _mappers(s1, mpn)
    shared = z3.Or(others)
    upd: dict[Key, z3.ExprRef] = {}
    for m in range(s.cfg.machine_pages):
        here = z3.And(backed, mpn == m)
        upd["cow", m] = z3.If(z3.And(here, z3.Or(exactly(others, 1), z3.Not(shared))), F, s.b("cow", m))
        upd["content", m] = z3.If(z3.And(here, z3.Not(shared)), 0, s.i("content", m))
        upd["free", m] = z3.Or(s.b("free", m), z3.And(here, z3.Not(shared)))
        if by_balloon:
            upd["reclaimed", m] = z3.Or(s.b("reclaimed", m), z3.And(here, z3.Not(shared)))
    return s1.set(upd).ite(backed, s)


def _ppn_term(ppn: Num | int) -> Num:
    return num(ppn) if isinstance(ppn, int) else ppn


def fault_in(s: SymState, vm: int, ppn: Num | int) -> tuple[z3.BoolRef, SymState, Num]:
    """Counterpart of ``actions.fault_in``: (guard, post, the MPN now backing ``ppn``).

    ``ppn`` may be symbolic (the PPN the guest's allocator picked).
    """
    G = s.cfg.guest_pages
    at = _ppn_term(ppn)
    mpn: Num = select([s.i("p2m", vm, p) for p in range(G)], at)
    backed = mpn != UNBACKED
    ok, new = _free_mpn(s)
    swapped = select([s.b("swap", vm, p) for p in range(G)], at)
    stok = select([s.i("swap_token", vm, p) for p in range(G)], at)
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


def write_page(s: SymState, vm: int, ppn: Num | int, token: Num
               ) -> tuple[z3.BoolRef, SymState]:
    """Counterpart of ``actions.write_page`` (``ppn`` may be symbolic)."""
    G = s.cfg.guest_pages
    at = _ppn_term(ppn)
    g1, s, mpn = fault_in(s, vm, at)
    cow = select([s.b("cow", m) for m in range(s.cfg.machine_pages)], mpn)
    ok, copy = _free_mpn(s)
    upd: dict[Key, z3.ExprRef] = {}
    upd.update(_store_mpn(s, "free", copy, F, cow))
    upd.update(_store_mpn(s, "reclaimed", copy, F, cow))
    for p in range(G):
        upd["p2m", vm, p] = z3.If(z3.And(cow, at == p), copy, s.i("p2m", vm, p))
    s2 = s.set(upd)
    left = at_most(_mappers(s2, mpn), 1)
    s2 = s2.set(_store_mpn(s2, "cow", mpn, F, z3.And(cow, left)))
    final: Num = z3.If(cow, copy, mpn)
    s2 = s2.set(_store_mpn(s2, "content", final, token))
    return z3.And(g1, z3.Or(z3.Not(cow), ok)), s2


def _policy_lru(cfg: Config) -> bool:
    """Whether the guest evicts only its least recently used page."""
    return cfg.guest_policy in (GuestPolicyName.LRU, GuestPolicyName.LOWEST)


def _lowest_first(cfg: Config) -> bool:
    """Whether the guest's allocator narrows its choice to the lowest free PPNs."""
    return cfg.guest_policy is GuestPolicyName.LOWEST


def _lru_count(s: SymState, vm: int) -> Num:
    return count(s.b("lru", vm, d) for d in range(s.cfg.guest_data_pages))


def _lru_remove(s: SymState, vm: int, vpn: int) -> dict[Key, z3.ExprRef]:
    """Take ``vpn`` out of the LRU order (those behind it move up one place)."""
    r = s.i("lru_rank", vm, vpn)
    upd: dict[Key, z3.ExprRef] = {("lru", vm, vpn): F, ("lru_rank", vm, vpn): num(0)}
    for d in range(s.cfg.guest_data_pages):
        if d != vpn:
            rd = s.i("lru_rank", vm, d)
            upd["lru_rank", vm, d] = z3.If(z3.And(s.b("lru", vm, vpn), s.b("lru", vm, d), rd > r),
                                       rd - 1, rd)
    return upd


def _resident(s: SymState, vm: int, vpn: int) -> tuple[z3.BoolRef, Num]:
    return lowest([s.i("ppn_use", vm, p) == vpn for p in range(s.cfg.guest_pages)])


def _set_use_at(s: SymState, vm: int, ppn: Num, use: Num | int
                ) -> dict[Key, z3.ExprRef]:
    return {("ppn_use", vm, p): z3.If(ppn == p, use, s.i("ppn_use", vm, p))
            for p in range(s.cfg.guest_pages)}


def _access(cfg: Config, s: SymState, vm: int, vpn: int
            ) -> tuple[z3.BoolRef, SymState, Num]:
    """Counterpart of ``actions._access``: (guard, post, PPN holding ``vpn``)."""
    G = cfg.guest_pages
    res, rppn = _resident(s, vm, vpn)
    # Resident: move to the most recently used end of the LRU order.
    hit = s.set(_lru_remove(s, vm, vpn))
    hit = hit.set({("lru", vm, vpn): T, ("lru_rank", vm, vpn): _lru_count(hit, vm)})
    # ...and the access makes sure a machine page backs it (a ballooned page pops).
    hguard, hit, _ = fault_in(hit, vm, rppn)
    # Not resident: the allocator's lowest free PPN, filled from the guest's disk or zeros.
    ok, fppn = lowest([s.i("ppn_use", vm, p) == FREE for p in range(G)])
    on_disk = s.b("disk", vm, vpn)
    token = z3.If(on_disk, s.i("disk_token", vm, vpn), 0)
    # Appending a VPN that is listed already leaves its first place where it was.
    listed = s.b("lru", vm, vpn)
    miss = s.set({**_set_use_at(s, vm, fppn, vpn), ("lru", vm, vpn): T,
                  ("lru_rank", vm, vpn): z3.If(listed, s.i("lru_rank", vm, vpn), _lru_count(s, vm)),
                  ("disk", vm, vpn): F,
                  ("disk_token", vm, vpn): num(0)})
    wguard, wpost = write_page(miss, vm, fppn, token)
    post = hit.ite(res, wpost)
    return z3.If(res, hguard, z3.And(ok, wguard)), post, z3.If(res, rppn, fppn)


def _per_vm(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        yield {"vm": vm}


def _subsets(n: int, most: int) -> Iterator[tuple[int, ...]]:
    for k in range(1, min(n, most) + 1):
        yield from itertools.combinations(range(n), k)


def _batch(cfg: Config) -> int:
    return 1 if cfg.module is ModuleKind.APPLICATION else cfg.batch


def _smax(a: Num | int, b: Num | int) -> Num:
    return z3.If(a >= b, a, b)


def _smin(a: Num | int, b: Num | int) -> Num:
    return z3.If(a <= b, a, b)


# --------------------------------------------------------------------------
# Host


@_encodes("host_set_target", lambda cfg: ({"vm": v, "pages": n} for v in range(cfg.vms)
                                          for n in range(cfg.guest_pages + 1)))
def _host_set_target(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, pages = a["vm"], a["pages"]
    guard = z3.And(0 <= pages, pages <= cfg.guest_pages, s.i("target", vm) != pages)
    return guard, s.set({("target", vm): num(pages)})


@_encodes("host_set_cpu_target", lambda cfg: ({"vm": v, "vcpus": n} for v in range(cfg.vms)
                                              for n in range(1, cfg.vcpus + 1)))
def _host_set_cpu_target(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, n = a["vm"], a["vcpus"]
    return s.i("cpu_target", vm) != n, s.set({("cpu_target", vm): num(n)})


def _units(cfg: Config, hp: int) -> range:
    u = cfg.host_page_units
    return range(hp * u, (hp + 1) * u)


def _host_pages(cfg: Config) -> Iterator[Args]:
    for hp in range(cfg.host_pages):
        yield {"host_page": hp}


@_encodes("host_take_page", _host_pages)
def _host_take_page(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    units = _units(cfg, a["host_page"])
    upd: dict[Key, z3.ExprRef] = {}
    for m in units:
        upd["free", m], upd["in_use", m], upd["reclaimed", m] = F, T, F
    return z3.And([s.b("free", m) for m in units]), s.set(upd)


@_encodes("host_return_page", _host_pages)
def _host_return_page(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    units = _units(cfg, a["host_page"])
    upd: dict[Key, z3.ExprRef] = {}
    for m in units:
        upd["free", m], upd["in_use", m] = T, F
    return z3.And([s.b("in_use", m) for m in units]), s.set(upd)


def _vm_ppns(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for ppn in range(cfg.guest_pages):
            yield {"vm": vm, "ppn": ppn}


@_encodes("host_swap_out", _vm_ppns)
def _host_swap_out(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, ppn = a["vm"], a["ppn"]
    mpn = s.i("p2m", vm, ppn)
    room = at_most([s.b("swap", v, p) for v in range(cfg.vms) for p in range(cfg.guest_pages)],
                   cfg.host_swap_slots - 1)
    cow = select([s.b("cow", m) for m in range(cfg.machine_pages)], mpn)
    token = select([s.i("content", m) for m in range(cfg.machine_pages)], mpn)
    guard = z3.And(mpn != UNBACKED, z3.Not(cow), room)
    s1 = s.set({("swap", vm, ppn): T, ("swap_token", vm, ppn): token})
    return guard, unback(s1, vm, ppn, by_balloon=False)


# --------------------------------------------------------------------------
# VMM


def _refusals(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        yield {"vm": vm, "refuse": Choice(0, 2 ** (cfg.guest_pages + 1) - 1, "refuse")}


def _refuse_bits(cfg: Config, raw: Any) -> list[z3.BoolRef]:
    """Per reported slot ``0..G`` (``G``: out of range), whether ``refuse`` names it.

    ``raw`` is the model's tuple of PPNs or a symbolic bit mask (a :class:`Choice`).
    """
    G = cfg.guest_pages
    if isinstance(raw, tuple):
        return [z3.BoolVal(q in raw) for q in range(G)] + [
            z3.BoolVal(any(not 0 <= p < G for p in raw))]
    return [z3.Extract(q, q, raw) == 1 for q in range(G + 1)]


@_encodes("vmm_reclaim", _refusals)
def _vmm_reclaim(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    G = cfg.guest_pages
    bits = _refuse_bits(cfg, a["refuse"])
    nq = z3.Sum([s.i("inflate_queue", vm, q) for q in range(G + 1)])
    present = [s.i("inflate_queue", vm, q) > 0 for q in range(G + 1)]
    valid = [z3.And(present[q], z3.Not(s.b("ballooned", vm, q))) for q in range(G)]
    accepted = [z3.And(valid[q], z3.Not(bits[q])) for q in range(G)]
    # With ``migration`` the VMM takes one page beyond the target (as the model does).
    room = _smax(0, s.i("target", vm) - count(s.b("ballooned", vm, p) for p in range(G))
                 + (1 if cfg.migration else 0))
    most = _smin(count(valid), room)
    named = [z3.Implies(bits[q], present[q]) for q in range(G + 1)]
    if not cfg.refusal:
        # Without refusal the VMM names only valid pages, and takes all it has room for.
        named += [z3.Implies(bits[q], valid[q]) for q in range(G)] + [z3.Not(bits[G])]
        named.append(count(accepted) >= most)
    guard = z3.And(nq > 0, count(accepted) <= room, *named)
    upd: dict[Key, z3.ExprRef] = {}
    for q in range(G + 1):
        if q < G:
            acc = accepted[q]
            upd["acked_inflate", vm, q] = z3.Or(s.b("acked_inflate", vm, q), acc)
            upd["ballooned", vm, q] = z3.Or(s.b("ballooned", vm, q), acc)
        else:
            acc = F
        upd["acked_refused", vm, q] = z3.Or(s.b("acked_refused", vm, q), z3.And(present[q], z3.Not(acc)))
        upd["inflate_queue", vm, q] = num(0)
    post = s
    for q in range(G):
        post = unback(post, vm, q, by_balloon=True).ite(accepted[q], post)
    for q in range(G):
        upd["swap", vm, q] = z3.And(post.b("swap", vm, q), z3.Not(accepted[q]))
        upd["swap_token", vm, q] = z3.If(accepted[q], 0, post.i("swap_token", vm, q))
    return guard, post.set(upd)


@_encodes("vmm_release", _per_vm)
def _vmm_release(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    G = cfg.guest_pages
    guard = z3.Sum([s.i("deflate_queue", vm, q) for q in range(G + 1)]) > 0
    upd: dict[Key, z3.ExprRef] = {("deflate_queue", vm, q): num(0) for q in range(G + 1)}
    for p in range(G):
        rep = s.i("deflate_queue", vm, p) > 0
        upd["ballooned", vm, p] = z3.And(s.b("ballooned", vm, p), z3.Not(rep))
        upd["acked_deflate", vm, p] = z3.Or(s.b("acked_deflate", vm, p), rep)
    return guard, s.set(upd)


def _share_pairs(cfg: Config) -> Iterator[Args]:
    pages = [(v, p) for v in range(cfg.vms) for p in range(cfg.guest_pages)]
    for (va, pa), (vb, pb) in itertools.combinations(pages, 2):
        yield {"vm": va, "ppn": pa, "other_vm": vb, "other_ppn": pb}


@_encodes("vmm_share", _share_pairs)
def _vmm_share(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, ppn, ovm, oppn = a["vm"], a["ppn"], a["other_vm"], a["other_ppn"]
    keep, drop = s.i("p2m", vm, ppn), s.i("p2m", ovm, oppn)
    content = [s.i("content", m) for m in range(cfg.machine_pages)]
    guard = z3.And(z3.BoolVal((vm, ppn) < (ovm, oppn)), keep != UNBACKED, drop != UNBACKED,
                   keep != drop, select(content, keep) == select(content, drop))
    post = unback(s, ovm, oppn, by_balloon=False)
    post = post.set({("p2m", ovm, oppn): keep})
    post = post.set(_store_mpn(post, "cow", keep, T))
    return guard, post


@_encodes("vmm_cpu_reclaim", _per_vm)
def _vmm_cpu_reclaim(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    parked = [s.b("parked_vcpus", vm, c) for c in range(cfg.vcpus)]
    upd: dict[Key, z3.ExprRef] = {("parked_vcpus", vm, c): F for c in range(cfg.vcpus)}
    upd["idle_pcpus",] = s.i("idle_pcpus") + count(parked)
    return z3.Or(parked) if parked else F, s.set(upd)


# --------------------------------------------------------------------------
# Guest OS


def _vpns(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for vpn in range(cfg.guest_data_pages):
            yield {"vm": vm, "vpn": vpn}


@_encodes("guest_read", _vpns)
def _guest_read(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    guard, post, _ = _access(cfg, s, a["vm"], a["vpn"])
    return guard, post


def _writes(cfg: Config) -> Iterator[Args]:
    for args in _vpns(cfg):
        yield {**args, "token": Choice(1, cfg.tokens)}


@_encodes("guest_write", _writes)
def _guest_write(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, vpn, token = a["vm"], a["vpn"], a["token"]
    g1, s1, ppn = _access(cfg, s, vm, vpn)
    guard, post = write_page(s1, vm, ppn, _term(token))
    post = post.set({("expected", vm, vpn): _term(token)})
    return z3.And(g1, guard), post


@_encodes("guest_evict", _vpns)
def _guest_evict(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, vpn = a["vm"], a["vpn"]
    D = cfg.guest_data_pages
    in_lru = s.b("lru", vm, vpn)
    victim = s.i("lru_rank", vm, vpn) == 0 if _policy_lru(cfg) else T
    room = at_most([s.b("disk", vm, d) for d in range(D)], cfg.guest_disk_slots - 1)
    res, ppn = _resident(s, vm, vpn)
    gp, sp, mpn = fault_in(s, vm, ppn)
    token = select([sp.i("content", m) for m in range(cfg.machine_pages)], mpn)
    upd: dict[Key, z3.ExprRef] = {("disk", vm, vpn): T, ("disk_token", vm, vpn): token}
    upd.update(_set_use_at(sp, vm, ppn, FREE))
    upd.update(_lru_remove(sp, vm, vpn))
    return z3.And(in_lru, victim, room, res, gp), sp.set(upd)


@_encodes("guest_reset", _per_vm)
def _guest_reset(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    G, D = cfg.guest_pages, cfg.guest_data_pages
    upd: dict[Key, z3.ExprRef] = {}
    for p in range(G):
        upd["ppn_use", vm, p] = num(FREE)
        for name in ("balloon", "refused", "ballooned", "acked_inflate", "acked_deflate", "swap"):
            upd[name, vm, p] = F
        upd["swap_token", vm, p] = num(0)
    for q in range(G + 1):
        upd["inflate_queue", vm, q] = upd["deflate_queue", vm, q] = num(0)
        upd["acked_refused", vm, q] = F
    for d in range(D):
        upd["lru", vm, d] = upd["disk", vm, d] = F
        upd["lru_rank", vm, d] = upd["expected", vm, d] = upd["disk_token", vm, d] = num(0)
    upd["module.target", vm] = upd["actual", vm] = num(0)
    return T, s.set(upd)


# --------------------------------------------------------------------------
# Balloon module


@_encodes("balloon_poll", _per_vm)
def _balloon_poll(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    guard = z3.Or(z3.BoolVal(cfg.reread_target), s.i("module.target", vm) != s.i("target", vm),
                  s.i("module.cpu_target", vm) != s.i("cpu_target", vm))
    return guard, s.set({("module.target", vm): s.i("target", vm), ("module.cpu_target", vm): s.i("cpu_target", vm)})


def _balloon_free(s: SymState, vm: int, p: int) -> z3.BoolRef:
    """PPN ``p`` is free and not pending on the deflate queue (model: ``balloon_view``)."""
    return z3.And(s.i("ppn_use", vm, p) == FREE, s.i("deflate_queue", vm, p) == 0)


def _usable_free(cfg: Config, s: SymState, vm: int) -> Num:
    G = cfg.guest_pages
    free = count(_balloon_free(s, vm, p) for p in range(G))
    if cfg.module is ModuleKind.DRIVER:
        return _smax(0, free - cfg.kernel_reserve)
    pinned = count(s.i("ppn_use", vm, p) == BALLOON for p in range(G))
    return _smax(0, _smin(free, cfg.pin_limit - pinned))


def _inflate_limit(cfg: Config, s: SymState, vm: int) -> Num:
    G = cfg.guest_pages
    held = (count(s.b("balloon", vm, p) for p in range(G))
            + z3.Sum([s.i("inflate_queue", vm, q) for q in range(G + 1)])
            + count(s.b("acked_inflate", vm, p) for p in range(G)))
    return _smax(0, _smin(_batch(cfg), s.i("module.target", vm) - held))


def _ppn_sets(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for ppns in _subsets(cfg.guest_pages, _batch(cfg)):
            yield {"vm": vm, "ppns": ppns}


@_encodes("balloon_inflate", _ppn_sets)
def _balloon_inflate(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, ppns = a["vm"], tuple(a["ppns"])
    k = len(ppns)
    free = [_balloon_free(s, vm, p) for p in range(cfg.guest_pages)]
    allowed = [free[p] for p in ppns]
    if _lowest_first(cfg):
        allowed += [z3.Not(free[p]) for p in range(max(ppns)) if p not in ppns]
    guard = z3.And(k <= _inflate_limit(cfg, s, vm), k <= _usable_free(cfg, s, vm), *allowed)
    upd: dict[Key, z3.ExprRef] = {}
    for p in ppns:
        upd["ppn_use", vm, p] = num(BALLOON)
        upd["inflate_queue", vm, p] = saturating_inc(cfg, s.i("inflate_queue", vm, p))
    return guard, s.set(upd)


def _under_pressure(cfg: Config, s: SymState, vm: int) -> z3.BoolRef:
    no_free = z3.And([s.i("ppn_use", vm, p) != FREE for p in range(cfg.guest_pages)])
    D = cfg.guest_data_pages
    disk_full = count(s.b("disk", vm, d) for d in range(D)) >= cfg.guest_disk_slots
    lru_empty = z3.Not(z3.Or([s.b("lru", vm, d) for d in range(D)])) if D else T
    return z3.And(no_free, z3.Or(disk_full, lru_empty))


@_encodes("balloon_deflate", _ppn_sets)
def _balloon_deflate(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, ppns = a["vm"], tuple(a["ppns"])
    G = cfg.guest_pages
    size = count(s.b("balloon", vm, p) for p in range(G))
    batch = _batch(cfg)
    excess = size - s.i("module.target", vm)
    if cfg.deflate_on_oom:
        excess = z3.If(_under_pressure(cfg, s, vm), _smax(excess, batch), excess)
    limit = _smax(0, _smin(_smin(batch, excess), size))
    guard = z3.And(*[s.b("balloon", vm, p) for p in ppns], len(ppns) <= limit)
    upd: dict[Key, z3.ExprRef] = {}
    for p in ppns:
        if not cfg.must_tell_host:
            # Only pages the module still holds pinned go back to the guest.
            use = s.i("ppn_use", vm, p)
            upd["ppn_use", vm, p] = z3.If(use == BALLOON, FREE, use)
        upd["balloon", vm, p] = F
        upd["deflate_queue", vm, p] = saturating_inc(cfg, s.i("deflate_queue", vm, p))
    return guard, s.set(upd)


@_encodes("balloon_complete", _per_vm)
def _balloon_complete(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    G = cfg.guest_pages
    guard = z3.Or([s.b("acked_inflate", vm, p) for p in range(G)] + [s.b("acked_refused", vm, q) for q in range(G + 1)]
                  + [s.b("acked_deflate", vm, p) for p in range(G)])
    upd: dict[Key, z3.ExprRef] = {}
    new_balloon = []
    for p in range(G):
        mine = s.i("ppn_use", vm, p) == BALLOON
        bal = z3.Or(s.b("balloon", vm, p), z3.And(s.b("acked_inflate", vm, p), mine))
        new_balloon.append(bal)
        upd["balloon", vm, p] = bal
        ref = z3.And(z3.Or(s.b("refused", vm, p), z3.And(s.b("acked_refused", vm, p), mine)), z3.Not(bal))
        upd["refused", vm, p] = ref
        if cfg.must_tell_host:
            back = z3.And(s.b("acked_deflate", vm, p), mine, z3.Not(bal), z3.Not(ref))
            upd["ppn_use", vm, p] = z3.If(back, FREE, s.i("ppn_use", vm, p))
        upd["acked_inflate", vm, p] = upd["acked_deflate", vm, p] = F
    for q in range(G + 1):
        upd["acked_refused", vm, q] = F
    upd["actual", vm] = count(new_balloon)
    return guard, s.set(upd)


@_encodes("balloon_free_refused", _per_vm)
def _balloon_free_refused(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm = a["vm"]
    G = cfg.guest_pages
    refused = [s.b("refused", vm, p) for p in range(G)]
    upd: dict[Key, z3.ExprRef] = {}
    for p in range(G):
        upd["ppn_use", vm, p] = z3.If(refused[p], FREE, s.i("ppn_use", vm, p))
        upd["refused", vm, p] = F
    return z3.Or(refused), s.set(upd)


def _vcpu_args(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for c in range(cfg.vcpus):
            yield {"vm": vm, "vcpu": c}


def _online_count(cfg: Config, s: SymState, vm: int) -> Num:
    return count(s.b("vcpus", vm, c) for c in range(cfg.vcpus))


@_encodes("balloon_cpu_offline", _vcpu_args)
def _balloon_cpu_offline(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, c = a["vm"], a["vcpu"]
    guard = z3.And(_online_count(cfg, s, vm) > s.i("module.cpu_target", vm), s.b("vcpus", vm, c),
                   z3.BoolVal(c != 0))
    return guard, s.set({("vcpus", vm, c): F, ("parked_vcpus", vm, c): T})


@_encodes("balloon_cpu_online", _vcpu_args)
def _balloon_cpu_online(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, c = a["vm"], a["vcpu"]
    guard = z3.And(_online_count(cfg, s, vm) < s.i("module.cpu_target", vm), z3.Not(s.b("vcpus", vm, c)),
                   z3.Not(s.b("parked_vcpus", vm, c)), s.i("idle_pcpus") > 0)
    return guard, s.set({("vcpus", vm, c): T, ("idle_pcpus",): s.i("idle_pcpus") - 1})


# --------------------------------------------------------------------------
# A hostile or buggy guest


def _rogue_reports(cfg: Config) -> Iterator[Args]:
    for vm in sorted(cfg.hostile_vms):
        for queue in ("inflate", "deflate"):
            for ppn in range(cfg.guest_pages + 1):
                yield {"vm": vm, "queue": queue, "ppn": ppn}


@_encodes("rogue_report", _rogue_reports)
def _rogue_report(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, queue, ppn = a["vm"], a["queue"], a["ppn"]
    G = cfg.guest_pages
    used = z3.Sum([s.i("inflate_queue", vm, q) + s.i("deflate_queue", vm, q) for q in range(G + 1)])
    name = "inflate_queue" if queue == "inflate" else "deflate_queue"
    return used < 2 * cfg.batch, s.set({(name, vm, ppn): saturating_inc(cfg, s.i(name, vm, ppn))})


def _rogue_touches(cfg: Config) -> Iterator[Args]:
    for vm in sorted(cfg.hostile_vms):
        for ppn in range(cfg.guest_pages):
            yield {"vm": vm, "ppn": ppn, "token": Choice(0, cfg.tokens)}


@_encodes("rogue_touch", _rogue_touches)
def _rogue_touch(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    return write_page(s, a["vm"], a["ppn"], _term(a["token"]))


def _rogue_sizes(cfg: Config) -> Iterator[Args]:
    for vm in sorted(cfg.hostile_vms):
        yield {"vm": vm, "actual": Choice(0, cfg.guest_pages + 1)}


@_encodes("rogue_set_actual", _rogue_sizes)
def _rogue_set_actual(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
    vm, actual = a["vm"], a["actual"]
    return s.i("actual", vm) != actual, s.set({("actual", vm): _term(actual)})
