# mypy: disable-error-code="no-any-return"
"""PPN-set arguments of a batch (``ppns``, ``refuse``) as the kernels read them:
:class:`PageSets`, one set per row, built by :func:`page_sets`.

>>> s = page_sets([(0, 2), (5,)], np.array([1, 1]), 4)
>>> s.mask.tolist(), s.size.tolist(), s.beyond.tolist()
([[True, False, True, False], [False, False, False, False]], [2, 1], [False, True])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PageSets", "page_sets"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


class PageSets:
    """A PPN-set argument of a batch (``ppns``, ``refuse``), one set per row, read as the
    kernels ask for it: which PPNs in range (a mask per row), how many entries, whether
    they are distinct, whether some lie out of range and which (None where none does).

    Built by :func:`page_sets`; a store that runs one set for many rows (an explorer's
    instance, the same argument for every state of a batch) builds it once per set."""

    __slots__ = ("mask", "size", "distinct", "beyond", "outside")

    def __init__(self, mask: Mask, size: Ints, distinct: Mask, beyond: Mask,
                 outside: list[list[int]] | None) -> None:
        self.mask = mask
        self.size = size
        self.distinct = distinct
        self.beyond = beyond
        self.outside = outside


def page_sets(values: Any, repeats: Ints, pages: int) -> PageSets:
    """The PPN-set argument whose ``k``-th set (a tuple of PPNs, any values) holds for the
    next ``repeats[k]`` rows, for a VM of ``pages`` PPNs.

    >>> sets = page_sets([(1, 2), (0, 0, 7)], np.array([2, 1]), pages=4)
    >>> sets.mask.astype(int).tolist(), sets.size.tolist(), sets.distinct.tolist()
    ([[0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0]], [2, 2, 3], [True, True, False])
    >>> sets.beyond.tolist(), sets.outside
    ([False, False, True], [[], [], [7]])
    """
    k = len(values)
    if k == 1 and int(repeats[0]) == 1:
        one = tuple(values[0])
        if all(type(p) is int for p in one):  # one set of plain PPNs (one op per call)
            mask = np.zeros((1, pages), dtype=bool)
            if min(one, default=0) >= 0 and max(one, default=0) < pages:
                mask[0, one] = True
                out: list[int] = []
            else:
                mask[0, [p for p in one if 0 <= p < pages]] = True
                out = [p for p in one if not 0 <= p < pages]
            return PageSets(mask, np.array([len(one)]), np.array([len(set(one)) == len(one)]),
                            np.array([bool(out)]), [out] if out else None)
    if k > 1 and not any(len(t) for t in values):
        # Every set empty (a report with nothing refused): the mask a read-only constant,
        # which the kernels' logic folds away rather than reading a vector of nothing.
        n = int(repeats.sum())
        return PageSets(np.broadcast_to(np.False_, (n, pages)), np.zeros(n, dtype=np.int64),
                        np.ones(n, dtype=bool), np.zeros(n, dtype=bool), None)
    sets = [tuple(t) for t in values]
    sel = np.zeros((k, pages), dtype=bool)
    size = np.fromiter(map(len, sets), dtype=np.int64, count=k)
    flat = np.array([p for t in sets for p in t]) if k > 1 else np.zeros(0, dtype=object)
    if k > 1 and (flat.dtype.kind == "i" or (flat.dtype.kind == "f" and not len(flat))):
        # Every PPN an integer (the usual case): all sets at once, not one PPN at a time.
        flat = flat.astype(np.int64, copy=False)
        row = np.repeat(np.arange(k), size)
        inside = (flat >= 0) & (flat < pages)
        sel[row[inside], flat[inside]] = True
        # A set names some PPN twice where its sorted PPNs repeat one.
        order = np.lexsort((flat, row))
        twice = (row[order][1:] == row[order][:-1]) & (flat[order][1:] == flat[order][:-1])
        distinct = np.ones(k, dtype=bool)
        distinct[row[order][1:][twice]] = False
        out_rows = set(row[~inside].tolist()) if not inside.all() else set()
        outside = [[int(p) for p in t if not 0 <= p < pages] if j in out_rows else []
                   for j, t in enumerate(sets)] if out_rows else [[]] * k
    else:  # one set (one op per call), or some PPN not an integer: a set at a time
        distinct = np.ones(k, dtype=bool)
        outside = []
        for j, t in enumerate(sets):
            ints = all(isinstance(p, (int, np.integer)) for p in t)
            distinct[j] = ints and len(set(t)) == len(t)
            outside.append([int(p) for p in t if ints and not 0 <= p < pages])
            if ints:
                sel[j, [int(p) for p in t if 0 <= p < pages]] = True
    beyond = np.fromiter(map(bool, outside), dtype=bool, count=k)
    rows = (None if not beyond.any() else
            [x for x, n in zip(outside, repeats.tolist()) for _ in range(n)])
    if bool((repeats == 1).all()):  # one row a set: nothing to spread
        return PageSets(sel, size, distinct, beyond, rows)
    return PageSets(np.repeat(sel, repeats, axis=0), np.repeat(size, repeats),
                    np.repeat(distinct, repeats), np.repeat(beyond, repeats), rows)
