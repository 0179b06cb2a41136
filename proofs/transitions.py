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

from ballast.model.action_kernels import KERNELS
from ballast.model.actions import ACTIONS
from ballast.model.config import Config, GuestPolicyName, ModuleKind
from ballast.model.ops import Kernel
from ballast.proofs.encoding import (
    FREE,
    UNBACKED,
    Key,
    WIDTH,
    Num,
    SymState,
    at_most,
    count,
    num,
    saturating_inc,
)
from ballast.proofs.interpret import run_kernel, unback

__all__ = ["ENCODED", "Choice", "Step", "choose", "concrete_instances", "encoded_actions",
           "instances", "kernel_effect", "step", "unback"]

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


# --------------------------------------------------------------------------
# Host


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


def _ppn_sets(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for ppns in _subsets(cfg.guest_pages, _batch(cfg)):
            yield {"vm": vm, "ppns": ppns}


def _vcpu_args(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for c in range(cfg.vcpus):
            yield {"vm": vm, "vcpu": c}


def _targets(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for n in range(cfg.guest_pages + 1):
            yield {"vm": vm, "pages": n}


def _cpu_targets(cfg: Config) -> Iterator[Args]:
    for vm in range(cfg.vms):
        for n in range(1, cfg.vcpus + 1):
            yield {"vm": vm, "vcpus": n}


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


# --------------------------------------------------------------------------
# Actions written once (:mod:`ballast.model.action_kernels`), read by the Z3 interpreter


def kernel_effect(kernel: Kernel) -> Effect:
    """The transition relation of an action kernel (named after the kernel)."""

    def effect(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
        return run_kernel(kernel, s, a)
    effect.__module__, effect.__qualname__ = kernel.__module__, kernel.__qualname__
    return effect


for _name, _inst in (("host_set_target", _targets), ("host_set_cpu_target", _cpu_targets),
                     ("vmm_reclaim", _refusals), ("vmm_release", _per_vm),
                     ("vmm_cpu_reclaim", _per_vm), ("balloon_poll", _per_vm),
                     ("balloon_inflate", _ppn_sets), ("balloon_deflate", _ppn_sets),
                     ("balloon_complete", _per_vm), ("balloon_free_refused", _per_vm),
                     ("balloon_cpu_offline", _vcpu_args), ("balloon_cpu_online", _vcpu_args)):
    _encodes(_name, _inst)(kernel_effect(KERNELS[_name]))
