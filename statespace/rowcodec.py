"""A state as one fixed-width row of small integers, and that row packed into 64-bit words.

The frontier explorer (:mod:`ballast.statespace.frontier`) holds states as rows
of a NumPy array. The layout is derived from the state schema
(:data:`ballast.model.schema.SCHEMA`), field by field and VM by VM, never listed
by hand: one column per element of a field's domain, holding

* for a **set**: 1 when the element is in it;
* for a **map**: the value at that index;
* for a **partial map**: 0 when the index has no entry, else the value + 1 - its low end;
* for a **queue** (a multiset): how many times the element is on it;
* for an **order**: 0 when absent, else its position + 1;
* for a **counter**: its value (one column).

Every column has a range (from the field's domain in the configuration); the
columns are packed, range by range, into as few 64-bit words as hold them
(:meth:`RowLayout.pack`): the visited-set key of a state. A value outside its
column's range (a queue reported to more often than the layout allows) is an
:class:`RowOverflow`, never a silently wrong key.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=2, guest_pages=1, guest_data_pages=1, machine_pages=7)
>>> lay = RowLayout(cfg)
>>> s = initial_state(cfg)
>>> row = lay.encode(s)
>>> lay.decode(row) == s
True
>>> keys = lay.pack(row[None, :])
>>> keys.shape[1] == lay.words, bool((lay.unpack(keys)[0] == row).all())
(True, True)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

from ballast.errors import BallastError
from ballast.model.config import Config
from ballast.model.schema import SCHEMA, Field, Kind, Record
from ballast.model.state import BalloonModule, GuestState, HostState, State, VmState

__all__ = ["QUEUE_MAX", "Column", "RowLayout", "RowOverflow"]

Rows = npt.NDArray[np.int16]
Keys = npt.NDArray[np.uint64]

QUEUE_MAX = 7
"""How often one PPN may be on a report queue at once in a row (3 bits of the key)."""


_EMPTY_SET: frozenset[Any] = frozenset()


class RowOverflow(BallastError):
    """A state holds a value its row layout has no room for."""


@dataclass(frozen=True)
class Column:
    """One column of the row: which field, of which VM, at which index, and its range."""

    key: str
    """The field's encoding name (:attr:`ballast.model.schema.Field.key`)."""
    vm: int | None
    """The VM for a per-VM field, None for the host's."""
    index: tuple[int, ...]
    """The element (set, queue, order) or the index (map, partial map); () for a counter."""
    low: int
    high: int

    @property
    def bits(self) -> int:
        """Bits the column takes in a packed key."""
        return (self.high - self.low).bit_length()


def _block(f: Field, cfg: Config, vm: int | None) -> list[Column]:
    """The columns of field ``f`` (of VM ``vm``)."""
    if f.kind is Kind.COUNTER:
        assert f.values is not None
        if f.feature is not None and not getattr(cfg, f.feature):
            return [Column(f.key, vm, (), 0, 0)]  # switched off: always 0
        r = f.values.range(cfg)
        return [Column(f.key, vm, (), r.start, max(r.start, r.stop - 1))]
    idx = list(itertools.product(*(d.range(cfg) for d in f.elements)))
    if f.kind is Kind.SET:
        lo, hi = 0, 1
    elif f.kind is Kind.MAP:
        assert f.values is not None
        r = f.values.range(cfg)
        lo, hi = r.start, max(r.start, r.stop - 1)
    elif f.kind is Kind.PARTIAL_MAP:
        assert f.values is not None
        lo, hi = 0, f.values.size(cfg)
    elif f.kind is Kind.QUEUE:
        lo, hi = 0, QUEUE_MAX
    else:  # ORDER
        lo, hi = 0, len(idx)
    return [Column(f.key, vm, i, lo, hi) for i in idx]


