"""The guest OS's allocator and replacement policy (pluggable).

The point of ballooning is that the *guest* decides which of its pages to give
up. A policy answers the two questions the guest answers for itself: which free
pages does the allocator hand out, and which resident page does it evict to its
own virtual disk when it needs room.

>>> from ballast.model.config import GuestPolicyName
>>> lru = policy_for(GuestPolicyName.LRU)
>>> lru.allocation((-1, 3, -1, -1), 2)
(0, 2)
>>> lru.victims((5, 1))
(5,)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Protocol

from ballast.model.config import GuestPolicyName
from ballast.model.state import FREE

__all__ = ["AnyPolicy", "GuestPolicy", "LruPolicy", "policy_for"]


class GuestPolicy(Protocol):
    """What a guest replacement policy decides."""

    @property
    def name(self) -> str:
        """The configured policy name."""

    def allocation(self, ppn_use: tuple[int, ...], count: int) -> tuple[int, ...]:
        """The free PPNs the allocator hands out for a request of ``count`` pages."""

    def allocations(self, ppn_use: tuple[int, ...], count: int) -> Iterable[tuple[int, ...]]:
        """Every answer the allocator may give to a request of ``count`` pages."""

    def allows_allocation(self, ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
        """Whether the allocator could have handed out exactly ``ppns``."""

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        """The resident VPNs the guest may evict next (``lru`` oldest first)."""


def _free(ppn_use: tuple[int, ...]) -> list[int]:
    return [p for p, use in enumerate(ppn_use) if use == FREE]


@dataclass(frozen=True)
class LruPolicy:
    """Free list first, lowest PPN first; evict the least recently used VPN."""

    name: str = "lru"

    def allocation(self, ppn_use: tuple[int, ...], count: int) -> tuple[int, ...]:
        return tuple(_free(ppn_use)[:count])

    def allocations(self, ppn_use: tuple[int, ...], count: int) -> Iterable[tuple[int, ...]]:
        got = self.allocation(ppn_use, count)
        return [got] if len(got) == count else []

    def allows_allocation(self, ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
        return ppns == self.allocation(ppn_use, len(ppns))

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        return lru[:1]


@dataclass(frozen=True)
class AnyPolicy:
    """Any free pages, any victim: what a validator must allow of a real guest."""

    name: str = "any"

    def allocation(self, ppn_use: tuple[int, ...], count: int) -> tuple[int, ...]:
        return tuple(_free(ppn_use)[:count])

    def allocations(self, ppn_use: tuple[int, ...], count: int) -> Iterable[tuple[int, ...]]:
        return itertools.combinations(_free(ppn_use), count)

    def allows_allocation(self, ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
        return (len(set(ppns)) == len(ppns) and list(ppns) == sorted(ppns)
                and all(0 <= p < len(ppn_use) and ppn_use[p] == FREE for p in ppns))

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        return lru


def policy_for(name: GuestPolicyName) -> GuestPolicy:
    """The policy object for a configured policy name."""
    return LruPolicy() if name is GuestPolicyName.LRU else AnyPolicy()
