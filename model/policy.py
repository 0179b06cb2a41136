"""The guest OS's allocator and replacement policy (pluggable).

The point of ballooning is that the *guest* decides which of its pages to give
up. A policy answers the two questions the guest answers for itself: which free
pages does the allocator hand out, and which resident page does it evict to its
own virtual disk when it needs room.

Which free pages the allocator hands to the balloon module is the guest's own
choice, and real allocators differ (Linux's buddy allocator, ``alloc_page`` in
drivers/virtio/virtio_balloon.c, hands out whatever page its free lists hold;
virtio 1.x section 5.5.6.3 leaves the choice of pages to the driver). So every
policy but ``lowest`` admits *any* free pages, in any order: the order inside
one report is not kept (the inflate queue is a multiset), so candidates list
each set of pages once, in ascending order. ``lowest`` narrows the choice to
the lowest free PPNs, for a guest known to allocate that way.

>>> from ballast.model.config import GuestPolicyName
>>> lru = policy_for(GuestPolicyName.LRU)
>>> list(lru.allocations((-1, 3, -1, -1), 2))
[(0, 2), (0, 3), (2, 3)]
>>> lru.allows_allocation((-1, 3, -1, -1), (3, 0)), lru.victims((5, 1))
(True, (5,))
>>> policy_for(GuestPolicyName.LOWEST).allows_allocation((-1, 3, -1, -1), (0, 3))
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from ballast.model.choices import subsets
from ballast.model.config import GuestPolicyName
from ballast.model.state import FREE

__all__ = ["AnyPolicy", "GuestPolicy", "LowestPolicy", "LruPolicy", "policy_for"]


class GuestPolicy(Protocol):
    """What a guest replacement policy decides."""

    @property
    def name(self) -> str:
        """The configured policy name."""

    def allocation(self, ppn_use: tuple[int, ...], count: int) -> tuple[int, ...]:
        """The free PPNs the allocator hands a guest process (the model fixes the lowest)."""

    def allocations(self, ppn_use: tuple[int, ...], count: int) -> Iterable[tuple[int, ...]]:
        """Every set of pages (ascending) the allocator may hand the balloon module for a
        request of ``count`` pages: exactly those :meth:`allows_allocation` admits."""

    def allows_allocation(self, ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
        """Whether the allocator could have handed out exactly ``ppns`` (in any order)."""

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        """The resident VPNs the guest may evict next (``lru`` oldest first)."""


def _free(ppn_use: tuple[int, ...]) -> list[int]:
    return [p for p, use in enumerate(ppn_use) if use == FREE]


def _any_free(ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
    """Distinct PPNs, each on the free list (in any order)."""
    if len(set(ppns)) != len(ppns):
        return False
    size = len(ppn_use)
    for p in ppns:  # a loop, not all() over a generator: a report has hundreds of pages
        if not (isinstance(p, int) and 0 <= p < size and ppn_use[p] == FREE):
            return False
    return True


@dataclass(frozen=True)
class LruPolicy:
    """Any free pages for the balloon; evict the least recently used VPN."""

    name: str = "lru"

    def allocation(self, ppn_use: tuple[int, ...], count: int) -> tuple[int, ...]:
        return tuple(_free(ppn_use)[:count])

    def allocations(self, ppn_use: tuple[int, ...], count: int) -> Iterable[tuple[int, ...]]:
        return subsets(_free(ppn_use), count)

    def allows_allocation(self, ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
        return _any_free(ppn_use, ppns)

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        return lru[:1]


@dataclass(frozen=True)
class LowestPolicy:
    """The lowest free PPNs first; evict the least recently used VPN (a narrowed guest)."""

    name: str = "lowest"

    def allocation(self, ppn_use: tuple[int, ...], count: int) -> tuple[int, ...]:
        return tuple(_free(ppn_use)[:count])

    def allocations(self, ppn_use: tuple[int, ...], count: int) -> Iterable[tuple[int, ...]]:
        got = self.allocation(ppn_use, count)
        return [got] if len(got) == count else []

    def allows_allocation(self, ppn_use: tuple[int, ...], ppns: tuple[int, ...]) -> bool:
        return _any_free(ppn_use, ppns) and sorted(ppns) == list(
            self.allocation(ppn_use, len(ppns)))

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        return lru[:1]


@dataclass(frozen=True)
class AnyPolicy(LruPolicy):
    """Any free pages, any victim: what a validator must allow of a real guest."""

    name: str = "any"

    def victims(self, lru: tuple[int, ...]) -> tuple[int, ...]:
        return lru


def policy_for(name: GuestPolicyName) -> GuestPolicy:
    """The policy object for a configured policy name."""
    if name is GuestPolicyName.LRU:
        return LruPolicy()
    return LowestPolicy() if name is GuestPolicyName.LOWEST else AnyPolicy()
