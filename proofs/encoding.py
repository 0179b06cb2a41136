"""The model's :class:`~ballast.model.state.State` as Z3 terms, and back.

A symbolic state is a flat map from a *key* (a field name and its indices) to
a Z3 term, sized by the configuration: one Boolean per MPN for the host's free
pool, one integer per (VM, PPN) for the VMM's PPN -> MPN map, one counter per
queue entry value, and so on. Sets become one Boolean per element, queues
(sorted, duplicates kept) become a count per PPN, the guest's LRU order becomes
each resident VPN's position, host swap and the guest's disk become a flag and
a token per page.

The encoding is exact for every state in its *domain*: the states whose
queues hold PPNs in ``0..guest_pages`` (one past the end is what a hostile
guest may send) and whose host swap and guest disk hold at most one entry per
page. Two abstractions keep it finite and are exact for everything the model
looks at: a queue's count of one PPN saturates (see :func:`queue_cap`), and
the LRU list is kept as the order of each VPN's first place (later copies of
a VPN, which a hostile guest can produce, change no guard and no property). :func:`well_formed` states the
domain as Z3 constraints (the proofs show it is preserved, like TLA+'s
``TypeOK``); :func:`encode` raises :class:`OutOfDomain` outside it.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> s0 = initial_state(cfg)
>>> decode_values(cfg, concrete_values(cfg, s0)) == s0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, TypeAlias

import z3

from ballast.errors import BallastError
from ballast.model.config import Config
from ballast.model.state import (
    BALLOON,
    FREE,
    UNBACKED,
    BalloonModule,
    GuestState,
    HostState,
    State,
    VmState,
)

__all__ = [
    "Key",
    "OutOfDomain",
    "SymState",
    "concrete_values",
    "decode_model",
    "decode_values",
    "encode",
    "keys",
    "fresh",
    "num",
    "Num",
    "WIDTH",
    "queue_cap",
    "at_most",
    "at_least",
    "exactly",
    "saturating_inc",
    "well_formed",
]

Key = tuple[object, ...]
Num: TypeAlias = "z3.BitVecRef"
"""Counters, page numbers and tokens: signed bit-vectors of :data:`WIDTH` bits."""
WIDTH = 16
"""Bits of every number in the encoding (page numbers and counts stay far below 2**15)."""


def num(value: int) -> Num:
    """A number of the encoding."""
    return z3.BitVecVal(value, WIDTH)
"""A field name followed by its indices, for example ``("p2m", vm, ppn)``."""


class OutOfDomain(BallastError):
    """A concrete state the symbolic encoding cannot represent exactly."""


def keys(cfg: Config) -> Iterator[tuple[Key, bool]]:
    """Every key of a configuration's symbolic state, with whether it is Boolean."""
    M, V, G, D, C = cfg.machine_pages, cfg.vms, cfg.guest_pages, cfg.guest_data_pages, cfg.vcpus
    for m in range(M):
        for name in ("free", "in_use", "cow", "reclaimed"):
            yield (name, m), True
        yield ("content", m), False
    yield ("idle",), False
    for v in range(V):
        for p in range(G):
            yield ("swap", v, p), True
            yield ("swap_tok", v, p), False
            yield ("p2m", v, p), False
            yield ("use", v, p), False
            for name in ("ballooned", "ai", "ad", "balloon", "refused"):
                yield (name, v, p), True
        for q in range(G + 1):
            yield ("inq", v, q), False
            yield ("dq", v, q), False
            yield ("ar", v, q), True
        for name in ("target", "cpu_target", "mtarget", "actual", "mcpu"):
            yield (name, v), False
        for d in range(D):
            yield ("lru", v, d), True
            yield ("disk", v, d), True
            yield ("rank", v, d), False
            yield ("expected", v, d), False
            yield ("disk_tok", v, d), False
        for c in range(C):
            yield ("vcpus", v, c), True
            yield ("parked", v, c), True


