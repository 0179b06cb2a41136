"""The sets of pages an actor may choose, as the actions' candidates list them.

An action whose actor chooses several pages (the guest's allocator handing pages to the
balloon, the module deflating some of its pages, the VMM refusing some of a report) lists
its candidates through :func:`subsets`. For the exhaustive checkers that is every subset of
the size asked, in ``itertools.combinations`` order. A random run needs one enabled step,
not all of them: on a guest of 64 free pages a request of 10 has 151,473,214,816 answers.
Under :func:`sampled` a size with more subsets than the sample's limit yields that many
distinct subsets drawn at random instead (each ascending), so a random run's cost per step
stays bounded whatever the guest's size; a size with no more subsets than the limit still
yields every one, in the same order, so small configurations run exactly as before.

>>> list(subsets([1, 2, 3], 2))
[(1, 2), (1, 3), (2, 3)]
>>> import random
>>> with sampled(random.Random(0), limit=4):
...     few = list(subsets(range(64), 10))
...     all_pairs = list(subsets([1, 2, 3], 2))
>>> len(few), all(list(s) == sorted(set(s)) for s in few), all_pairs
(4, True, [(1, 2), (1, 3), (2, 3)])

Two choices made together (which reported pages the VMM accepts, and which of the
invalid ones it refuses too) are listed through :func:`pairs`, every pair or a sample:

>>> list(pairs(iter("ab"), [1, 2]))
[('a', 1), ('a', 2), ('b', 1), ('b', 2)]
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol, Sequence

__all__ = ["Draws", "SAMPLE_LIMIT", "pairs", "sampled", "subsets"]

SAMPLE_LIMIT = 16
"""Subsets of one size a random run draws where there are more (a random run takes the first
enabled candidate of a shuffled list, so a few dozen per size is ample)."""


class Draws(Protocol):
    """Where a sample's randomness comes from (``random.Random``: the model draws nothing
    itself; the random run hands it its own seeded generator)."""

    def sample(self, population: Sequence[Any], k: int) -> list[Any]:
        """``k`` distinct entries of ``population``."""


@dataclass(frozen=True)
class _Sample:
    rng: Draws
    limit: int


_SAMPLE: ContextVar[_Sample | None] = ContextVar("ballast_choice_sample", default=None)


@contextmanager
def sampled(rng: Draws, limit: int = SAMPLE_LIMIT) -> Iterator[None]:
    """Within the block, :func:`subsets` draws at most ``limit`` subsets of each size with
    ``rng`` where there are more."""
    token = _SAMPLE.set(_Sample(rng, max(1, limit)))
    try:
        yield
    finally:
        _SAMPLE.reset(token)


def subsets(pool: Iterable[int], size: int) -> Iterator[tuple[int, ...]]:
    """The subsets of ``size`` entries of ``pool`` (its order kept inside each): every one,
    or under :func:`sampled` a random few where there are more than its limit."""
    items = list(pool)
    sample = _SAMPLE.get()
    if sample is None or math.comb(len(items), size) <= sample.limit:
        return itertools.combinations(items, size)
    return _drawn(items, size, sample)


def _drawn(items: list[int], size: int, sample: _Sample) -> Iterator[tuple[int, ...]]:
    seen: set[tuple[int, ...]] = set()
    while len(seen) < sample.limit:  # more subsets exist than the limit: this ends
        at = tuple(sorted(sample.rng.sample(range(len(items)), size)))
        if at not in seen:
            seen.add(at)
            yield tuple(items[i] for i in at)


def pairs(first: Iterable[Any], second: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
    """Every pair of an entry of ``first`` and one of ``second``, ``first``'s order outside
    (``first`` read lazily: a checker that asks for a few candidates of a large guest reads
    only those); under :func:`sampled`, where there are more pairs than its limit, that many
    distinct pairs drawn at random."""
    sample = _SAMPLE.get()
    if sample is None:
        for a in first:
            for b in second:
                yield a, b
        return
    outer = list(first)
    total = len(outer) * len(second)
    if total <= sample.limit:
        for a in outer:
            for b in second:
                yield a, b
        return
    for at in sorted(sample.rng.sample(range(total), sample.limit)):
        yield outer[at // len(second)], second[at % len(second)]
