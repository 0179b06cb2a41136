"""The model's :class:`~ballast.model.state.State` as Z3 terms, and back.

A symbolic state is a flat map from a *key* (a field's name and its indices) to
a Z3 term, sized by the configuration and derived from the state schema
(:mod:`ballast.model.schema`): one Boolean per MPN for the host's ``free`` pool,
one number per (VM, PPN) for the VMM's map (``("p2m", vm, ppn)``), one count per
PPN for each queue (``("inflate_queue", vm, ppn)``), and so on. Sets become one
Boolean per element, queues (sorted, duplicates kept) a count per element, maps and
counters numbers, the guest's LRU order each resident VPN's position
(``lru_rank``), host swap and the guest's disk a flag and a token per page
(``swap_token``, ``disk_token``); see :func:`parts`.

The encoding is exact for every state in its *domain*: the states whose
queues hold PPNs in ``0..guest_pages`` (one past the end is what a hostile
guest may send) and whose host swap and guest disk hold at most one entry per
page. Two abstractions keep it finite and are exact for everything the model
looks at: a queue's count of one PPN saturates (see :func:`queue_cap`), and
the LRU list is kept as the order of each VPN's first place (later copies of
a VPN, which a hostile guest can produce, change no guard and no property).
:func:`well_formed` states the domain as Z3 constraints (the proofs show it is preserved,
like TLA+'s ``TypeOK``); :func:`encode` raises :class:`OutOfDomain` outside it.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> s0 = initial_state(cfg)
>>> decode_values(cfg, concrete_values(cfg, s0)) == s0
True
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeAlias

import z3

from ballast.errors import BallastError
from ballast.model.config import Config
from ballast.model.schema import SCHEMA, Field, Kind, Record, assemble
from ballast.model.state import BALLOON, FREE, UNBACKED, State

__all__ = [
    "Key",
    "beyond_queue_cap",
    "OutOfDomain",
    "SymState",
    "concrete_values",
    "decode_model",
    "decode_values",
    "encode",
    "keys",
    "parts",
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


def parts(f: Field) -> tuple[tuple[str, bool], ...]:
    """The symbolic parts of field ``f`` at each of its indices: (name, whether Boolean).

    A set is a Boolean per element, a queue a count per element, a map or counter a
    number; a partial map adds to its Boolean "has an entry" the entry's value
    (``swap_token``), an order adds to its membership each element's rank (``lru_rank``).

    >>> from ballast.model.schema import field
    >>> parts(field("inflate_queue")), parts(field("disk"))
    ((('inflate_queue', False),), (('disk', True), ('disk_token', False)))
    """
    if f.kind is Kind.SET:
        return ((f.key, True),)
    if f.kind is Kind.PARTIAL_MAP:
        assert f.values is not None
        return ((f.key, True), (f"{f.key}_{f.values.name}", False))
    if f.kind is Kind.ORDER:
        return ((f.key, True), (f"{f.key}_rank", False))
    return ((f.key, False),)


def _indices(f: Field, cfg: Config) -> list[tuple[int, ...]]:
    """Every index of field ``f`` (a VM's own fields: below the VM number)."""
    return list(itertools.product(*(d.range(cfg) for d in f.elements)))


_FIELD_OF_PART = {name: f for f in SCHEMA for name, _ in parts(f)}


def keys(cfg: Config) -> Iterator[tuple[Key, bool]]:
    """Every key of a configuration's symbolic state, with whether it is Boolean: the
    host's fields, then each VM's (host swap entries of the VM first), each field's
    parts at every index, in schema order."""
    for f in SCHEMA:
        if not f.per_vm:
            for idx in _indices(f, cfg):
                for name, is_bool in parts(f):
                    yield (name, *idx), is_bool
    for v in range(cfg.vms):
        for f in SCHEMA:
            if not f.per_vm:
                continue
            for idx in _indices(f, cfg):
                if f.record is Record.HOST and idx[0] != v:
                    continue
                for name, is_bool in parts(f):
                    yield ((name, *idx) if f.record is Record.HOST else (name, v, *idx)), is_bool


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
                       if _FIELD_OF_PART[str(k[0])].record is not Record.HOST and k[1] == vm])


def queue_cap(cfg: Config) -> int:
    """Where a queue's count of one PPN saturates.

    Only a hostile guest can make a queue long, and every guard of the model
    only compares queue lengths with ``2 * batch`` or with a target of at most
    ``guest_pages``, so for guards and state properties counts beyond this cap
    behave exactly like the cap. A step form that compares a queue's length
    before and after a step does not: once a count is at the cap, a report more
    of that PPN leaves the encoding unchanged. Only a VMM that already let the
    queues grow past :func:`~ballast.model.actions.report_queue_bound` gets
    there (the seeded fault ``vmm_accepts_flood``); the step that first breaks
    ``vmm_refuses_report_floods`` is seen exactly (see :func:`beyond_queue_cap`).
    """
    return max(2 * cfg.batch, cfg.guest_pages + 1)