@dataclass(frozen=True)
class SymState:
    """A state whose every part is a Z3 term (constants or symbols)."""

    cfg: Config
    terms: Mapping[Key, z3.ExprRef]

    def __getitem__(self, key: Key) -> z3.ExprRef:
        return self.terms[key]

    def b(self, *key: object) -> z3.BoolRef:
        """A Boolean part."""
        t = self.terms[key]
        assert isinstance(t, z3.BoolRef)
        return t

    def i(self, *key: object) -> Num:
        """An integer part."""
        t = self.terms[key]
        assert isinstance(t, z3.BitVecRef)
        return t

    def set(self, updates: Mapping[Key, z3.ExprRef]) -> "SymState":
        """A copy with some parts replaced."""
        new = dict(self.terms)
        new.update(updates)
        return SymState(self.cfg, new)

    def ite(self, cond: z3.BoolRef, other: "SymState") -> "SymState":
        """``self`` where ``cond`` holds, else ``other`` (part by part)."""
        out = {}
        for k, t in self.terms.items():
            o = other.terms[k]
            out[k] = t if t.eq(o) else z3.If(cond, t, o)
        return SymState(self.cfg, out)

    def equals(self, other: "SymState") -> z3.BoolRef:
        """Every part equal."""
        return z3.And([t == other.terms[k] for k, t in self.terms.items()])

    def vm_equals(self, other: "SymState", vm: int) -> z3.BoolRef:
        """Every part of VM ``vm`` equal (the VMM's records, the guest, the module)."""
        return z3.And([t == other.terms[k] for k, t in self.terms.items()
                       if len(k) >= 2 and k[0] not in ("swap", "swap_tok") and k[1] == vm
                       and k[0] not in _HOST_KEYS])


_HOST_KEYS = frozenset({"free", "in_use", "cow", "reclaimed", "content", "idle"})


def queue_cap(cfg: Config) -> int:
    """Where a queue's count of one PPN saturates.

    Only a hostile guest can make a queue long, and every guard of the model
    only compares queue lengths with ``2 * batch`` or with a target of at most
    ``guest_pages``, so counts beyond this cap behave exactly like the cap.
    """
    return max(2 * cfg.batch, cfg.guest_pages + 1)


def fresh(cfg: Config, prefix: str) -> SymState:
    """A state of fresh Z3 constants named ``prefix.field.i.j``."""
    terms: dict[Key, z3.ExprRef] = {}
    for key, is_bool in keys(cfg):
        name = prefix + "." + ".".join(str(k) for k in key)
        terms[key] = z3.Bool(name) if is_bool else z3.BitVec(name, WIDTH)
    return SymState(cfg, terms)


def encode(cfg: Config, s: State) -> SymState:
    """A concrete state as a symbolic state of Z3 constants (raises OutOfDomain)."""
    values = concrete_values(cfg, s)
    return SymState(cfg, {k: z3.BoolVal(v) if isinstance(v, bool) else num(v)
                          for k, v in values.items()})


