"""The visited set of the frontier explorer: packed keys in sorted runs, found by sorting.

A key is one row of ``words`` unsigned 64-bit integers
(:meth:`~ballast.statespace.rowcodec.RowLayout.pack`). One word is its own sort
key. Wider keys are sorted by a 64-bit hash of all their words and then
*verified*: two keys are the same state only when every word is equal, and keys
whose hashes collide are told apart word by word (rare; a slow path), so a
collision can cost time but never merge two states.

Keys are kept in sorted runs, one per batch added; runs of similar size are
merged (as a log-structured merge tree does, in one linear pass that holds no more
than the two runs and the result), so adding stays linear on average and a lookup
searches a logarithmic number of runs.

With a memory budget (:class:`Spill`), the runs held in memory are written to
disk once they take more than the budget, as one sorted run (``np.save``, then
read back memory-mapped); runs on disk of similar size are merged on disk, block
by block, so neither writing nor merging needs more memory than a block. What
was written is counted (:attr:`Spill.written`).

>>> import numpy as np
>>> ks = KeySet(2)
>>> keys = np.array([[1, 2], [3, 4], [1, 2]], dtype=np.uint64)
>>> first, new = first_occurrences(keys)
>>> first.tolist(), new
([0, 1], 2)
>>> ks.add(keys[first], np.array([0, 1]))
>>> ks.lookup(np.array([[3, 4], [5, 6]], dtype=np.uint64)).tolist()
[1, -1]
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["KeySet", "Spill", "distinct", "first_occurrences", "key_hash", "unique_rows"]

Keys = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.int64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: Keys) -> Keys:
    """splitmix64's finaliser, elementwise."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def key_hash(keys: Keys) -> Keys:
    """One 64-bit sort key per key: the key itself for one word, a hash of the words else."""
    if keys.shape[1] == 1:
        return keys[:, 0].copy()
    with np.errstate(over="ignore"):
        h = np.zeros(keys.shape[0], dtype=np.uint64)
        for w in range(keys.shape[1]):
            h = _mix(h ^ (keys[:, w] + _GOLDEN * np.uint64(w + 1)))
    return h


def _neighbours_differ(keys: Keys, order: Ints) -> npt.NDArray[np.bool_]:
    """Whether each key of ``keys[order]`` differs from the next, word by word (one pass
    over each word rather than a comparison of whole rows)."""
    out: npt.NDArray[np.bool_] | None = None
    for w in range(keys.shape[1]):
        col = keys[:, w][order]
        d = col[1:] != col[:-1]
        out = d if out is None else out | d
    assert out is not None
    return out


def _sort(keys: Keys, h: Keys) -> tuple[Ints, npt.NDArray[np.bool_]]:
    """An order of ``keys`` in which equal keys are adjacent (in no particular order among
    themselves: a sort that need not be stable is several times quicker), and whether
    each key in that order differs from the next."""
    order: Ints = np.argsort(h)
    hs = h[order]
    differ = hs[1:] != hs[:-1]
    if keys.shape[1] > 1:
        key_differs = _neighbours_differ(keys, order)
        if (key_differs & ~differ).any():  # a hash collision: sort by every word as well
            order = np.lexsort(tuple(keys[:, w] for w in reversed(range(keys.shape[1])))
                               + (h,))
            key_differs = _neighbours_differ(keys, order)
        differ = key_differs
    return order, differ


def _groups(keys: Keys, h: Keys | None = None) -> tuple[Ints, Ints, Ints]:
    """(an order in which equal keys are adjacent; where each group of equal keys starts in
    it; the first occurrence, the smallest index, of each group's key). ``h``: the keys'
    :func:`key_hash`, where the caller has it."""
    order, differ = _sort(keys, key_hash(keys) if h is None else h)
    start = np.ones(keys.shape[0], dtype=bool)
    start[1:] = differ
    starts: Ints = np.flatnonzero(start)
    return order, starts, np.minimum.reduceat(order, starts)