class RowLayout:
    """The row layout of one configuration: columns, encoding, decoding and packing."""


    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.columns: list[Column] = []
        self.span: dict[tuple[str, int | None], tuple[int, int]] = {}
        """(field key, VM or None) -> (first column, end) of its block."""
        host = [f for f in SCHEMA if f.record is Record.HOST]
        per_vm = [f for f in SCHEMA if f.record is not Record.HOST]
        self._host_fields = host
        self._vm_fields = per_vm
        for f in host:
            self._add(f, None)
        for v in range(cfg.vms):
            for f in per_vm:
                self._add(f, v)
        self.width = len(self.columns)
        self.low = np.array([c.low for c in self.columns], dtype=np.int64)
        self.high = np.array([c.high for c in self.columns], dtype=np.int64)
        self._lay_out_words()
        self._make_codecs(host, per_vm)
        self._make_product_packing()
        self._make_unpack_runs()

    def _lay_out_words(self) -> None:
        """Each column's word and shift, column after column, a column never straddling
        two words; the words and bits of a row."""
        self._word: list[int] = []
        self._shift: list[int] = []
        word, used = 0, 0
        for c in self.columns:
            if c.bits == 0:
                self._word.append(-1)
                self._shift.append(0)
                continue
            if used + c.bits > 64:
                word, used = word + 1, 0
            self._word.append(word)
            self._shift.append(used)
            used += c.bits
        self.words = word + 1
        self.bits = sum(c.bits for c in self.columns)
        self._by_word = [[(i, self._shift[i]) for i in range(self.width) if self._word[i] == w]
                         for w in range(self.words)]

    def _make_codecs(self, host: list[Field], per_vm: list[Field]) -> None:
        """The encoders and decoders of the ``host`` and ``per_vm`` fields, and the memos of
        decoded records."""
        # Encoders and decoders per field, in the dataclasses' own field order.
        cfg = self.cfg
        rec_attr = {Record.VM: None, Record.GUEST: "guest", Record.MODULE: "module"}
        self._host_enc = [(f.name, _encoder(f, cfg)) for f in host]
        self._vm_enc = [(rec_attr[f.record], f.name, _encoder(f, cfg)) for f in per_vm]
        self._host_end = self.span[(per_vm[0].key, 0)][0] if cfg.vms else self.width
        self._vm_width = (self.width - self._host_end) // max(1, cfg.vms)
        self._host_memo: dict[tuple[int, ...], HostState] = {}
        self._vm_memo: dict[tuple[int, ...], VmState] = {}
        self._cells_of: dict[int, tuple[object, list[int]]] = {}
        # Records are built by field name: the dataclasses' field order need not follow the
        # schema's (a VM's own fields may come after its guest and module records).
        self._host_dec = [(f.name, _decoder(f, cfg, self.span[(f.key, None)])) for f in host]
        self._vm_dec = [tuple([(f.name, _decoder(f, cfg, self.span[(f.key, v)]))
                               for f in per_vm if f.record is r]
                              for r in (Record.VM, Record.GUEST, Record.MODULE))
                        for v in range(cfg.vms)]

    def _make_product_packing(self) -> None:
        """What :meth:`repack` multiplies by: each column's place in its word, and in the
        float32 chunks of at most 24 bits."""
        # Packing as products: a column's bits never overlap another's in its word, so the
        # sum of (value above the low end) x 2**shift is their OR. The words are cut into
        # chunks of at most 24 bits, whose sums a float32 product holds exactly; a chunk
        # is then shifted into its word. (int64 products, which wrap modulo 2**64 as the
        # words do, serve layouts whose ranges are not 16-bit.)
        self._place = np.zeros((self.width, self.words), dtype=np.int64)
        for i, (w, shift) in enumerate(zip(self._word, self._shift)):
            if w >= 0:
                self._place[i, w] = np.array(1 << shift, dtype=np.uint64).view(np.int64)
        self._span = (self.high - self.low).astype(np.uint64)
        # 16-bit differences are exact enough to find every value outside its range
        # (wrapped or not, it lands above the span) when spans and low ends are small.
        self._small = bool(int((self.high - self.low).max(initial=0))
                           + int(np.abs(self.low).max(initial=0)) < 2**15)
        self._low16 = self.low.astype(np.int16) if self._small else self.low
        self._span16 = np.minimum(self.high - self.low, 2**16 - 1).astype(np.uint16)
        chunks: list[tuple[int, int, list[tuple[int, int]]]] = []
        for w, cols in enumerate(self._by_word):
            for at, shift in sorted(cols, key=lambda c: c[1]):
                end = shift + self.columns[at].bits
                if not chunks or chunks[-1][0] != w or end - chunks[-1][1] > 24:
                    chunks.append((w, shift, []))
                chunks[-1][2].append((at, shift))
        self._chunk_place = np.zeros((self.width, len(chunks)), dtype=np.float32)
        for k, (_, base, members) in enumerate(chunks):
            for at, shift in members:
                self._chunk_place[at, k] = float(2 ** (shift - base))
        self._chunks = [(w, np.uint64(base)) for w, base, _ in chunks]

    def _make_unpack_runs(self) -> None:
        """What unpacking reads a word at a time: the run of columns in each word."""
        # Unpacking a word at a time: the columns in one word are one run (a column of no
        # bits, constant, joins the run before it with a mask of nothing).
        home = [max(0, w) for w in itertools.accumulate(self._word, max)]
        self._runs: list[tuple[int, int, int, npt.NDArray[np.uint64], npt.NDArray[np.uint64],
                               npt.NDArray[np.int16]]] = []
        for w in range(self.words):
            run = [i for i in range(self.width) if home[i] == w]
            if run:
                lo, hi = run[0], run[-1] + 1
                self._runs.append((
                    w, lo, hi, np.array(self._shift[lo:hi], dtype=np.uint64),
                    np.array([(1 << c.bits) - 1 for c in self.columns[lo:hi]], dtype=np.uint64),
                    self.low[lo:hi].astype(np.int16)))

    def _add(self, f: Field, vm: int | None) -> None:
        cols = _block(f, self.cfg, vm)
        self.span[(f.key, vm)] = (len(self.columns), len(self.columns) + len(cols))
        self.columns += cols

    def cols(self, key: str, vm: int | None = None) -> range:
        """The columns of field ``key`` (of VM ``vm``)."""
        a, b = self.span[(key, vm)]
        return range(a, b)

    # -- one state <-> one row ------------------------------------------------------
    def encode(self, s: State) -> Rows:
        """The row of state ``s``."""
        row = np.array(self.encode_list(s), dtype=np.int16)
        self.check(row[None, :])
        return row

    def encode_list(self, s: State) -> list[int]:
        """The row of state ``s`` as a list (unchecked: :meth:`pack` checks ranges).

        Parts that :meth:`decode` built are not encoded again: their cells are kept.
        """
        known = self._cells_of
        got = known.get(id(s.host))
        out: list[int] = list(got[1]) if got is not None and got[0] is s.host else []
        if not out:
            host = s.host
            for name, enc in self._host_enc:
                out += enc(getattr(host, name))
        for vm in s.vms:
            got = known.get(id(vm))
            if got is not None and got[0] is vm:
                out += got[1]
                continue
            for rec, name, enc in self._vm_enc:
                out += enc(getattr(vm if rec is None else getattr(vm, rec), name))
        return out

    def decode(self, row: Sequence[int] | npt.NDArray[Any]) -> State:
        """The state of a row.

        Host and VM parts are interned: equal parts decode to the same object (a check
        that compares parts by identity first stays quick, a result can be remembered by
        the parts' identities, and the cells of a decoded part are known when a successor
        that keeps it is encoded). :meth:`forget` drops them.
        """
        vals = row.tolist() if isinstance(row, np.ndarray) else list(row)
        h = self._host_end
        hkey = tuple(vals[:h])
        host = self._host_memo.get(hkey)
        if host is None:
            host = self._host_memo[hkey] = HostState(
                **{name: dec(vals) for name, dec in self._host_dec})
            self._cells_of[id(host)] = (host, list(hkey))
        vms = []
        w = self._vm_width
        for v, (vm_dec, guest_dec, module_dec) in enumerate(self._vm_dec):
            vkey = tuple(vals[h + v * w:h + (v + 1) * w])
            vm = self._vm_memo.get(vkey)
            if vm is None:
                fields: dict[str, Any] = {name: dec(vals) for name, dec in vm_dec}
                fields["guest"] = GuestState(**{name: dec(vals) for name, dec in guest_dec})
                fields["module"] = BalloonModule(**{name: dec(vals) for name, dec in module_dec})
                vm = VmState(**fields)
                self._vm_memo[vkey] = vm
                self._cells_of[id(vm)] = (vm, list(vkey))
            vms.append(vm)
        return State(host, tuple(vms))

    def intern_host(self, host: HostState) -> HostState:
        """The interned part equal to ``host`` (see :meth:`decode`)."""
        got = self._cells_of.get(id(host))
        if got is not None and got[0] is host:
            return host
        cells: list[int] = []
        for name, enc in self._host_enc:
            cells += enc(getattr(host, name))
        key = tuple(cells)
        known = self._host_memo.get(key)
        if known is not None:
            return known
        self._host_memo[key] = host
        self._cells_of[id(host)] = (host, cells)
        return host

    def intern_vm(self, vm: VmState) -> VmState:
        """The interned part equal to ``vm`` (see :meth:`decode`)."""
        got = self._cells_of.get(id(vm))
        if got is not None and got[0] is vm:
            return vm
        cells: list[int] = []
        for rec, name, enc in self._vm_enc:
            cells += enc(getattr(vm if rec is None else getattr(vm, rec), name))
        key = tuple(cells)
        known = self._vm_memo.get(key)
        if known is not None:
            return known
        self._vm_memo[key] = vm
        self._cells_of[id(vm)] = (vm, cells)
        return vm

    @property
    def host_end(self) -> int:
        """The first column after the host's (the VMs' columns follow, VM by VM)."""
        return self._host_end

    @property
    def vm_width(self) -> int:
        """Columns of one VM."""
        return self._vm_width

    def cells(self, part: HostState | VmState) -> list[int]:
        """The cells of an interned part (see :meth:`intern_host`, :meth:`intern_vm`)."""
        got = self._cells_of[id(part)]
        assert got[0] is part
        return got[1]

    def interned(self) -> int:
        """How many parts are interned."""
        return len(self._cells_of)

    def forget(self) -> None:
        """Drop the interned parts (an identity seen before may now name another part)."""
        self._host_memo.clear()
        self._vm_memo.clear()
        self._cells_of.clear()

    def check(self, rows: Rows) -> None:
        """Raise :class:`RowOverflow` if a value of ``rows`` is outside its column's range."""
        bad = (rows < self.low) | (rows > self.high)
        if bad.any():
            c = self.columns[int(np.nonzero(bad.any(axis=0))[0][0])]
            where = "host" if c.vm is None else f"VM {c.vm}"
            raise RowOverflow(f"{where} field {c.key} at {c.index} holds a value outside "
                              f"{c.low}..{c.high}: the frontier's row layout cannot hold it")

    # -- rows <-> packed keys ---------------------------------------------------------
    def pack(self, rows: Rows) -> Keys:
        """The packed keys of ``rows``: shape ``(n, words)``."""
        if not self._small or rows.dtype != np.int16:
            above = rows.astype(np.int64) - self.low
            # One comparison finds values below (negative: huge unsigned) or above a range.
            if (above.view(np.uint64) > self._span).any():
                self.check(rows)
            packed: Keys = (above @ self._place).view(np.uint64)
            return packed
        # In 16 bits: a value outside its range lands above the span, wrapped or not.
        above16 = (rows - self._low16).view(np.uint16)
        if (above16 > self._span16).any():
            self.check(rows)
        parts = (above16.astype(np.float32) @ self._chunk_place).astype(np.uint64)
        out = np.zeros((rows.shape[0], self.words), dtype=np.uint64)
        for c, (w, base) in enumerate(self._chunks):
            out[:, w] |= parts[:, c] << base
        return out

    def repack(self, keys: Keys, before: Rows, after: Rows,
               changed: npt.NDArray[np.int64] | None = None) -> Keys:
        """The packed keys of ``after``, given ``keys``, the packed keys of ``before`` (row
        for row): a key is a sum of each column's value above its low end times its place,
        so only the columns where some row changed are read (``changed``: those columns,
        where the caller has them). A step changes a few columns of a row; this costs
        those columns' work, not the row's.

        >>> from ballast.model.config import Config
        >>> from ballast.model.state import initial_state
        >>> lay = RowLayout(Config(vms=2, guest_pages=1, guest_data_pages=1, machine_pages=7))
        >>> before = lay.encode(initial_state(lay.cfg))[None, :]
        >>> after = before.copy()
        >>> after[0, lay.cols("target", 1)[0]] = 1
        >>> bool((lay.repack(lay.pack(before), before, after) == lay.pack(after)).all())
        True
        """
        if changed is None:
            changed = self.changed_columns(before, after)
        if len(changed) * 4 > self.width:
            return self.pack(after)
        out = keys.copy()
        if not len(changed):
            return out
        cells = after[:, changed].astype(np.int64)
        if ((cells < self.low[changed]) | (cells > self.high[changed])).any():
            self.check(after)
        # Differences times places wrap modulo 2**64 as the words do: the sum is exact.
        cells -= before[:, changed]
        out += (cells @ self._place[changed]).view(np.uint64)
        return out

    @staticmethod
    def changed_columns(before: Rows, after: Rows) -> npt.NDArray[np.int64]:
        """The columns where some row of ``after`` differs from the same row of ``before``."""
        return np.flatnonzero((after != before).any(axis=0))

    def span_code(self, keys: Keys, start: int, stop: int) -> npt.NDArray[np.int64] | None:
        """Per key, one number that the cells of columns ``start``..``stop`` determine and
        that determines them (their bits in column order, read off the key with shifts and
        masks, never unpacked), or None where those cells take more than 63 bits. Spans
        whose columns have the same ranges give equal numbers for equal cells.

        >>> from ballast.model.config import Config
        >>> from ballast.model.state import initial_state
        >>> lay = RowLayout(Config(vms=2, guest_pages=1, guest_data_pages=1, machine_pages=7))
        >>> rows = lay.encode(initial_state(lay.cfg))[None, :].repeat(2, axis=0)
        >>> rows[1, lay.cols("target", 1)[0]] = 1
        >>> a = lay.host_end
        >>> w = lay.vm_width
        >>> codes = [lay.span_code(lay.pack(rows), a + v * w, a + (v + 1) * w) for v in (0, 1)]
        >>> vm0, vm1 = [c.tolist() for c in codes if c is not None]
        >>> vm0[0] == vm0[1], vm1[0] == vm1[1], vm0[0] == vm1[0]  # the VMs alike in row 0
        (True, False, True)
        """
        segments: list[tuple[int, int, int, int]] = []  # (word, shift, bits, place)
        place = 0
        for i in range(start, stop):
            w, bits = self._word[i], self.columns[i].bits
            if w < 0:
                continue
            if segments and segments[-1][0] == w and \
                    segments[-1][1] + segments[-1][2] == self._shift[i]:
                ws, sh, b, pl = segments[-1]
                segments[-1] = (ws, sh, b + bits, pl)
            else:
                segments.append((w, self._shift[i], bits, place))
            place += bits
        if place > 63:
            return None
        out = np.zeros(keys.shape[0], dtype=np.uint64)
        for w, shift, bits, at in segments:
            field = (keys[:, w] >> np.uint64(shift)) if shift else keys[:, w]
            if shift + bits < 64:
                field = field & np.uint64((1 << bits) - 1)
            out |= (field << np.uint64(at)) if at else field
        return out.view(np.int64)

    def unpack(self, keys: Keys) -> Rows:
        """The rows of packed ``keys``."""
        out = np.empty((keys.shape[0], self.width), dtype=np.int16)
        for w, lo, hi, shifts, masks, lows in self._runs:
            cells = ((keys[:, w, None] >> shifts) & masks).astype(np.int16)
            np.add(cells, lows, out=out[:, lo:hi])
        return out


