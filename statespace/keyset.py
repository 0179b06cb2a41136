"""The visited set of the frontier explorer: packed keys in sorted runs, found by sorting.

A key is one row of ``words`` unsigned 64-bit integers
(:meth:`~ballast.statespace.rowcodec.RowLayout.pack`). One word is its own sort
key. Wider keys are sorted by a 64-bit hash of all their words and then
*verified*: two keys are the same state only when every word is equal, and keys
whose hashes collide are told apart word by word (rare; a slow path), so a
collision can cost time but never merge two states.

Keys are kept in sorted runs, one per batch added; runs of similar size are
merged (as a log-structured merge tree does), so adding stays linear on average
and a lookup searches a logarithmic number of runs.

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

import numpy as np
import numpy.typing as npt

__all__ = ["KeySet", "distinct", "first_occurrences", "key_hash"]

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


def _sort(keys: Keys, h: Keys) -> Ints:
    """An order of ``keys`` in which equal keys are adjacent and, among equal keys, in their
    original order."""
    order = np.argsort(h, kind="stable")
    if keys.shape[1] > 1:
        hs, ks = h[order], keys[order]
        same_h = hs[1:] == hs[:-1]
        differ = (ks[1:] != ks[:-1]).any(axis=1)
        if (same_h & differ).any():  # a hash collision: sort by every word as well
            order = np.lexsort((np.arange(len(h)),) + tuple(
                keys[:, w] for w in reversed(range(keys.shape[1]))) + (h,))
    return order


def first_occurrences(keys: Keys) -> tuple[Ints, int]:
    """Indices of the first occurrence of each distinct key, in ascending order, and how
    many there are."""
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    order = _sort(keys, key_hash(keys))
    ks = keys[order]
    start = np.ones(n, dtype=bool)
    start[1:] = (ks[1:] != ks[:-1]).any(axis=1)
    first = np.sort(order[start])
    return first, len(first)


def distinct(keys: Keys) -> tuple[Ints, Ints]:
    """(indices of the first occurrence of each distinct key, ascending; for every key, the
    position of its first occurrence in that list).

    >>> import numpy as np
    >>> first, inverse = distinct(np.array([[5], [3], [5]], dtype=np.uint64))
    >>> first.tolist(), inverse.tolist()
    ([0, 1], [0, 1, 0])
    """
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = _sort(keys, key_hash(keys))
    ks = keys[order]
    start = np.ones(n, dtype=bool)
    start[1:] = (ks[1:] != ks[:-1]).any(axis=1)
    group = np.cumsum(start) - 1  # group of each sorted position
    leader = order[start]  # first occurrence of each group (stable sort: smallest index)
    rank = np.empty(len(leader), dtype=np.int64)
    rank[np.argsort(leader, kind="stable")] = np.arange(len(leader))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = rank[group]
    return np.sort(leader), inverse


class _Run:
    __slots__ = ("h", "keys", "ids")

    def __init__(self, h: Keys, keys: Keys, ids: Ints) -> None:
        self.h, self.keys, self.ids = h, keys, ids


class KeySet:
    """Distinct packed keys, each with an id."""

    def __init__(self, words: int) -> None:
        self.words = words
        self.runs: list[_Run] = []
        self.size = 0

    def nbytes(self) -> int:
        """Bytes held by the keys, their hashes and ids."""
        return sum(r.h.nbytes + (r.keys.nbytes if self.words > 1 else 0) + r.ids.nbytes
                   for r in self.runs)

    def add(self, keys: Keys, ids: Ints) -> None:
        """Add distinct keys not in the set yet, with their ids."""
        if not len(keys):
            return
        h = key_hash(keys)
        order = _sort(keys, h)
        self.runs.append(_Run(h[order], keys[order] if self.words > 1 else keys[:0],
                              np.asarray(ids, dtype=np.int64)[order]))
        self.size += len(keys)
        while len(self.runs) > 1 and len(self.runs[-2].h) <= 2 * len(self.runs[-1].h):
            b, a = self.runs.pop(), self.runs.pop()
            hh = np.concatenate([a.h, b.h])
            kk = np.concatenate([a.keys, b.keys])
            ii = np.concatenate([a.ids, b.ids])
            if self.words > 1:
                order = _sort(kk, hh)
                self.runs.append(_Run(hh[order], kk[order], ii[order]))
            else:
                order = np.argsort(hh, kind="stable")
                self.runs.append(_Run(hh[order], kk, ii[order]))

    def lookup(self, keys: Keys) -> Ints:
        """The id of each key, or -1 for a key not in the set."""
        out = np.full(len(keys), -1, dtype=np.int64)
        if not len(keys) or not self.runs:
            return out
        h = key_hash(keys)
        for run in self.runs:
            pos = np.searchsorted(run.h, h)
            pos_c = np.minimum(pos, len(run.h) - 1)
            hit = (run.h[pos_c] == h) & (out < 0)
            if self.words == 1:
                out[hit] = run.ids[pos_c[hit]]
                continue
            idx = np.nonzero(hit)[0]
            same = (run.keys[pos_c[idx]] == keys[idx]).all(axis=1)
            out[idx[same]] = run.ids[pos_c[idx[same]]]
            for i in idx[~same].tolist():  # hash equal, key not: look along the equal hashes
                j = int(pos_c[i])
                while j < len(run.h) and run.h[j] == h[i]:
                    if (run.keys[j] == keys[i]).all():
                        out[i] = run.ids[j]
                        break
                    j += 1
        return out