def first_occurrences(keys: Keys) -> tuple[Ints, int]:
    """Indices of the first occurrence of each distinct key, in ascending order, and how
    many there are."""
    if keys.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), 0
    first = np.sort(_groups(keys)[2])
    return first, len(first)


def distinct(keys: Keys, h: Keys | None = None) -> tuple[Ints, Ints]:
    """(indices of the first occurrence of each distinct key, ascending; for every key, the
    position of its first occurrence in that list). ``h``: the keys' :func:`key_hash`,
    where the caller has it.

    >>> import numpy as np
    >>> first, inverse = distinct(np.array([[5], [3], [5]], dtype=np.uint64))
    >>> first.tolist(), inverse.tolist()
    ([0, 1], [0, 1, 0])
    """
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order, starts, leader = _groups(keys, h)
    by_index = np.argsort(leader)  # leaders are distinct: any sort gives one order
    rank = np.empty(len(leader), dtype=np.int64)
    rank[by_index] = np.arange(len(leader))
    group_of_sorted = np.repeat(rank, np.diff(starts, append=n))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group_of_sorted
    return leader[by_index], inverse


def unique_rows(table: Ints) -> tuple[Ints, Ints, Ints]:
    """``np.unique(table, axis=0, return_index=True, return_inverse=True)`` for a table of
    small integers, sorted as one integer per row where the columns' ranges fit in 63 bits
    (a sort of numbers rather than of row records, several times quicker).

    >>> import numpy as np
    >>> u, first, inv = unique_rows(np.array([[1, -1], [0, 5], [1, -1]]))
    >>> u.tolist(), first.tolist(), inv.tolist()
    ([[0, 5], [1, -1]], [1, 0], [1, 0, 1])
    """
    n, w = table.shape
    if n == 0 or w == 0:
        uniq, first, inv = np.unique(table, axis=0, return_index=True, return_inverse=True)
        return uniq, first, inv.reshape(-1)
    low = table.min(axis=0)
    span = table.max(axis=0) - low + 1
    if float(np.prod(span.astype(np.float64))) >= 2.0 ** 62:
        uniq, first, inv = np.unique(table, axis=0, return_index=True, return_inverse=True)
        return uniq, first, inv.reshape(-1)
    code = np.zeros(n, dtype=np.int64)
    for c in range(w):  # the first column most significant: the rows' lexicographic order
        code = code * int(span[c]) + (table[:, c] - low[c])
    first, inv = _unique_numbers(code)
    return table[first], first, inv


def _unique_numbers(code: Ints) -> tuple[Ints, Ints]:
    """``np.unique(code, return_index=True, return_inverse=True)[1:]`` by a sort that need
    not be stable: the first occurrence of each value is the least index of its group."""
    n = len(code)
    order: Ints = np.argsort(code)
    sorted_code = code[order]
    start = np.ones(n, dtype=bool)
    start[1:] = sorted_code[1:] != sorted_code[:-1]
    starts = np.flatnonzero(start)
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.cumsum(start) - 1
    return np.minimum.reduceat(order, starts), inv


class _Run:
    __slots__ = ("h", "keys", "ids", "files")

    def __init__(self, h: Keys, keys: Keys, ids: Ints, files: tuple[str, ...] = ()) -> None:
        self.h, self.keys, self.ids = h, keys, ids
        self.files = files
        """The files of a run on disk (its arrays are memory-mapped from them)."""

    def __len__(self) -> int:
        return len(self.h)


