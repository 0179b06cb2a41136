# mypy: disable-error-code="no-any-return"
"""Per-row scans of a batch of rows, in the forms NumPy runs fast.

The interpreters hold a batch as a ``(batch, width)`` array, one row per state or
operation, and ask the same few questions of it: where a mask holds, how often per
row, its first ``k`` entries per row, everything up to its last entry. NumPy's direct
answers are correct but some are slow along the second axis: on 200 x 1,024 bools,
``np.nonzero`` takes about 13 times as long as ``np.flatnonzero``, ``np.count_nonzero``
with an axis about 9 times as long as a sum of 8-byte lanes, and a running count
(``np.cumsum``, which counts bools in 64 bits) about 8 times as long as finding each
row's ``k``-th entry by blocks, words and columns. Each helper here gives exactly NumPy's
direct answer, in the faster form where it applies.

>>> import numpy as np
>>> m = np.array([[False, True, True, False, False, False, False, True],
...               [False] * 8])
>>> [x.tolist() for x in entries(m)]
[[0, 0, 0], [1, 2, 7]]
>>> row_counts(m).tolist()
[3, 0]
>>> first_k(m, np.array([2, 5])).astype(int).tolist()
[[0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
>>> up_to_last(m)[0].astype(int).tolist(), bool(up_to_last(m)[1].any())
([1, 1, 1, 1, 1, 1, 1, 1], False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["entries", "first_k", "row_counts", "up_to_last"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

_SMALL = 4096
"""Fewer elements than this: NumPy's direct answer, whose fixed cost is the lowest."""

_LANE_LIMIT = 255 * 8
"""The widest row whose entries a sum of 8-byte lanes counts: each byte of a lane counts
one entry in 8, and must not carry into the next."""


def entries(mask: Any) -> tuple[Ints, Ints]:
    """(row, column) of every entry of a two-dimensional mask, row by row (``np.nonzero``)."""
    mask = np.asarray(mask)
    width = mask.shape[1]
    if mask.size < _SMALL:
        rows, columns = np.nonzero(mask)
        return rows.astype(np.int64), columns.astype(np.int64)
    flat = np.flatnonzero(mask)
    if width == 0:
        return flat, flat
    rows = flat // width
    return rows, flat - rows * width


def row_counts(mask: Any) -> Ints:
    """How many entries each row of a two-dimensional mask holds (``np.count_nonzero`` along
    the rows, as 64-bit numbers)."""
    mask = np.asarray(mask)
    n, width = mask.shape
    if n == 1:  # one row (one op per call): one count, no reduction along an axis
        return np.array([np.count_nonzero(mask)], dtype=np.int64)
    if mask.dtype == np.bool_ and width % 8 == 0 and 0 < width <= _LANE_LIMIT and \
            mask.size >= _SMALL:
        lanes = np.ascontiguousarray(mask).view(np.uint64).sum(axis=1, dtype=np.uint64)
        return lanes.view(np.uint8).reshape(n, 8).sum(axis=1, dtype=np.int64)
    return np.count_nonzero(mask, axis=1).astype(np.int64)


def _positions(width: int, last: Any) -> Mask:
    """Each row's columns up to and including ``last`` (``-1``: none), compared in the
    narrowest integers that hold the width (64-bit comparisons broadcast over a batch cost
    about seven times as much as 16-bit ones)."""
    dtype = np.int16 if width < 2**15 else np.int64
    columns: Any = np.arange(width, dtype=dtype)
    return columns <= np.asarray(last).astype(dtype)[:, None]


def _words(mask: Mask) -> Any:
    """The mask's rows as 64-bit words of 8 columns each, where the row allows it (bools
    whose width is a multiple of 64, and NumPy with a population count); else None."""
    width = mask.shape[1]
    if mask.dtype != np.bool_ or width == 0 or width % 64 or width >= 2**15 or \
            not hasattr(np, "bitwise_count"):
        return None
    return np.ascontiguousarray(mask).view(np.uint64)


def _first_within(counts: Any, before: Any, limit: Any) -> tuple[Any, Any]:
    """In each row of ``counts`` (entries per part, ``before``: entries before the first
    part), the part holding entry number ``limit``, and the entries before that part."""
    rows = np.arange(len(counts))
    running = np.cumsum(counts, axis=1, dtype=np.int32) + before[:, None]
    part = np.argmax(running >= limit[:, None], axis=1)
    return part, running[rows, part] - counts[rows, part]


def first_k(mask: Any, k: Any) -> Mask:
    """The first ``k`` entries of each row of ``mask`` (``k``: one count, or one per row).

    Where the rows are 64-bit words, the column of entry ``k`` is found in three steps of
    at most 16 and 8 parts (blocks of 8 words, words, columns) instead of one running count
    of every column."""
    mask = np.asarray(mask, dtype=bool)
    n, width = mask.shape
    limit = np.broadcast_to(np.asarray(k, dtype=np.int64).reshape(-1), (n,))
    words = _words(mask)
    if words is None or mask.size < _SMALL:
        return mask & (np.cumsum(mask, axis=1) <= limit[:, None])
    per_word = np.bitwise_count(words)
    per_block = np.add.reduceat(per_word, np.arange(0, width // 8, 8), axis=1,
                                dtype=np.int32)
    rows = np.arange(n)
    zero = np.zeros(n, dtype=np.int32)
    block, before = _first_within(per_block, zero, limit)
    within, before = _first_within(per_word.reshape(n, -1, 8)[rows, block], before, limit)
    word = block * 8 + within
    column, _ = _first_within(mask.reshape(n, -1, 8)[rows, word].view(np.uint8), before, limit)
    last = word * 8 + column
    last = np.where(limit > per_block.sum(axis=1), width - 1, last)
    return mask & _positions(width, np.where(limit <= 0, -1, last))


def up_to_last(mask: Any) -> Mask:
    """Every column of each row up to and including the row's last entry (none in a row
    without one): ``np.logical_or.accumulate`` from the right."""
    mask = np.asarray(mask, dtype=bool)
    n, width = mask.shape
    if width == 0 or n == 0:
        return mask.copy()
    if mask.size < _SMALL:
        return np.logical_or.accumulate(mask[:, ::-1], axis=1)[:, ::-1]
    words = _words(mask)
    if words is None:
        last = width - 1 - np.argmax(mask[:, ::-1], axis=1)
    else:
        used = words != 0
        word = words.shape[1] - 1 - np.argmax(used[:, ::-1], axis=1)
        column = 7 - np.argmax(mask.reshape(n, -1, 8)[np.arange(n), word][:, ::-1], axis=1)
        last = word * 8 + column
    return _positions(width, np.where(mask.any(axis=1), last, -1))
