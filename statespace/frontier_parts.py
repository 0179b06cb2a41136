"""The parts of the frontier engine's rows (the host's, each VM's), numbered and grouped.

A batch's states are told apart by the ids of their parts (:class:`PartIds`: one sort per
batch, never state by state), grouped by them (:func:`groups`), and what the model's code
answers on a part is remembered by it (:class:`Memos`); :data:`MISSING`, :data:`READS_HOST`
and :data:`REAL` mark an answer not remembered yet, one that read the host, and one that read
another VM.
"""

from __future__ import annotations

from typing import Any, Callable, cast

import numpy as np
import numpy.typing as npt

from ballast.statespace.keyset import unique_rows
from ballast.statespace.rowcodec import RowLayout

__all__ = ["MISSING", "Memos", "PartIds", "READS_HOST", "REAL", "groups"]

Ints = npt.NDArray[np.int64]
Keys = npt.NDArray[np.uint64]

MISSING = object()
READS_HOST = object()
REAL = object()
"""An answer that read another VM: ask again on the real states."""


def _radix(cells: npt.NDArray[np.int16], low: Ints, size: Ints) -> Ints:
    """Each row's cells as one number in mixed radix (the last column least significant;
    the columns' ranges, ``low`` and ``size``, multiply to less than 2**63)."""
    place = np.concatenate([np.cumprod(size[::-1])[::-1][1:], [1]]).astype(np.int64)
    if float(np.prod(size.astype(np.float64))) < 2.0 ** 53:
        # Every code is an integer a double holds exactly: the product runs in BLAS.
        code: Ints = ((cells.astype(np.float64) - low) @ place.astype(np.float64)
                      ).astype(np.int64)
        return code
    exact: Ints = (cells.astype(np.int64) - low) @ place
    return exact


class PartIds:
    """A number for every distinct host part and VM part met, found by sorting rows.

    Where a part's columns fit in 62 bits, its cells are one number (each column's value
    above its low end, in the layout's fixed ranges) and the numbers seen are kept sorted
    with their ids, so a batch of parts is numbered by one sort and one binary search;
    wider parts alike, by their cells' bytes as one value.
    """

    def __init__(self, layout: RowLayout, columns: list[list[int]] | None = None) -> None:
        self.layout = layout
        self.count = 0
        h = layout.host_end
        w = layout.vm_width
        self.spans = [(0, h)] + [(h + v * w, h + (v + 1) * w) for v in range(layout.cfg.vms)]
        self.columns = columns or []
        self.known: dict[tuple[Any, ...], tuple[Any, Ints]] = {}
        """By the columns' ranges: (the numbers seen, or the cells' bytes, sorted; their
        ids)."""

    def of_columns(self, rows: npt.NDArray[np.int16]) -> Ints:
        """``(n, len(columns))``: the id of each row's cells in each column set."""
        return np.stack([self._ids(rows[:, c], c) for c in self.columns], axis=1)

    def _ids(self, cells: npt.NDArray[np.int16], cols: Any) -> Ints:
        if not len(cells):
            return np.zeros(0, dtype=np.int64)
        low = self.layout.low[cols]
        size = self.layout.high[cols] - low + 1
        if float(np.prod(size.astype(np.float64))) < 2.0 ** 62:
            return self._ids_by_number(cells, low, size)
        # Wider parts: a number per run of columns that a double holds exactly, the runs'
        # numbers together as one value (their bytes), sorted and searched alike.
        runs, start, span = [], 0, 1.0
        for c, k in enumerate(size.tolist()):
            if span * k >= 2.0 ** 53:
                runs.append((start, c))
                start, span = c, 1.0
            span *= k
        runs.append((start, len(size)))
        words = np.stack([_radix(cells[:, a:b], low[a:b], size[a:b]) for a, b in runs], axis=1)
        flat = words.view(np.dtype((np.void, 8 * len(runs)))).ravel()
        return self._number(flat, ("runs",) + tuple(size.tolist()) + tuple(low.tolist()))

    def _ids_by_number(self, cells: npt.NDArray[np.int16], low: Ints, size: Ints) -> Ints:
        return self._number(_radix(cells, low, size), tuple(size.tolist()) + tuple(low.tolist()))

    def _number(self, code: npt.NDArray[Any], sig: tuple[Any, ...]) -> Ints:
        """The id of each part by its number ``code`` (numbers of one kind ``sig``; or
        values of several numbers each, as bytes)."""
        uniq, inv = np.unique(code, return_inverse=True)
        seen, ids = self.known.get(sig, (code[:0], np.zeros(0, dtype=np.int64)))
        at: Ints = np.searchsorted(seen, uniq)
        hit: npt.NDArray[np.bool_] = at < len(seen)
        hit[hit] = seen[at[hit]] == uniq[hit]
        out = np.empty(len(uniq), dtype=np.int64)
        out[hit] = ids[at[hit]]
        new = np.nonzero(~hit)[0]
        if len(new):
            out[new] = np.arange(self.count, self.count + len(new))
            self.count += len(new)
            # Both sorted: the new numbers go in where the search put them.
            self.known[sig] = (np.insert(seen, at[new], uniq[new]),
                               np.insert(ids, at[new], out[new]))
        found: Ints = out[inv.reshape(-1)]
        return found

    def of_keys(self, keys: Keys, rows: Callable[[], npt.NDArray[np.int16]]
                ) -> tuple[Ints, Ints]:
        """:meth:`of` the rows whose packed keys are ``keys``: a part's number is its bits
        read off the key (:meth:`~ballast.statespace.rowcodec.RowLayout.span_code`), where
        they fit in 63 bits; ``rows()`` gives the rows where they do not."""
        codes = [self._span_codes(keys, a, b) for a, b in self.spans]
        if any(c is None for c in codes):
            return self.of(rows())
        lay = self.layout
        sigs = [("bits",) + tuple(lay.high[a:b].tolist()) + tuple(lay.low[a:b].tolist())
                for a, b in self.spans]
        host = self._number(cast(Ints, codes[0]), sigs[0])
        vms = np.stack([self._number(cast(Ints, c), g) for c, g in zip(codes[1:], sigs[1:])],
                       axis=1) if len(codes) > 1 else np.zeros((len(keys), 0), dtype=np.int64)
        return host, vms

    def _span_codes(self, keys: Keys, a: int, b: int) -> Any:
        """Per key, the cells of columns ``a``..``b`` as one value read off the key: a
        number where they take at most 63 bits, else the numbers of runs of columns of at
        most 63 bits each, together as one value (their bytes); None where a column alone
        is wider."""
        lay = self.layout
        code = lay.span_code(keys, a, b)
        if code is not None:
            return code
        runs, start, bits = [], a, 0
        for c in range(a, b):
            width = lay.columns[c].bits
            if bits + width > 63:
                runs.append((start, c))
                start, bits = c, 0
            bits += width
        runs.append((start, b))
        words = [lay.span_code(keys, x, y) for x, y in runs]
        if any(w is None for w in words):
            return None
        values = np.stack(cast("list[Ints]", words), axis=1)
        return values.view(np.dtype((np.void, 8 * len(runs)))).ravel()

    def of(self, rows: npt.NDArray[np.int16]) -> tuple[Ints, Ints]:
        """(host part id per row, ``(n, vms)`` VM part ids)."""
        a, b = self.spans[0]
        host = self._ids(rows[:, a:b], slice(a, b))
        vms = np.stack([self._ids(rows[:, a:b], slice(a, b)) for a, b in self.spans[1:]],
                       axis=1) if len(self.spans) > 1 else np.zeros((len(rows), 0),
                                                                      dtype=np.int64)
        return host, vms