def _encoder(f: Field, cfg: Config) -> Callable[[Any], list[int]]:
    """The function that turns a value of field ``f`` into its columns."""
    if f.kind is Kind.COUNTER:
        return lambda value: [int(value)]
    idx = list(itertools.product(*(d.range(cfg) for d in f.elements)))
    flat = [i[0] if len(i) == 1 else i for i in idx]
    if f.kind is Kind.SET:
        return lambda value: [1 if e in value else 0 for e in flat]
    if f.kind is Kind.MAP:
        return list
    if f.kind is Kind.PARTIAL_MAP:
        assert f.values is not None
        lo = f.values.low.of(cfg)
        where = set(idx)

        def partial(value: Any) -> list[int]:
            got = {tuple(e[:-1]): int(e[-1]) for e in value}
            if len(got) != len(value) or not set(got) <= where:
                raise RowOverflow(f"field {f.key} holds entries outside its domain: {value}")
            return [got[i] - lo + 1 if i in got else 0 for i in idx]
        return partial
    if f.kind is Kind.QUEUE:
        n = len(flat)

        def queue(value: Any) -> list[int]:
            counts = [0] * n
            for e in value:
                if not 0 <= e < n:
                    raise RowOverflow(f"queue {f.key} holds {e}, outside its domain")
                counts[e] += 1
            return counts
        return queue
    n = len(flat)

    def order(value: Any) -> list[int]:  # ORDER: the elements are 0..n-1
        out = [0] * n
        for k, e in enumerate(value):
            if not 0 <= e < n:
                raise RowOverflow(f"order {f.key} holds {e}, outside its domain")
            out[e] = k + 1
        return out
    return order


