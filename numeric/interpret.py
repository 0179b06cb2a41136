# mypy: disable-error-code="no-any-return"
"""The NumPy interpreter of the action kernels (:mod:`ballast.model.action_kernels`).

A kernel runs once for a whole batch: every value is an array with one row per
operation (page vectors shaped ``(batch, pages)``, VM values ``(batch,)``), and
the guard is a mask of the rows allowed to take effect; effects change only
those rows. The interpreter knows nothing of where the rows come from: it reads
and writes through a :class:`~ballast.numeric.rows.Rows` store.
:class:`~ballast.numeric.vm_rows.VmRows` is the store of the numeric engine, whose rows
are distinct VMs of one system (its shared host resources are handed out in row order);
a store whose rows are VMs of different states (a frontier of an explorer) needs only its
own :class:`~ballast.numeric.rows.Rows`.

The numeric core's other modules of the interpreter: :mod:`ballast.numeric.rows` (the
store protocols and their helpers), :mod:`ballast.numeric.vm_rows` (the engine's store),
:mod:`ballast.numeric.fields` (where the model's field names meet
:class:`~ballast.numeric.arrays.SystemArrays`, in one place), :mod:`ballast.numeric.page_sets`
(PPN-set arguments) and :mod:`ballast.numeric.state_ops` (the property kernels).

>>> import numpy as np
>>> from ballast.model.action_kernels import KERNELS
>>> from ballast.model.config import Config
>>> from ballast.numeric.arrays import SystemArrays
>>> from ballast.numeric.vm_rows import VmRows
>>> cfg = Config(vms=2, guest_pages=2, machine_pages=4)
>>> arr = SystemArrays.initial(cfg)
>>> run_kernel(KERNELS["host_set_target"], VmRows(arr, np.array([0, 1])),
...            {"pages": np.array([1, 1])}).tolist()
[True, True]
>>> arr.target.tolist()
[1, 1]
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Mapping

import numpy as np
import numpy.typing as npt

from ballast.errors import BallastError
from ballast.model.config import Config
from ballast.model.ops import Kernel, Value, vector_width
from ballast.numeric.onehot import OneHot, dense, one_hot
from ballast.numeric.page_sets import PageSets, page_sets
from ballast.numeric.rows import Rows, int_vector, per_row, uniform
from ballast.numeric.rowscan import first_k, row_counts, up_to_last
from ballast.numeric.vm_rows import VmRows

__all__ = ["NumpyOps", "guard_mask", "hostile_vms", "run_kernel"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


class _NumpyMemory:
    """The memory operations of :class:`NumpyOps`."""

    cfg: Config
    rows: Any
    args: Mapping[str, Any]
    ok: Mask
    _writing: bool
    _scalars: bool
    _guard_only: bool

    def arg(self, name: str) -> Value:
        raise NotImplementedError

    def _effect_begins(self) -> None:
        """Called by every operation that writes the rows, before it writes them: the
        guard is over. A guard-only run (:func:`guard_mask`) stops here."""
        if self._guard_only:
            raise _EffectReached
        self._writing = True

    def _arg_rows(self, name: str) -> Ints:
        raise NotImplementedError

    def _arg_one(self, name: str, width: int) -> OneHot:
        if self._scalars:  # one row: its number checked in Python
            i = int(self.args[name][0])
            return OneHot(np.array([i if 0 <= i < width else -1]), width)
        x = self._arg_rows(name)
        if len(x) and x.min() >= 0 and x.max() < width:  # each names an entry (as drawn)
            return OneHot(x, width)
        return OneHot(np.where((x >= 0) & (x < width), x, -1), width)

    def arg_page(self, name: str) -> Value:
        return self._arg_one(name, self.cfg.guest_pages)

    def arg_vpn(self, name: str) -> Value:
        return self._arg_one(name, self.cfg.guest_data_pages)

    def arg_is(self, name: str, value: str) -> Value:
        return np.array([x == value for x in self.args[name]], dtype=bool)

    def this_vm(self) -> Value:
        return self.rows.vm_numbers()

    def hostile(self) -> Value:
        vms = self.rows.vm_numbers()
        if self._scalars:
            return int(vms[0]) in self.cfg.hostile_vms
        return hostile_vms(self.cfg)[vms]

    def tokens(self, field: str) -> Value:
        return self.rows.read_tokens(field)

    def at_mpn(self, field: str, mpn: Value, otherwise: Value = None) -> Value:
        value = self.rows.at_mpn(field, mpn)
        if otherwise is None:
            return value
        # No MPN reads as 0 (or False), so only the entries where the other value is not 0
        # (the few pages on host swap) can change: those are set, not every entry chosen.
        other, mpn = np.asarray(otherwise), np.asarray(mpn)
        if other.shape != value.shape or mpn.shape != value.shape or \
                value.dtype != other.dtype or not value.flags.writeable:
            return np.where(mpn < 0, other, value)
        at = np.flatnonzero(other != 0)  # a mask scans faster than 64-bit numbers
        at = at[np.take(mpn, at) < 0]
        if len(at):
            value = value.copy() if value.base is not None else value
            value.ravel()[at] = other.ravel()[at]
        return value

    def units(self, field: str) -> Value:
        return self.rows.units(field)

    def lru_victim(self) -> Value:
        return self.rows.lru_victim()

    def pick(self, values: Value, onehot: Value) -> Value:
        values = dense(values)
        if self._scalars and type(onehot) is OneHot and values.ndim == 2:
            i = int(onehot.index[0])  # one row: its one entry, as a Python number
            return values[0, i].item() if i >= 0 else (False if values.dtype == bool else 0)
        if isinstance(onehot, OneHot):
            return onehot.gather(values, False if values.dtype == bool else 0)
        if values.dtype == bool:
            return (values & onehot).any(axis=1)
        return np.where(onehot, values, 0).sum(axis=1).astype(np.int64)

    def token_at(self, field: str, at: Value) -> Value:
        return self.rows.token_at(field, at)

    def other_mpn(self, other_vm: Value, other_at: Value) -> Value:
        return self.rows.other_mpn(other_vm, dense(other_at))

    def set_units(self, field: str, value: Value) -> None:
        self._effect_begins()
        self.rows.set_units(field, dense(value), self.ok)

    def set_vpns(self, field: str, value: Value) -> None:
        self._effect_begins()
        self.rows.write(field, dense(value), self.ok)

    def set_tokens(self, field: str, mask: Value, token: Value) -> None:
        self._effect_begins()
        self.rows.set_tokens(field, mask, token, self.ok)

    def drop_tokens(self, field: str, mask: Value) -> None:
        self._effect_begins()
        self.rows.drop_tokens(field, mask, self.ok)

    def queue_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        self._effect_begins()
        self.rows.queue_add_ppn(field, per_row(ppn, self.rows.n),
                                self.ok & per_row(when, self.rows.n))

    def set_add_ppn(self, field: str, ppn: Value, when: Value) -> None:
        self._effect_begins()
        self.rows.set_add_ppn(field, per_row(ppn, self.rows.n),
                              self.ok & per_row(when, self.rows.n))

    def queue_copy(self, dst: str, src: str) -> None:
        self._effect_begins()
        self.rows.queue_copy(dst, src, self.ok)

    def lru_use(self, vpn: Value, resident: Value) -> None:
        self._effect_begins()
        self.rows.lru_use(vpn, resident, self.ok)

    def lru_remove(self, mask: Value) -> None:
        self._effect_begins()
        self.rows.lru_remove(mask, self.ok)

    def touch(self, at: Value, token: Value, write: Value, cow: bool = True,
              lowest: bool = False) -> Value:
        assert not self._writing, "the VMM backs pages after the guard, before other effects"
        self._effect_begins()
        self.ok, mpn = self.rows.touch(at, token, write, cow, self.ok, lowest)
        return mpn

    def share(self, at: Value, other_vm: Value, other_at: Value, cow: bool = True) -> None:
        self._effect_begins()
        self.rows.share(dense(at), per_row(other_vm, self.rows.n), dense(other_at), cow,
                        self.ok)

    def swap_out_oldest(self) -> None:
        self._effect_begins()
        self.rows.swap_out_oldest(self.ok)

    def write_pages(self, mask: Value, token: Value) -> None:
        assert not self._writing, "the VMM writes pages after the guard, before other effects"
        self._effect_begins()
        self.ok = self.rows.write_pages(mask, token, self.ok)


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Broadcast a VM value (``(n,)``) against a vector (``(n, k)``)."""
    if type(a) is OneHot:
        a = a.dense()
    if type(b) is OneHot:
        b = b.dense()
    if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim != b.ndim \
            and a.ndim and b.ndim:  # a 0-d array is a constant, broadcast as it is
        if a.ndim == 1:
            a = a[:, None]
        else:
            b = b[:, None]
    return a, b


