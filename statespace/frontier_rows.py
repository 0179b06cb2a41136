# mypy: disable-error-code="no-any-return"
"""The kernels' NumPy interpreter applied to a frontier: rows are (state, VM) pairs.

:class:`~ballast.numeric.interpret.VmRows` holds distinct VMs of one system;
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
>>> from ballast.statespace.rowcodec import RowLayout
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

from ballast.model.config import Config
from ballast.model.schema import Kind
from ballast.model.schema import field as schema_field
from ballast.statespace.rowcodec import RowLayout

__all__ = ["FrontierRows", "field_key"]

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


class FrontierRows:
    """A :class:`~ballast.numeric.interpret.Rows` store over copies of frontier rows.

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

    def _cells(self, name: str) -> npt.NDArray[np.int64]:
        return self.rows[self._r, self._idx(name)].astype(np.int64)

    def _put(self, name: str, value: Any, ok: Mask, upto: int | None = None) -> None:
        idx = self._idx(name)
        if upto is not None:
            idx = idx[:, :upto]
        old = self.rows[self._r, idx]
        new = np.broadcast_to(np.asarray(value), old.shape)
        self.rows[self._r, idx] = np.where(ok[:, None], new, old)

    def _host_col(self, name: str) -> int:
        return self.layout.cols(field_key(name))[0]

    # -- Rows -------------------------------------------------------------------------
    def read(self, field: str) -> Any:
        P = self.cfg.guest_pages
        key = field_key(field)
        if key in ("p2m", "ppn_use"):
            return self._cells(field)
        if key in ("inflate_queue", "deflate_queue", "acked_refused"):
            return self._cells(field)[:, :P] != 0
        if key == "lru":
            return self._cells(field) != 0
        if key == "disk":
            return self._cells(field) != 0
        cells = self._cells(field)
        if schema_field(key).kind is Kind.COUNTER:
            return cells[:, 0]
        return cells != 0

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
        return self._cells(field)[:, self.cfg.guest_pages] != 0

    def beyond_values(self, field: str) -> list[set[int]]:
        P = self.cfg.guest_pages
        return [{P} if b else set() for b in self.beyond(field).tolist()]

    def queue_add(self, field: str, mask: Mask, ok: Mask) -> None:
        idx = self._idx(field)[:, :self.cfg.guest_pages]
        add = (np.asarray(mask) & ok[:, None]).astype(np.int16)
        self.rows[self._r, idx] = self.rows[self._r, idx] + add

    def queue_clear(self, field: str, ok: Mask) -> None:
        self._put(field, 0, ok)

    def carry_beyond(self, dst: str, src: str, ok: Mask) -> None:
        P = self.cfg.guest_pages
        to = self._idx(dst)[:, P]
        r = self._r[:, 0]
        carry = ok & self.beyond(src)
        self.rows[r, to] = np.where(carry, 1, self.rows[r, to])

    def clear_beyond(self, field: str, ok: Mask) -> None:
        to = self._idx(field)[:, self.cfg.guest_pages]
        r = self._r[:, 0]
        self.rows[r, to] = np.where(ok, 0, self.rows[r, to])

    def host(self, field: str) -> Ints:
        return self.rows[:, self._host_col(field)].astype(np.int64)

    def claim(self, field: str, need: Ints, ok: Mask) -> Mask:
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
        lay, cfg = self.layout, self.cfg
        p2m = self._idx("p2m")
        every_p2m = np.array([c for v in range(cfg.vms) for c in lay.cols("p2m", v)],
                             dtype=np.int64)
        free0, cow0 = lay.cols("free")[0], lay.cols("cow")[0]
        content0, recl0 = lay.cols("content")[0], lay.cols("reclaimed")[0]
        sel = np.asarray(mask) & ok[:, None]
        for p in range(cfg.guest_pages):
            r = np.nonzero(sel[:, p])[0]
            if not len(r):
                continue
            m = self.rows[r, p2m[r, p]].astype(np.int64)
            r, m = r[m >= 0], m[m >= 0]
            if not len(r):
                continue
            self.rows[r, p2m[r, p]] = -1
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
        r, p = np.nonzero(sel)
        if len(r):
            self.rows[r, base + self.vms[r] * cfg.guest_pages + p] = 0

    def commit(self) -> None:
        """Nothing is kept aside: every write went to the rows."""