def _decoder(f: Field, cfg: Config, span: tuple[int, int]) -> Callable[[list[int]], Any]:
    """The function that reads field ``f``'s value back from a row's cells."""
    a, b = span
    if f.kind is Kind.COUNTER:
        return lambda vals: vals[a]
    if f.kind is Kind.MAP:
        return lambda vals: tuple(vals[a:b])
    idx = list(itertools.product(*(d.range(cfg) for d in f.elements)))
    flat = [i[0] if len(i) == 1 else i for i in idx]
    # Most sets, queues and partial maps of a state are empty: one any() says so.
    if f.kind is Kind.SET:
        return lambda vals: frozenset(e for e, x in zip(flat, vals[a:b]) if x) \
            if any(vals[a:b]) else _EMPTY_SET
    if f.kind is Kind.PARTIAL_MAP:
        assert f.values is not None
        lo = f.values.low.of(cfg)
        return lambda vals: tuple((*i, x - 1 + lo) for i, x in zip(idx, vals[a:b]) if x) \
            if any(vals[a:b]) else ()
    if f.kind is Kind.QUEUE:
        return lambda vals: tuple(e for e, x in zip(flat, vals[a:b]) for _ in range(x)) \
            if any(vals[a:b]) else ()
    return lambda vals: tuple(e for _, e in sorted(  # ORDER
        (x, e) for e, x in zip(flat, vals[a:b]) if x))