def _and_one(hot: OneHot, x: Any) -> Any:
    """``hot`` and ``x`` (a truth value, one per row, a vector or another one-hot)."""
    if len(hot.index) == 1 and type(x) is np.ndarray and x.dtype == bool and x.ndim:
        i = int(hot.index[0])  # one row: its one entry looked up in Python numbers
        held = x[0, i] if x.ndim == 2 else x[0]
        return OneHot(np.array([i if i >= 0 and held else -1], dtype=np.int64), hot.width)
    if isinstance(x, OneHot):
        return OneHot(np.where(hot.index == x.index, hot.index, -1), hot.width)
    if isinstance(x, (bool, np.bool_)) or (isinstance(x, np.ndarray) and x.ndim <= 1):
        return hot.keep(x)
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype == bool:
        return hot.keep(hot.gather(x, False))
    return np.logical_and(*_pair(hot, x))


_FILLED: dict[tuple[Any, ...], Any] = {}
"""The constant vectors :func:`_constant_vector` made, by shape, type and value."""


def _constant_vector(shape: tuple[int, int], value: Any) -> Any:
    """``value`` seen through every entry of a ``shape`` array: no array of that size is
    made, and each shape and value is made once (read-only, so it can be shared)."""
    key = (shape, type(value), value)
    known = _FILLED.get(key)
    if known is None:
        if len(_FILLED) >= 256:
            _FILLED.clear()
        known = _FILLED[key] = np.broadcast_to(np.asarray(value), shape)
    return known