class Spill:
    """Where runs go once the memory budget is spent: a temporary folder, and the bytes
    written there (every array of every run saved, merges included)."""

    def __init__(self, budget: int, directory: str | None = None) -> None:
        self.budget = budget
        self._tmp = tempfile.TemporaryDirectory(prefix="ballast-spill-", dir=directory)
        self.directory = self._tmp.name
        self.written = 0
        """Bytes written to disk."""
        self.held = 0
        """Bytes on disk now."""
        self._next = 0

    def save(self, arrays: tuple[npt.NDArray[Any], ...]) -> tuple[tuple[str, ...], list[Any]]:
        """Write ``arrays`` (one file each); their files and memory-mapped views."""
        files, views = [], []
        for a in arrays:
            path = os.path.join(self.directory, f"run{self._next}.npy")
            self._next += 1
            np.save(path, a)
            self.written += a.nbytes
            self.held += a.nbytes
            files.append(path)
            views.append(np.load(path, mmap_mode="r"))
        return tuple(files), views

    def create(self, shapes: tuple[tuple[tuple[int, ...], Any], ...]
               ) -> tuple[tuple[str, ...], list[Any]]:
        """New files for arrays of these (shape, dtype), open for writing."""
        files, views = [], []
        for shape, dtype in shapes:
            path = os.path.join(self.directory, f"run{self._next}.npy")
            self._next += 1
            view = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            self.written += view.nbytes
            self.held += view.nbytes
            files.append(path)
            views.append(view)
        return tuple(files), views

    def remove(self, run: _Run) -> None:
        """Delete the files of a run that was merged into another."""
        for f, a in zip(run.files, (run.h, run.keys, run.ids)):
            self.held -= a.nbytes
            os.remove(f)

    def discard(self, path: str, nbytes: int) -> None:
        """Delete a file of ``nbytes`` that is no longer read."""
        self.held -= nbytes
        os.remove(path)

    def close(self) -> None:
        """Delete the folder and everything in it."""
        self._tmp.cleanup()


_MERGE_BLOCK = 1 << 20
"""Keys merged at a time when two runs on disk are merged."""


