# mypy: disable-error-code="no-any-return"
"""One named entry per row of a batch, held as its index rather than as a mask.

A kernel names one page of a VM (a PPN or VPN argument, the lowest free PPN, the
PPN holding a VPN, the LRU victim) as a *one-hot* vector. Over a batch of rows
that is a ``(batch, width)`` mask with at most one entry set per row; building,
combining and scanning such masks costs ``batch * width`` per operation where
the index alone costs ``batch``. The NumPy interpreter
(:mod:`ballast.numeric.interpret`) keeps these vectors as :class:`OneHot` and
reads and writes through the index (a gather or a scatter per row); anything
else sees the same mask, built on first use.

>>> import numpy as np
>>> x = OneHot(np.array([2, -1]), 3)
>>> x.dense().tolist()
[[False, False, True], [False, False, False]]
>>> x.present().tolist()
[True, False]
>>> x.keep(np.array([False, True])).index.tolist()
[-1, -1]
>>> x.gather(np.array([[5, 6, 7], [8, 9, 10]])).tolist()
[7, 0]
>>> (np.logical_and(x, True)).tolist()
[[False, False, True], [False, False, False]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["OneHot", "dense", "one_hot"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


class OneHot:
    """Per row of a batch, at most one entry of a vector of ``width`` entries is set: the
    one at ``index`` (-1: none). Reads as the equivalent ``(rows, width)`` mask wherever
    an array is expected."""

    __slots__ = ("index", "width", "_mask", "_present")

    def __init__(self, index: Any, width: int) -> None:
        # The index is never written in place: what is derived from it is kept.
        self.index: Ints = (index if type(index) is np.ndarray and index.dtype == np.int64
                            else np.asarray(index, dtype=np.int64))
        self.width = width
        self._mask: Mask | None = None
        self._present: Mask | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.index), self.width)

    ndim = 2
    dtype = np.dtype(bool)

    def __len__(self) -> int:
        return len(self.index)

    def present(self) -> Mask:
        """Whether each row names an entry."""
        if self._present is None:
            self._present = self.index >= 0
        return self._present

    def dense(self) -> Mask:
        """The same vector as a ``(rows, width)`` mask."""
        if self._mask is None:
            out = np.zeros(self.shape, dtype=bool)
            rows = self.present().nonzero()[0]
            out[rows, self.index[rows]] = True
            self._mask = out
        return self._mask

    def keep(self, rows: Any) -> "OneHot":
        """Only the entries of rows where ``rows`` (a truth value per row, or one) holds."""
        return OneHot(np.where(rows, self.index, -1), self.width)

    def gather(self, values: Any, none: Any = 0) -> Any:
        """Per row, the entry of ``values`` (``(rows, width)``) it names; ``none`` where it
        names none."""
        at = np.maximum(self.index, 0)
        got = np.asarray(values)[np.arange(len(at)), at]
        return np.where(self.present(), got, none)

    # Anything written for masks reads the mask.
    def __array__(self, dtype: Any = None, copy: Any = None) -> Mask:
        m = self.dense()
        return m if dtype is None else m.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dense(), name)

    def __getitem__(self, key: Any) -> Any:
        return self.dense()[key]

    def __and__(self, other: Any) -> Any:
        return self.dense() & np.asarray(other)

    __rand__ = __and__

    def __or__(self, other: Any) -> Any:
        return self.dense() | np.asarray(other)

    __ror__ = __or__

    def __invert__(self) -> Mask:
        return ~self.dense()


def one_hot(mask: Any) -> OneHot:
    """The first set entry of each row of ``mask`` (``(rows, width)``)."""
    if type(mask) is OneHot:
        return mask
    m = np.asarray(mask, dtype=bool)
    # One pass for the first entry; whether the row has one is that entry itself.
    first = m.argmax(axis=1)
    return OneHot(np.where(m[np.arange(len(first)), first], first, -1), m.shape[1])


def dense(x: Any) -> Any:
    """``x`` with a :class:`OneHot` turned into its mask (anything else unchanged)."""
    return x.dense() if type(x) is OneHot else x
