"""The state invariants of a state, with the answers of each part computed once.

Most of the model's state invariants are checks of each VM in turn with the
host as context (:attr:`~ballast.model.invariants.Property.per_vm`), and some
read only the host. Their answer for one (host part, VM part) pair, or for one
host part, is the same in every state that contains it, so it is computed
once, on a state whose other VMs are stand-ins that refuse to be read
(:class:`~ballast.statespace.transitions.OtherVm`), and reused. A check that
reads another VM after all is computed on the real state, every time. The
answers are exactly those of ``Property.check_state``, property by property
and VM by VM; the tests compare them on every reachable state.

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> from ballast.statespace.parts import PartStore
>>> m = BalloonModel(Config(vms=2, guest_pages=1, machine_pages=2))
>>> store = PartStore(2)
>>> s0 = m.init_states()[0]
>>> StateChecks(m, store).violations(store.ids(store.key(s0)), s0)
[]
"""

from __future__ import annotations

from enum import Enum

from ballast.model.invariants import Property
from ballast.model.state import State
from ballast.model.system import BalloonModel
from ballast.statespace.parts import PartStore
from ballast.statespace.transitions import OtherVm, ReadElsewhere, WatchedHost, WatchedVm

__all__ = ["StateChecks"]


class _Part(Enum):
    """What the per-VM checks say of one VM part."""

    CLEAN = "clean"
    """Every check holds, without reading another VM."""
    DIRTY = "dirty"
    """Some check fails, or reads another VM: check the real state."""
    READS_HOST = "reads host"
    """Some check read the host: ask again per (host, VM) pair."""


class StateChecks:
    """Every state invariant of the model on states of a :class:`PartStore`.

    The cached answers only ever prove that a state breaks *nothing*; a state
    where something might break is checked with ``Property.check_state`` itself,
    so every message and its order are the model's own.
    """

    def __init__(self, model: BalloonModel, store: PartStore, *, cache: bool = True) -> None:
        self.cfg = model.cfg
        self.store = store
        self.cache = cache
        self.props: list[Property] = [p for p in model.properties() if p.state is not None]
        self._per_vm = [p for p in self.props if p.per_vm is not None]
        self._global = [p for p in self.props if p.per_vm is None]
        self._covered = [[p for p in self._per_vm if v in set(p.checked_vms(self.cfg))]
                         for v in range(self.cfg.vms)]
        self._others = tuple(object.__new__(OtherVm) for _ in range(self.cfg.vms))
        self._anywhere: list[dict[int, _Part]] = [{} for _ in range(self.cfg.vms)]
        self._pairs: list[dict[tuple[int, int], _Part]] = [{} for _ in range(self.cfg.vms)]
        self._host: dict[int, tuple[Property, ...] | None] = {}
        self._whole: dict[tuple[int, ...], bool] = {}
        """(host part, each VM's map id) -> whether the whole-state checks hold."""
        self.quick = 0
        """States found clean from cached answers."""

    def cache_bytes(self) -> int:
        """Estimated bytes held by the cached answers (dict slots and keys)."""
        items = (len(self._host) + len(self._whole) + sum(len(d) for d in self._anywhere)
                 + sum(len(d) for d in self._pairs))
        return 180 * items

    def violations(self, ids: list[int], s: State) -> list[tuple[str, str]]:
        """(property, message) for every state invariant ``s`` breaks, in the model's order
        (``ids``: the part ids of ``s``)."""
        cfg = self.cfg
        if self.cache and self._clean(ids, s):
            self.quick += 1
            return []
        return [(p.name, msg) for p in self.props if (msg := p.check_state(cfg, s)) is not None]

    def _clean(self, ids: list[int], s: State) -> bool:
        hid = ids[0]
        for v in range(self.cfg.vms):
            vid = ids[v + 1]
            part = self._anywhere[v].get(vid)
            if part is None:
                part = self._anywhere[v][vid] = self._vm_part(s, v, watch=True)
            if part is _Part.READS_HOST:
                pair = (hid, vid)
                part = self._pairs[v].get(pair)
                if part is None:
                    part = self._pairs[v][pair] = self._vm_part(s, v, watch=False)
            if part is not _Part.CLEAN:
                return False
        if hid in self._host:
            rest = self._host[hid]
        else:
            rest = self._host[hid] = self._host_part(s)
        if rest is None:
            return False
        if not rest:
            return True
        probe = self.store.map_probe(ids)
        known = self._whole.get(probe)
        if known is None:
            known = self._whole_clean(rest, s, probe)
        return known

    def _whole_clean(self, rest: tuple[Property, ...], s: State,
                     probe: tuple[int, ...]) -> bool:
        """Whether the whole-state checks ``rest`` hold in ``s``, remembered under ``probe``
        (the host part and each VM's map) when they read nothing else of the VMs.

        Run again with the same host and the same maps, a check that read nothing
        more would read the same and answer the same.
        """
        watched = tuple(WatchedVm.of(vm) for vm in s.vms)
        local = State(s.host, watched)
        clean = all(p.check_state(self.cfg, local) is None for p in rest)
        if all(vm.fields_read <= {"p2m"} for vm in watched):
            self._whole[probe] = clean
        return clean

    def _vm_part(self, s: State, v: int, *, watch: bool) -> _Part:
        """The per-VM checks of VM ``v`` with the other VMs stood in for (``watch``: and
        the host watched)."""
        host = WatchedHost.of(s.host) if watch else s.host
        local = State(host, tuple(vm if w == v else other
                                  for w, (vm, other) in enumerate(zip(s.vms, self._others))))
        reads_host = False
        for p in self._covered[v]:
            assert p.per_vm is not None
            try:
                if p.per_vm(self.cfg, local, v) is not None:
                    return _Part.DIRTY
            except ReadElsewhere:
                return _Part.DIRTY
            if isinstance(host, WatchedHost) and host.read:
                reads_host = True
        return _Part.READS_HOST if reads_host else _Part.CLEAN

    def _host_part(self, s: State) -> tuple[Property, ...] | None:
        """The whole-state checks that must see the VMs (None: one already fails on the
        host alone)."""
        local = State(s.host, self._others)
        rest = []
        for p in self._global:
            try:
                if p.check_state(self.cfg, local) is not None:
                    return None
            except ReadElsewhere:
                rest.append(p)
        return tuple(rest)
