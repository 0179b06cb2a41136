"""Observable page contents: what a guest reads back, a digest of it, scrubbing.

Counts and page sets can all be right while data is lost or leaks across VMs
(a freed machine page handed on without scrubbing, a page zeroed under a live
process). These derived observations make contents visible to an observer who
cannot see the whole state -- a trace's ``observe`` and an implementation's
adapter replies use the same keys:

* ``vms/N/guest/tokens``: per VPN of VM N, the token its process would read back
  now (0: never written), from memory, host swap or the guest's own disk;
* ``vms/N/guest/digest``: :func:`contents_digest` of VM N's resident (VPN, token) pairs;
* ``host/unscrubbed_count``: MPNs free or in the host's own use that still hold
  a guest's data instead of the zero page.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> s = initial_state(Config(vms=1, guest_pages=2, guest_data_pages=2, machine_pages=2))
>>> content_observation(s, "vms/0/guest/tokens"), content_observation(s, "host/unscrubbed_count")
([0, 0], 0)
>>> content_observation(s, "vms/0/target") is None
True
"""

from __future__ import annotations

from typing import Iterable

from ballast.model.state import UNBACKED, State, swap_of

__all__ = ["CONTENT_KEYS", "content_observation", "contents_digest", "read_back",
           "resident_digest", "unscrubbed_count"]

CONTENT_KEYS = ("vms/*/guest/tokens", "vms/*/guest/digest", "host/unscrubbed_count")
"""The content observation keys, ``*`` standing for a VM number."""


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


def content_observation(s: State, key: str) -> list[int] | int | None:
    """The value of a content key in ``s``; None if ``key`` is no content key.

    Raises IndexError for a VM that does not exist.
    """
    if key == "host/unscrubbed_count":
        return unscrubbed_count(s)
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "vms" and parts[1].isdigit() and parts[2] == "guest":
        vm = int(parts[1])
        if parts[3] == "tokens":
            return read_back(s, vm) if vm < len(s.vms) else _missing(vm)
        if parts[3] == "digest":
            return resident_digest(s, vm) if vm < len(s.vms) else _missing(vm)
    return None


def _missing(vm: int) -> int:
    raise IndexError(f"no VM {vm}")
