# mypy: disable-error-code="no-any-return"
"""The kernels' NumPy interpreter applied to a frontier: rows are (state, VM) pairs.

:class:`~ballast.numeric.vm_rows.VmRows` holds distinct VMs of one system;
here every row is a whole state of its own (a copy of a frontier row of
:class:`~ballast.statespace.rowcodec.RowLayout`) and the VM the step acts on,
so each row has its own host: counters are claimed per row, and the VMM's
``unback`` is the model's own, row by row. A kernel run over these rows is one
masked update of the whole frontier for one (action, argument) instance list.

>>> import numpy as np
>>> from ballast.model.action_kernels import KERNELS
>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.numeric.interpret import run_kernel
>>> from ballast.statespace.rowcodec import RowLayout, RowOverflow
>>> cfg = Config(vms=2, guest_pages=2, machine_pages=4)
>>> lay = RowLayout(cfg)
>>> rows = np.repeat(lay.encode(initial_state(cfg))[None, :], 2, axis=0)
>>> store = FrontierRows(lay, rows, np.array([0, 1]))
>>> run_kernel(KERNELS["host_set_target"], store, {"pages": np.array([1, 0])}).tolist()
[True, False]
>>> [s.vms[v].target for v, s in enumerate(map(lay.decode, store.rows))]
[1, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ballast.errors import BallastError
from ballast.model.actions import vmm_keeps_host_pages
from ballast.model.config import Config
from ballast.model.ops import QUEUE_FIELDS
from ballast.model.property_kernels import StateCheck, StepCheck
from ballast.model.schema import Kind
from ballast.model.schema import field as schema_field
from ballast.numeric.interpret import NumpyOps
from ballast.numeric.state_ops import NumpyStateOps
from ballast.numeric.rowscan import entries
from ballast.statespace.rowcodec import RowLayout, RowOverflow

__all__ = ["FrontierRows", "FrontierStateOps", "RowsLack", "field_key", "own_columns_read",
           "property_holds_on_rows", "step_holds_on_rows"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

_QUALIFIED = ("module.target", "module.cpu_target")


def field_key(name: str) -> str:
    """The schema key of an operations-layer field name (``guest.ppn_use`` -> ``ppn_use``).

    >>> field_key("module.balloon"), field_key("module.target"), field_key("p2m")
    ('balloon', 'module.target', 'p2m')
    """
    if name in _QUALIFIED:
        return name
    return name.split(".", 1)[1] if "." in name else name


class RowsLack(BallastError, AttributeError):
    """The frontier's rows have no such operation, or none that keeps a feature the
    configuration switches on: the explorer takes the model's step for that action."""