def beyond_queue_cap(cfg: Config, s: State) -> bool:
    """Whether some queue of ``s`` holds one PPN more times than :func:`queue_cap`: the
    encoding then holds the cap in its place, exact for guards and state properties but
    not for a step form that compares queue lengths.

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> beyond_queue_cap(Config(), initial_state(Config()))
    False
    """
    cap = queue_cap(cfg)
    for f in SCHEMA:
        if f.kind is not Kind.QUEUE:
            continue
        for v in range(cfg.vms) if f.record is not Record.HOST else [0]:
            heads = [e[0] if isinstance(e, tuple) else e for e in f.read(s, v)]
            if any(heads.count(h) > cap for h in set(heads)):
                return True
    return False


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
    if len(s.vms) != cfg.vms or len(s.host.content) != cfg.machine_pages:
        raise OutOfDomain("the state does not have the configuration's sizes")
    out: dict[Key, int | bool] = {}
    for f, idx, inside, names in _plan(cfg):
        for v in range(cfg.vms) if f.record is not Record.HOST else [0]:
            prefix = (v,) if f.record is not Record.HOST else ()
            _encode_field(cfg, f, f.read(s, v), prefix, out, idx, inside, names)
    return out


@functools.lru_cache(maxsize=64)
def _plan(cfg: Config) -> tuple[tuple[Field, list[tuple[int, ...]], frozenset[tuple[int, ...]],
                                      list[str]], ...]:
    """Per field of the schema, worked out once per configuration: its indices (as a list
    and a set) and the names of its parts (the conversion of every state reads these)."""
    return tuple((f, _indices(f, cfg), frozenset(_indices(f, cfg)),
                  [name for name, _ in parts(f)]) for f in SCHEMA)


def _encode_field(cfg: Config, f: Field, value: Any, prefix: tuple[int, ...],
                  out: dict[Key, int | bool], idx: list[tuple[int, ...]],
                  inside: frozenset[tuple[int, ...]], names: list[str]) -> None:
    """Field ``f``'s concrete ``value`` as parts keyed ``(part, *prefix, *index)``."""
    if f.kind is Kind.COUNTER:
        out[(names[0], *prefix)] = value
        return
    if f.kind is Kind.MAP:
        if len(value) != len(idx):
            raise OutOfDomain(f"{_where(f, prefix)} does not have the configuration's size")
        for i, x in zip(idx, value):
            out[(names[0], *prefix, *i)] = x
        return
    entries: list[tuple[int, ...]] = (
        [tuple(e) for e in value] if f.kind is Kind.PARTIAL_MAP else [(x,) for x in value])
    heads = [e[:len(f.elements)] for e in entries]
    if any(h not in inside for h in heads):
        raise OutOfDomain(f"{_where(f, prefix)} holds an element outside {_domain_text(f)}")
    if f.kind is Kind.PARTIAL_MAP and len(set(heads)) != len(heads):
        raise OutOfDomain(f"{_where(f, prefix)} holds an entry twice")
    if f.kind is Kind.SET:
        members = set(heads)
        for i in idx:
            out[(names[0], *prefix, *i)] = i in members
    elif f.kind is Kind.QUEUE:
        for i in idx:
            out[(names[0], *prefix, *i)] = min(heads.count(i), queue_cap(cfg))
    elif f.kind is Kind.PARTIAL_MAP:
        got = {e[:-1]: e[-1] for e in entries}
        for i in idx:
            out[(names[0], *prefix, *i)] = i in got
            out[(names[1], *prefix, *i)] = got.get(i, 0)
    else:  # ORDER: an element listed twice (a hostile guest can get there) counts once
        order = list(dict.fromkeys(heads))
        for i in idx:
            out[(names[0], *prefix, *i)] = i in order
            out[(names[1], *prefix, *i)] = order.index(i) if i in order else 0


def _where(f: Field, prefix: tuple[int, ...]) -> str:
    """The field's path in the state (named only when a state does not fit)."""
    return f.path.replace("*", str(prefix[0]) if prefix else "*")


def _domain_text(f: Field) -> str:
    return " x ".join(f"{d.name} {d.text()}" for d in f.elements)