class KeySet:
    """Distinct packed keys, each with an id (``spill``: runs beyond its budget on disk)."""

    def __init__(self, words: int, spill: Spill | None = None) -> None:
        self.words = words
        self.runs: list[_Run] = []
        self.disk: list[_Run] = []
        """Runs on disk, largest first."""
        self.size = 0
        self.spill = spill

    def nbytes(self) -> int:
        """Bytes held in memory by the keys, their hashes and ids."""
        return sum(self._bytes(r) for r in self.runs)

    def _bytes(self, r: _Run) -> int:
        return r.h.nbytes + (r.keys.nbytes if self.words > 1 else 0) + r.ids.nbytes

    def add(self, keys: Keys, ids: Ints, h: Keys | None = None) -> None:
        """Add distinct keys not in the set yet, with their ids (``h``: their
        :func:`key_hash`, where the caller has it)."""
        if not len(keys):
            return
        if h is None:
            h = key_hash(keys)
        order = _sort(keys, h)[0]
        self.runs.append(_Run(h[order], keys[order] if self.words > 1 else keys[:0],
                              np.asarray(ids, dtype=np.int64)[order]))
        self.size += len(keys)
        while len(self.runs) > 1 and len(self.runs[-2].h) <= 2 * len(self.runs[-1].h):
            b, a = self.runs.pop(), self.runs.pop()
            self.runs.append(self._merged(a, b))
        if self.spill is not None and self.nbytes() > self.spill.budget:
            self._spill()

    def _merged(self, a: _Run, b: _Run) -> _Run:
        """Two sorted runs as one, merged in one linear pass (each of ``b``'s keys goes
        after ``a``'s keys of no greater hash): no sort, and no copy beyond the result."""
        n = len(a) + len(b)
        at_b = np.searchsorted(a.h, b.h, side="right") + np.arange(len(b))
        from_a = np.ones(n, dtype=bool)
        from_a[at_b] = False

        def merge(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> npt.NDArray[Any]:
            out = np.empty((n,) + x.shape[1:], dtype=x.dtype)
            out[at_b] = y
            out[from_a] = x
            return out

        return _Run(merge(a.h, b.h), merge(a.keys, b.keys) if self.words > 1 else a.keys[:0],
                    merge(a.ids, b.ids))

    def _spill(self) -> None:
        """Write every run in memory to disk as one sorted run; merge runs on disk of
        similar size."""
        assert self.spill is not None
        run = self.runs[0]
        for r in self.runs[1:]:
            run = self._merged(run, r)
        self.runs = []
        files, (h, k, i) = self.spill.save((run.h, run.keys, run.ids))
        self.disk.append(_Run(h, k, i, files))
        while len(self.disk) > 1 and len(self.disk[-2]) <= 2 * len(self.disk[-1]):
            b, a = self.disk.pop(), self.disk.pop()
            self.disk.append(self._merge_on_disk(a, b))

    def _merge_on_disk(self, a: _Run, b: _Run) -> _Run:
        """Two runs on disk merged into a new one, a block at a time."""
        assert self.spill is not None
        n, w = len(a) + len(b), self.words
        files, (h, k, i) = self.spill.create((((n,), np.uint64),
                                              ((n if w > 1 else 0, w), np.uint64),
                                              ((n,), np.int64)))
        at, bt, out = 0, 0, 0
        while at < len(a) or bt < len(b):
            a_end = min(len(a), at + _MERGE_BLOCK)
            # Every key of b up to the last hash of a's block goes with it (equal hashes
            # included, so a key and its duplicates never straddle two blocks).
            b_end = (len(b) if a_end == len(a) else
                     int(np.searchsorted(b.h, a.h[a_end - 1], side="right")))
            b_end = max(bt, b_end)
            part = self._merged(_Run(np.asarray(a.h[at:a_end]), np.asarray(a.keys[at:a_end]),
                                     np.asarray(a.ids[at:a_end])),
                                _Run(np.asarray(b.h[bt:b_end]), np.asarray(b.keys[bt:b_end]),
                                     np.asarray(b.ids[bt:b_end])))
            m = len(part)
            h[out:out + m] = part.h
            if w > 1:
                k[out:out + m] = part.keys
            i[out:out + m] = part.ids
            at, bt, out = a_end, b_end, out + m
        for arr in (h, k, i):
            arr.flush()
        self.spill.remove(a)
        self.spill.remove(b)
        return _Run(h, k, i, files)

    def lookup(self, keys: Keys, h: Keys | None = None) -> Ints:
        """The id of each key, or -1 for a key not in the set (``h``: their
        :func:`key_hash`, where the caller has it)."""
        n = len(keys)
        found = np.full(n, -1, dtype=np.int64)
        if not n or not (self.runs or self.disk):
            return found
        # Asked in the order of their hashes: each run's binary searches then walk it
        # forwards (several times quicker than searching it in random order).
        if h is None:
            h = key_hash(keys)
        asked: Ints = np.argsort(h)
        h = h[asked]
        out = np.full(n, -1, dtype=np.int64)  # in the asked order
        for run in self.runs + self.disk:
            pos = np.searchsorted(run.h, h)
            pos_c = np.minimum(pos, len(run.h) - 1)
            hit = (run.h[pos_c] == h) & (out < 0)
            if self.words == 1:
                out[hit] = run.ids[pos_c[hit]]
                continue
            idx = np.nonzero(hit)[0]
            at_run, at_keys = pos_c[idx], asked[idx]
            same = np.ones(len(idx), dtype=bool)
            for w in range(self.words):  # word by word, not whole rows
                same &= run.keys[:, w][at_run] == keys[:, w][at_keys]
            out[idx[same]] = run.ids[pos_c[idx[same]]]
            for i in idx[~same].tolist():  # hash equal, key not: look along the equal hashes
                j = int(pos_c[i])
                key = keys[asked[i]]
                while j < len(run.h) and run.h[j] == h[i]:
                    if (run.keys[j] == key).all():
                        out[i] = run.ids[j]
                        break
                    j += 1
        found[asked] = out
        return found
