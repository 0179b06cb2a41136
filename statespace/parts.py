"""States stored as one integer: the ids of their host part and of each VM's part.

A state of the model is a host (:class:`~ballast.model.state.HostState`) and one
:class:`~ballast.model.state.VmState` per VM. Across the reachable states the
same host and the same VM parts recur over and over (a VM's part does not change
while another VM moves), so each distinct part is kept once, with an id, and a
state is the tuple of its parts' ids packed into one Python ``int``: the host's
id in the lowest 32 bits, VM 0's in the next 32, and so on. This is the "tree
compression" of explicit-state model checkers, with a tree of depth one.

Packing is exact: two states get the same key exactly when they are equal,
because parts are interned by value (frozen dataclasses compare and hash by
value).

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=2, guest_pages=2, machine_pages=2)
>>> store = PartStore(cfg.vms)
>>> s = initial_state(cfg)
>>> key = store.key(s)
>>> store.ids(key)
[0, 0, 0]
>>> store.state(key) == s
True
"""

from __future__ import annotations

import sys

from ballast.errors import BallastError
from ballast.model.state import HostState, State, VmState

__all__ = ["PART_BITS", "PartStore"]

PART_BITS = 32
"""Bits per part id in a packed key."""
_MASK = (1 << PART_BITS) - 1


class PartStore:
    """The distinct host and VM parts seen so far, and states packed from their ids."""

    def __init__(self, vms: int) -> None:
        self.vms = vms
        self.hosts: list[HostState] = []
        """Host parts by id."""
        self.vm_parts: list[VmState] = []
        """VM parts by id (shared by every VM position: identical VMs share parts)."""
        self._host_ids: dict[HostState, int] = {}
        self._vm_ids: dict[VmState, int] = {}
        self.map_ids: list[int] = []
        """Per VM part id: an id of its VMM map (``p2m``); parts with equal maps share it."""
        self._map_index: dict[tuple[int, ...], int] = {}
        self._shifts = tuple(PART_BITS * (i + 1) for i in range(vms))
        self._all_shifts = (0,) + self._shifts

    def host_id(self, host: HostState) -> int:
        """The id of ``host``, interning it if new."""
        hid = self._host_ids.get(host)
        if hid is None:
            hid = self._host_ids[host] = len(self.hosts)
            if hid > _MASK:
                raise BallastError(f"more than {_MASK} distinct host parts")
            self.hosts.append(host)
        return hid

    def vm_id(self, vm: VmState) -> int:
        """The id of the VM part ``vm``, interning it if new."""
        vid = self._vm_ids.get(vm)
        if vid is None:
            vid = self._vm_ids[vm] = len(self.vm_parts)
            if vid > _MASK:
                raise BallastError(f"more than {_MASK} distinct VM parts")
            self.vm_parts.append(vm)
            self.map_ids.append(self._map_index.setdefault(vm.p2m, len(self._map_index)))
        return vid

    def map_probe(self, ids: list[int]) -> tuple[int, ...]:
        """(host id, then each VM's map id): what a check that reads only the host and
        the VMMs' maps can depend on."""
        maps = self.map_ids
        return (ids[0], *[maps[vid] for vid in ids[1:]])

    def pack(self, host: int, vms: tuple[int, ...] | list[int]) -> int:
        """The key of the state with these part ids."""
        key = host
        for shift, vid in zip(self._shifts, vms):
            key |= vid << shift
        return key

    def key(self, s: State) -> int:
        """The key of ``s``, interning its parts."""
        return self.pack(self.host_id(s.host), [self.vm_id(v) for v in s.vms])

    def ids(self, key: int) -> list[int]:
        """[host id, VM 0's id, VM 1's id, ...] of a key."""
        return [key >> shift & _MASK for shift in self._all_shifts]

    def state(self, key: int) -> State:
        """The state a key stands for."""
        return self.state_of(self.ids(key))

    def state_of(self, ids: list[int]) -> State:
        """The state with these part ids (as :meth:`ids` gives them)."""
        parts = self.vm_parts
        return State(self.hosts[ids[0]], tuple([parts[i] for i in ids[1:]]))

    def replace_vm(self, key: int, vm: int, vid: int) -> int:
        """``key`` with VM ``vm``'s part replaced by part ``vid``."""
        shift = self._shifts[vm]
        return (key & ~(_MASK << shift)) | vid << shift

    def replace_host(self, key: int, hid: int) -> int:
        """``key`` with the host part replaced by part ``hid``."""
        return (key & ~_MASK) | hid

    def part_bytes(self) -> int:
        """Estimated bytes held by the interned parts: objects, lists and index."""
        per_host = _deep_size(self.hosts[0]) if self.hosts else 0
        per_vm = _deep_size(self.vm_parts[0]) if self.vm_parts else 0
        # Each part also costs a list slot and an index entry (key pointer, hash, id).
        return (per_host + 40) * len(self.hosts) + (per_vm + 40) * len(self.vm_parts)


def _deep_size(obj: object) -> int:
    """Bytes of ``obj`` and everything it holds (frozen dataclasses, tuples, sets, ints)."""
    size = sys.getsizeof(obj)
    if isinstance(obj, (tuple, frozenset)):
        return size + sum(_deep_size(x) for x in obj)
    slots = getattr(type(obj), "__slots__", ())
    return size + sum(_deep_size(getattr(obj, name)) for name in slots)