class FrontierRows:
    """A :class:`~ballast.numeric.rows.Rows` store over copies of frontier rows.

    ``rows``: ``(n, width)`` int16, changed in place; ``vms``: the VM each row's step
    acts on.
    """

    def __init__(self, layout: RowLayout, rows: npt.NDArray[np.int16], vms: Ints) -> None:
        self.layout = layout
        self.cfg: Config = layout.cfg
        self.rows = rows
        self.vms = np.asarray(vms, dtype=np.int64)
        self.n = len(self.vms)
        self._r = np.arange(self.n)[:, None]
        self._index: dict[str, npt.NDArray[np.int64]] = {}
        # Rows whose steps all act on one VM read a per-VM field as one slice of columns.
        self._one_vm = int(self.vms[0]) if self.n and bool(
            (self.vms == self.vms[0]).all()) else None
        self._slices: dict[str, slice] = {}
        self._flats: dict[str, npt.NDArray[np.int64]] = {}
        # Cells are read and written at flat positions of the rows where the rows are one
        # block of memory: one gather over them costs about a fifth of indexing by (row,
        # column) pairs.
        self._flat_rows = rows.reshape(-1) if rows.flags.c_contiguous else None

    def __getattr__(self, name: str) -> Any:
        # Only for what the class lacks: an operation of the Rows protocol not written for
        # frontier rows yet (paging out another VM's page, a queue copied whole, ...).
        if name.startswith("_"):
            raise AttributeError(name)
        raise RowsLack(f"the frontier's rows have no operation {name!r}")

    # -- where a field's columns are, row by row --------------------------------------
    def _idx(self, name: str) -> npt.NDArray[np.int64]:
        """``(n, k)`` column indices of per-VM field ``name`` for each row's VM."""
        got = self._index.get(name)
        if got is None:
            key = field_key(name)
            table = np.array([list(self.layout.cols(key, v)) for v in range(self.cfg.vms)],
                             dtype=np.int64)
            got = self._index[name] = table[self.vms]
        return got

    def _slice(self, name: str) -> slice | None:
        """The columns of per-VM field ``name`` as a slice, where every row acts on one VM."""
        if self._one_vm is None:
            return None
        got = self._slices.get(name)
        if got is None:
            cols = self.layout.cols(field_key(name), self._one_vm)
            got = self._slices[name] = slice(cols.start, cols.stop)
        return got

    def _flat(self, cols: Any) -> Any:
        """Flat positions in the rows of per-row column indices ``cols`` ((n, k) or (n,))."""
        r = self._r if np.ndim(cols) == 2 else self._r[:, 0]
        return r * self.rows.shape[1] + cols

    def _flat_of(self, name: str) -> npt.NDArray[np.int64]:
        """Flat positions of per-VM field ``name``'s columns, row by row (kept)."""
        got = self._flats.get(name)
        if got is None:
            got = self._flats[name] = self._flat(self._idx(name))
        return got

    def _get(self, cols: Any, flat: Any = None) -> Any:
        """The cells at per-row columns ``cols`` (``flat``: their flat positions, if known)."""
        if self._flat_rows is None:
            return self.rows[self._r if np.ndim(cols) == 2 else self._r[:, 0], cols]
        return np.take(self._flat_rows, self._flat(cols) if flat is None else flat)

    def _set(self, cols: Any, values: Any, flat: Any = None) -> None:
        """Write ``values`` into the cells at per-row columns ``cols``."""
        if self._flat_rows is None:
            self.rows[self._r if np.ndim(cols) == 2 else self._r[:, 0], cols] = values
            return
        self._flat_rows[self._flat(cols) if flat is None else flat] = values

    def _field(self, name: str) -> Any:
        """The cells of per-VM field ``name``, row by row, in the rows' own type."""
        return self._get(self._idx(name), self._flat_of(name) if self._flat_rows is not None
                         else None)

    def _set_field(self, name: str, values: Any) -> None:
        self._set(self._idx(name), values, self._flat_of(name) if self._flat_rows is not None
                  else None)

    def _cells(self, name: str) -> npt.NDArray[np.int64]:
        """The cells of per-VM field ``name``, row by row, as numbers to compute with."""
        return self._raw(name).astype(np.int64)

    def _raw(self, name: str) -> npt.NDArray[np.int16]:
        """The cells of per-VM field ``name``, row by row, in the rows' own type (where every
        row acts on one VM, a view of its columns): enough to tell zero from not."""
        span = self._slice(name)
        if span is not None:
            return self.rows[:, span]
        got: npt.NDArray[np.int16] = self._field(name)
        return got

    def _put(self, name: str, value: Any, ok: Mask, upto: int | None = None) -> None:
        span = self._slice(name)
        if span is not None:
            block = self.rows[:, span.start:span.stop if upto is None else span.start + upto]
            np.copyto(block, np.broadcast_to(np.asarray(value), block.shape),
                      casting="unsafe", where=ok[:, None])
            return
        if upto is None:
            old = self._field(name)
            new = np.broadcast_to(np.asarray(value), old.shape)
            self._set_field(name, np.where(ok[:, None], new, old))
            return
        idx = self._idx(name)[:, :upto]
        old = self._get(idx)
        new = np.broadcast_to(np.asarray(value), old.shape)
        self._set(idx, np.where(ok[:, None], new, old))

    def _host_col(self, name: str) -> int:
        return self.layout.cols(field_key(name))[0]

    # -- Rows -------------------------------------------------------------------------
    def read(self, field: str) -> Any:
        P = self.cfg.guest_pages
        key = field_key(field)
        if key in ("p2m", "ppn_use"):
            return self._cells(field)
        if key in QUEUE_FIELDS or key == "acked_refused":  # a count per PPN, then "beyond"
            return self._raw(field)[:, :P] != 0
        if key == "lru":
            return self._raw(field) != 0
        if key == "disk":
            return self._raw(field) != 0
        if key == "swap":
            return self._get(self._swap_idx()) != 0
        kind = schema_field(key).kind
        if kind is Kind.COUNTER:
            return self._cells(field)[:, 0]
        if kind is Kind.MAP:
            return self._cells(field)
        return self._raw(field) != 0

    def write(self, field: str, value: Any, ok: Mask) -> None:
        key = field_key(field)
        if key == "acked_refused":
            self._put(field, np.asarray(value).astype(np.int16), ok, upto=self.cfg.guest_pages)
            return
        idx = self._idx(field)
        v = np.asarray(value)
        if v.dtype == bool:
            v = v.astype(np.int16)
        if idx.shape[1] == 1 and v.ndim == 1:
            v = v[:, None]
        self._put(field, v, ok)

    def queue_len(self, field: str) -> Ints:
        return self._cells(field).sum(axis=1)

    def beyond(self, field: str) -> Mask:
        return self._raw(field)[:, self.cfg.guest_pages] != 0

    def beyond_values(self, field: str) -> list[set[int]]:
        P = self.cfg.guest_pages
        return [{P} if b else set() for b in self.beyond(field).tolist()]

    def queue_add(self, field: str, mask: Mask, ok: Mask) -> None:
        idx = self._idx(field)[:, :self.cfg.guest_pages]
        add = (np.asarray(mask) & ok[:, None]).astype(np.int16)
        self._set(idx, self._get(idx) + add)

    def queue_clear(self, field: str, ok: Mask) -> None:
        self._put(field, 0, ok)

    def carry_beyond(self, dst: str, src: str, ok: Mask) -> None:
        P = self.cfg.guest_pages
        to = self._idx(dst)[:, P]
        carry = ok & self.beyond(src)
        self._set(to, np.where(carry, 1, self._get(to)))

    def clear_beyond(self, field: str, ok: Mask) -> None:
        to = self._idx(field)[:, self.cfg.guest_pages]
        self._set(to, np.where(ok, 0, self._get(to)))

    def host(self, field: str) -> Ints:
        return self.rows[:, self._host_col(field)].astype(np.int64)

    def claim(self, field: str, need: Ints, ok: Mask) -> Mask:
        if field == "host.swap_room":
            return self.claim_swap(need, ok)
        c = self._host_col(field)
        have = self.rows[:, c].astype(np.int64)
        granted = ok & (need <= have)
        self.rows[:, c] = np.where(granted, have - need, have)
        return granted

    def give(self, field: str, n: Ints, ok: Mask) -> None:
        c = self._host_col(field)
        self.rows[:, c] = np.where(ok, self.rows[:, c] + np.broadcast_to(n, (self.n,)),
                                   self.rows[:, c])

    def unback(self, mask: Mask, ok: Mask, by_balloon: bool, scrub: bool) -> None:
        # The model's unback, PPN by PPN in ascending order (a shared MPN whose other
        # mapper goes earlier in the same step is freed by the later one).
        p2m = self._idx("p2m")
        sel = np.asarray(mask) & ok[:, None]
        for p in range(self.cfg.guest_pages):
            r = np.nonzero(sel[:, p])[0]
            if len(r):
                self._unback_cols(r, p2m[r, p], by_balloon, scrub)

    def _unback_cols(self, r: Ints, col: Ints, by_balloon: bool, scrub: bool) -> None:
        """The model's unback of the page whose p2m column is ``col`` in each row of ``r``
        (distinct rows)."""
        lay, cfg = self.layout, self.cfg
        every_p2m = np.array([c for v in range(cfg.vms) for c in lay.cols("p2m", v)],
                             dtype=np.int64)
        free0, cow0 = lay.cols("free")[0], lay.cols("cow")[0]
        content0, recl0 = lay.cols("content")[0], lay.cols("reclaimed")[0]
        m = self.rows[r, col].astype(np.int64)
        r, col, m = r[m >= 0], col[m >= 0], m[m >= 0]
        if not len(r):
            return
        self.rows[r, col] = -1
        others = (self.rows[r][:, every_p2m] == m[:, None]).sum(axis=1)
        last = others == 1
        self.rows[r[last], cow0 + m[last]] = 0
        alone = others == 0
        ra, ma = r[alone], m[alone]
        if scrub:
            self.rows[ra, content0 + ma] = 0
        self.rows[ra, free0 + ma] = 1
        self.rows[ra, cow0 + ma] = 0
        if by_balloon:
            self.rows[ra, recl0 + ma] = 1

    def drop_swap(self, mask: Mask, ok: Mask) -> None:
        cfg, lay = self.cfg, self.layout
        base = lay.cols("swap")[0]  # (VM, PPN) in row-major order
        sel = np.asarray(mask) & ok[:, None]
        r, p = entries(sel)
        if len(r):
            self.rows[r, base + self.vms[r] * cfg.guest_pages + p] = 0

    def commit(self) -> None:
        """Nothing is kept aside: every write went to the rows."""

    # -- memory operations (MemoryRows) ------------------------------------------------
    def _host_cols(self, key: str) -> npt.NDArray[np.int64]:
        got = self._index.get("host:" + key)
        if got is None:
            got = self._index["host:" + key] = np.array(list(self.layout.cols(key)),
                                                        dtype=np.int64)
        return got

    def _swap_idx(self) -> npt.NDArray[np.int64]:
        """``(n, pages)`` the host-swap column of each PPN of each row's VM."""
        got = self._index.get("host:swap:rows")
        if got is None:
            P = self.cfg.guest_pages
            base = self.layout.cols("swap")[0]
            got = self._index["host:swap:rows"] = (
                base + self.vms[:, None] * P + np.arange(P)[None, :])
        return got

    def vm_numbers(self) -> Ints:
        return self.vms

    def read_tokens(self, field: str) -> Ints:
        cells = (self._get(self._swap_idx()) if field == "host.swap"
                 else self._cells(field)).astype(np.int64)
        return np.where(cells > 0, cells - 1, 0)

    def token_at(self, field: str, at: Any) -> Ints:
        """The token of the one entry ``at`` of each row's store (0: none)."""
        mask = at.dense() if hasattr(at, "dense") else np.asarray(at, dtype=bool)
        return np.where(mask, self.read_tokens(field), 0).sum(axis=1).astype(np.int64)

    def at_mpn(self, field: str, mpn: Ints) -> Any:
        m = np.asarray(mpn, dtype=np.int64)
        valid = (m >= 0) & (m < self.cfg.machine_pages)
        cols = self._host_cols(field_key(field))[np.where(valid, m, 0)]
        vals = self._get(cols).astype(np.int64)
        if field == "host.cow":
            return (vals != 0) & valid
        return np.where(valid, vals, 0)

    def _unit_cols(self) -> npt.NDArray[np.int64]:
        u = self.cfg.host_page_units
        return self.vms[:, None] * u + np.arange(u)[None, :]

    def _units_at(self, field: str) -> tuple[Any, Any]:
        """Where the units of each row's host page lie in the rows: one slice of columns
        where every row names the same host page (a host action's instance), else the
        columns row by row."""
        cols = self._host_cols(field_key(field))[self._unit_cols()]
        if self._one_vm is not None:
            first = cols[0]
            if bool((np.diff(first) == 1).all()):
                return slice(None), slice(int(first[0]), int(first[-1]) + 1)
        return self._r, cols

    def units(self, field: str) -> Mask:
        at = self._units_at(field)
        return (self.rows[at] if isinstance(at[1], slice) else self._get(at[1])) != 0

    def set_units(self, field: str, value: Mask, ok: Mask) -> None:
        at = self._units_at(field)
        if isinstance(at[1], slice):
            block = self.rows[at]  # a view of the rows
            np.copyto(block, np.broadcast_to(np.asarray(value), block.shape),
                      casting="unsafe", where=ok[:, None])
            return
        old = self._get(at[1])
        new = np.broadcast_to(np.asarray(value), old.shape).astype(np.int16)
        self._set(at[1], np.where(ok[:, None], new, old))

    def lru_victim(self) -> Mask:
        pos = self._cells("guest.lru").astype(np.int64)
        return (pos == 1)

    def other_mpn(self, other_vm: Ints, other_at: Mask) -> Ints:
        w = np.asarray(other_vm, dtype=np.int64)
        valid = (w >= 0) & (w < self.cfg.vms) & other_at.any(axis=1)
        P = self.cfg.guest_pages
        base = np.array([self.layout.cols("p2m", v)[0] for v in range(self.cfg.vms)],
                        dtype=np.int64)
        col = base[np.where(valid, w, 0)] + np.minimum(np.argmax(other_at, axis=1), P - 1)
        m = self._get(col).astype(np.int64)
        return np.where(valid, m, -1)

    def set_tokens(self, field: str, mask: Mask, token: Any, ok: Mask) -> None:
        tok = np.asarray(token, dtype=np.int64)
        tok = np.broadcast_to(tok[:, None] if tok.ndim == 1 else tok, mask.shape)
        idx = self._swap_idx() if field == "host.swap" else self._idx(field)
        sel = np.asarray(mask) & ok[:, None]
        self._set(idx, np.where(sel, tok + 1, self._get(idx)))

    def drop_tokens(self, field: str, mask: Mask, ok: Mask) -> None:
        if field == "host.swap":
            self.drop_swap(mask, ok)
            return
        sel = np.asarray(mask) & ok[:, None]
        self._set_field(field, np.where(sel, 0, self._field(field)))

    def queue_add_ppn(self, field: str, ppn: Ints, ok: Mask) -> None:
        P = self.cfg.guest_pages
        p = np.asarray(ppn, dtype=np.int64)
        if (ok & ((p < 0) | (p > P))).any():
            raise RowOverflow(f"{field}: a PPN outside 0..{P} has no column")
        idx = self._idx(field)
        r = np.nonzero(ok)[0]
        self.rows[r, idx[r, p[r]]] += 1

    def lru_use(self, vpn: Mask, resident: Mask, ok: Mask) -> None:
        pos = self._field("guest.lru").astype(np.int64)
        live = ok & np.asarray(vpn).any(axis=1)
        at = np.argmax(vpn, axis=1)
        cur = pos[self._r[:, 0], at]
        listed = cur > 0
        count = (pos > 0).sum(axis=1)
        move = live & listed & np.broadcast_to(resident, (self.n,))
        add = live & ~listed
        new = np.where(move[:, None] & (pos > cur[:, None]), pos - 1, pos)
        new[self._r[:, 0], at] = np.where(move, count, np.where(add, count + 1,
                                                                new[self._r[:, 0], at]))
        self._set_field("guest.lru", new)

    def lru_remove(self, mask: Mask, ok: Mask) -> None:
        pos = self._field("guest.lru").astype(np.int64)
        for c in range(pos.shape[1]):  # renumber after each removal: positions stay 1..k
            gone = ok & np.asarray(mask)[:, c] & (pos[:, c] > 0)
            if gone.any():
                p = pos[:, c].copy()
                pos = np.where(gone[:, None] & (pos > p[:, None]), pos - 1, pos)
                pos[gone, c] = 0
        self._set_field("guest.lru", pos)

    def _lowest_free(self, rows: Ints) -> Ints:
        """The lowest free MPN of each of ``rows`` (-1: none)."""
        free = self.rows[rows[:, None], self._host_cols("free")[None, :]] != 0
        return np.where(free.any(axis=1), np.argmax(free, axis=1), -1)

    def _mappers(self, r: Ints, m: Ints) -> Ints:
        """How many guest pages (of every VM) map MPN ``m`` in row ``r``."""
        every = np.array([c for v in range(self.cfg.vms) for c in self.layout.cols("p2m", v)],
                         dtype=np.int64)
        return (self.rows[r[:, None], every[None, :]] == m[:, None]).sum(axis=1)

    def touch(self, at: Mask, token: Ints, write: Mask, cow: bool, ok: Mask,
              lowest: bool = False) -> tuple[Mask, Ints]:
        # The model's fault_in, then (where ``write``) its write_page, row by row at once.
        if self.cfg.free_page_hint or vmm_keeps_host_pages(self.cfg):
            raise RowsLack("the frontier's rows keep no dirty log of free page hinting and "
                           "choose no MPN in a host page of the same VM")
        n = self.n
        tok = np.broadcast_to(np.asarray(token, dtype=np.int64), (n,))
        wr = np.broadcast_to(np.asarray(write, dtype=bool), (n,))
        free_c, recl_c = self._host_cols("free"), self._host_cols("reclaimed")
        content_c, cow_c = self._host_cols("content"), self._host_cols("cow")
        r = np.nonzero(ok)[0]
        p = np.argmax(np.asarray(at)[r], axis=1)
        p2m_col = self._idx("p2m")[r, p]
        m = self.rows[r, p2m_col].astype(np.int64)
        granted = np.zeros(n, dtype=bool)
        out = np.full(n, -1, dtype=np.int64)
        # fault_in: a free MPN, filled from host swap or with zeros; a ballooned page pops.
        unb = m < 0
        if self.cfg.guest_system and not lowest:
            # A generic guest system's page is its own machine page (actions.own_mpn), free.
            own = self.vms[r[unb]] * self.cfg.guest_pages + p[unb]
            new = np.where(self.rows[r[unb], free_c[own]] != 0, own, -1)
        else:
            new = self._lowest_free(r[unb])
        keep = np.ones(len(r), dtype=bool)
        keep[np.nonzero(unb)[0][new < 0]] = False
        fi = np.nonzero(unb)[0][new >= 0]
        if len(fi):
            rf, pf, mf = r[fi], p[fi], new[new >= 0]
            swap_c = self._swap_idx()[rf, pf]
            held = self.rows[rf, swap_c].astype(np.int64)
            self.rows[rf, content_c[mf]] = np.where(held > 0, held - 1, 0)
            self.rows[rf, swap_c] = 0
            self.rows[rf, free_c[mf]] = 0
            self.rows[rf, recl_c[mf]] = 0
            self.rows[rf, p2m_col[fi]] = mf
            self.rows[rf, self._idx("ballooned")[rf, pf]] = 0
            m[fi] = mf
        # write_page: a write to a shared page copies it first (cow=False: in place).
        w = np.nonzero(keep & wr[r])[0]
        if len(w):
            rw, pw = r[w], p[w]
            disc = self._idx("discarded")
            self.rows[rw, disc[rw, pw]] = 0
            if cow:
                shared = self.rows[rw, cow_c[m[w]]] != 0
                sw = w[shared]
                if len(sw):
                    rs = r[sw]
                    copy = self._lowest_free(rs)
                    lack = copy < 0
                    keep[sw[lack]] = False
                    sw, rs, copy = sw[~lack], rs[~lack], copy[~lack]
                    old = m[sw]
                    self.rows[rs, free_c[copy]] = 0
                    self.rows[rs, recl_c[copy]] = 0
                    self.rows[rs, p2m_col[sw]] = copy
                    alone = self._mappers(rs, old) <= 1
                    self.rows[rs[alone], cow_c[old[alone]]] = 0
                    m[sw] = copy
            w = w[keep[w]]
            self.rows[r[w], content_c[m[w]]] = tok[r[w]]
        granted[r[keep]] = True
        out[r[keep]] = m[keep]
        return granted, out

    def share(self, at: Mask, other_vm: Ints, other_at: Mask, cow: bool, ok: Mask) -> None:
        r = np.nonzero(ok)[0]
        if not len(r):
            return
        keep = np.where(np.asarray(at)[r].any(axis=1),
                        self.rows[r, self._idx("p2m")[r, np.argmax(np.asarray(at)[r], axis=1)]],
                        -1).astype(np.int64)
        w = np.asarray(other_vm, dtype=np.int64)[r]
        op = np.argmax(np.asarray(other_at)[r], axis=1)
        base = np.array([self.layout.cols("p2m", v)[0] for v in range(self.cfg.vms)],
                        dtype=np.int64)
        col = base[w] + op
        self._unback_cols(r, col, by_balloon=False, scrub=True)
        self.rows[r, col] = keep
        cow_c = self._host_cols("cow")
        self.rows[r, cow_c[keep]] = 1
        if not cow:
            self.rows[r[:, None], cow_c[None, :]] = 0

    def claim_swap(self, need: Ints, ok: Mask) -> Mask:
        used = (self.rows[:, self._host_cols("swap")] != 0).sum(axis=1)
        return ok & (used + np.asarray(need) <= self.cfg.host_swap_slots)