def concrete_values(cfg: Config, s: State) -> dict[Key, int | bool]:
    """The encoding of a concrete state as plain Python values."""
    M, G, D, C = cfg.machine_pages, cfg.guest_pages, cfg.guest_data_pages, cfg.vcpus
    if len(s.vms) != cfg.vms or len(s.host.content) != M:
        raise OutOfDomain("the state does not have the configuration's sizes")
    out: dict[Key, int | bool] = {}
    h = s.host
    for m in range(M):
        out["free", m] = m in h.free
        out["in_use", m] = m in h.in_use
        out["cow", m] = m in h.cow
        out["reclaimed", m] = m in h.reclaimed
        out["content", m] = h.content[m]
    for name, sset in (("free", h.free), ("in_use", h.in_use), ("cow", h.cow),
                       ("reclaimed", h.reclaimed)):
        if not sset <= set(range(M)):
            raise OutOfDomain(f"host {name} names MPNs that do not exist")
    out["idle",] = h.idle_pcpus
    swap: dict[tuple[int, int], int] = {}
    for v, p, t in h.swap:
        if (v, p) in swap or not (0 <= v < cfg.vms and 0 <= p < G):
            raise OutOfDomain("host swap holds a page twice or a page that does not exist")
        swap[v, p] = t
    for v, vm in enumerate(s.vms):
        if len(vm.p2m) != G or len(vm.guest.ppn_use) != G or len(vm.guest.expected) != D:
            raise OutOfDomain("a VM does not have the configuration's sizes")
        for p in range(G):
            out["swap", v, p] = (v, p) in swap
            out["swap_tok", v, p] = swap.get((v, p), 0)
            out["p2m", v, p] = vm.p2m[p]
            out["use", v, p] = vm.guest.ppn_use[p]
            out["ballooned", v, p] = p in vm.ballooned
            out["ai", v, p] = p in vm.acked_inflate
            out["ad", v, p] = p in vm.acked_deflate
            out["balloon", v, p] = p in vm.module.balloon
            out["refused", v, p] = p in vm.module.refused
        for sset in (vm.ballooned, vm.acked_inflate, vm.acked_deflate, vm.module.balloon,
                     vm.module.refused):
            if not sset <= set(range(G)):
                raise OutOfDomain("a PPN set names PPNs that do not exist")
        if not vm.acked_refused <= set(range(G + 1)):
            raise OutOfDomain("acknowledged refusals beyond one past the last PPN")
        for q in range(G + 1):
            out["inq", v, q] = min(vm.inflate_queue.count(q), queue_cap(cfg))
            out["dq", v, q] = min(vm.deflate_queue.count(q), queue_cap(cfg))
            out["ar", v, q] = q in vm.acked_refused
        if any(not 0 <= q <= G for q in vm.inflate_queue + vm.deflate_queue):
            raise OutOfDomain("a queue holds a PPN beyond one past the last PPN")
        out["target", v] = vm.target
        out["cpu_target", v] = vm.cpu_target
        out["mtarget", v] = vm.module.target
        out["actual", v] = vm.module.actual
        out["mcpu", v] = vm.module.cpu_target
        g = vm.guest
        if not set(g.lru) <= set(range(D)):
            raise OutOfDomain("the LRU list holds a VPN that does not exist")
        # A VPN listed twice (a hostile guest can get there) counts from its first place.
        order = list(dict.fromkeys(g.lru))
        disk: dict[int, int] = {}
        for d, t in g.disk:
            if d in disk or not 0 <= d < D:
                raise OutOfDomain("the guest's disk holds a VPN twice")
            disk[d] = t
        for d in range(D):
            out["lru", v, d] = d in g.lru
            out["rank", v, d] = order.index(d) if d in order else 0
            out["expected", v, d] = g.expected[d]
            out["disk", v, d] = d in disk
            out["disk_tok", v, d] = disk.get(d, 0)
        if not (g.vcpus | vm.parked_vcpus) <= set(range(C)):
            raise OutOfDomain("a vCPU beyond the configured number")
        for c in range(C):
            out["vcpus", v, c] = c in g.vcpus
            out["parked", v, c] = c in vm.parked_vcpus
    return out