def decode_values(cfg: Config, val: Callable[[Key], int | bool] | Mapping[Key, int | bool]
                  ) -> State:
    """The concrete :class:`State` of an encoding given part by part."""
    get: Callable[[Key], int | bool] = val.__getitem__ if isinstance(val, Mapping) else val
    host: dict[str, Any] = {}
    vms: list[dict[str, Any]] = [{} for _ in range(cfg.vms)]
    for f in SCHEMA:
        for v in range(cfg.vms) if f.record is not Record.HOST else [0]:
            prefix = (v,) if f.record is not Record.HOST else ()
            (vms[v] if f.record is not Record.HOST else host)[f.key] = \
                _decode_field(cfg, f, get, prefix)
    return assemble(host, vms)


def _decode_field(cfg: Config, f: Field, get: Callable[[Key], int | bool],
                  prefix: tuple[int, ...]) -> Any:
    idx = _indices(f, cfg)
    names = [name for name, _ in parts(f)]

    def at(n: int, i: tuple[int, ...]) -> int:
        return int(get((names[n], *prefix, *i)))

    if f.kind is Kind.COUNTER:
        return int(get((names[0], *prefix)))
    if f.kind is Kind.MAP:
        return tuple(at(0, i) for i in idx)
    if f.kind is Kind.SET:
        return frozenset(i[0] for i in idx if get((names[0], *prefix, *i)))
    if f.kind is Kind.QUEUE:
        return tuple(i[0] for i in idx for _ in range(at(0, i)))
    if f.kind is Kind.PARTIAL_MAP:
        return tuple((*i, at(1, i)) for i in idx if get((names[0], *prefix, *i)))
    ranked = sorted((at(1, i), i[0]) for i in idx if get((names[0], *prefix, *i)))
    return tuple(x for _, x in ranked)


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

    Derived from the state schema: every number within its field's domain (a queue's
    count up to :func:`queue_cap`, a rank below the order's length), the value of a
    partial map's missing entry 0, a field whose feature is off empty (or 0), the ranks
    of an order distinct. Every conjunct is about the encoding, not the model's safety,
    yet the proofs treat them like any other conjunct of the inductive invariant: each
    action must preserve them.
    """
    cfg = sym.cfg
    out: dict[str, list[z3.BoolRef]] = {"wf_ranges": [], "wf_canonical": [], "wf_lru_ranks": []}
    r, c, o = out["wf_ranges"], out["wf_canonical"], out["wf_lru_ranks"]
    for f in SCHEMA:
        off = f.feature is not None and not getattr(cfg, f.feature)
        names = [name for name, _ in parts(f)]
        for v in range(cfg.vms) if f.record is not Record.HOST else [0]:
            prefix = (v,) if f.record is not Record.HOST else ()
            idx = _indices(f, cfg)
            if f.kind is Kind.COUNTER:
                assert f.values is not None
                x = sym.i(names[0], *prefix)
                lo, hi = (0, 0) if off else (f.values.low.of(cfg), f.values.high.of(cfg))
                r.append(z3.And(x >= lo, x <= hi))
                continue
            for i in idx:
                key = (*prefix, *i)
                if f.kind is Kind.MAP:
                    assert f.values is not None
                    x = sym.i(names[0], *key)
                    r.append(z3.And(x >= f.values.low.of(cfg), x <= f.values.high.of(cfg)))
                elif f.kind is Kind.QUEUE:
                    x = sym.i(names[0], *key)
                    r.append(z3.And(x >= 0, x <= queue_cap(cfg)))
                elif f.kind is Kind.PARTIAL_MAP:
                    assert f.values is not None
                    x = sym.i(names[1], *key)
                    r.append(z3.And(x >= f.values.low.of(cfg), x <= f.values.high.of(cfg)))
                    c.append(z3.Implies(z3.Not(sym.b(names[0], *key)), x == 0))
                elif f.kind is Kind.SET and off:
                    c.append(z3.Not(sym.b(names[0], *key)))
            if f.kind is Kind.ORDER:
                n = count(sym.b(names[0], *prefix, *i) for i in idx)
                for j, i in enumerate(idx):
                    member, rank = sym.b(names[0], *prefix, *i), sym.i(names[1], *prefix, *i)
                    r.append(z3.And(rank >= 0, rank < len(idx)))
                    o.append(z3.If(member, z3.And(rank >= 0, rank < n), rank == 0))
                    for e in idx[j + 1:]:
                        o.append(z3.Implies(z3.And(member, sym.b(names[0], *prefix, *e)),
                                            rank != sym.i(names[1], *prefix, *e)))
    return {k: z3.And(v) for k, v in out.items()}


# Re-exported for the action and invariant encodings.
__all__ += ["constant_values", "count", "FREE", "BALLOON", "UNBACKED"]