class FrontierStateOps(NumpyStateOps):
    """:class:`~ballast.model.ops.StateOps` over frontier rows: every row a whole state,
    read for VM ``vm`` (a property's per-VM part) or for its host; host values and MPN
    vectors have a row per state.

    >>> from ballast.model.config import Config
    >>> from ballast.model.property_kernels import PROPERTY_KERNELS
    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=2, guest_pages=2, machine_pages=4)
    >>> lay = RowLayout(cfg)
    >>> rows = np.repeat(lay.encode(initial_state(cfg))[None, :], 2, axis=0)
    >>> rows[1, lay.cols("free")[0]] = 0  # MPN 0 is now nowhere
    >>> property_holds_on_rows(PROPERTY_KERNELS["memory_conservation"].host, lay, rows)
    array([ True, False])
    """

    def __init__(self, layout: RowLayout, rows: npt.NDArray[np.int16], vm: int) -> None:
        store = FrontierRows(layout, rows, np.full(len(rows), vm, dtype=np.int64))
        NumpyOps.__init__(self, store, {})
        self.store = store
        self.layout = layout
        self.frontier = rows
        self.own_vm = vm
        self.vms = np.arange(len(rows))  # one row per state: what the per-VM helpers index
        self._every_vm = False
        self._by_page = None
        self._counts: npt.NDArray[np.int64] | None = None

    def own_mpns(self) -> Any:
        G = self.cfg.guest_pages
        return self.store.vms[:, None] * G + np.arange(G)[None, :]

    def mpns(self, field: str) -> Any:
        cells = self.frontier[:, self.store._host_cols(field_key(field))].astype(np.int64)
        return cells if field == "content" else cells != 0

    def _mpn_counts(self) -> npt.NDArray[np.int64]:
        """``(vms, n, machine_pages)``: how many pages of each VM each MPN backs."""
        if self._counts is None:
            M, n = self.cfg.machine_pages, len(self.frontier)
            out = np.zeros((self.cfg.vms, n, M + 1), dtype=np.int64)
            r = np.arange(n)[:, None]
            for v in range(self.cfg.vms):
                m = self.frontier[:, list(self.layout.cols("p2m", v))].astype(np.int64)
                np.add.at(out[v], (np.broadcast_to(r, m.shape),
                                   np.where((m >= 0) & (m < M), m, M)), 1)
            self._counts = out[:, :, :M]
        return self._counts

    def mapped(self) -> Any:
        return self._mpn_counts().sum(axis=0) > 0

    def shared(self, across_vms: bool) -> Any:
        counts = self._mpn_counts()
        if across_vms:
            return (counts > 0).sum(axis=0) > 1
        return counts.sum(axis=0) > 1

    def host_page_backs_two_vms(self) -> Any:
        counts, u = self._mpn_counts(), self.cfg.host_page_units
        vms, n, M = counts.shape
        backs = (counts > 0).reshape(vms, n, M // u, u).any(axis=3)
        return backs.sum(axis=0) > 1

    def swapped(self) -> Any:
        return self.store.read("host.swap")

    def unchanged(self, before: Any) -> Any:
        # A VM's own records are its block of the row (host fields that name VMs are
        # the host's): equal cells, equal records.
        lay = self.layout
        a = lay.host_end + self.own_vm * lay.vm_width
        return (self.frontier[:, a:a + lay.vm_width]
                == before.frontier[:, a:a + lay.vm_width]).all(axis=1)

    def vms_count(self, field: str) -> Any:
        key = field_key(field)
        total = np.zeros(len(self.frontier), dtype=np.int64)
        for v in range(self.cfg.vms):
            total += (self.frontier[:, list(self.layout.cols(key, v))] != 0).sum(axis=1)
        return total


_OWN_READS = frozenset({"vm", "pages", "vcpus", "vpns", "queued", "queue_len", "beyond"})
"""Reads of one field of the VM the operations are for."""
_PURE = frozenset({"and_", "or_", "not_", "implies", "eq", "ne", "lt", "le", "add", "sub",
                   "minimum", "maximum", "where", "count", "any", "all", "lowest",
                   "up_to_last"})
"""Operations on values already read (they read no state)."""


class _ReadLog(FrontierStateOps):
    """:class:`FrontierStateOps` that notes the fields of its own VM an operation reads
    (``fields``), or that it read anything else (``fields`` None)."""

    fields: set[str] | None

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name.startswith("_") or name in _PURE or not callable(value):
            return value

        def noted(*args: Any, **kw: Any) -> Any:
            have = object.__getattribute__(self, "fields")
            if have is not None and name in _OWN_READS and args and isinstance(args[0], str):
                have.add(args[0])
            else:
                self.fields = None
            return value(*args, **kw)
        return noted


def own_columns_read(check: StepCheck, layout: RowLayout, vm: int) -> npt.NDArray[np.int64] | None:
    """The columns of VM ``vm``'s own block that the step form ``check`` reads of it (in
    either state), or None where it reads anything else (the host, another VM, a value
    derived from several). A kernel branches on the configuration only, so one run on any
    rows tells. A step form that holds on a step that changes nothing (a stutter) then
    holds of VM ``vm`` on every step that leaves these columns as they were.

    >>> from ballast.model.config import Config
    >>> from ballast.model.property_kernels import STEP_KERNELS
    >>> lay = RowLayout(Config(vms=2, guest_pages=2, machine_pages=4))
    >>> cols = own_columns_read(STEP_KERNELS["guest_chooses_pages"].check, lay, 1)
    >>> sorted({lay.columns[c].key for c in cols})
    ['ballooned', 'inflate_queue']
    >>> own_columns_read(STEP_KERNELS["isolation"].check, lay, 1) is None  # machine pages
    True
    """
    from ballast.model.state import initial_state
    rows = layout.encode(initial_state(layout.cfg))[None, :]
    pre, post = _ReadLog(layout, rows, vm), _ReadLog(layout, rows.copy(), vm)
    pre.fields, post.fields = set(), set()
    check(pre, post)
    if pre.fields is None or post.fields is None:
        return None
    start = layout.host_end + vm * layout.vm_width
    cols: set[int] = set()
    for f in pre.fields | post.fields:
        got = layout.cols(field_key(f), vm)
        if got.start < start or got.stop > start + layout.vm_width:
            return None  # a field of the VM kept among the host's columns
        cols.update(got)
    return np.array(sorted(cols), dtype=np.int64)


def property_holds_on_rows(check: StateCheck, layout: RowLayout, rows: npt.NDArray[np.int16],
                           vm: int = 0) -> npt.NDArray[np.bool_]:
    """Per state of ``rows``: whether a part of a property kernel holds (a per-VM part for
    VM ``vm``; a host part reads no VM of its own)."""
    out = check(FrontierStateOps(layout, rows, vm))
    return np.broadcast_to(np.asarray(out, dtype=bool), (len(rows),)).copy()


def step_holds_on_rows(check: StepCheck, layout: RowLayout, pre: npt.NDArray[np.int16],
                       post: npt.NDArray[np.int16], vm: int) -> npt.NDArray[np.bool_]:
    """Per step (row ``i`` of ``pre`` stepped to row ``i`` of ``post``): whether the step
    form of a property holds of VM ``vm``.

    >>> from ballast.model.config import Config
    >>> from ballast.model.property_kernels import STEP_KERNELS
    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=2, guest_pages=2, machine_pages=4)
    >>> lay = RowLayout(cfg)
    >>> pre = np.repeat(lay.encode(initial_state(cfg))[None, :], 2, axis=0)
    >>> post = pre.copy()
    >>> post[1, lay.cols("target", 1)[0]] = 1  # VM 1's records changed in the second step
    >>> step_holds_on_rows(STEP_KERNELS["isolation"].check, lay, pre, post, 1)
    array([ True, False])
    """
    out = check(FrontierStateOps(layout, pre, vm), FrontierStateOps(layout, post, vm))
    return np.broadcast_to(np.asarray(out, dtype=bool), (len(pre),)).copy()