def decode_values(cfg: Config, val: Callable[[Key], int | bool] | Mapping[Key, int | bool]
                  ) -> State:
    """The concrete :class:`State` of an encoding given part by part."""
    get: Callable[[Key], int | bool] = val.__getitem__ if isinstance(val, Mapping) else val
    M, V, G, D, C = cfg.machine_pages, cfg.vms, cfg.guest_pages, cfg.guest_data_pages, cfg.vcpus

    def bset(name: str, *idx: int, n: int) -> frozenset[int]:
        return frozenset(x for x in range(n) if get((name, *idx, x)))

    def ival(*key: object) -> int:
        return int(get(key))

    host = HostState(
        free=bset("free", n=M), in_use=bset("in_use", n=M),
        content=tuple(ival("content", m) for m in range(M)), cow=bset("cow", n=M),
        reclaimed=bset("reclaimed", n=M),
        swap=tuple(sorted((v, p, ival("swap_tok", v, p)) for v in range(V) for p in range(G)
                          if get(("swap", v, p)))),
        idle_pcpus=ival("idle"))
    vms = []
    for v in range(V):
        lru = sorted((ival("rank", v, d), d) for d in range(D) if get(("lru", v, d)))
        guest = GuestState(
            ppn_use=tuple(ival("use", v, p) for p in range(G)),
            lru=tuple(d for _, d in lru),
            expected=tuple(ival("expected", v, d) for d in range(D)),
            disk=tuple((d, ival("disk_tok", v, d)) for d in range(D) if get(("disk", v, d))),
            vcpus=bset("vcpus", v, n=C))
        module = BalloonModule(target=ival("mtarget", v), balloon=bset("balloon", v, n=G),
                               refused=bset("refused", v, n=G), actual=ival("actual", v),
                               cpu_target=ival("mcpu", v))
        vms.append(VmState(
            p2m=tuple(ival("p2m", v, p) for p in range(G)),
            ballooned=bset("ballooned", v, n=G), target=ival("target", v),
            cpu_target=ival("cpu_target", v),
            inflate_queue=tuple(q for q in range(G + 1) for _ in range(ival("inq", v, q))),
            deflate_queue=tuple(q for q in range(G + 1) for _ in range(ival("dq", v, q))),
            acked_inflate=bset("ai", v, n=G), acked_refused=bset("ar", v, n=G + 1),
            acked_deflate=bset("ad", v, n=G), parked_vcpus=bset("parked", v, n=C),
            guest=guest, module=module))
    return State(host, tuple(vms))


def _value(t: z3.ExprRef) -> int | bool:
    if z3.is_true(t):
        return True
    if z3.is_false(t):
        return False
    if z3.is_bv_value(t):
        return int(t.as_signed_long())
    raise OutOfDomain(f"not a constant: {t}")


def decode_model(sym: SymState, model: z3.ModelRef) -> State:
    """The concrete state a Z3 model gives to a symbolic state."""
    return decode_values(sym.cfg, lambda k: _value(model.eval(sym[k], model_completion=True)))


def constant_values(sym: SymState) -> dict[Key, int | bool]:
    """The parts of a symbolic state that simplify to constants (raises if one does not)."""
    return {k: _value(z3.simplify(t)) for k, t in sym.terms.items()}


def count(bools: Iterable[z3.BoolRef]) -> Num:
    """How many of ``bools`` hold."""
    items = [z3.If(b, num(1), num(0)) for b in bools]
    if not items:
        return num(0)
    return z3.Sum(items) if len(items) > 1 else items[0]


def at_most(bools: Iterable[z3.BoolRef], k: int) -> z3.BoolRef:
    """At most ``k`` of ``bools`` hold (a cardinality constraint, cheap for the solver)."""
    items = list(bools)
    if k < 0:
        return z3.BoolVal(False)
    if k >= len(items):
        return z3.BoolVal(True)
    return z3.AtMost(*items, k)


def at_least(bools: Iterable[z3.BoolRef], k: int) -> z3.BoolRef:
    """At least ``k`` of ``bools`` hold."""
    items = list(bools)
    if k <= 0:
        return z3.BoolVal(True)
    if k > len(items):
        return z3.BoolVal(False)
    return z3.AtLeast(*items, k)


def exactly(bools: Iterable[z3.BoolRef], k: int) -> z3.BoolRef:
    """Exactly ``k`` of ``bools`` hold."""
    items = list(bools)
    return z3.And(at_most(items, k), at_least(items, k))