_TRUTHS = (bool, np.bool_)
"""The types of a constant truth value in a kernel."""

_NUMBERS = (int, bool)
"""The types of a kernel's constants and, for one row read as numbers, its VM values."""


def _without_uniform(xs: tuple[Any, ...], decides: bool) -> tuple[tuple[Any, ...], Any]:
    """The operands of an ``and_`` (``decides`` False) or ``or_`` (True) with the vectors that
    are one constant everywhere (:meth:`NumpyOps.filled`, a ``not_`` of one) taken out: such
    a vector holding ``decides`` is the answer (it has the widest shape a kernel's value
    has); one holding the other value drops out where another operand is a vector too."""
    const = [x for x in xs if type(x) is np.ndarray and x.ndim == 2 and uniform(x) is not None]
    if not const:
        return xs, None
    shape = const[0].shape  # only where it is every vector's shape: the answer keeps it
    if any(getattr(x, "ndim", 0) == 2 and x.shape != shape for x in xs):
        return xs, None
    for x in const:
        if bool(x.flat[0]) is decides:
            return xs, x
    rest = tuple(x for x in xs if not any(x is c for c in const))
    if any(getattr(x, "ndim", 0) == 2 for x in rest):
        return rest, None
    return xs, None


def _per_row(xs: tuple[Any, ...]) -> bool:
    """Whether ``xs`` are two or more arrays of one entry per row (a loop, as below)."""
    if len(xs) < 2:
        return False
    for x in xs:
        if type(x) is not np.ndarray or x.ndim != 1:
            return False
    return True


def _chain(fn: Any, xs: tuple[Any, ...]) -> Any:
    """``fn`` (a logical ufunc of two) over all of ``xs``, left to right."""
    out = fn(xs[0], xs[1])
    for x in xs[2:]:
        out = fn(out, x)
    return out