class Memos:
    """Answers remembered by the identities of interned parts (see
    :meth:`~ballast.statespace.rowcodec.RowLayout.decode`): valid until they are dropped."""

    def __init__(self) -> None:
        self.steps: dict[tuple[Any, ...], Any] = {}
        self.candidates: dict[tuple[Any, ...], Any] = {}
        self.checks: dict[tuple[Any, ...], Any] = {}
        self.state: dict[tuple[Any, ...], Any] = {}
        self.unsettled: dict[tuple[Any, ...], Any] = {}
        self.part_candidates: dict[tuple[int, ...], Any] = {}
        """The candidates of VM-partitioned actions
        (:class:`~ballast.statespace.frontier_candidates.CandidateGroups`; kept across
        forgetting: part ids are never reused, cells mean the same)."""
        self.by_ids: dict[tuple[int, ...], Any] = {}
        self.tables: dict[tuple[Any, ...], Any] = {}
        self.vm_checks: dict[tuple[int, ...], bool] = {}
        """By (VM, host part id, VM part id): whether a per-VM invariant may break."""
        self.whole_checks: dict[tuple[int, ...], bool] = {}
        """By (host part id, each VM's map id): whether a whole-state invariant may break."""
        self.unsettled_ids: dict[tuple[int, ...], Any] = {}
        """By (action, VM or None, part ids): the steps of that part as arrays."""
        """By (action, part ids before and after): step answers (kept across forgetting:
        part ids are never reused)."""

    def clear(self) -> None:
        for d in (self.steps, self.candidates, self.checks, self.state, self.unsettled):
            d.clear()


def groups(cols: list[Ints]) -> tuple[list[list[int]], list[int], Ints]:
    """The distinct rows of the id columns ``cols``: (their ids, a first row each, the
    group of every row)."""
    uniq, first_i, inv = unique_rows(np.stack(cols, axis=1))
    return uniq.tolist(), first_i.tolist(), inv