def saturating_inc(cfg: Config, x: Num) -> Num:
    """One more entry in a queue count (saturating at :func:`queue_cap`)."""
    cap = queue_cap(cfg)
    return z3.If(x >= cap, num(cap), x + 1)


def well_formed(sym: SymState) -> dict[str, z3.BoolRef]:
    """The encoding's domain as named conjuncts: values in range, canonical don't-cares.

    Every conjunct is about the encoding, not the model's safety, yet the proofs
    treat them like any other conjunct of the inductive invariant: each action
    must preserve them.
    """
    cfg = sym.cfg
    M, V, G, D, C = cfg.machine_pages, cfg.vms, cfg.guest_pages, cfg.guest_data_pages, cfg.vcpus
    T = cfg.tokens
    out: dict[str, list[z3.BoolRef]] = {"wf_ranges": [], "wf_canonical": [], "wf_lru_ranks": []}
    r, c = out["wf_ranges"], out["wf_canonical"]
    for m in range(M):
        r.append(z3.And(sym.i("content", m) >= 0, sym.i("content", m) <= T))
    r.append(z3.And(sym.i("idle") >= 0, sym.i("idle") <= cfg.pcpus))
    for v in range(V):
        for p in range(G):
            r.append(z3.And(sym.i("p2m", v, p) >= UNBACKED, sym.i("p2m", v, p) < M))
            r.append(z3.And(sym.i("use", v, p) >= BALLOON, sym.i("use", v, p) < D))
            r.append(z3.And(sym.i("swap_tok", v, p) >= 0, sym.i("swap_tok", v, p) <= T))
            c.append(z3.Implies(z3.Not(sym.b("swap", v, p)), sym.i("swap_tok", v, p) == 0))
        for q in range(G + 1):
            for name in ("inq", "dq"):
                r.append(z3.And(sym.i(name, v, q) >= 0, sym.i(name, v, q) <= queue_cap(cfg)))
        r.append(z3.And(sym.i("target", v) >= 0, sym.i("target", v) <= G))
        r.append(z3.And(sym.i("mtarget", v) >= 0, sym.i("mtarget", v) <= G))
        r.append(z3.And(sym.i("actual", v) >= 0, sym.i("actual", v) <= G + 1))
        lo = 1 if cfg.processors else 0
        hi = C if cfg.processors else 0
        for name in ("cpu_target", "mcpu"):
            r.append(z3.And(sym.i(name, v) >= lo, sym.i(name, v) <= hi))
        n = count(sym.b("lru", v, d) for d in range(D))
        for d in range(D):
            r.append(z3.And(sym.i("expected", v, d) >= 0, sym.i("expected", v, d) <= T))
            r.append(z3.And(sym.i("disk_tok", v, d) >= 0, sym.i("disk_tok", v, d) <= T))
            c.append(z3.Implies(z3.Not(sym.b("disk", v, d)), sym.i("disk_tok", v, d) == 0))
            rank = sym.i("rank", v, d)
            r.append(z3.And(rank >= 0, rank < D))
            out["wf_lru_ranks"].append(z3.If(sym.b("lru", v, d), z3.And(rank >= 0, rank < n),
                                             rank == 0))
            for e in range(d + 1, D):
                out["wf_lru_ranks"].append(z3.Implies(
                    z3.And(sym.b("lru", v, d), sym.b("lru", v, e)),
                    rank != sym.i("rank", v, e)))
        if not cfg.processors:
            for cc in range(C):
                c.append(z3.Not(sym.b("vcpus", v, cc)))
                c.append(z3.Not(sym.b("parked", v, cc)))
    if not cfg.processors:
        c.append(sym.i("idle") == 0)
    return {k: z3.And(v) for k, v in out.items()}


# Re-exported for the action and invariant encodings.
__all__ += ["constant_values", "count", "FREE", "BALLOON", "UNBACKED"]