def _has_truth(xs: tuple[Any, ...]) -> bool:
    """Whether one of ``xs`` is a constant truth value (a loop: a generator costs more than
    the test on the few operands of a kernel's logic)."""
    for x in xs:
        t = type(x)
        if t is bool or t is np.bool_:
            return True
    return False


def _constant(value: bool, xs: tuple[Any, ...]) -> Any:
    """``value`` everywhere, shaped like the widest of ``xs`` (a vector, a truth value per
    row, or a constant where every one is a constant)."""
    shapes = [np.shape(x) for x in xs if type(x) not in _TRUTHS]
    if not shapes:
        return value
    return np.full(max(shapes, key=len), value, dtype=bool)


def _lift(fn: Callable[[Any, Any], Any],
          numbers: Callable[[Any, Any], Any] | None = None
          ) -> Callable[["NumpyOps", Any, Any], Any]:
    """An operation of two values from ``fn`` on arrays (``numbers``: on two Python numbers,
    where NumPy's function would make a NumPy scalar at many times the cost)."""
    def op(self: "NumpyOps", a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta is np.ndarray and (tb is int or tb is np.ndarray and a.ndim == b.ndim):
            return fn(a, b)  # the usual operands: arrays of one shape, or with a constant
        if numbers is not None and ta in _NUMBERS and tb in _NUMBERS:
            return numbers(a, b)
        if ta is OneHot or tb is OneHot or (ta is np.ndarray and tb is np.ndarray
                                            and a.ndim != b.ndim):
            a, b = _pair(a, b)
        return fn(a, b)
    return op


@functools.lru_cache(maxsize=64)
def hostile_vms(cfg: Config) -> Mask:
    """Whether each VM of ``cfg`` is hostile (read-only, looked up by VM number).

    >>> hostile_vms(Config(vms=3, hostile_vms=frozenset({1}))).tolist()
    [False, True, False]
    """
    table = np.zeros(cfg.vms, dtype=bool)
    table[[v for v in cfg.hostile_vms if 0 <= v < cfg.vms]] = True
    table.flags.writeable = False
    return table


def _all_true(n: int) -> Mask:
    """A fresh guard of ``n`` rows, every one holding: a copy of a template of the widest
    guard made so far (a fraction of ``np.ones``, whose cost is mostly its own)."""
    global _ALL_TRUE
    if n > len(_ALL_TRUE):
        _ALL_TRUE = np.ones(max(n, 2 * len(_ALL_TRUE)), dtype=bool)
        _ALL_TRUE.flags.writeable = False
    return _ALL_TRUE[:n].copy()


_ALL_TRUE = np.ones(1024, dtype=bool)
_ALL_TRUE.flags.writeable = False

class NumpyOps(_NumpyMemory):
    """:class:`~ballast.model.ops.Ops` over a batch of rows; ``ok`` is the guard so far.

    ``scalars``: the rows are one row, and a VM's value (a field, an argument) is read as a
    Python number rather than an array of one entry. One operation per call (shrinking,
    replay) then computes its guard in Python numbers, a fraction of NumPy's cost on
    arrays of one entry; page vectors stay arrays, and a number stands for the one row's
    entry wherever an array would (the way a kernel's constants already do)."""

    def __init__(self, rows: Rows, args: Mapping[str, Any], scalars: bool = False,
                 guard_only: bool = False) -> None:
        self.cfg = rows.cfg
        self.rows = rows
        self.args = args
        self._scalars = scalars and rows.n == 1
        self.ok: Mask = _all_true(rows.n)
        self._sets: dict[str, PageSets] = {}
        self._writing = False
        self._guard_only = guard_only
        # The last mask whose first entries were found, and them: a kernel asks whether
        # a mask has an entry right beside asking for its first (one pass, not two).
        self._first: tuple[Any, OneHot] | None = None

    # -- reading -----------------------------------------------------------------------
    def vm(self, field: str) -> Value:
        return self._number(self.rows.read(field))

    def pages(self, field: str) -> Value:
        return self.rows.read(field)

    vcpus = vpns = pages

    def host(self, field: str) -> Value:
        return self.rows.host(field)

    def queued(self, field: str) -> Value:
        return self.rows.read(field)

    def queue_len(self, field: str) -> Value:
        return self._number(self.rows.queue_len(field))

    def _number(self, value: Any) -> Any:
        """A VM's value (one entry per row) as the kernel sees it: the one row's entry as a
        Python number where the rows are read as ``scalars``."""
        return value[0].item() if self._scalars else value

    def beyond(self, field: str) -> Value:
        return self.rows.beyond(field)

    # -- arguments -----------------------------------------------------------------------
    def arg(self, name: str) -> Value:
        if self._scalars:
            return int(self.args[name][0])
        return self._arg_rows(name)

    def _arg_rows(self, name: str) -> Ints:
        """A number argument, one entry per row."""
        return int_vector(self.args[name])

    def _ppn_set(self, name: str) -> "PageSets":
        """A PPN-set argument (a boolean mask per row, a list of tuples or a
        :class:`PageSets`) as a :class:`PageSets`."""
        known = self._sets.get(name)
        if known is not None:
            return known
        raw = self.args[name]
        if isinstance(raw, PageSets):
            out = raw
        elif isinstance(raw, np.ndarray) and raw.dtype == bool:
            out = PageSets(raw, row_counts(raw), np.ones(self.rows.n, dtype=bool),
                           np.zeros(self.rows.n, dtype=bool), None)
        else:
            out = page_sets(raw, np.ones(len(raw), dtype=np.int64), self.cfg.guest_pages)
        self._sets[name] = out
        return out

    def arg_pages(self, name: str) -> Value:
        return self._ppn_set(name).mask

    def arg_size(self, name: str) -> Value:
        return self._number(self._ppn_set(name).size)

    def arg_distinct(self, name: str) -> Value:
        return self._number(self._ppn_set(name).distinct)

    def arg_beyond(self, name: str) -> Value:
        return self._number(self._ppn_set(name).beyond)

    def arg_beyond_within(self, name: str, field: str) -> Value:
        sets = self._ppn_set(name)
        if sets.outside is None or not sets.beyond.any():
            return True
        have = self.rows.beyond_values(field)
        return np.array([set(x) <= h for x, h in zip(sets.outside, have)], dtype=bool)

    def arg_vcpu(self, name: str) -> Value:
        return self._arg_rows(name)[:, None] == np.arange(self.cfg.vcpus)

    # -- arithmetic and logic ------------------------------------------------------------
    def and_(self, *xs: Value) -> Value:
        if _has_truth(xs):
            # A constant: False decides, True drops out (a logical operation against a
            # scalar costs NumPy about twenty times one between two arrays).
            if any(type(x) in _TRUTHS and not x for x in xs):
                return _constant(False, xs)
            xs = tuple(x for x in xs if type(x) not in _TRUTHS)
            if not xs:
                return True
        if _per_row(xs):  # one truth value per row each: no constant vectors to look for
            return _chain(np.logical_and, xs)
        if len(xs) > 1:
            xs, decided = _without_uniform(xs, False)
            if decided is not None:
                return decided
        hot = None
        for x in xs:
            if type(x) is OneHot:
                hot = x
                break
        if hot is not None:
            # One named entry per row stays one: keep the rows where the rest holds there.
            out: Any = hot
            for x in xs:
                if x is not hot:
                    out = _and_one(out, x)
            return out
        out = xs[0]
        for x in xs[1:]:
            out = np.logical_and(*_pair(out, x))
        return out

    def or_(self, *xs: Value) -> Value:
        if _has_truth(xs):
            if any(type(x) in _TRUTHS and x for x in xs):
                return _constant(True, xs)
            xs = tuple(x for x in xs if type(x) not in _TRUTHS)
            if not xs:
                return False
        if _per_row(xs):
            return _chain(np.logical_or, xs)
        if len(xs) > 1:
            xs, decided = _without_uniform(xs, True)
            if decided is not None:
                return decided
        out = xs[0]
        for x in xs[1:]:
            out = np.logical_or(*_pair(out, x))
        return out

    def not_(self, x: Value) -> Value:
        if type(x) is bool:
            return not x
        same = uniform(x)
        if same is not None:  # a constant vector stays one (see filled)
            return _constant_vector(x.shape, not same)
        return np.logical_not(dense(x))

    def implies(self, a: Value, b: Value) -> Value:
        return np.logical_or(*_pair(np.logical_not(dense(a)), b))

    eq = _lift(operator.eq)
    ne = _lift(operator.ne)
    lt = _lift(operator.lt)
    le = _lift(operator.le)
    add = _lift(operator.add)
    sub = _lift(operator.sub)
    minimum = _lift(np.minimum, min)
    maximum = _lift(np.maximum, max)

    def where(self, cond: Value, a: Value, b: Value) -> Value:
        if type(cond) is bool and type(a) in _NUMBERS and type(b) in _NUMBERS:
            return a if cond else b  # one row's numbers (see ``scalars``)
        if isinstance(a, OneHot) and isinstance(b, OneHot) and np.ndim(cond) <= 1:
            return OneHot(np.where(cond, a.index, b.index), a.width)
        cond, a = _pair(cond, a)
        cond, b = _pair(cond, b)
        same = uniform(cond)
        if same is not None:
            # One side everywhere (a reset): no selection, the other side unread.
            shape = np.broadcast_shapes(cond.shape, np.shape(a), np.shape(b))
            return np.broadcast_to(a if same else b, shape)
        return np.where(cond, a, b)

    # -- reductions and selections ----------------------------------------------------------
    def count(self, mask: Value) -> Value:
        if isinstance(mask, OneHot):
            return self._number(mask.present().astype(np.int64))
        if self._scalars:
            return int(np.count_nonzero(mask))
        return row_counts(mask)

    def any(self, mask: Value) -> Value:
        if type(mask) is OneHot:
            return bool(mask.index[0] >= 0) if self._scalars else mask.present()
        if self._first is not None and self._first[0] is mask:
            return self._first[1].present()
        return mask.any(axis=1)

    def all(self, mask: Value) -> Value:
        return dense(mask).all(axis=1)

    def lowest(self, mask: Value, k: Value) -> Value:
        if isinstance(k, int) and k == 1:
            if type(mask) is OneHot:
                return mask
            hot = one_hot(mask)  # the first entry that holds, as its index
            self._first = (mask, hot)
            return hot
        return first_k(dense(mask), k)

    def up_to_last(self, mask: Value) -> Value:
        return up_to_last(dense(mask))

    def unit_whole(self, mask: Value) -> Value:
        mask, u = dense(mask), self.cfg.balloon_unit_pages
        whole = mask.reshape(len(mask), mask.shape[1] // u, u).all(axis=2)  # rows may be none
        return np.repeat(whole, u, axis=1)

    def filled(self, kind: str, value: Value) -> Value:
        return _constant_vector((self.rows.n, vector_width(self.cfg, kind)), value)

    def unit_first(self) -> Value:
        first = np.arange(self.cfg.guest_pages) % self.cfg.balloon_unit_pages == 0
        return np.tile(first, (self.rows.n, 1))

    # -- guard and effect -------------------------------------------------------------------
    def require(self, cond: Value) -> None:
        assert not self._writing, "a kernel requires nothing after its effect"
        if cond is not True:
            self.ok &= cond

    def set_vm(self, field: str, value: Value) -> None:
        self._effect_begins()
        self.rows.write(field, dense(value), self.ok)

    set_pages = set_vcpus = set_vm

    def set_add(self, field: str, mask: Value) -> None:
        self._set_each(field, mask, True)

    def set_remove(self, field: str, mask: Value) -> None:
        self._set_each(field, mask, False)

    def _set_each(self, field: str, mask: Value, value: bool) -> None:
        """Put the PPNs of ``mask`` in the set ``field`` or take them out: entry by entry
        where the store writes entries (the set's other PPNs are not read)."""
        write_at = getattr(self.rows, "write_at", None)
        if write_at is not None and (type(mask) is OneHot or type(mask) is np.ndarray
                                     and mask.ndim == 2 and mask.dtype == bool):
            self._effect_begins()
            write_at(field, mask, value, self.ok)
            return
        now = self.pages(field)
        self.set_pages(field, self.or_(now, mask) if value else self.and_(now, self.not_(mask)))

    def set_at(self, field: str, at: Value, value: Value) -> None:
        write_at = getattr(self.rows, "write_at", None)
        if write_at is not None and (isinstance(at, OneHot) or type(at) is np.ndarray
                                     and at.ndim == 2 and at.dtype == bool):
            self._effect_begins()
            write_at(field, at, value, self.ok)
            return
        self.set_vm(field, self.where(at, value, self.rows.read(field)))

    def holding(self, vpn: Value) -> Value:
        index = getattr(self.rows, "holding", None)
        held = index(vpn) if index is not None else None
        return self.eq(self.rows.read("guest.ppn_use"), vpn) if held is None else held

    def lowest_holding(self, value: Value) -> tuple[Value, Value]:
        scan = getattr(self.rows, "lowest_holding", None)
        first = scan(value) if scan is not None else None
        if first is None:  # no scan of these rows: the whole page table read
            held = self.eq(self.rows.read("guest.ppn_use"), value)
            return self.lowest(held, 1), self.any(held)
        return first, self.any(first)

    def queue_add(self, field: str, mask: Value) -> None:
        self._effect_begins()
        self.rows.queue_add(field, dense(mask), self.ok)

    def queue_clear(self, field: str) -> None:
        self._effect_begins()
        self.rows.queue_clear(field, self.ok)

    def carry_beyond(self, dst: str, src: str) -> None:
        self._effect_begins()
        self.rows.carry_beyond(dst, src, self.ok)

    def clear_beyond(self, field: str) -> None:
        self._effect_begins()
        self.rows.clear_beyond(field, self.ok)

    def claim(self, field: str, n: Value) -> None:
        assert not self._writing, "a claim comes after the guard, before the effect"
        need = per_row(n, self.rows.n, np.int64)
        self._effect_begins()
        self.ok = self.rows.claim(field, need, self.ok)

    def give(self, field: str, n: Value) -> None:
        self._effect_begins()
        self.rows.give(field, n, self.ok)

    def _mask(self, mask: Value) -> Value:
        """A mask for the store: a :class:`OneHot` as it is where the store takes one."""
        return mask if isinstance(self.rows, VmRows) else dense(mask)

    def unback(self, mask: Value, by_balloon: bool, scrub: bool = True) -> None:
        self._effect_begins()
        self.rows.unback(self._mask(mask), self.ok, by_balloon, scrub)

    def drop_swap(self, mask: Value) -> None:
        self._effect_begins()
        self.rows.drop_swap(self._mask(mask), self.ok)


class _EffectReached(BallastError):
    """A guard-only run reached the kernel's effect (never leaves :func:`guard_mask`)."""


def guard_mask(kernel: Kernel, rows: Rows, args: Mapping[str, Any]) -> Mask:
    """The rows whose guard holds where ``kernel``'s effect begins, read without writing
    the rows: every row :func:`run_kernel` would change is among them (an operation that
    both guards and writes, such as taking a free host page, may still refuse some).

    A caller with many rows and few enabled runs the kernel on the enabled rows alone.

    >>> import numpy as np
    >>> from ballast.model.action_kernels import KERNELS
    >>> from ballast.model.config import Config
    >>> from ballast.numeric.arrays import SystemArrays
    >>> from ballast.numeric.vm_rows import VmRows
    >>> arr = SystemArrays.initial(Config(vms=2, guest_pages=2, machine_pages=4))
    >>> guard_mask(KERNELS["vmm_release"], VmRows(arr, np.array([0, 1])), {}).tolist()
    [False, False]
    """
    o = NumpyOps(rows, args, guard_only=True)
    try:
        kernel(o)
    except _EffectReached:
        pass
    return o.ok


def run_kernel(kernel: Kernel, rows: Rows, args: Mapping[str, Any],
               scalars: bool = False) -> Mask:
    """Run ``kernel`` on every row; the mask of rows whose guard held (and took effect).
    ``scalars``: a VM's values as Python numbers where the rows are one row (see
    :class:`NumpyOps`)."""
    o = NumpyOps(rows, args, scalars)
    kernel(o)
    rows.commit()
    return o.ok
