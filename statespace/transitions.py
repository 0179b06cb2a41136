"""Every step of a state, computed once per *part* and reused across states.

An action of VM ``v`` (every action whose candidates are chosen per VM, see
:class:`~ballast.model.actions.Partition`) normally reads and writes only the
host and VM ``v``'s own part. While VM 0 moves, VM 1's part stays the same, so
the explorer meets the same (host, VM 0) pair again with thousands of different
VM 1 parts, and would recompute the same steps of VM 0 each time. This module
computes the steps of one part once, keyed by the ids of the parts it is
allowed to read, and reuses them: the transition cache of partitioned
next-state interfaces (as in LTSmin), with the read set *checked* rather than
declared.

How the read set is checked: the steps of VM ``v`` are computed with the model's
own candidates, actions, step properties and scenarios on a state whose other
VMs are *stand-ins* (:class:`OtherVm`). Reading anything from a stand-in raises
:class:`ReadElsewhere`; asking whether two VMs are the same object does not. So a
result computed without an exception cannot depend on the other VMs, and a step
that leaves a stand-in in its successor changes no other VM. What does look
elsewhere is recomputed on the real state every time:

* candidates that read another VM: the whole part, every time;
* an action whose guard or effect reads another VM (page sharing, whose
  copy-on-write bookkeeping counts every mapper; some seeded faults): that step;
* a step property or scenario that reads another VM for this step (isolation
  when contents changed; "a balloon reaches its target", which looks at every
  VM): that check, for that step.

Steps of host pages (``Partition.HOST``) are cached by the host's part alone,
and steps chosen across VMs (``Partition.SYSTEM``) are always computed on the
real state. With ``cache=False`` every step comes from
:meth:`BalloonModel.successors` on the real state: the reference the tests
compare the cached steps with, step for step.

The steps of a state come out in the model's own order (action by action, VM
by VM, candidate by candidate), the order of ``BalloonModel.successors``.

>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> from ballast.statespace.parts import PART_BITS, PartStore
>>> m = BalloonModel(Config(vms=2, guest_pages=1, machine_pages=2))
>>> store = PartStore(2)
>>> steps = Transitions(m, store)
>>> s0 = m.init_states()[0]
>>> key = store.key(s0)
>>> cached = [(steps.actions[a], t) for _, a, t, _, _ in steps.of(key, store.ids(key), s0)]
>>> reference = [(a, store.key(t)) for a, t in m.successors(s0)]
>>> cached == reference
True
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Collection, NamedTuple, TypeVar

from ballast.errors import GuardError
from ballast.model.actions import Action, ActionSpec, Partition, apply
from ballast.model.config import Config
from ballast.model.invariants import Property
from ballast.model.sometimes import Scenario
from ballast.model.state import HostState, State, VmState
from ballast.model.system import BalloonModel
from ballast.statespace.parts import PART_BITS, PartStore

__all__ = ["CachedSteps", "OtherVm", "ReadElsewhere", "Step", "Transitions", "WatchedHost",
           "WatchedVm"]

Violations = tuple[tuple[str, str], ...]
Step = tuple[int, int, int, Violations, tuple[str, ...]]
"""One step of a state: (position in the model's order, action id, key of the
successor, step violations as (property, message), names of the open scenarios
it witnesses)."""

# Estimated bytes of one cache entry (dict slot, key, entry object, its list) and of
# one cached step (the step record and its row in the entry's list).
_ENTRY_BYTES = 300
_STEP_BYTES = 320

# Positions of (spec, VM) pairs in the model's order leave room for this many
# candidates of one action for one VM.
_SEQ_BITS = 16


_W = TypeVar("_W")


class ReadElsewhere(Exception):
    """A computation for one part read a VM outside that part."""


class OtherVm(VmState):
    """Stands in for a VM that a computation for another part must not read.

    Any attribute read raises :class:`ReadElsewhere` (comparing or hashing reads
    attributes too); only identity (``is``) can be asked.
    """

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        raise ReadElsewhere(name)


_HOST_FIELDS = tuple(f.name for f in fields(HostState))
_VM_FIELDS = tuple(f.name for f in fields(VmState))
"""The records' field names, in their constructors' order (asked for once)."""


class WatchedHost(HostState):
    """A copy of a host part that notes whether anything read it.

    A VM's step that neither reads nor replaces the host (setting a target,
    most balloon module steps) has the same effect whatever the host holds, so
    it is cached by the VM's part alone.
    """

    __slots__ = ("read",)

    def __getattribute__(self, name: str) -> Any:
        if name != "read":
            object.__setattr__(self, "read", True)
        return object.__getattribute__(self, name)

    @classmethod
    def of(cls, host: HostState) -> "WatchedHost":
        """A watched copy of ``host``, not read yet."""
        copy = cls(*[getattr(host, name) for name in _HOST_FIELDS])
        return _with_notes(copy, read=False)


def _with_notes(watched: _W, **notes: object) -> _W:
    """``watched`` (built by its class's constructor, which reads nothing) with its notes set."""
    for name, value in notes.items():
        object.__setattr__(watched, name, value)
    return watched


class WatchedVm(VmState):
    """A copy of a VM part that notes which of its attributes are read.

    A check that reads nothing of the other VMs but their VMM maps (``p2m``)
    answers the same for every state with the same host, the same acting VM and
    the same maps, so its answer is kept under those.
    """

    __slots__ = ("fields_read",)

    def __getattribute__(self, name: str) -> Any:
        if name != "fields_read":
            object.__getattribute__(self, "fields_read").add(name)
        return object.__getattribute__(self, name)

    @classmethod
    def of(cls, vm: VmState) -> "WatchedVm":
        """A watched copy of ``vm``, nothing read yet."""
        copy = cls(*[getattr(vm, name) for name in _VM_FIELDS])
        return _with_notes(copy, fields_read=set())


class _Local(NamedTuple):
    """A step of one part, computed once."""

    order: int
    """Position in the model's order of steps."""
    action: int
    recompute: bool
    """True: the action read another VM; compute it on the real state each time."""
    bits: int
    """The part ids of the successor, placed where the key holds them."""
    violations: Violations
    witnessed: tuple[str, ...]
    """Scenarios (open when the step was computed) it witnesses."""
    props: tuple[Property, ...]
    """Step properties that read another VM: checked on the real states each time."""
    scenarios: tuple[Scenario, ...]
    """Scenarios that read another VM: checked on the real states each time."""
    memo: dict[tuple[int, ...], Violations] | None
    """Answers of ``props`` by :meth:`PartStore.map_probe` of the state, where they read
    nothing of the other VMs but their maps."""


class CachedSteps:
    """The cached steps of one part (a host part, or a VM part next to a host part),
    sorted into those that need no more work and the rest."""

    __slots__ = ("locals", "mask", "steps", "version", "vm", "plain_orders", "plain_actions",
                 "plain_bits", "specials", "uses", "moving")

    def __init__(self, locals_: tuple[_Local, ...], mask: int, vm: int = -1) -> None:
        self.locals = locals_
        self.mask = mask
        """Clears the key's bits this part's steps may change."""
        self.vm = vm
        """The VM whose steps these are (-1: the host's)."""
        self.steps: list[tuple[int, int, int, _Local | None]] = []
        """(order, action id, bits, the step itself when it needs more work)."""
        self.version = -1
        """Version of the set of open scenarios ``steps`` was sorted for."""
        self.plain_orders: tuple[int, ...] = ()
        self.plain_actions: tuple[int, ...] = ()
        self.plain_bits: tuple[int, ...] = ()
        """The steps that need no more work, column by column."""
        self.specials: tuple[_Local, ...] = ()
        """The steps that do."""
        self.uses = 0
        """Times the plain steps were handed out since they were last counted as fired."""
        self.moving: frozenset[int | None] | None = None
        """Left to the explorer: the VMs protocol actors move for in the plain steps."""


class _VmPart:
    """What one VM part's steps look like whatever the host holds."""

    __slots__ = ("anywhere", "candidates", "entry")

    def __init__(self, anywhere: tuple[_Local, ...],
                 candidates: list[tuple[int, Action, int]] | None,
                 mask: int = 0, vm: int = -1) -> None:
        self.anywhere = anywhere
        """The steps that read nothing of the host, nor change it (``bits``: the VM's
        part only)."""
        self.entry = CachedSteps(anywhere, mask, vm)
        """Those steps as an entry of their own, for when they are all the steps."""
        self.candidates = candidates
        """The candidates whose steps read the host, computed per (host, VM) part pair;
        None: the candidates themselves depend on the host (every step is per pair)."""


_NONLOCAL = _VmPart((), None)
"""The VM part's candidates read another VM: its steps are computed on the real state."""
_NONLOCAL_ENTRY = CachedSteps((), 0)


class Transitions:
    """The steps of the model's states, with the per-part cache (see the module text)."""

    def __init__(self, model: BalloonModel, store: PartStore, *, cache: bool = True) -> None:
        self.model = model
        self.cfg: Config = model.cfg
        self.store = store
        self.cache = cache
        self.actions: list[Action] = []
        """Every action met, by id."""
        self._action_ids: dict[Action, int] = {}
        props = model.properties()
        self._step_props = [p for p in props if p.step is not None]
        self._prop_rank = {p.name: i for i, p in enumerate(self._step_props)}
        self.open: list[Scenario] = model.scenarios()
        """The scenarios not witnessed yet (see :meth:`close`)."""
        self._open_names = {sc.name for sc in self.open}
        self._version = 0
        n = self.cfg.vms
        specs = list(enumerate(model.action_specs()))
        self._vm_specs = [(i, s) for i, s in specs if s.partition is Partition.VM]
        self._host_specs = [(i, s) for i, s in specs if s.partition is Partition.HOST]
        self._system_specs = [(i, s) for i, s in specs if s.partition is Partition.SYSTEM]
        self._n = n
        self._vm_parts: list[dict[int, _VmPart]] = [{} for _ in range(n)]
        self._vm_cache: list[dict[tuple[int, int], tuple[CachedSteps, ...]]] = [
            {} for _ in range(n)]
        """Per VM position: the steps of a (host part, VM part) pair."""
        self._host_cache: dict[int, CachedSteps] = {}
        self.stand_ins = tuple(object.__new__(OtherVm) for _ in range(n))
        """One :class:`OtherVm` per VM position."""
        self._shifts = [PART_BITS * (v + 1) for v in range(n)]
        part = (1 << PART_BITS) - 1
        self._vm_masks = [~(part | part << shift) for shift in self._shifts]
        self._host_mask = ~part
        self.hits = 0
        """Parts whose steps came from the cache."""
        self.misses = 0
        """Parts whose steps were computed (and cached)."""
        self.recomputed = 0
        """Steps computed on the real state because they read another VM."""
        self.cached_steps = 0
        """Steps held in the cache (entries of every part)."""
        self.fired: list[int] = []
        """Per action id, steps handed out that take it (see :meth:`count_fired`)."""

    # -- interning ----------------------------------------------------------
    def action_id(self, act: Action) -> int:
        """The id of ``act``, interning it if new."""
        aid = self._action_ids.get(act)
        if aid is None:
            aid = self._action_ids[act] = len(self.actions)
            self.actions.append(act)
        return aid

    def cache_bytes(self) -> int:
        """Estimated bytes held by the cache (entries, their steps and per-part records)."""
        entries = (len(self._host_cache) + sum(len(c) for c in self._vm_cache)
                   + sum(len(c) for c in self._vm_parts))
        return _ENTRY_BYTES * entries + _STEP_BYTES * self.cached_steps

    def close(self, names: Collection[str]) -> None:
        """Stop checking the scenarios ``names`` (they have been witnessed)."""
        self.open = [sc for sc in self.open if sc.name not in names]
        self._open_names = {sc.name for sc in self.open}
        self._version += 1

    def _key_after(self, key: int, s: State, t: State) -> int:
        """The key of successor ``t`` of ``s`` (whose key is ``key``)."""
        store = self.store
        if t.host is not s.host:
            key = store.replace_host(key, store.host_id(t.host))
        for v, (a, b) in enumerate(zip(s.vms, t.vms)):
            if a is not b:
                key = store.replace_vm(key, v, store.vm_id(b))
        return key

    # -- steps ----------------------------------------------------------------
    def of(self, key: int, ids: list[int], s: State) -> list[Step]:
        """Every step of the state ``s`` (whose key is ``key`` and part ids ``ids``), in
        the model's order. Only the scenarios still open are reported as witnessed.
        """
        if not self.cache:
            steps = [self._full(0, key, s, act, t) for act, t in self.model.successors(s)]
            self._counted(steps)
            return steps
        hid = ids[0]
        out: list[Step] = []
        if self._host_specs:
            self._expand(self._host_entry(hid), key, ids, s, out)
        for v in range(self._n):
            for entry in self._vm_entries(v, hid, ids[v + 1]):
                if entry is _NONLOCAL_ENTRY:
                    self._vm_steps_real(v, key, s, out)
                    continue
                self._expand(entry, key, ids, s, out)
        self._system_steps(key, s, out)
        out.sort()
        self._counted(out)
        return out

    def _sort(self, entry: CachedSteps) -> None:
        self._count(entry)
        names = self._open_names
        open_ids = {id(sc) for sc in self.open}
        entry.steps = [
            (loc.order, loc.action, loc.bits,
             loc if (loc.recompute or loc.violations or loc.props
                     or any(n in names for n in loc.witnessed)
                     or any(id(sc) in open_ids for sc in loc.scenarios)) else None)
            for loc in entry.locals]
        plain = [(order, aid, bits) for order, aid, bits, special in entry.steps
                 if special is None]
        entry.plain_orders = tuple(x[0] for x in plain)
        entry.plain_actions = tuple(x[1] for x in plain)
        entry.plain_bits = tuple(x[2] for x in plain)
        entry.specials = tuple(special for *_, special in entry.steps if special is not None)
        entry.moving = None
        entry.version = self._version

    def _count(self, entry: CachedSteps) -> None:
        """Add the uses of ``entry``'s plain steps to :attr:`fired`."""
        if entry.uses:
            fired = self.fired
            while len(fired) < len(self.actions):
                fired.append(0)
            for aid in entry.plain_actions:
                fired[aid] += entry.uses
            entry.uses = 0

    def count_fired(self) -> list[int]:
        """Per action id, the steps handed out that take it (brought up to date)."""
        for entry in self._host_cache.values():
            self._count(entry)
        for cache in self._vm_cache:
            for entries in cache.values():
                for entry in entries:
                    self._count(entry)
        while len(self.fired) < len(self.actions):
            self.fired.append(0)
        return self.fired

    def _counted(self, steps: list[Step]) -> None:
        fired = self.fired
        while len(fired) < len(self.actions):
            fired.append(0)
        for step in steps:
            fired[step[1]] += 1

    def grouped(self, key: int, ids: list[int], s: State
                ) -> tuple[list[tuple[CachedSteps, int]], list[Step]]:
        """Every step of ``s`` as (cached entries, each with the bits of the key its
        steps keep) and the steps that needed work of their own, in the model's order.

        The plain steps of an entry ``e`` with kept bits ``r`` go to the successors
        ``r | bits`` for ``bits`` in ``e.plain_bits``, in order ``e.plain_orders``,
        taking actions ``e.plain_actions``; they witness nothing and break nothing.
        """
        if not self.cache:
            return [], self.of(key, ids, s)
        hid = ids[0]
        groups: list[tuple[CachedSteps, int]] = []
        extra: list[Step] = []
        if self._host_specs:
            self._group(self._host_entry(hid), key, ids, s, groups, extra)
        for v in range(self._n):
            entries = self._vm_cache[v].get((hid, ids[v + 1]))
            if entries is None:
                entries = self._vm_entries(v, hid, ids[v + 1])
            else:
                self.hits += 1
            for entry in entries:
                if entry is _NONLOCAL_ENTRY:
                    self._vm_steps_real(v, key, s, extra)
                    continue
                self._group(entry, key, ids, s, groups, extra)
        self._system_steps(key, s, extra)
        self._counted(extra)
        return groups, extra

    def _host_entry(self, hid: int) -> CachedSteps:
        entry = self._host_cache.get(hid)
        if entry is None:
            self.misses += 1
            entry = self._host_cache[hid] = self._local_host(hid)
        else:
            self.hits += 1
        return entry

    def _system_steps(self, key: int, s: State, out: list[Step]) -> None:
        """The steps chosen across VMs, always computed on the real state."""
        for i, spec in self._system_specs:
            base = (i * (self._n + 1)) << _SEQ_BITS
            for seq, args in enumerate(spec.candidates(self.cfg, s)):
                self._real(key, s, spec, args, base + seq, out)

    def _group(self, entry: CachedSteps, key: int, ids: list[int], s: State,
               groups: list[tuple[CachedSteps, int]], extra: list[Step]) -> None:
        if entry.version != self._version:
            self._sort(entry)
        rest = key & entry.mask
        entry.uses += 1
        groups.append((entry, rest))
        for loc in entry.specials:
            self._special(loc, rest, key, ids, s, entry.vm, extra)

    def _vm_entries(self, v: int, hid: int, vid: int) -> tuple[CachedSteps, ...]:
        """The cached steps of VM part ``vid`` next to host part ``hid``: those that read
        nothing of the host (shared by every host), then those that do."""
        cache = self._vm_cache[v]
        part = (hid, vid)
        entries = cache.get(part)
        if entries is None:
            self.misses += 1
            record = self._vm_parts[v].get(vid)
            if record is None:
                record = self._vm_parts[v][vid] = self._vm_part(v, hid, vid)
            if record is _NONLOCAL:
                entries = (_NONLOCAL_ENTRY,)
            elif record.candidates == []:
                entries = (record.entry,)
            elif record.anywhere:
                entries = (record.entry, self._local_vm(v, hid, vid, record))
            else:
                entries = (self._local_vm(v, hid, vid, record),)
            cache[part] = entries
        else:
            self.hits += 1
        return entries

    def _expand(self, entry: CachedSteps, key: int, ids: list[int], s: State,
                out: list[Step]) -> None:
        if entry.version != self._version:
            self._sort(entry)
        rest = key & entry.mask
        for order, aid, bits, special in entry.steps:
            if special is None:
                out.append((order, aid, rest | bits, (), ()))
            else:
                self._special(special, rest, key, ids, s, entry.vm, out)

    def _special(self, loc: _Local, rest: int, key: int, ids: list[int], s: State, v: int,
                 out: list[Step]) -> None:
        if loc.recompute:
            self.recomputed += 1
            act = self.actions[loc.action]
            try:
                t = apply(self.cfg, s, act, self.model.table)
            except GuardError:
                return
            out.append(self._full(loc.order, key, s, act, t))
            return
        tkey = rest | loc.bits
        names = self._open_names
        violations = loc.violations
        witnessed = tuple(n for n in loc.witnessed if n in names)
        scenarios = [sc for sc in loc.scenarios if sc.name in names]
        if loc.props:
            assert loc.memo is not None
            probe = self.store.map_probe(ids)
            extra = loc.memo.get(probe)
            if extra is None:
                extra = self._context_props(loc, s, self.store.state(tkey), v, probe)
            if extra:
                violations = tuple(sorted(violations + extra,
                                          key=lambda x: self._prop_rank[x[0]]))
        if scenarios:
            t = self.store.state(tkey)
            act = self.actions[loc.action]
            witnessed += tuple(sc.name for sc in scenarios if sc.witness(self.cfg, s, act, t))
        out.append((loc.order, loc.action, tkey, violations, witnessed))

    def _context_props(self, loc: _Local, s: State, t: State, v: int,
                       probe: tuple[int, ...]) -> Violations:
        """The step properties of ``loc`` that read other VMs, on the real states; kept
        under ``probe`` when they read nothing of the other VMs but their maps."""
        watched = [vm if w == v else WatchedVm.of(vm) for w, vm in enumerate(s.vms)]
        pre = State(s.host, tuple(watched))
        post = State(t.host, tuple(t.vms[w] if w == v else watched[w]
                                   for w in range(len(watched))))
        act = self.actions[loc.action]
        extra = tuple((p.name, msg) for p in loc.props
                      if (msg := p.check_step(self.cfg, pre, act, post)) is not None)
        if all(vm.fields_read <= {"p2m"} for vm in watched if isinstance(vm, WatchedVm)):
            assert loc.memo is not None
            loc.memo[probe] = extra
        return extra

    def _full(self, order: int, key: int, s: State, act: Action, t: State) -> Step:
        """A step computed on the real states."""
        cfg = self.cfg
        violations = tuple((p.name, msg) for p in self._step_props
                           if (msg := p.check_step(cfg, s, act, t)) is not None)
        witnessed = tuple(sc.name for sc in self.open if sc.witness(cfg, s, act, t))
        return (order, self.action_id(act), self._key_after(key, s, t), violations, witnessed)

    def _real(self, key: int, s: State, spec: ActionSpec, args: dict[str, Any], order: int,
              out: list[Step]) -> None:
        act = Action.of(spec.name, **args)
        try:
            t = apply(self.cfg, s, act, self.model.table)
        except GuardError:
            return
        self.recomputed += 1
        out.append(self._full(order, key, s, act, t))

    def _vm_steps_real(self, v: int, key: int, s: State, out: list[Step]) -> None:
        for i, spec in self._vm_specs:
            assert spec.vm_candidates is not None
            base = (i * (self._n + 1) + v) << _SEQ_BITS
            for seq, args in enumerate(spec.vm_candidates(self.cfg, s, v)):
                self._real(key, s, spec, args, base + seq, out)

    # -- computing one part's steps --------------------------------------------
    def _local_host(self, hid: int) -> CachedSteps:
        s = State(self.store.hosts[hid], self.stand_ins)
        out: list[_Local] = []
        for i, spec in self._host_specs:
            base = (i * (self._n + 1)) << _SEQ_BITS
            for seq, args in enumerate(spec.candidates(self.cfg, s)):
                act = Action.of(spec.name, **args)
                local = self._local_step(s, act, self.action_id(act), base + seq, -1, hid, -1)
                if local is not None:
                    out.append(local)
        self.cached_steps += len(out)
        return CachedSteps(tuple(out), self._host_mask, -1)

    def _vm_candidates(self, s: State, v: int) -> list[tuple[int, Action, int]]:
        """VM ``v``'s candidates in ``s``, with their positions in the model's order."""
        out = []
        for i, spec in self._vm_specs:
            assert spec.vm_candidates is not None
            base = (i * (self._n + 1) + v) << _SEQ_BITS
            for seq, args in enumerate(spec.vm_candidates(self.cfg, s, v)):
                assert seq < 1 << _SEQ_BITS
                act = Action.of(spec.name, **args)
                out.append((base + seq, act, self.action_id(act)))
        return out

    def _local_state(self, host: HostState, v: int, vid: int) -> State:
        vms: list[VmState] = list(self.stand_ins)
        vms[v] = self.store.vm_parts[vid]
        return State(host, tuple(vms))

    def _vm_part(self, v: int, hid: int, vid: int) -> _VmPart:
        """Sort VM part ``vid``'s steps into those that read the host and those that do not."""
        self.misses += 1
        watched = WatchedHost.of(self.store.hosts[hid])
        s = self._local_state(watched, v, vid)
        try:
            candidates = self._vm_candidates(s, v)
        except ReadElsewhere:
            return _NONLOCAL
        if watched.read:
            return _VmPart((), None)
        anywhere: list[_Local] = []
        per_host = []
        for order, act, aid in candidates:
            object.__setattr__(watched, "read", False)
            local = self._local_step(s, act, aid, order, v, -1, vid, watched)
            if local is _READS_HOST:
                per_host.append((order, act, aid))
            elif local is not None:
                anywhere.append(local)
        part = (1 << PART_BITS) - 1
        self.cached_steps += len(anywhere)
        return _VmPart(tuple(anywhere), per_host, ~(part << self._shifts[v]), v)

    def _local_vm(self, v: int, hid: int, vid: int, record: _VmPart) -> CachedSteps:
        """The steps of VM part ``vid`` next to host part ``hid`` that read the host (all
        of them when its candidates do)."""
        s = self._local_state(self.store.hosts[hid], v, vid)
        candidates = record.candidates
        if candidates is None:
            candidates = self._vm_candidates(s, v)
        out = []
        for order, act, aid in candidates:
            local = self._local_step(s, act, aid, order, v, hid, vid)
            if local is not None:
                out.append(local)
        self.cached_steps += len(out)
        return CachedSteps(tuple(out), self._vm_masks[v], v)

    def _local_step(self, s: State, act: Action, aid: int, order: int, v: int, hid: int,
                    vid: int, watched: WatchedHost | None = None) -> _Local | None:
        """One step computed on a local state (``watched``: its host, noting reads; the
        answer is then ``_READS_HOST`` if the step read or changed the host)."""
        cfg = self.cfg
        try:
            t = apply(cfg, s, act, self.model.table)
        except GuardError:
            return _READS_HOST if watched is not None and watched.read else None
        except ReadElsewhere:
            return _READS_HOST if watched is not None else _Local(
                order, aid, True, 0, (), (), (), (), None)
        if watched is not None and (watched.read or t.host is not s.host):
            return _READS_HOST
        if any(a is not b for w, (a, b) in enumerate(zip(s.vms, t.vms)) if w != v):
            return _READS_HOST if watched is not None else _Local(
                order, aid, True, 0, (), (), (), (), None)
        store = self.store
        bits = 0 if watched is not None else hid if t.host is s.host else store.host_id(t.host)
        if v >= 0:
            bits |= (vid if t.vms[v] is s.vms[v] else store.vm_id(t.vms[v])) << self._shifts[v]
        violations: list[tuple[str, str]] = []
        props: list[Property] = []
        for p in self._step_props:
            try:
                msg = p.check_step(cfg, s, act, t)
            except ReadElsewhere:
                props.append(p)
                continue
            if msg is not None:
                violations.append((p.name, msg))
        witnessed: list[str] = []
        scenarios: list[Scenario] = []
        for sc in self.open:
            try:
                if sc.witness(cfg, s, act, t):
                    witnessed.append(sc.name)
            except ReadElsewhere:
                scenarios.append(sc)
        if watched is not None and watched.read:
            return _READS_HOST
        return _Local(order, aid, False, bits, tuple(violations), tuple(witnessed),
                      tuple(props), tuple(scenarios), {} if props else None)


_READS_HOST = _Local(-1, -1, True, 0, (), (), (), (), None)
"""Answer of a watched local step that read or changed the host."""
