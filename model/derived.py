"""Derived observations: numbers and contents an observer reads off a state, named once.

An implementation cannot see the whole model state, and a log of it does not record it
whole: it knows how many of its guest's pages are free, how many machine pages the host
has left, what a process would read back. Each such quantity is a function of the state,
defined here once, under the key that a trace step's ``observe`` and an adapter's replies
both use (``*`` standing for the VM number):

* counts: the guest's free and ballooned PPNs, the VM's backed PPNs, the host's free and
  used MPNs, host swap, the machine pages a VM holds;
* contents (:mod:`ballast.model.contents`): the tokens a guest's processes would read back,
  a digest of its resident contents, the host's unscrubbed machine pages.

The paths into :meth:`~ballast.model.state.State.to_dict` are the other observations; a
derived key is never such a path.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> s = initial_state(Config(vms=1, guest_pages=2, guest_data_pages=2, machine_pages=3))
>>> derived_observation(s, "host/free_count"), derived_observation(s, "vms/0/guest/tokens")
(3, [0, 0])
>>> derived_observation(s, "vms/0/target") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ballast.model.actions import held_pages
from ballast.model.contents import read_back, resident_digest, unscrubbed_count
from ballast.model.state import BALLOON, FREE, UNBACKED, State

__all__ = ["DERIVED", "Derived", "derived_observation"]

Value = int | list[int]


@dataclass(frozen=True)
class Derived:
    """One derived observation: its key, what it means, and how the model computes it."""

    template: str
    """The key, ``*`` standing for the VM number (``host/...`` keys have none)."""
    doc: str
    """What it means, in domain words."""
    value: Callable[[State, int], Value]
    """Its value in a state, for a VM (0 for a host key)."""
    listed: bool = False
    """An array of integers (one per VPN), not one integer."""


def _vm_swap(s: State, vm: int) -> int:
    return sum(1 for owner, _, _ in s.host.swap if owner == vm)


DERIVED: dict[str, Derived] = {d.template: d for d in [
    Derived("vms/*/guest/free_count", "Guest: PPNs on its free list.",
            lambda s, vm: s.vms[vm].guest.ppn_use.count(FREE)),
    Derived("vms/*/guest/balloon_count", "Guest: PPNs held by the balloon module.",
            lambda s, vm: s.vms[vm].guest.ppn_use.count(BALLOON)),
    Derived("vms/*/backed_count", "VMM: PPNs backed by a machine page.",
            lambda s, vm: sum(1 for m in s.vms[vm].p2m if m != UNBACKED)),
    Derived("host/free_count", "Host: MPNs in the free pool.", lambda s, vm: len(s.host.free)),
    Derived("host/in_use_count", "Host: MPNs in the host's own use.",
            lambda s, vm: len(s.host.in_use)),
    Derived("host/swap_count", "Host: guest pages in host swap slots.",
            lambda s, vm: len(s.host.swap)),
    Derived("vms/*/swap_count", "VMM: PPNs of the VM paged out to host swap (by the host, or "
            "by the VMM for a VM over its target).", _vm_swap),
    Derived("vms/*/held_count", "VMM: machine pages the VM holds for itself (backed, not "
            "shared): what the host recovers down to guest_pages - target.", held_pages),
    Derived("vms/*/guest/tokens", "Guest: per VPN, the token its process would read back now "
            "(0: never written), from memory, host swap or the guest's own disk.", read_back,
            listed=True),
    Derived("vms/*/guest/digest", "Guest: digest of its resident contents (contents_digest "
            "of the resident (VPN, token) pairs).", resident_digest),
    Derived("host/unscrubbed_count", "Host: MPNs free or in the host's own use that still "
            "hold a guest's data (not scrubbed to the zero page).",
            lambda s, vm: unscrubbed_count(s)),
]}
"""Every derived observation, by key template."""

_VM_KEY = re.compile(r"vms/([0-9]+)/(.+)")


def derived_observation(s: State, key: str) -> Value | None:
    """The value of derived key ``key`` (a concrete key: ``vms/0/...``) in ``s``; None if
    ``key`` is no derived key. Raises IndexError for a VM that does not exist."""
    found = DERIVED.get(key)
    if found is not None:
        return found.value(s, 0)
    at = _VM_KEY.fullmatch(key)
    if at is None:
        return None
    found = DERIVED.get(f"vms/*/{at.group(2)}")
    if found is None:
        return None
    vm = int(at.group(1))
    if vm >= len(s.vms):
        raise IndexError(f"no VM {vm}")
    return found.value(s, vm)
