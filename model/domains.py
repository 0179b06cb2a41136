"""The domain of every action parameter: each value it may take in a configuration's sizes.

An action's guard decides which arguments are allowed in a state; its domain is
the wider set of values of the right kind and size (every VM number, every PPN
including one past the end that a hostile guest may report, every sorted list
of distinct PPNs that fits in one report, ...). Checkers that generate
arguments (the Hypothesis machine) draw from these domains and let the guard
discard what it does not allow, so that the guard stays the one definition of
what is allowed. Domains are plain data; a checker turns them into its own
generators.

>>> from ballast.model.config import Config
>>> cfg = Config(vms=2, guest_pages=4, batch=2)
>>> parameter_domain(cfg, "vm")
IntRange(low=0, high=1)
>>> parameter_domain(cfg, "ppns")
PageList(low=0, high=3, min_len=1, max_len=2)
>>> parameter_domain(cfg, "no_such_parameter") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ballast.model.config import Config

__all__ = ["DOMAINS", "Choice", "Domain", "IntRange", "PageList", "action_domains",
           "parameter_domain"]


@dataclass(frozen=True)
class IntRange:
    """An integer from ``low`` to ``high``, both included."""

    low: int
    high: int


@dataclass(frozen=True)
class Choice:
    """One of a few named values."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class PageList:
    """A sorted tuple of distinct page numbers from ``low`` to ``high``, of
    ``min_len`` to ``max_len`` entries (a report's page list)."""

    low: int
    high: int
    min_len: int
    max_len: int


Domain = IntRange | Choice | PageList

DOMAINS: dict[str, Callable[[Config], Domain]] = {
    "vm": lambda c: IntRange(0, c.vms - 1),
    "other_vm": lambda c: IntRange(0, c.vms - 1),
    # One past the last PPN: a hostile guest may report a page that does not exist.
    "ppn": lambda c: IntRange(0, c.guest_pages),
    "other_ppn": lambda c: IntRange(0, c.guest_pages - 1),
    "ppns": lambda c: PageList(0, c.guest_pages - 1, 1, c.batch),
    # The VMM refuses pages of a report; a hostile guest's queue holds up to two reports.
    "refuse": lambda c: PageList(0, c.guest_pages, 0, 2 * c.batch),
    "pages": lambda c: IntRange(0, c.guest_pages),
    "host_page": lambda c: IntRange(0, c.host_pages - 1),
    "vpn": lambda c: IntRange(0, max(0, c.guest_data_pages - 1)),
    "token": lambda c: IntRange(0, c.tokens),
    "vcpus": lambda c: IntRange(0, c.vcpus),
    "vcpu": lambda c: IntRange(0, max(0, c.vcpus - 1)),
    "queue": lambda c: Choice(("inflate", "deflate")),
    "actual": lambda c: IntRange(0, c.guest_pages + 1),
    # A migration's new page (the allocator's choice) and the old page it replaces.
    "new": lambda c: IntRange(0, c.guest_pages - 1),
    "old": lambda c: IntRange(0, c.guest_pages - 1),
    # The free page hint command the VMM writes to end a hint cycle.
    "command": lambda c: Choice(("stop", "done")),
}
"""Parameter name -> its domain in a configuration (the same name means the same kind
of value in every action)."""


def parameter_domain(cfg: Config, name: str) -> Domain | None:
    """The domain of parameter ``name`` in ``cfg``, or None if the model declares none."""
    make = DOMAINS.get(name)
    return make(cfg) if make is not None else None


def action_domains(cfg: Config, params: tuple[str, ...]) -> dict[str, Domain] | None:
    """The domain of each of an action's parameters, or None if one has no domain.

    >>> action_domains(Config(vms=1), ("vm",))
    {'vm': IntRange(low=0, high=0)}
    """
    out: dict[str, Domain] = {}
    for p in params:
        d = parameter_domain(cfg, p)
        if d is None:
            return None
        out[p] = d
    return out
