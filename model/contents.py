"""Observable page contents: what a guest reads back, a digest of it, scrubbing.

Counts and page sets can all be right while data is lost or leaks across VMs
(a freed machine page handed on without scrubbing, a page zeroed under a live
process). These functions make contents visible to an observer who cannot see the
whole state; :mod:`ballast.model.derived` names them as observations that a trace's
``observe`` and an implementation's adapter replies use alike:

* ``vms/N/guest/tokens``: per VPN of VM N, the token its process would read back
  now (0: never written), from memory, host swap or the guest's own disk
  (:func:`read_back`);
* ``vms/N/guest/digest``: :func:`contents_digest` of VM N's resident (VPN, token) pairs
  (:func:`resident_digest`);
* ``host/unscrubbed_count``: MPNs free or in the host's own use that still hold
  a guest's data instead of the zero page (:func:`unscrubbed_count`).

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> s = initial_state(Config(vms=1, guest_pages=2, guest_data_pages=2, machine_pages=2))
>>> read_back(s, 0), unscrubbed_count(s)
([0, 0], 0)
"""

from __future__ import annotations

from typing import Iterable

from ballast.model.state import UNBACKED, State, swap_of

__all__ = ["contents_digest", "read_back", "resident_digest", "unscrubbed_count"]


def read_back(s: State, vm: int) -> list[int]:
    """Per VPN of ``vm``, the token its process would read now (0: never written)."""
    v = s.vms[vm]
    on_disk = dict(v.guest.disk)
    out = [on_disk.get(vpn, 0) for vpn in range(len(v.guest.expected))]
    swapped = swap_of(s.host, vm)
    for ppn, use in enumerate(v.guest.ppn_use):
        if use >= 0:
            mpn = v.p2m[ppn]
            out[use] = s.host.content[mpn] if mpn != UNBACKED else swapped.get(ppn, 0)
    return out


def contents_digest(pairs: Iterable[tuple[int, int]]) -> int:
    """FNV-1a (32 bits) over ``"vpn:token;"`` for each (VPN, token) pair, in increasing
    VPN order, as ASCII: simple in any language, and it changes with any token.

    >>> contents_digest([])
    2166136261
    >>> contents_digest([(0, 1), (2, 2)])
    1752435776
    """
    h = 0x811C9DC5
    for vpn, token in sorted(pairs):
        for byte in f"{vpn}:{token};".encode("ascii"):
            h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def resident_digest(s: State, vm: int) -> int:
    """The digest of ``vm``'s resident contents (pages not on the guest's disk)."""
    tokens = read_back(s, vm)
    return contents_digest((use, tokens[use]) for use in s.vms[vm].guest.ppn_use if use >= 0)


def unscrubbed_count(s: State) -> int:
    """MPNs free or in the host's own use whose contents are not the zero page."""
    return sum(1 for m in s.host.free | s.host.in_use if s.host.content[m] != 0)
