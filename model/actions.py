"""Every action of the model, each defined once: guard, then effect.

An action is named *actor + verb* and is a pure function
``(config, state, **args) -> state``. It first checks its guard with
:func:`require` (raising :class:`~ballast.errors.GuardError` with the reason in
domain words), then computes the successor state. Nothing here prints, reads
a clock or draws random numbers: every choice is an argument, so a trace of
actions replays exactly.

Actors:

* ``host``   -- the host's policy layer: asks for quantities, uses free memory,
  and (fallback only) swaps guest pages out itself;
* ``vmm``    -- the hypervisor: processes the guest's reports, shares pages;
* ``guest``  -- the guest OS doing its own work (processes touch memory, it
  pages out to its own disk, it reboots);
* ``module`` -- the balloon driver or application inside the guest;
* ``rogue``  -- a hostile or buggy guest (only VMs listed in ``hostile_vms``).

Who chooses what. Every argument is either decided by the *environment* (the
host's targets, the guest's workload, which actor runs next) or chosen by the
*actor* performing the action: the guest's allocator chooses the pages it gives
the balloon, the module which balloon pages it deflates, the VMM which reported
pages it accepts or refuses. The guard is the one definition of what is allowed;
where specifications and implementations legitimately differ, it admits every
permitted choice (each action's doc names the clause or system permitting it),
and a preset may narrow it (the ``lowest`` guest policy, ``refusal`` off). On
these finite domains the candidates are exactly the choices the guard admits,
with one reduction: a report's pages form a set, so each set is offered once,
in ascending order (every order of it is admitted and leads to the same state).
Two choices stay fixed in the model: the VMM backs a page with the lowest free
MPN (the explorer's MPN symmetry makes every other choice equivalent, except
where host pages group MPNs), and a deflated page stays unbacked until touched
(lazy re-backing, as in QEMU; Xen's populate-on-release is not modelled).

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> s = apply(cfg, initial_state(cfg), Action.of("host_set_target", vm=0, pages=1))
>>> s.vms[0].target
1
>>> apply(cfg, s, Action.of("vmm_reclaim", vm=0, refuse=[]))  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
ballast.errors.GuardError: vmm_reclaim: not allowed here: the guest has reported no page for
inflation
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Iterator, Mapping, cast

from ballast.errors import GuardError
from ballast.model.choices import pairs, subsets
from ballast.model.config import Config, ModuleKind
from ballast.model.policy import policy_for
from ballast.model.state import (
    BALLOON,
    FREE,
    UNBACKED,
    GuestState,
    HostState,
    State,
    VmState,
    sorted_tuple,
    swap_of,
)
from ballast.model.state import replace_fields as replace  # dataclasses.replace, cheaper
from ballast.model.tables import PageVector

__all__ = [
    "ACTIONS",
    "PENDING_DEFLATE",
    "ROGUE_ACTUAL_BOUND",
    "Action",
    "ActionSpec",
    "Actor",
    "Partition",
    "apply",
    "balloon_lock_free",
    "balloon_view",
    "each_vm",
    "enabled",
    "inflate_limit",
    "reclaim_takes_all_it_may",
    "REPORTING",
    "report_queue_bound",
    "vmm_refuse_flood",
    "allocator_view",
    "allowed_pages",
    "held_pages",
    "over_target",
    "within_allowance",
    "page_out_to_host_swap",
    "guest_free_pages",
    "HINT_DONE",
    "HINT_STOP",
    "hint_cycle_running",
    "quiescent",
    "require",
    "skip_pages",
    "usable_free",
    "has_usable_free",
    "vcpu_grant_limit",
    "vcpu_granted",
    "own_mpn",
    "whole_units",
    "access_page",
    "vmm_keeps_host_pages",
]


class Actor(str, Enum):
    """Who performs an action."""

    HOST = "host"
    VMM = "vmm"
    GUEST = "guest"
    MODULE = "module"
    ROGUE = "rogue"


ArgValue = int | str | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Action:
    """One concrete step: an action name and its arguments (all choices included)."""

    name: str
    args: tuple[tuple[str, ArgValue], ...] = ()

    @staticmethod
    def of(name: str, **args: Any) -> "Action":
        """Build an action, normalising list arguments to tuples.

        >>> Action.of("balloon_inflate", vm=0, ppns=[1, 2])
        Action(name='balloon_inflate', args=(('vm', 0), ('ppns', (1, 2))))
        """
        return Action(name, tuple((k, tuple(v) if isinstance(v, list) else v)
                                  for k, v in args.items()))

    @property
    def kwargs(self) -> dict[str, ArgValue]:
        """The arguments as a dict."""
        return dict(self.args)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able arguments (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.args}

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in self.args)
        return f"{self.name}({inner})"


Effect = Callable[..., State]
Candidates = Callable[[Config, State], Iterable[dict[str, Any]]]
VmCandidates = Callable[[Config, State, int], Iterable[dict[str, Any]]]


class Partition(str, Enum):
    """Which part of the system an action's arguments are chosen for.

    Checkers that split a state into the host and one part per VM (the
    explorer's transition cache) use it to ask for one VM's steps alone.
    """

    VM = "vm"
    """Chosen per VM: every candidate names that VM as ``vm`` and is generated from the
    host and that VM alone."""
    HOST = "host"
    """Chosen per host page, from the host's records."""
    SYSTEM = "system"
    """Chosen across VMs (page sharing pairs two VMs' pages)."""


@dataclass(frozen=True)
class ActionSpec:
    """The definition of one action of the model."""

    name: str
    """actor_verb, as it appears in traces."""
    actor: Actor
    """Who performs it."""
    effect: Effect
    """Guard then effect: ``(cfg, state, **args) -> state``; raises GuardError."""
    candidates: Candidates
    """Argument values worth trying in a state (what the explorer and random runs use)."""
    params: tuple[str, ...]
    """Argument names, in order."""
    feature: Callable[[Config], bool]
    """Whether the action exists in a configuration."""
    names_guest_page: bool
    """True only for host/VMM actions that choose a guest page themselves."""
    doc: str = field(default="")
    """What the action means, in domain words."""
    partition: Partition = Partition.SYSTEM
    """Which part of the system the arguments are chosen for."""
    vm_candidates: VmCandidates | None = None
    """For ``Partition.VM``: the candidates for one VM; ``candidates`` is these, VM by VM."""


ACTIONS: dict[str, ActionSpec] = {}
"""Every action of the model by name, in definition order."""


def require(condition: bool, action: str, reason: str) -> None:
    """Raise :class:`GuardError` unless ``condition`` holds."""
    if not condition:
        raise GuardError(action, reason)


def _always(cfg: Config) -> bool:
    return True


def each_vm(vm_candidates: VmCandidates) -> Candidates:
    """The candidates of a whole state: those of VM 0, then VM 1, and so on."""

    def candidates(cfg: Config, s: State) -> Iterator[dict[str, Any]]:
        for vm in range(cfg.vms):
            yield from vm_candidates(cfg, s, vm)

    return candidates


def action(actor: Actor, candidates: Candidates | None = None, *,
           vm_candidates: VmCandidates | None = None,
           partition: Partition = Partition.SYSTEM,
           feature: Callable[[Config], bool] = _always,
           names_guest_page: bool = False) -> Callable[[Effect], Effect]:
    """Register a step function as an action of the model.

    Give ``vm_candidates`` (per VM, ``Partition.VM``) or ``candidates`` (whole
    state, with the partition they are chosen for).
    """
    if vm_candidates is not None:
        candidates, partition = each_vm(vm_candidates), Partition.VM
    assert candidates is not None, "an action needs candidates"
    whole: Candidates = candidates

    def register(fn: Effect) -> Effect:
        code = fn.__code__
        params = code.co_varnames[2:code.co_argcount]
        ACTIONS[fn.__name__] = ActionSpec(
            name=fn.__name__, actor=actor, effect=fn, candidates=whole,
            params=tuple(params), feature=feature, names_guest_page=names_guest_page,
            doc=(fn.__doc__ or "").strip(), partition=partition,
            vm_candidates=vm_candidates)
        return fn

    return register


def apply(cfg: Config, s: State, act: Action,
          actions: Mapping[str, ActionSpec] | None = None) -> State:
    """The successor of ``s`` under ``act``; raises GuardError if not allowed.

    ``actions`` replaces the model's action table (used for seeded-fault variants).
    """
    table = ACTIONS if actions is None else actions
    spec = table.get(act.name)
    if spec is None:
        raise GuardError(act.name, "no such action in the model")
    if not spec.feature(cfg):
        raise GuardError(act.name, "this action is switched off in the configuration")
    kwargs = act.kwargs
    if set(kwargs) != set(spec.params):
        raise GuardError(act.name, f"expected arguments {', '.join(spec.params)}")
    vm = kwargs.get("vm")
    if vm is not None:
        require(isinstance(vm, int) and 0 <= vm < cfg.vms, act.name, f"no VM {vm}")
    if spec.actor is Actor.ROGUE:
        require(vm in cfg.hostile_vms, act.name, f"VM {vm} is not configured as hostile")
    if isinstance(vm, int) and spec.actor in _GUEST_SIDE and s.vms[vm].module.frozen:
        # One guard of every guest-side action: a hibernated guest runs nothing.
        require(act.name == "balloon_restore", act.name,
                "the guest is hibernated: it runs nothing until its driver is restored")
    return spec.effect(cfg, s, **kwargs)


_GUEST_SIDE = frozenset({Actor.GUEST, Actor.MODULE, Actor.ROGUE})
"""The actors inside a guest: none of them acts while the guest is hibernated."""


def enabled(cfg: Config, s: State,
            actions: Mapping[str, ActionSpec] | None = None) -> Iterator[tuple[Action, State]]:
    """Every (action, successor) pair the model allows from ``s``, in a fixed order."""
    table = ACTIONS if actions is None else actions
    for spec in table.values():
        if not spec.feature(cfg):
            continue
        for args in spec.candidates(cfg, s):
            act = Action.of(spec.name, **args)
            try:
                yield act, apply(cfg, s, act, table)
            except GuardError:
                continue


# --------------------------------------------------------------------------
# Shared pieces of effects. They are not actions; they are how the VMM and the
# guest OS do the common work inside an action.


def _free_mpn(host: HostState, action_name: str) -> int:
    """The free MPN the VMM picks to back a page: the lowest (the VMM's choice)."""
    require(bool(host.free), action_name, "no free MPN: the host must reclaim memory first")
    return min(host.free)


def vmm_keeps_host_pages(cfg: Config) -> bool:
    """Whether the VMM keeps each host page to the pages of one VM: with host pages of
    several balloon units, several VMs, and no content sharing (which maps one machine page
    for several VMs by design: a host that merges pages works in balloon units, as KSM splits
    a transparent huge page before it merges its 4 KiB pages); not in a generic guest system,
    whose pages are the machine's own.

    >>> vmm_keeps_host_pages(Config(vms=2, machine_pages=8, host_page_units=4))
    True
    >>> vmm_keeps_host_pages(Config(vms=2, machine_pages=8, host_page_units=4, sharing=True))
    False
    """
    return cfg.host_page_units > 1 and cfg.vms > 1 and not cfg.sharing and not cfg.guest_system


def own_mpn(cfg: Config, vm: int, ppn: int) -> int:
    """The machine page that is page ``ppn`` of guest ``vm`` in a generic guest system
    (``guest_system``: no translation, the guest's pages are the machine's).

    >>> own_mpn(Config(vms=2, guest_pages=3, machine_pages=6, host_use=False, guest_system=True),
    ...         1, 2)
    5
    """
    return vm * cfg.guest_pages + ppn


def _vm_free_mpn(s: State, vm: int, ppn: int, action_name: str, cfg: Config | None) -> int:
    """The free MPN the VMM picks to back page ``ppn`` of ``vm`` (the VMM's choice): the
    lowest free one; where the VMM keeps host pages to one VM (:func:`vmm_keeps_host_pages`),
    the lowest in a host page that backs no page of another VM; in a generic guest system
    the page's own machine page. A host page is the unit the host maps, reclaims and gives
    to a VM (a 2 MiB page in the host's own page tables and the EPT); a unit of another VM's
    host page would make that host page back the memory of two VMs. ``cfg`` None: the
    lowest free MPN whatever the configuration (a seeded fault's VMM)."""
    host = s.host
    if cfg is not None and cfg.guest_system:
        mpn = own_mpn(cfg, vm, ppn)
        require(mpn in host.free, action_name, "the guest's own machine page is not free")
        return mpn
    if cfg is None or not vmm_keeps_host_pages(cfg):
        return _free_mpn(host, action_name)
    units = cfg.host_page_units
    require(bool(host.free), action_name, "no free MPN: the host must reclaim memory first")
    foreign = {m // units for v, other in enumerate(s.vms) if v != vm
               for m in other.p2m if m != UNBACKED}
    own = [m for m in host.free if m // units not in foreign]
    require(bool(own), action_name, "no free MPN in a host page of this VM's own or a free "
            "one: the host must reclaim memory first")
    return min(own)


def _mappers_of(s: State, mpn: int) -> list[tuple[int, int]]:
    return [(v, p) for v, vm in enumerate(s.vms) for p, m in enumerate(vm.p2m) if m == mpn]


def _set_p2m(s: State, vm: int, ppn: int, mpn: int) -> State:
    v = s.vms[vm]
    p2m = v.p2m[:ppn] + (mpn,) + v.p2m[ppn + 1:]
    return s.with_vm(vm, v.replace(p2m=p2m))


def _set_content(host: HostState, mpn: int, token: int) -> HostState:
    return replace(host, content=host.content[:mpn] + (token,) + host.content[mpn + 1:])


def unback(s: State, vm: int, ppn: int, *, by_balloon: bool) -> State:
    """VMM: unmap PPN ``ppn`` of ``vm``; its MPN returns to the free pool (scrubbed to
    the zero page) unless other guest pages still share it."""
    mpn = s.vms[vm].p2m[ppn]
    if mpn == UNBACKED:
        return s
    s = _set_p2m(s, vm, ppn, UNBACKED)
    host = s.host
    others = _mappers_of(s, mpn)
    if others:
        if len(others) == 1:
            host = replace(host, cow=host.cow - {mpn})
    else:
        host = replace(_set_content(host, mpn, 0), free=host.free | {mpn},
                       cow=host.cow - {mpn},
                       reclaimed=host.reclaimed | {mpn} if by_balloon else host.reclaimed)
    return State(host, s.vms)


def fault_in(s: State, vm: int, ppn: int, action_name: str,
             cfg: Config | None = None) -> tuple[State, int]:
    """VMM: make sure the guest's access to ``ppn`` finds a machine page.

    A backed page is left alone. Otherwise the VMM picks a free MPN and fills it:
    from host swap if the host paged it out, else with zeros. Touching a ballooned
    page *pops* it out of the balloon (the VMM must back it again). ``cfg`` says how the
    VMM picks the MPN (:func:`_vm_free_mpn`; None: the lowest free one).
    """
    v = s.vms[vm]
    mpn = v.p2m[ppn]
    if mpn != UNBACKED:
        return s, mpn
    host = s.host
    mpn = _vm_free_mpn(s, vm, ppn, action_name, cfg)
    token = 0
    swap = host.swap
    for entry in swap:
        if entry[0] == vm and entry[1] == ppn:
            token = entry[2]
            swap = tuple(e for e in swap if e is not entry)
            break
    host = replace(_set_content(host, mpn, token), free=host.free - {mpn},
                   reclaimed=host.reclaimed - {mpn}, swap=swap)
    v = v.replace(p2m=v.p2m[:ppn] + (mpn,) + v.p2m[ppn + 1:],
                  ballooned=v.ballooned - {ppn})
    return State(host, s.vms).with_vm(vm, v), mpn


def write_page(s: State, vm: int, ppn: int, token: int, action_name: str,
               cfg: Config | None = None) -> State:
    """VMM: the guest writes ``token`` to ``ppn``; a write to a shared page breaks the share.
    A page discarded after a free page report holds the guest's own data again."""
    s, mpn = fault_in(s, vm, ppn, action_name, cfg)
    if ppn in s.vms[vm].hinted:  # the dirty log marks a hinted page written: it must be sent
        v = s.vms[vm]
        s = s.with_vm(vm, v.replace(hinted=v.hinted - {ppn},
                                    hint_rewritten=v.hint_rewritten | {ppn}))
    if ppn in s.vms[vm].discarded:
        s = s.with_vm(vm, s.vms[vm].replace(discarded=s.vms[vm].discarded - {ppn}))
    host = s.host
    if mpn in host.cow:
        copy = _vm_free_mpn(s, vm, ppn, action_name, cfg)
        host = replace(host, free=host.free - {copy}, reclaimed=host.reclaimed - {copy})
        s = _set_p2m(State(host, s.vms), vm, ppn, copy)
        if len(_mappers_of(s, mpn)) <= 1:
            host = replace(host, cow=host.cow - {mpn})
        mpn = copy
    return State(_set_content(host, mpn, token), s.vms)


def _set_guest(s: State, vm: int, guest: GuestState) -> State:
    return s.with_vm(vm, s.vms[vm].replace(guest=guest))


def _with_use(ppn_use: tuple[int, ...], ppns: Iterable[int], use: int) -> tuple[int, ...]:
    record: object = ppn_use
    if isinstance(record, list):  # a table (model/tables.py): the changes go beside it
        record = PageVector(record, {})
    if isinstance(record, PageVector):
        return cast(tuple[int, ...], record.with_values(ppns, use))
    out = list(ppn_use)
    for p in ppns:
        out[p] = use
    return tuple(out)


def _resident_ppn(guest: GuestState, vpn: int) -> int | None:
    for p, use in enumerate(guest.ppn_use):
        if use == vpn:
            return p
    return None


PENDING_DEFLATE = -3
"""Allocator view only: a free PPN whose deflate report the VMM has not processed yet."""


def balloon_view(v: VmState) -> tuple[int, ...]:
    """The guest's page use as the balloon module's allocations see it.

    A page the guest reused before the VMM processed its deflate report (allowed
    without ``must_tell_host``) is not handed back to the balloon until the VMM has
    processed that report: otherwise the stale report would release the page after
    its re-inflation, and the module and the VMM would disagree about it.
    """
    use = v.guest.ppn_use
    if v.module.reporting:
        use = allocator_view(v)
    pending = [p for p in v.deflate_queue if 0 <= p < len(use) and use[p] == FREE]
    return _with_use(use, pending, PENDING_DEFLATE) if pending else use


REPORTING = -4
"""Allocator view only: a free PPN the module took off the free list for a free page report."""


def allocator_view(v: VmState) -> tuple[int, ...]:
    """The guest's page use as its allocator sees it: a free page the module holds for a
    free page report in flight is off the free list (Linux page_reporting isolates it)."""
    use = v.guest.ppn_use
    held = [p for p in v.module.reporting if 0 <= p < len(use) and use[p] == FREE]
    return _with_use(use, held, REPORTING) if held else use


def usable_free(cfg: Config, v: VmState) -> int:
    """Free PPNs the balloon module may take (the driver leaves the kernel's reserve;
    the application stays within its pin limit)."""
    use = balloon_view(v)
    free = use.count(FREE)
    if cfg.module is ModuleKind.DRIVER:
        return max(0, free - cfg.kernel_reserve)
    pinned = use.count(BALLOON)
    return max(0, min(free, cfg.pin_limit - pinned))


def has_usable_free(cfg: Config, v: VmState, n: int) -> bool:
    """Whether ``usable_free(cfg, v) >= n``, found without counting every PPN when the
    driver's guest has that many free pages early on (a real guest has hundreds of
    thousands of PPNs; a guard asks only whether enough are free).

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=1, guest_pages=4, machine_pages=4, kernel_reserve=1)
    >>> v = initial_state(cfg).vms[0]
    >>> [has_usable_free(cfg, v, n) for n in range(5)] == [usable_free(cfg, v) >= n
    ...                                                    for n in range(5)]
    True
    """
    if n <= 0:
        return True
    if cfg.module is not ModuleKind.DRIVER:
        return usable_free(cfg, v) >= n
    use = balloon_view(v)
    need = n + cfg.kernel_reserve
    if isinstance(use, PageVector):  # a table's view counts its free pages from its changes
        return use.count(FREE) >= need
    at = -1
    for _ in range(need):
        try:
            at = use.index(FREE, at + 1)
        except ValueError:
            return False
    return True


def inflate_limit(cfg: Config, v: VmState) -> int:
    """Pages the module still owes the VMM: target minus pages held or in flight (in whole
    balloon units); none while a page migration holds the balloon lock."""
    m = v.module
    if m.migrating:
        return 0
    held = len(m.balloon) + len(v.inflate_queue) + len(v.acked_inflate)
    most = max(0, min(cfg.balloon_report_pages, m.target - held))
    return most - most % cfg.balloon_unit_pages


def whole_units(cfg: Config, ppns: Iterable[int]) -> bool:
    """Whether ``ppns`` is a union of whole balloon units (aligned runs of
    ``balloon_unit_pages`` PPNs).

    >>> cfg = Config(guest_pages=4, batch=2, balloon_unit_pages=2)
    >>> whole_units(cfg, (2, 3)), whole_units(cfg, (1, 2))
    (True, False)
    """
    u = cfg.balloon_unit_pages
    if u == 1:
        return True
    got = set(ppns)
    return all(set(range(p - p % u, p - p % u + u)) <= got for p in got)


def _whole_unit_starts(cfg: Config, pages: Iterable[int]) -> list[int]:
    """The first PPN of each balloon unit wholly among ``pages``, in ascending order."""
    u = cfg.balloon_unit_pages
    have = set(pages)
    return [b for b in sorted({p - p % u for p in have}) if set(range(b, b + u)) <= have]


def _unit_sets(cfg: Config, pages: Iterable[int], most: int) -> Iterator[tuple[int, ...]]:
    """The sets of whole balloon units among ``pages`` of at most ``most`` pages, smallest
    first, each in ascending order."""
    u = cfg.balloon_unit_pages
    units = _whole_unit_starts(cfg, pages)
    for k in range(1, most // u + 1):
        for chosen in subsets(units, k):
            yield tuple(p for b in chosen for p in range(b, b + u))


def report_deflate(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The module takes ``ppns`` out of its balloon and reports them for deflation;
    without ``must_tell_host`` the guest may reuse them at once (the shared effect of
    every deflate, asked for or forced by memory pressure)."""
    v = s.vms[vm]
    m = v.module
    guest = v.guest
    if not cfg.must_tell_host:
        use = guest.ppn_use
        mine = [p for p in ppns if use[p] == BALLOON]
        guest = replace(guest, ppn_use=_with_use(guest.ppn_use, mine, FREE))
    return s.with_vm(vm, v.replace(
        guest=guest, module=replace(m, balloon=m.balloon - set(ppns)),
        deflate_queue=sorted_tuple(v.deflate_queue + ppns)))


def under_pressure(cfg: Config, guest: GuestState) -> bool:
    """The guest is out of memory: no free PPN and no room on its disk to page out."""
    return FREE not in guest.ppn_use and (
        len(guest.disk) >= cfg.guest_disk_slots or not guest.lru)


# --------------------------------------------------------------------------
# Host


def _targets(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    for pages in range(0, cfg.guest_pages + 1, cfg.balloon_unit_pages):
        yield {"vm": vm, "pages": pages}


@action(Actor.HOST, vm_candidates=_targets)
def host_set_target(cfg: Config, s: State, vm: int, pages: int) -> State:
    """The host asks VM ``vm``'s balloon to hold ``pages`` pages: a quantity, never page numbers."""
    require(isinstance(pages, int) and 0 <= pages <= cfg.guest_pages, "host_set_target",
            f"target must be between 0 and {cfg.guest_pages} pages")
    require(pages % cfg.balloon_unit_pages == 0, "host_set_target",
            "the target is a number of whole balloon units")
    require(pages != s.vms[vm].target, "host_set_target", "the target is already that")
    return s.with_vm(vm, s.vms[vm].replace(target=pages))


def _cpu_targets(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    for n in range(1, cfg.vcpus + 1):
        yield {"vm": vm, "vcpus": n}


@action(Actor.HOST, vm_candidates=_cpu_targets, feature=lambda c: c.processors)
def host_set_cpu_target(cfg: Config, s: State, vm: int, vcpus: int) -> State:
    """The host asks VM ``vm`` to keep ``vcpus`` virtual processors online: a quantity."""
    require(isinstance(vcpus, int) and 1 <= vcpus <= cfg.vcpus, "host_set_cpu_target",
            f"vCPU target must be between 1 and {cfg.vcpus}")
    require(vcpus != s.vms[vm].cpu_target, "host_set_cpu_target", "the target is already that")
    return s.with_vm(vm, s.vms[vm].replace(cpu_target=vcpus))


def _host_pages(cfg: Config, s: State) -> Iterator[dict[str, Any]]:
    for hp in range(cfg.host_pages):
        yield {"host_page": hp}


def host_page_units(cfg: Config, host_page: int) -> frozenset[int]:
    """The MPNs (balloon units) that make up one host page."""
    u = cfg.host_page_units
    return frozenset(range(host_page * u, (host_page + 1) * u))


@action(Actor.HOST, _host_pages, partition=Partition.HOST, feature=lambda c: c.host_use)
def host_take_page(cfg: Config, s: State, host_page: int) -> State:
    """The host takes a whole host page for arbitrary use; every balloon unit in it must be free."""
    require(isinstance(host_page, int) and 0 <= host_page < cfg.host_pages, "host_take_page",
            f"no host page {host_page}")
    units = host_page_units(cfg, host_page)
    require(units <= s.host.free, "host_take_page",
            "some balloon unit of this host page is not free")
    host = replace(s.host, free=s.host.free - units, in_use=s.host.in_use | units,
                   reclaimed=s.host.reclaimed - units)
    return State(host, s.vms)


@action(Actor.HOST, _host_pages, partition=Partition.HOST, feature=lambda c: c.host_use)
def host_return_page(cfg: Config, s: State, host_page: int) -> State:
    """The host gives a host page it was using back to the free pool."""
    require(isinstance(host_page, int) and 0 <= host_page < cfg.host_pages, "host_return_page",
            f"no host page {host_page}")
    units = host_page_units(cfg, host_page)
    require(units <= s.host.in_use, "host_return_page", "the host is not using this host page")
    host = replace(s.host, free=s.host.free | units, in_use=s.host.in_use - units)
    return State(host, s.vms)


def _swap_candidates(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    for ppn, mpn in enumerate(s.vms[vm].p2m):
        if mpn != UNBACKED and mpn not in s.host.cow:
            yield {"vm": vm, "ppn": ppn}


@action(Actor.HOST, vm_candidates=_swap_candidates, feature=lambda c: c.host_swap,
        names_guest_page=True)
def host_swap_out(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """Fallback: the host itself pages a guest page out to host swap, without guest knowledge.

    This is the only host or VMM action that names a guest page to take, and it
    is labelled as host swap in every trace, never as ballooning.
    """
    require(isinstance(ppn, int) and 0 <= ppn < cfg.guest_pages, "host_swap_out", f"no PPN {ppn}")
    v = s.vms[vm]
    mpn = v.p2m[ppn]
    require(mpn != UNBACKED, "host_swap_out", "the page has no machine page to free")
    require(mpn not in s.host.cow, "host_swap_out", "shared pages are not swapped")
    require(len(s.host.swap) < cfg.host_swap_slots, "host_swap_out", "host swap is full")
    token = s.host.content[mpn]
    swap = tuple(sorted(s.host.swap + ((vm, ppn, token),)))
    s = unback(State(replace(s.host, swap=swap), s.vms), vm, ppn, by_balloon=False)
    return s


# --------------------------------------------------------------------------
# VMM


def _reclaim_choices(cfg: Config, v: VmState) -> tuple[list[int], list[int], int, int]:
    """(valid PPNs, other reported PPNs, fewest and most pages the VMM may accept).

    Valid PPNs are the reported ones the VMM could accept: in range and not ballooned
    (a PPN reported twice counts once). The rest are refused whatever it chooses.
    """
    queued = set(v.inflate_queue)
    # The reported pages already ballooned, found by one set intersection (read from the
    # report's side) rather than by a look-up in a balloon of tens of thousands per page.
    taken = v.ballooned & queued
    valid = [p for p in sorted(queued) if 0 <= p < cfg.guest_pages and p not in taken]
    accepted = set(valid)
    invalid = sorted(queued - accepted)
    # With ``migration`` the VMM takes one page beyond the target: a migrating page's new
    # PPN is acknowledged before the old one is released (virtio's device checks no target).
    # With ``accept_beyond_target`` it checks none at all (every page is room).
    room = (cfg.guest_pages if cfg.accept_beyond_target
            else v.target - len(v.ballooned) + (1 if cfg.migration else 0))
    most = min(len(valid), max(0, room))
    most -= most % cfg.balloon_unit_pages  # whole balloon units only
    return valid, invalid, (0 if cfg.refusal else most), most


def reclaim_takes_all_it_may(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> bool:
    """Whether ``vmm_reclaim(vm, refuse)`` in ``s`` accepts as many reported pages as the VMM
    may: every valid one, or as many as the target leaves room for. It then refuses no page
    of its own choosing, though ``refuse`` is not empty when the report holds more valid
    pages than that room (or, with ``refusal``, names pages that are refused anyway).

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=1, guest_pages=3, guest_data_pages=1, machine_pages=3)
    >>> s0 = initial_state(cfg)
    >>> s = s0.with_vm(0, s0.vms[0].replace(target=1, inflate_queue=(1, 2)))
    >>> [reclaim_takes_all_it_may(cfg, s, 0, r) for r in [(), (1,), (2,), (1, 2)]]
    [False, True, True, False]
    """
    valid, _, _, most = _reclaim_choices(cfg, s.vms[vm])
    return len(set(valid) - set(refuse)) == most


def _refusals(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if not v.inflate_queue:
        return
    valid, invalid, fewest, most = _reclaim_choices(cfg, v)
    extras: list[tuple[int, ...]] = [()] if not cfg.refusal else [
        c for k in range(len(invalid) + 1) for c in subsets(invalid, k)]
    accepts = (accepted for n in range(fewest, most + 1) for accepted in subsets(valid, n)
               if whole_units(cfg, accepted))
    for accepted, extra in pairs(accepts, extras):
        base = [p for p in valid if p not in accepted]
        yield {"vm": vm, "refuse": tuple(sorted(base + list(extra)))}


@action(Actor.VMM, vm_candidates=_refusals)
def vmm_reclaim(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> State:
    """The VMM processes the guest's inflate report: it validates every PPN, unmaps the
    accepted ones (their MPNs go back to the host) and acknowledges each page.

    A PPN out of range, already ballooned or reported twice is refused. Of the valid
    ones the VMM accepts no more than the host asked for, and ``refuse`` names the
    valid PPNs it refuses (as a set: order free); the VMM never picks a page itself.
    Choices, each permitted by:

    * which pages to accept when the report holds more than the target's room: any
      (virtio 1.x section 5.5.6 does not order the device's processing; vmw_balloon
      accepts in arrival order, and the queue here is a multiset, so every arrival
      order is one of these subsets);
    * without the ``refusal`` feature the VMM accepts as many as it has room for
      (virtio 1.x section 5.5: a device does not refuse; QEMU hw/virtio/virtio-balloon.c),
      and with ``accept_beyond_target`` every valid page (QEMU's device checks no target:
      a report filled before the host lowered it is acknowledged whole);
    * with ``refusal`` it may refuse any of the valid pages, even with room (vmw_balloon:
      the host returns an error per page of a batch), and may list invalid ones too.
    """
    v = s.vms[vm]
    require(bool(v.inflate_queue), "vmm_reclaim", "the guest has reported no page for inflation")
    reported = set(v.inflate_queue)
    require(isinstance(refuse, tuple) and len(set(refuse)) == len(refuse)
            and set(refuse) <= reported, "vmm_reclaim",
            "the VMM can only refuse pages that were reported, each once")
    valid, _, fewest, most = _reclaim_choices(cfg, v)
    may_accept = set(valid)
    require(cfg.refusal or set(refuse) <= may_accept, "vmm_reclaim", "refusal is switched off")
    accepted = may_accept - set(refuse)
    require(len(accepted) <= most, "vmm_reclaim",
            "more pages than the host asked for: the VMM must refuse the rest")
    require(len(accepted) >= fewest, "vmm_reclaim",
            "refusal is switched off: the VMM accepts every valid page it has room for")
    require(whole_units(cfg, accepted), "vmm_reclaim",
            "the VMM accepts whole balloon units only")
    refused = reported - accepted
    # Only the backed pages have an MPN to give back (unmapping one page leaves every other
    # page's entry as it is, so the map before the loop tells which).
    p2m = v.p2m
    backed = [ppn for ppn in accepted if p2m[ppn] != UNBACKED]
    for ppn in sorted(backed):
        s = unback(s, vm, ppn, by_balloon=True)
    swap = tuple(e for e in s.host.swap if not (e[0] == vm and e[1] in accepted))
    s = State(replace(s.host, swap=swap), s.vms)
    v = s.vms[vm]
    return s.with_vm(vm, v.replace(
        ballooned=v.ballooned | accepted, inflate_queue=(),
        acked_inflate=v.acked_inflate | accepted,
        acked_refused=v.acked_refused | refused))


def _per_vm(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    yield {"vm": vm}


@action(Actor.VMM, vm_candidates=_per_vm)
def vmm_release(cfg: Config, s: State, vm: int) -> State:
    """The VMM processes the guest's deflate report: each PPN it holds as ballooned leaves
    the balloon (it stays unbacked until the guest touches it). A PPN that was never
    ballooned is refused: it changes nothing. The report itself is acknowledged, so
    the module learns that the VMM has seen it."""
    v = s.vms[vm]
    require(bool(v.deflate_queue), "vmm_release", "the guest has reported no page for deflation")
    reported = {p for p in v.deflate_queue if 0 <= p < cfg.guest_pages}
    released = reported & v.ballooned
    return s.with_vm(vm, v.replace(ballooned=v.ballooned - released, deflate_queue=(),
                                   acked_deflate=v.acked_deflate | reported))


def _backable(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if not s.host.free:
        return
    v = s.vms[vm]
    for ppn, mpn in enumerate(v.p2m):
        if mpn == UNBACKED and ppn not in v.ballooned:
            yield {"vm": vm, "ppn": ppn}


@action(Actor.VMM, vm_candidates=_backable, feature=lambda c: c.eager_backing)
def vmm_back_page(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """The VMM backs a guest page that is not in the balloon before the guest touches it,
    as it would on the guest's next access (from host swap if the host paged it out, else
    with zeros). When is the VMM's choice: Xen populates the pages of a deflate report at
    once, QEMU leaves them to the next access; the VMM never backs a page it holds as
    ballooned, so it takes nothing the guest has given."""
    require(isinstance(ppn, int) and 0 <= ppn < cfg.guest_pages, "vmm_back_page", f"no PPN {ppn}")
    v = s.vms[vm]
    require(v.p2m[ppn] == UNBACKED, "vmm_back_page", "the page is already backed")
    require(ppn not in v.ballooned, "vmm_back_page",
            "the page is in the balloon: only the guest's deflate gives it back")
    s, _ = fault_in(s, vm, ppn, "vmm_back_page", cfg)
    return s


def _share_pairs(cfg: Config, s: State) -> Iterator[dict[str, Any]]:
    backed = [(v, p, m) for v, vm in enumerate(s.vms) for p, m in enumerate(vm.p2m)
              if m != UNBACKED]
    for (va, pa, ma), (vb, pb, mb) in itertools.combinations(backed, 2):
        if ma != mb and s.host.content[ma] == s.host.content[mb]:
            yield {"vm": va, "ppn": pa, "other_vm": vb, "other_ppn": pb}


@action(Actor.VMM, _share_pairs, feature=lambda c: c.sharing)
def vmm_share(cfg: Config, s: State, vm: int, ppn: int, other_vm: int, other_ppn: int) -> State:
    """Content-based page sharing: two guest pages with identical contents are mapped to
    one MPN, read-only (copy-on-write); the other MPN goes back to the free pool."""
    require(isinstance(other_vm, int) and 0 <= other_vm < cfg.vms, "vmm_share",
            f"no VM {other_vm}")
    require(all(isinstance(p, int) and 0 <= p < cfg.guest_pages for p in (ppn, other_ppn)),
            "vmm_share", "PPN out of range")
    require((vm, ppn) < (other_vm, other_ppn), "vmm_share",
            "name the pair with the smaller (vm, ppn) first")
    keep = s.vms[vm].p2m[ppn]
    drop = s.vms[other_vm].p2m[other_ppn]
    require(keep != UNBACKED and drop != UNBACKED, "vmm_share", "both pages must be backed")
    require(keep != drop, "vmm_share", "the pages already share a machine page")
    require(s.host.content[keep] == s.host.content[drop], "vmm_share",
            "the pages' contents differ")
    s = unback(s, other_vm, other_ppn, by_balloon=False)
    s = _set_p2m(s, other_vm, other_ppn, keep)
    return State(replace(s.host, cow=s.host.cow | {keep}), s.vms)


@action(Actor.VMM, vm_candidates=_per_vm, feature=lambda c: c.processors)
def vmm_cpu_reclaim(cfg: Config, s: State, vm: int) -> State:
    """The VMM takes back the physical processors of the vCPUs the guest parked."""
    v = s.vms[vm]
    require(bool(v.parked_vcpus), "vmm_cpu_reclaim", "the guest has parked no vCPU")
    host = replace(s.host, idle_pcpus=s.host.idle_pcpus + len(v.parked_vcpus))
    return State(host, s.vms).with_vm(vm, v.replace(parked_vcpus=frozenset()))


# --------------------------------------------------------------------------
# Guest OS


def _most_recent(lru: tuple[int, ...], vpn: int) -> tuple[int, ...]:
    """The LRU order with ``vpn`` the most recently used, listed once (an entry of it that no
    PPN holds, left by a broken module and never by a correct one, moves to the end too).

    >>> _most_recent((2, 0, 1), 0), _most_recent((2,), 0)
    ((2, 1, 0), (2, 0))
    """
    return tuple(x for x in lru if x != vpn) + (vpn,)


def _access(cfg: Config, s: State, vm: int, vpn: int, name: str,
            lowest_mpn: bool = False) -> tuple[State, int]:
    """The guest makes ``vpn`` resident (allocating or paging in) and marks it recently
    used; returns the new state and the PPN holding it. ``lowest_mpn``: the VMM backs it
    with the lowest free MPN whatever the configuration (a seeded fault)."""
    choice = None if lowest_mpn else cfg
    require(isinstance(vpn, int) and 0 <= vpn < cfg.guest_data_pages, name, f"no VPN {vpn}")
    guest = s.vms[vm].guest
    ppn = _resident_ppn(guest, vpn)
    if ppn is not None:
        lru = _most_recent(guest.lru, vpn)
        s, _ = fault_in(_set_guest(s, vm, replace(guest, lru=lru)), vm, ppn, name, choice)
        return s, ppn
    free = policy_for(cfg.guest_policy).allocation(allocator_view(s.vms[vm]), 1)
    require(bool(free), name, "the guest has no free page: it must page out first")
    ppn = free[0]
    on_disk = dict(guest.disk)
    token = on_disk.pop(vpn, 0)
    guest = replace(guest, ppn_use=_with_use(guest.ppn_use, [ppn], vpn),
                    lru=_most_recent(guest.lru, vpn), disk=tuple(sorted(on_disk.items())))
    # The guest fills the new page itself: from its disk, or with zeros.
    s = write_page(_set_guest(s, vm, guest), vm, ppn, token, name, choice)
    return s, ppn


access_page = _access
"""The guest's access to one of its virtual pages, shared by its reads and writes (and the
seeded faults that change which MPN the VMM backs it with)."""


def _vpn_candidates(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    for vpn in range(cfg.guest_data_pages):
        yield {"vm": vm, "vpn": vpn}


@action(Actor.GUEST, vm_candidates=_vpn_candidates)
def guest_read(cfg: Config, s: State, vm: int, vpn: int) -> State:
    """A guest process reads its virtual page ``vpn`` (allocating or paging it in if needed)."""
    s, _ = _access(cfg, s, vm, vpn, "guest_read")
    return s


def _write_candidates(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    for args in _vpn_candidates(cfg, s, vm):
        for token in range(1, cfg.tokens + 1):
            yield {**args, "token": token}


@action(Actor.GUEST, vm_candidates=_write_candidates)
def guest_write(cfg: Config, s: State, vm: int, vpn: int, token: int) -> State:
    """A guest process writes contents ``token`` to its virtual page ``vpn``."""
    require(isinstance(token, int) and 1 <= token <= cfg.tokens, "guest_write",
            f"token must be between 1 and {cfg.tokens}")
    s, ppn = _access(cfg, s, vm, vpn, "guest_write")
    s = write_page(s, vm, ppn, token, "guest_write", cfg)
    g = s.vms[vm].guest
    return _set_guest(s, vm, replace(g, expected=g.expected[:vpn] + (token,)
                                     + g.expected[vpn + 1:]))


def _victims(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    for vpn in policy_for(cfg.guest_policy).victims(s.vms[vm].guest.lru):
        yield {"vm": vm, "vpn": vpn}


@action(Actor.GUEST, vm_candidates=_victims)
def guest_evict(cfg: Config, s: State, vm: int, vpn: int) -> State:
    """The guest's replacement policy pages ``vpn`` out to the guest's own virtual disk,
    freeing its PPN. The guest, not the host, chooses the victim."""
    guest = s.vms[vm].guest
    require(isinstance(vpn, int) and vpn in guest.lru, "guest_evict", f"VPN {vpn} is not resident")
    require(vpn in policy_for(cfg.guest_policy).victims(guest.lru), "guest_evict",
            "the guest's replacement policy would evict another page")
    require(len(guest.disk) < cfg.guest_disk_slots, "guest_evict", "the guest's disk is full")
    ppn = _resident_ppn(guest, vpn)
    require(ppn is not None, "guest_evict", "the guest's page tables lost this VPN")
    assert ppn is not None
    # the guest reads the page to write it out
    s, mpn = fault_in(s, vm, ppn, "guest_evict", cfg)
    token = s.host.content[mpn]
    guest = s.vms[vm].guest
    guest = replace(guest, ppn_use=_with_use(guest.ppn_use, [ppn], FREE),
                    lru=tuple(x for x in guest.lru if x != vpn),
                    disk=tuple(sorted(guest.disk + ((vpn, token),))))
    return _set_guest(s, vm, guest)


@action(Actor.GUEST, vm_candidates=_per_vm, feature=lambda c: c.reset)
def guest_reset(cfg: Config, s: State, vm: int) -> State:
    """The guest reboots, possibly with pages in its balloon. Its processes' data is gone
    by design; the VMM resets the balloon device, so every ballooned PPN becomes an
    ordinary unbacked page again and pending reports are dropped.

    With ``reset_races_reports`` the reset is not atomic with respect to the queues: the
    reports the guest had queued are still in flight and reach the VMM after the reset
    (``stale_inflate``, ``stale_deflate``; those of an earlier reset are overwritten, as
    the VMM is done with them by then), and :func:`vmm_drop_stale_reports` must drop them."""
    v = s.vms[vm]
    guest = replace(v.guest, ppn_use=_all_free(v.guest.ppn_use, cfg.guest_pages), lru=(),
                    expected=(0,) * cfg.guest_data_pages, disk=())
    module = replace(v.module, target=0, balloon=frozenset(), refused=frozenset(), actual=0,
                     reporting=frozenset(), migrating=0)
    swap = tuple(e for e in s.host.swap if e[0] != vm)
    if cfg.reset_races_reports:  # the reports in flight outlive the reset
        v = v.replace(stale_inflate=v.inflate_queue, stale_deflate=v.deflate_queue)
    v = v.replace(guest=guest, module=module, ballooned=frozenset(), inflate_queue=(),
                  deflate_queue=(), acked_inflate=frozenset(), acked_refused=frozenset(),
                  acked_deflate=frozenset(), report_queue=frozenset(),
                  acked_report=frozenset())
    return State(replace(s.host, swap=swap), s.vms).with_vm(vm, v)


def _all_free(ppn_use: tuple[int, ...], pages: int) -> tuple[int, ...]:
    """A guest's page use with every PPN free: ``ppn_use`` itself when it is that already
    (a guest reset before it used a page, as at boot: a record of a real guest's size is
    then neither made anew nor written whole into the judge's tables).

    >>> use = (FREE, FREE)
    >>> _all_free(use, 2) is use, _all_free((FREE, BALLOON), 2)
    (True, (-1, -1))
    """
    if len(ppn_use) == pages and ppn_use.count(FREE) == pages:
        return ppn_use
    return (FREE,) * pages


@action(Actor.VMM, vm_candidates=_per_vm, feature=lambda c: c.reset and c.reset_races_reports)
def vmm_drop_stale_reports(cfg: Config, s: State, vm: int) -> State:
    """The VMM takes the reports the guest's previous incarnation queued before it reset,
    and drops them unapplied: they name pages of a guest that no longer exists.

    virtio 1.x section 2.4 (device reset): after a reset the device no longer uses the
    buffers the driver made available before it; a VMM whose reset races with buffers in
    flight must recognise them as the old incarnation's (QEMU drops the in-flight
    elements of a reset virtqueue). Applying one would balloon, or give back, a page of
    the new incarnation that it never reported."""
    v = s.vms[vm]
    require(bool(v.stale_inflate or v.stale_deflate), "vmm_drop_stale_reports",
            "no report of an earlier incarnation is in flight")
    return s.with_vm(vm, v.replace(stale_inflate=(), stale_deflate=()))


# --------------------------------------------------------------------------
# Balloon module


@action(Actor.MODULE, vm_candidates=_per_vm)
def balloon_poll(cfg: Config, s: State, vm: int) -> State:
    """The balloon module reads the targets the host set (it polls about once a second).

    With ``reread_target`` it may read them again unchanged, as a real driver does."""
    v = s.vms[vm]
    m = v.module
    require(cfg.reread_target or m.target != v.target or m.cpu_target != v.cpu_target,
            "balloon_poll", "the module already knows the current targets")
    return s.with_vm(vm, v.replace(module=replace(m, target=v.target, cpu_target=v.cpu_target)))


def _inflations(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    k = min(inflate_limit(cfg, v), usable_free(cfg, v))
    policy = policy_for(cfg.guest_policy)
    if cfg.balloon_unit_pages > 1:  # whole free units, the allocator's choice among them
        free = [p for p, use in enumerate(balloon_view(v)) if use == FREE]
        for ppns in _unit_sets(cfg, free, k):
            yield {"vm": vm, "ppns": ppns}
        return
    for n in range(1, k + 1):
        for ppns in policy.allocations(balloon_view(v), n):
            yield {"vm": vm, "ppns": tuple(ppns)}


@action(Actor.MODULE, vm_candidates=_inflations)
def balloon_inflate(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The module asks the guest OS's allocator for pages and reports them for inflation.

    The guest's allocator chooses the PPNs (``ppns`` records its choice); the module
    pins them and puts them on the inflate queue. Fewer pages than the target asks
    for is a partial fill: the guest had no more free pages to give.
    Choices, each permitted by:

    * which free pages: any the guest's allocator hands out (virtio 1.x section 5.5.6.3
      leaves them to the driver; Linux's balloon_page_alloc takes whatever the buddy
      allocator gives); the ``lowest`` policy narrows this to the lowest free PPNs;
    * how many, from one up to the target's room and the batch (Linux fills up to
      VIRTIO_BALLOON_ARRAY_PFNS_MAX per report and sends fewer when an allocation
      fails; vmw_balloon one batch page's worth);
    * the order inside one report: any (the inflate queue is a multiset; candidates
      list each set of pages once, in ascending order).
    """
    v = s.vms[vm]
    guest = v.guest
    require(isinstance(ppns, tuple) and len(ppns) >= 1, "balloon_inflate", "no page to inflate")
    require(balloon_lock_free(v), "balloon_inflate", "a page migration holds the balloon lock")
    require(len(ppns) <= inflate_limit(cfg, v), "balloon_inflate",
            "more pages than the target asks for, or than one report may carry")
    require(has_usable_free(cfg, v, len(ppns)), "balloon_inflate",
            "the guest cannot give that many pages to the balloon module")
    require(policy_for(cfg.guest_policy).allows_allocation(balloon_view(v), ppns),
            "balloon_inflate", "these are not the pages the guest's allocator hands out")
    require(whole_units(cfg, ppns), "balloon_inflate",
            "the balloon takes whole units: aligned runs of balloon_unit_pages PPNs")
    guest = replace(guest, ppn_use=_with_use(guest.ppn_use, ppns, BALLOON))
    return s.with_vm(vm, v.replace(guest=guest,
                                   inflate_queue=sorted_tuple(v.inflate_queue + ppns)))


def _deflate_limit(cfg: Config, v: VmState) -> int:
    if v.module.migrating:  # the migration holds the balloon lock: leak_balloon waits
        return 0
    batch = cfg.balloon_report_pages
    excess = len(v.module.balloon) - v.module.target
    if cfg.deflate_on_oom and under_pressure(cfg, v.guest):
        excess = max(excess, batch)
    most = max(0, min(batch, excess, len(v.module.balloon)))
    return most - most % cfg.balloon_unit_pages


def _deflations(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    k = _deflate_limit(cfg, v)
    pages = sorted(v.module.balloon)
    if cfg.balloon_unit_pages > 1:
        for ppns in _unit_sets(cfg, pages, k):
            yield {"vm": vm, "ppns": ppns}
        return
    for n in range(1, k + 1):
        for ppns in subsets(pages, n):
            yield {"vm": vm, "ppns": ppns}


@action(Actor.MODULE, vm_candidates=_deflations)
def balloon_deflate(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The module reports balloon pages for deflation: because the balloon is larger than
    the target, or (``deflate_on_oom``) because the guest is out of memory.

    Only acknowledged balloon pages may be deflated. Without ``must_tell_host`` the
    guest may reuse the pages at once; with it, only after the VMM's acknowledgement.
    Choices, each permitted by:

    * which balloon pages, and how many up to the batch and the excess: any (virtio 1.x
      section 5.5.6.2 lets the driver pick; Linux drivers/virtio/virtio_balloon.c takes
      the most recently inflated, vmw_balloon its page list's head);
    * the order inside one report: any (the deflate queue is a multiset; candidates
      list each set of pages once, in ascending order).
    """
    v = s.vms[vm]
    m = v.module
    require(isinstance(ppns, tuple) and len(ppns) >= 1, "balloon_deflate", "no page to deflate")
    require(balloon_lock_free(v), "balloon_deflate", "a page migration holds the balloon lock")
    chosen = set(ppns)
    require(len(chosen) == len(ppns) and chosen <= m.balloon, "balloon_deflate",
            "only acknowledged balloon pages can be deflated")
    require(len(ppns) <= _deflate_limit(cfg, v), "balloon_deflate",
            "the balloon is not above its target and the guest is not out of memory")
    require(whole_units(cfg, ppns), "balloon_deflate", "the balloon gives back whole units")
    return report_deflate(cfg, s, vm, ppns)


@action(Actor.MODULE, vm_candidates=_per_vm)
def balloon_complete(cfg: Config, s: State, vm: int) -> State:
    """The module takes the VMM's acknowledgements: acknowledged inflates join the
    balloon, refused pages are set aside, acknowledged deflates go back to the guest
    (with ``must_tell_host``); then it reports the balloon size as ``actual``. During a page
    migration it waits for the old page's release before it takes the new page's
    acknowledgement (the balloon's size never shows the migrating page twice).

    A page the module holds as refused stays held even if a deflate acknowledgement
    names it (a hostile guest may have reported it for deflation): only
    :func:`balloon_free_refused` gives it back, so it is never freed twice."""
    v = s.vms[vm]
    require(bool(v.acked_inflate or v.acked_refused or v.acked_deflate), "balloon_complete",
            "no acknowledgement is waiting")
    require(not (v.module.migrating and v.acked_inflate), "balloon_complete",
            "a migrating page's acknowledgement waits for the old page's release")
    m = v.module
    guest = v.guest
    # The acknowledged pages the guest still holds for the balloon (read per page, not
    # over the whole guest: a real guest has hundreds of thousands of PPNs).
    use = guest.ppn_use
    size = len(use)
    mine = {p for p in v.acked_inflate | v.acked_refused | v.acked_deflate
            if 0 <= p < size and use[p] == BALLOON}
    # A union with nothing is no change: skip it rather than copy a balloon of tens of
    # thousands of pages.
    joined = v.acked_inflate & mine
    balloon = m.balloon | joined if joined else m.balloon
    refused = (m.refused | (v.acked_refused & mine)) - balloon
    if cfg.must_tell_host:
        back = (v.acked_deflate & mine) - balloon - refused
        guest = replace(guest, ppn_use=_with_use(guest.ppn_use, back, FREE))
    # A migration whose new page the VMM refused ends here: the old page stays.
    migrating = 1 if m.migrating and v.inflate_queue else 0
    module = replace(m, balloon=balloon, refused=refused, actual=len(balloon),
                     migrating=migrating)
    return s.with_vm(vm, v.replace(guest=guest, module=module, acked_inflate=frozenset(),
                                   acked_refused=frozenset(), acked_deflate=frozenset()))


def _may_refuse(cfg: Config) -> bool:
    """Whether the VMM ever refuses a reported page: with ``refusal``; where it accepts no
    more than the target's room; or to a hostile guest's report of an invalid page. A VMM
    that accepts every valid page (``accept_beyond_target``, QEMU's) refuses an honest guest
    nothing."""
    return cfg.refusal or not cfg.accept_beyond_target or bool(cfg.hostile_vms)


@action(Actor.MODULE, vm_candidates=_per_vm, feature=_may_refuse)
def balloon_free_refused(cfg: Config, s: State, vm: int) -> State:
    """The module gives the pages the VMM refused back to the guest's free list."""
    v = s.vms[vm]
    require(bool(v.module.refused), "balloon_free_refused", "no refused page is held")
    guest = replace(v.guest, ppn_use=_with_use(v.guest.ppn_use, v.module.refused, FREE))
    return s.with_vm(vm, v.replace(guest=guest,
                                   module=replace(v.module, refused=frozenset())))


def _offline_candidates(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if len(v.guest.vcpus) > v.module.cpu_target:
        for vcpu in sorted(v.guest.vcpus - {0}):
            yield {"vm": vm, "vcpu": vcpu}


@action(Actor.MODULE, vm_candidates=_offline_candidates, feature=lambda c: c.processors)
def balloon_cpu_offline(cfg: Config, s: State, vm: int, vcpu: int) -> State:
    """The module takes a vCPU out of use by the guest's own means (CPU hot-unplug);
    the guest chooses which (never the boot vCPU 0) and it is reported as parked.
    Choice: which online vCPU, any but the boot one (Linux refuses to unplug CPU 0 on
    most architectures; which other CPU goes is the guest's)."""
    v = s.vms[vm]
    require(len(v.guest.vcpus) > v.module.cpu_target, "balloon_cpu_offline",
            "the guest already runs no more vCPUs than asked")
    require(vcpu in v.guest.vcpus and vcpu != 0, "balloon_cpu_offline",
            "only an online vCPU other than the boot vCPU can go offline")
    guest = replace(v.guest, vcpus=v.guest.vcpus - {vcpu})
    return s.with_vm(vm, v.replace(guest=guest, parked_vcpus=v.parked_vcpus | {vcpu}))


def vcpu_grant_limit(cfg: Config, v: VmState) -> int:
    """Most vCPUs the VMM lets VM ``v`` run when one comes online: the host's CPU target
    with ``vmm_enforces_cpu_target``; otherwise the target the guest's module read (the VMM
    trusts the module, which may have read a target the host has lowered since)."""
    return v.cpu_target if cfg.vmm_enforces_cpu_target else v.module.cpu_target


def _online_candidates(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if (len(v.guest.vcpus) < min(v.module.cpu_target, vcpu_grant_limit(cfg, v))
            and s.host.idle_pcpus > 0):
        for vcpu in sorted(set(range(cfg.vcpus)) - v.guest.vcpus - v.parked_vcpus):
            yield {"vm": vm, "vcpu": vcpu}


@action(Actor.MODULE, vm_candidates=_online_candidates, feature=lambda c: c.processors)
def balloon_cpu_online(cfg: Config, s: State, vm: int, vcpu: int) -> State:
    """The module brings a vCPU back online when the target allows; the VMM grants it
    an idle physical processor in the same hypercall. Choice: which offline vCPU (the
    guest's). With ``vmm_enforces_cpu_target`` the VMM grants it only within the host's
    current CPU target, which a target the module read before the host lowered it may
    exceed."""
    v = s.vms[vm]
    require(len(v.guest.vcpus) < v.module.cpu_target, "balloon_cpu_online",
            "the guest already runs as many vCPUs as asked")
    require(isinstance(vcpu, int) and 0 <= vcpu < cfg.vcpus and vcpu not in v.guest.vcpus
            and vcpu not in v.parked_vcpus, "balloon_cpu_online", f"vCPU {vcpu} cannot come online")
    require(s.host.idle_pcpus > 0, "balloon_cpu_online", "the host has no idle processor")
    require(len(v.guest.vcpus) < vcpu_grant_limit(cfg, v), "balloon_cpu_online",
            "the VMM grants no processor beyond the host's CPU target")
    guest = replace(v.guest, vcpus=v.guest.vcpus | {vcpu})
    host = replace(s.host, idle_pcpus=s.host.idle_pcpus - 1)
    return State(host, s.vms).with_vm(vm, v.replace(guest=guest))


def _migration_in_flight(v: VmState) -> int:
    """Pages the module holds or awaits beyond the target it read: a migrating new page."""
    m = v.module
    return len(m.balloon) + len(v.inflate_queue) + len(v.acked_inflate) - m.target


def balloon_lock_free(v: VmState) -> bool:
    """Whether no balloon page migration holds the module's balloon lock. Linux's migration
    callback (``virtballoon_migratepage``) holds ``balloon_lock`` from the new page's inflate
    to the old page's deflate, and ``fill_balloon`` and ``leak_balloon`` (the OOM notifier's
    path too) take it: the module neither inflates nor deflates meanwhile."""
    return not v.module.migrating


def _migration_starts(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if (v.module.balloon and balloon_lock_free(v) and _migration_in_flight(v) == 0
            and usable_free(cfg, v) >= 1):
        for ppns in policy_for(cfg.guest_policy).allocations(balloon_view(v), 1):
            yield {"vm": vm, "new": ppns[0]}


@action(Actor.MODULE, vm_candidates=_migration_starts, feature=lambda c: c.migration)
def balloon_migrate(cfg: Config, s: State, vm: int, new: int) -> State:
    """The guest's memory compaction moves a page of the balloon: it hands the module a
    free page ``new`` (its allocator's choice) and the module reports it for inflation,
    one page beyond the target, before it lets the old page go
    (:func:`balloon_migrate_release`), holding its balloon lock until then.
    ``actual`` does not change."""
    v = s.vms[vm]
    require(bool(v.module.balloon), "balloon_migrate", "the balloon holds no page to migrate")
    require(balloon_lock_free(v) and _migration_in_flight(v) == 0, "balloon_migrate",
            "the balloon is not at its target, or a migration is already under way")
    require(isinstance(new, int) and usable_free(cfg, v) >= 1
            and policy_for(cfg.guest_policy).allows_allocation(balloon_view(v), (new,)),
            "balloon_migrate", "this is not a page the guest's allocator hands out")
    guest = replace(v.guest, ppn_use=_with_use(v.guest.ppn_use, (new,), BALLOON))
    return s.with_vm(vm, v.replace(guest=guest, module=replace(v.module, migrating=1),
                                   inflate_queue=sorted_tuple(v.inflate_queue + (new,))))


def _migration_ends(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if v.acked_inflate and v.module.migrating:
        for old in sorted(v.module.balloon):
            yield {"vm": vm, "old": old}


@action(Actor.MODULE, vm_candidates=_migration_ends, feature=lambda c: c.migration)
def balloon_migrate_release(cfg: Config, s: State, vm: int, old: int) -> State:
    """Once the VMM acknowledged the new page of a migration, the module reports the old
    page ``old`` for deflation; the guest may reuse it as after any deflate. The balloon
    keeps its size: the new page joins it with the next acknowledgements the module takes.
    The migration ends here: the module's balloon lock is free again."""
    v = s.vms[vm]
    m = v.module
    require(bool(v.acked_inflate) and bool(m.migrating), "balloon_migrate_release",
            "no migrating page has been acknowledged by the VMM")
    require(isinstance(old, int) and old in m.balloon, "balloon_migrate_release",
            "only an acknowledged balloon page can be migrated away")
    guest = v.guest
    if not cfg.must_tell_host and guest.ppn_use[old] == BALLOON:
        guest = replace(guest, ppn_use=_with_use(guest.ppn_use, (old,), FREE))
    return s.with_vm(vm, v.replace(
        guest=guest, module=replace(m, balloon=m.balloon - {old}, migrating=0),
        deflate_queue=sorted_tuple(v.deflate_queue + (old,))))


def _oom_deflations(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if not balloon_lock_free(v):
        return
    k = min(cfg.batch, len(v.module.balloon))
    u = cfg.balloon_unit_pages
    if u > 1:  # the lowest whole units, as many as one report carries
        units = _whole_unit_starts(cfg, v.module.balloon)[:k // u]
        if units:
            yield {"vm": vm, "ppns": tuple(p for b in units for p in range(b, b + u))}
        return
    if k > 0:
        yield {"vm": vm, "ppns": tuple(sorted(v.module.balloon)[:k])}


@action(Actor.MODULE, vm_candidates=_oom_deflations,
        feature=lambda c: c.deflate_on_oom and c.oom_notifier)
def balloon_oom_deflate(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The guest ran out of memory and its OOM notifier deflates up to one report of balloon
    pages, whatever the target (virtio DEFLATE_ON_OOM). The pressure itself is not modelled
    with ``oom_notifier``: a real guest's use of memory is not visible to the device. The
    notifier waits for the balloon lock a migration holds."""
    v = s.vms[vm]
    m = v.module
    require(balloon_lock_free(v), "balloon_oom_deflate", "a page migration holds the balloon lock")
    require(isinstance(ppns, tuple) and 1 <= len(ppns) <= cfg.batch, "balloon_oom_deflate",
            f"one report carries 1 to {cfg.batch} pages")
    require(len(set(ppns)) == len(ppns) and set(ppns) <= m.balloon, "balloon_oom_deflate",
            "only acknowledged balloon pages can be deflated")
    require(whole_units(cfg, ppns), "balloon_oom_deflate",
            "the balloon gives back whole units: aligned runs of balloon_unit_pages PPNs")
    return report_deflate(cfg, s, vm, ppns)


# --------------------------------------------------------------------------
# A hostile or buggy guest


def _rogue_reports(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if vm not in cfg.hostile_vms:
        return
    for queue in ("inflate", "deflate"):
        for ppn in range(cfg.guest_pages + 1):  # one past the end: out of range
            yield {"vm": vm, "queue": queue, "ppn": ppn}


@action(Actor.ROGUE, vm_candidates=_rogue_reports, feature=lambda c: bool(c.hostile_vms))
def rogue_report(cfg: Config, s: State, vm: int, queue: str, ppn: int) -> State:
    """A hostile guest reports any PPN it likes (unknown, out of range, already ballooned,
    in use, never ballooned) on the inflate or deflate queue. The VMM must cope.

    It may flood the queues: without ``vmm_bounds_queues`` the model caps the flood (the
    guard), with it the guest may send as many reports as it likes and the VMM itself
    refuses those that arrive on full queues (:func:`vmm_refuse_flood`)."""
    require(queue in ("inflate", "deflate"), "rogue_report", "queue is inflate or deflate")
    require(isinstance(ppn, int), "rogue_report", "a PPN is a number")
    v = s.vms[vm]
    full = len(v.inflate_queue) + len(v.deflate_queue) >= report_queue_bound(cfg)
    if cfg.vmm_bounds_queues:
        if full:  # the VMM refuses the buffer itself: nothing is queued
            return vmm_refuse_flood(cfg, s, vm, queue, ppn)
    else:
        require(not full, "rogue_report", "the queues are full")
    if queue == "inflate":
        return s.with_vm(vm, v.replace(inflate_queue=sorted_tuple(v.inflate_queue + (ppn,))))
    return s.with_vm(vm, v.replace(deflate_queue=sorted_tuple(v.deflate_queue + (ppn,))))


def report_queue_bound(cfg: Config) -> int:
    """Most PPNs a VM's inflate and deflate queues hold together that a report from a hostile
    guest may add to: two reports' worth (the virtqueues' size in the model)."""
    return 2 * cfg.batch


def vmm_refuse_flood(cfg: Config, s: State, vm: int, queue: str, ppn: int) -> State:
    """With ``vmm_bounds_queues``: the VMM refuses a report that arrives while the VM's queues
    hold :func:`report_queue_bound` PPNs. It returns the buffer unprocessed: a refused
    inflate is acknowledged as refused (so the module learns), a deflate is dropped."""
    v = s.vms[vm]
    if queue == "inflate" and 0 <= ppn <= cfg.guest_pages:
        return s.with_vm(vm, v.replace(acked_refused=v.acked_refused | {ppn}))
    return s


def _rogue_touches(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if vm not in cfg.hostile_vms:
        return
    for ppn in range(cfg.guest_pages):
        for token in range(cfg.tokens + 1):
            yield {"vm": vm, "ppn": ppn, "token": token}


@action(Actor.ROGUE, vm_candidates=_rogue_touches, feature=lambda c: bool(c.hostile_vms))
def rogue_touch(cfg: Config, s: State, vm: int, ppn: int, token: int) -> State:
    """A hostile guest writes to any of its own PPNs, ballooned ones included (the balloon
    pops: the VMM must back the page again)."""
    require(isinstance(ppn, int) and 0 <= ppn < cfg.guest_pages, "rogue_touch",
            "the guest can only address its own guest-physical memory")
    require(isinstance(token, int) and 0 <= token <= cfg.tokens, "rogue_touch", "bad token")
    return write_page(s, vm, ppn, token, "rogue_touch", cfg)


ROGUE_ACTUAL_BOUND = 1
"""How far past ``guest_pages`` the candidates of ``rogue_set_actual`` go: the guard
admits any count, the candidates the counts up to ``guest_pages + ROGUE_ACTUAL_BOUND``
(every true size and one false one). Only the guest-scope accounting property, which
hostile VMs are exempt from, reads a hostile VM's ``actual``."""


def _rogue_sizes(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if vm in cfg.hostile_vms:
        for actual in range(cfg.guest_pages + ROGUE_ACTUAL_BOUND + 1):
            if actual != s.vms[vm].module.actual:
                yield {"vm": vm, "actual": actual}


@action(Actor.ROGUE, vm_candidates=_rogue_sizes, feature=lambda c: bool(c.hostile_vms))
def rogue_set_actual(cfg: Config, s: State, vm: int, actual: int) -> State:
    """A hostile guest reports a balloon size (``actual``) that is not true."""
    require(isinstance(actual, int) and actual >= 0, "rogue_set_actual", "actual is a count")
    v = s.vms[vm]
    require(actual != v.module.actual, "rogue_set_actual", "that is already the reported size")
    return s.with_vm(vm, v.replace(module=replace(v.module, actual=actual)))


def _rogue_enforced(cfg: Config) -> bool:
    return bool(cfg.hostile_vms) and cfg.processors and cfg.vmm_enforces_cpu_target


def _rogue_parks(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if vm in cfg.hostile_vms:
        for vcpu in range(cfg.vcpus + 1):  # one past the last: a vCPU the VM does not have
            yield {"vm": vm, "vcpu": vcpu}


@action(Actor.ROGUE, vm_candidates=_rogue_parks, feature=_rogue_enforced)
def rogue_cpu_park(cfg: Config, s: State, vm: int, vcpu: int) -> State:
    """A hostile guest reports any vCPU as parked: one it keeps running, the boot vCPU, one
    already parked or given back, one it does not have (a CPU balloon it does not hold).

    The VMM does not take the report's word for it (``vmm_enforces_cpu_target``): it runs
    the vCPUs itself, so it stops a reported vCPU that is online and parks it; a report of
    any other vCPU changes nothing (no step). A processor is given back only for a vCPU
    that no longer runs."""
    v = s.vms[vm]
    require(isinstance(vcpu, int) and vcpu in v.guest.vcpus, "rogue_cpu_park",
            "the VMM ignores a report of a vCPU that is not running: nothing changes")
    guest = replace(v.guest, vcpus=v.guest.vcpus - {vcpu})
    return s.with_vm(vm, v.replace(guest=guest, parked_vcpus=v.parked_vcpus | {vcpu}))


def _rogue_onlines(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if vm in cfg.hostile_vms:
        for vcpu in sorted(set(range(cfg.vcpus)) - s.vms[vm].guest.vcpus):
            yield {"vm": vm, "vcpu": vcpu}


@action(Actor.ROGUE, vm_candidates=_rogue_onlines, feature=_rogue_enforced)
def rogue_cpu_online(cfg: Config, s: State, vm: int, vcpu: int) -> State:
    """A hostile guest brings any offline vCPU online whatever its module read: it unparks a
    vCPU it reported parked (before the VMM took its processor back) or claims a processor
    for one it gave back.

    The VMM grants it only within the host's CPU target (:func:`vcpu_grant_limit`): an
    unparked vCPU keeps the processor the VM still holds, a claimed one takes an idle one."""
    v = s.vms[vm]
    require(isinstance(vcpu, int) and 0 <= vcpu < cfg.vcpus and vcpu not in v.guest.vcpus,
            "rogue_cpu_online", f"vCPU {vcpu} is not an offline vCPU of this VM")
    require(len(v.guest.vcpus) < vcpu_grant_limit(cfg, v), "rogue_cpu_online",
            "the VMM grants no processor beyond the host's CPU target")
    return vcpu_granted(s, vm, vcpu, "rogue_cpu_online")


def vcpu_granted(s: State, vm: int, vcpu: int, name: str) -> State:
    """VM ``vm``'s ``vcpu`` runs again: on the processor it still holds if it was parked
    and not yet reclaimed, else on an idle processor of the host."""
    v = s.vms[vm]
    guest = replace(v.guest, vcpus=v.guest.vcpus | {vcpu})
    if vcpu in v.parked_vcpus:
        return s.with_vm(vm, v.replace(guest=guest, parked_vcpus=v.parked_vcpus - {vcpu}))
    require(s.host.idle_pcpus > 0, name, "the host has no idle processor")
    host = replace(s.host, idle_pcpus=s.host.idle_pcpus - 1)
    return State(host, s.vms).with_vm(vm, v.replace(guest=guest))


@action(Actor.VMM, vm_candidates=_per_vm,
        feature=lambda c: c.processors and c.vmm_enforces_cpu_target)
def vmm_enforce_cpu_target(cfg: Config, s: State, vm: int) -> State:
    """The VMM stops the vCPUs a VM runs beyond the host's CPU target and gives their
    processors back to the host, without waiting for the guest (which may never park them).

    The host's remedy against a guest that will not cooperate (a host may stop or cap a
    VM's vCPU threads whatever the guest does). Which vCPUs stop is the VMM's choice,
    fixed here to the highest-numbered ones (vCPUs are interchangeable to the host). The
    guest sees them as gone offline."""
    v = s.vms[vm]
    excess = len(v.guest.vcpus) - v.cpu_target
    require(excess > 0, "vmm_enforce_cpu_target",
            "the VM runs no more vCPUs than the host's CPU target")
    stop = sorted(v.guest.vcpus)[-excess:]
    guest = replace(v.guest, vcpus=v.guest.vcpus - set(stop))
    host = replace(s.host, idle_pcpus=s.host.idle_pcpus + excess)
    return State(host, s.vms).with_vm(vm, v.replace(guest=guest))


# --------------------------------------------------------------------------
# Free page reporting, page poisoning and the statistics queue (virtio 1.x section 5.5.6)


def _reportable(cfg: Config, v: VmState) -> list[int]:
    """Free PPNs the module may report: on the allocator's free list, not ballooned."""
    return [p for p, use in enumerate(allocator_view(v)) if use == FREE and p not in v.ballooned]


def _free_reports(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if v.module.reporting:
        return
    free = _reportable(cfg, v)
    for n in range(1, min(cfg.report_limit, len(free)) + 1):
        for ppns in subsets(free, n):
            yield {"vm": vm, "ppns": ppns}


def _poison(cfg: Config, s: State, vm: int, ppns: Iterable[int], name: str) -> State:
    """With ``page_poison`` and a non-zero ``poison_val``, the guest's page poisoning has
    filled each free page that holds anything (backed, or paged out by the host) with
    ``poison_val``; a page never backed reads as zero."""
    if not (cfg.page_poison and cfg.poison_val):
        return s
    for p in ppns:
        if s.vms[vm].p2m[p] != UNBACKED or p in swap_of(s.host, vm):
            s = write_page(s, vm, p, cfg.poison_val, name, cfg)
    return s


@action(Actor.MODULE, vm_candidates=_free_reports, feature=lambda c: c.free_page_reporting)
def balloon_report_free_pages(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """Free page reporting (virtio 1.x section 5.5.6.6, VIRTIO_BALLOON_F_REPORTING): the module
    takes free pages off the guest's free list and reports them on the reporting queue; the
    guest does not use them until the device has returned the report.

    With page poisoning (section 5.5.6.4, VIRTIO_BALLOON_F_PAGE_POISON) the pages hold
    ``poison_val``. Choices, each permitted by: which free pages and how many, up to one
    report (Linux mm/page_reporting.c reports whole free blocks of its own choosing); one
    report at a time (Linux waits for the device before the next)."""
    v = s.vms[vm]
    require(not v.module.reporting, "balloon_report_free_pages",
            "a free page report is still in flight")
    require(isinstance(ppns, tuple) and 1 <= len(ppns) <= cfg.report_limit
            and len(set(ppns)) == len(ppns), "balloon_report_free_pages",
            f"one report carries 1 to {cfg.report_limit} distinct pages")
    require(set(ppns) <= set(_reportable(cfg, v)), "balloon_report_free_pages",
            "only pages on the guest's free list can be reported")
    s = _poison(cfg, s, vm, ppns, "balloon_report_free_pages")
    v = s.vms[vm]
    return s.with_vm(vm, v.replace(report_queue=v.report_queue | set(ppns),
                                   module=replace(v.module, reporting=frozenset(ppns))))


@action(Actor.VMM, vm_candidates=_per_vm, feature=lambda c: c.free_page_reporting)
def vmm_discard_reported(cfg: Config, s: State, vm: int) -> State:
    """The VMM processes a free page report (virtio 1.x section 5.5.6.6): it discards each
    reported page (unmaps it, the machine page scrubbed back to the free pool, a host swap
    slot of it dropped) and returns the report. A discarded page reads back as zero, or as
    ``poison_val`` with page poisoning: with a non-zero ``poison_val`` the VMM keeps the
    page, which the guest filled with poison (QEMU hw/virtio/virtio-balloon.c skips the
    discard then). A PPN out of range or ballooned is returned untouched."""
    v = s.vms[vm]
    require(bool(v.report_queue), "vmm_discard_reported", "no free page report is waiting")
    valid = {p for p in v.report_queue if 0 <= p < cfg.guest_pages and p not in v.ballooned}
    if not (cfg.page_poison and cfg.poison_val):
        for p in sorted(valid):
            s = unback(s, vm, p, by_balloon=False)
        swap = tuple(e for e in s.host.swap if not (e[0] == vm and e[1] in valid))
        s = State(replace(s.host, swap=swap), s.vms)
    v = s.vms[vm]
    return s.with_vm(vm, v.replace(report_queue=frozenset(), discarded=v.discarded | valid,
                                   acked_report=v.acked_report | v.report_queue))


@action(Actor.MODULE, vm_candidates=_per_vm, feature=lambda c: c.free_page_reporting)
def balloon_report_done(cfg: Config, s: State, vm: int) -> State:
    """The module takes the device's return of its free page report and puts the reported
    pages back on the guest's free list (virtio 1.x section 5.5.6.6: the driver may reuse
    them once the device has used the buffer)."""
    v = s.vms[vm]
    require(bool(v.acked_report), "balloon_report_done", "no report has been returned")
    module = replace(v.module, reporting=v.module.reporting - v.acked_report)
    return s.with_vm(vm, v.replace(module=module, acked_report=frozenset()))


def guest_free_pages(v: VmState) -> int:
    """The guest's free memory, in pages, as its statistics report it (VIRTIO_BALLOON_S_MEMFREE):
    pages on its free list (pages held by a free page report in flight are not)."""
    return allocator_view(v).count(FREE)


def _stats_changed(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if guest_free_pages(s.vms[vm]) != s.vms[vm].stats_free:
        yield {"vm": vm}


@action(Actor.MODULE, vm_candidates=_stats_changed, feature=lambda c: c.stats_queue)
def balloon_report_stats(cfg: Config, s: State, vm: int) -> State:
    """The module reports the guest's memory statistics on the statistics queue (virtio 1.x
    section 5.5.6.3, VIRTIO_BALLOON_F_STATS_VQ): its free memory in pages
    (VIRTIO_BALLOON_S_MEMFREE), read from the guest's own state at the time of the report.
    The other tags (swap in/out, available and cached memory, OOM kills) are abstracted
    away; a report that changes nothing is not modelled (the device keeps the last one)."""
    v = s.vms[vm]
    free = guest_free_pages(v)
    require(free != v.stats_free, "balloon_report_stats", "the VMM already has these statistics")
    return s.with_vm(vm, v.replace(stats_free=free))


# --------------------------------------------------------------------------
# Free page hinting (virtio 1.x section 5.5.6.5) and hibernation


HINT_STOP = 0
"""VIRTIO_BALLOON_CMD_ID_STOP: the device asks the driver to stop hinting."""
HINT_DONE = 1
"""VIRTIO_BALLOON_CMD_ID_DONE: the device no longer needs the hints (the migration ended)."""
_HINT_IDS = (2, 3)
"""The ids of hint cycles: QEMU counts them up from 0x80000000; two alternating ids are
enough to tell the cycle under way from the one the driver read last."""


def hint_cycle_running(v: VmState) -> bool:
    """Whether the device shows the id of a hint cycle (neither STOP nor DONE)."""
    return v.hint_cmd_id in _HINT_IDS


def _hint_requests(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if not hint_cycle_running(s.vms[vm]):
        yield {"vm": vm}


@action(Actor.VMM, vm_candidates=_hint_requests, feature=lambda c: c.free_page_hint)
def vmm_request_hints(cfg: Config, s: State, vm: int) -> State:
    """The VMM starts a hint cycle for a live migration (virtio 1.x section 5.5.6.5,
    VIRTIO_BALLOON_F_FREE_PAGE_HINT): it writes a new command id to
    ``free_page_hint_cmd_id``, one the driver has not read before (QEMU
    hw/virtio/virtio-balloon.c counts ids up from 0x80000000 and sets its status to
    FREE_PAGE_HINT_S_REQUESTED). No page is hinted in the new cycle yet."""
    v = s.vms[vm]
    require(not hint_cycle_running(v), "vmm_request_hints", "a hint cycle is already under way")
    new = _HINT_IDS[1] if v.module.hinting_for == _HINT_IDS[0] else _HINT_IDS[0]
    return s.with_vm(vm, v.replace(hint_cmd_id=new, hinted=frozenset(),
                                   hint_rewritten=frozenset()))


def _hint_stops(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if hint_cycle_running(s.vms[vm]):
        for command in ("stop", "done"):
            yield {"vm": vm, "command": command}


@action(Actor.VMM, vm_candidates=_hint_stops, feature=lambda c: c.free_page_hint)
def vmm_stop_hints(cfg: Config, s: State, vm: int, command: str) -> State:
    """The VMM ends the hint cycle (virtio 1.x section 5.5.6.5): ``stop`` writes
    VIRTIO_BALLOON_CMD_ID_STOP (QEMU does so before it syncs the dirty bitmap), ``done``
    VIRTIO_BALLOON_CMD_ID_DONE (the migration ended; Linux then gives the hinted pages back
    to its allocator). Hints of the cycle count no more: nothing is skipped after this."""
    require(command in ("stop", "done"), "vmm_stop_hints", "the command is stop or done")
    v = s.vms[vm]
    require(hint_cycle_running(v), "vmm_stop_hints", "no hint cycle is under way")
    return s.with_vm(vm, v.replace(hint_cmd_id=HINT_STOP if command == "stop" else HINT_DONE,
                                   hinted=frozenset(), hint_rewritten=frozenset()))


def _hint_starts(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if hint_cycle_running(v) and v.module.hinting_for != v.hint_cmd_id:
        yield {"vm": vm}


@action(Actor.MODULE, vm_candidates=_hint_starts, feature=lambda c: c.free_page_hint)
def balloon_hint_start(cfg: Config, s: State, vm: int) -> State:
    """The module reads a new hint command id and starts hinting (virtio 1.x section 5.5.6.5:
    the driver sends the id on free_page_vq before its hints; Linux
    ``virtio_balloon_cmd_id_received``, ``send_cmd_id_start``). Its hints carry that id."""
    v = s.vms[vm]
    require(hint_cycle_running(v) and v.module.hinting_for != v.hint_cmd_id,
            "balloon_hint_start", "the device asks for no new hint cycle")
    return s.with_vm(vm, v.replace(module=replace(v.module, hinting_for=v.hint_cmd_id)))


def _hintable(v: VmState) -> list[int]:
    """Free PPNs the module may hint: on the allocator's free list, not ballooned."""
    return [p for p, use in enumerate(allocator_view(v)) if use == FREE and p not in v.ballooned]


def _hints(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if v.module.hinting_for not in _HINT_IDS:
        return
    free = _hintable(v)
    for n in range(1, min(cfg.batch, len(free)) + 1):
        for ppns in subsets(free, n):
            yield {"vm": vm, "ppns": ppns}


@action(Actor.MODULE, vm_candidates=_hints, feature=lambda c: c.free_page_hint)
def balloon_hint_free_pages(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The module hints free pages to the device, tagged with the command id it read (virtio
    1.x section 5.5.6.5). The device takes the hints of the cycle under way only: the
    migration may then skip those pages until the guest writes them; hints tagged with an
    older id are ignored (QEMU ``get_free_page_hints`` drops them once the id changed).

    A hint says only that the page was free when hinted: the guest may take it into use
    again at once, and its writes then count (section 5.5.6.5: the device must not rely on
    a hint for a page written after it). Choices, each permitted by: which free pages and
    how many, up to one report's worth (Linux hints blocks of
    VIRTIO_BALLOON_HINT_BLOCK_ORDER that its allocator hands out, and holds them until
    DONE, a narrowing of this)."""
    v = s.vms[vm]
    require(v.module.hinting_for in _HINT_IDS, "balloon_hint_free_pages",
            "the module has read no hint command id")
    require(isinstance(ppns, tuple) and 1 <= len(ppns) <= cfg.batch
            and len(set(ppns)) == len(ppns), "balloon_hint_free_pages",
            f"one hint carries 1 to {cfg.batch} distinct pages")
    require(set(ppns) <= set(_hintable(v)), "balloon_hint_free_pages",
            "only pages on the guest's free list can be hinted")
    if v.module.hinting_for != v.hint_cmd_id:
        return s  # a hint of an older cycle: the device ignores it
    return s.with_vm(vm, v.replace(hinted=v.hinted | set(ppns),
                                   hint_rewritten=v.hint_rewritten - set(ppns)))


def _skips(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if hint_cycle_running(v) and v.hinted:
        yield {"vm": vm}


def skip_pages(s: State, vm: int, pages: frozenset[int]) -> State:
    """VMM: the migration does not send ``pages``: they read as zero afterwards (unmapped,
    the machine page scrubbed back to the free pool, a host swap slot dropped)."""
    for p in sorted(pages):
        s = unback(s, vm, p, by_balloon=False)
    swap = tuple(e for e in s.host.swap if not (e[0] == vm and e[1] in pages))
    return State(replace(s.host, swap=swap), s.vms)


@action(Actor.VMM, vm_candidates=_skips, feature=lambda c: c.free_page_hint)
def vmm_skip_hinted(cfg: Config, s: State, vm: int) -> State:
    """The migration skips the pages hinted free in this cycle and not written since (virtio
    1.x section 5.5.6.5; QEMU ``qemu_guest_free_page_hint`` clears their bits in the
    migration bitmap, and KVM's dirty log sets them again on a write). A skipped page
    reads as zero afterwards; a page the guest wrote after hinting it is sent."""
    v = s.vms[vm]
    require(hint_cycle_running(v), "vmm_skip_hinted", "no hint cycle is under way")
    require(bool(v.hinted), "vmm_skip_hinted", "no page was hinted in this cycle")
    s = skip_pages(s, vm, v.hinted)
    return s.with_vm(vm, s.vms[vm].replace(hinted=frozenset()))


def quiescent(v: VmState) -> bool:
    """Whether no report of the VM is in flight: queues, acknowledgements and free page
    reports all empty."""
    return not (v.inflate_queue or v.deflate_queue or v.acked_inflate or v.acked_refused
                or v.acked_deflate or v.report_queue or v.acked_report or v.module.reporting)


def _freezes(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    if not v.module.frozen and quiescent(v):
        yield {"vm": vm}


@action(Actor.MODULE, vm_candidates=_freezes, feature=lambda c: c.hibernation)
def balloon_freeze(cfg: Config, s: State, vm: int) -> State:
    """The guest hibernates and the driver freezes (Linux ``virtballoon_freeze``, called once
    the PM core has frozen the driver's work): no report is in flight, and the balloon may
    hold pages. The guest then runs nothing until the restore; the host and the VMM go on
    (the host may change the target, QEMU keeps the device's state).

    Choice, permitted by: a freeze with pages in the balloon (a driver that keeps its balloon
    across hibernation); Linux first deflates the whole balloon (``remove_common``), which
    is the same freeze after ordinary deflates."""
    v = s.vms[vm]
    require(not v.module.frozen, "balloon_freeze", "the driver is already frozen")
    require(quiescent(v), "balloon_freeze", "a report is still in flight")
    return s.with_vm(vm, v.replace(module=replace(v.module, frozen=1)))


def _restores(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if s.vms[vm].module.frozen:
        yield {"vm": vm}


@action(Actor.MODULE, vm_candidates=_restores, feature=lambda c: c.hibernation)
def balloon_restore(cfg: Config, s: State, vm: int) -> State:
    """The guest resumes from hibernation and the driver is restored (Linux
    ``virtballoon_restore``): it comes back with the balloon it froze with and tells the
    device its size again (``update_balloon_size`` writes ``actual``); a target the host
    changed meanwhile is read by the next poll."""
    v = s.vms[vm]
    require(bool(v.module.frozen), "balloon_restore", "the driver is not frozen")
    m = v.module
    return s.with_vm(vm, v.replace(module=replace(m, frozen=0, actual=len(m.balloon))))


# --------------------------------------------------------------------------
# What the host can always do against a guest that touches memory beyond its target


def held_pages(s: State, vm: int) -> int:
    """Machine pages VM ``vm`` holds for itself: its backed guest pages that are not shared
    copy-on-write (a shared page costs the host one MPN whoever drops out of it)."""
    cow = s.host.cow
    return sum(1 for m in s.vms[vm].p2m if m != UNBACKED and m not in cow)


def allowed_pages(cfg: Config, v: VmState) -> int:
    """Machine pages the host allows a VM: its guest pages less the host's target for its
    balloon (what it promised the VM; the rest it asked back)."""
    return cfg.guest_pages - v.target


def over_target(cfg: Config, s: State, vm: int) -> int:
    """How many machine pages VM ``vm`` holds beyond what the host allows it (0 if none)."""
    return max(0, held_pages(s, vm) - allowed_pages(cfg, s.vms[vm]))


def within_allowance(cfg: Config, s: State, vm: int) -> bool:
    """Whether VM ``vm`` holds no more machine pages than the host allows it: what the host
    recovers a VM to when it pages out the excess by itself."""
    return over_target(cfg, s, vm) == 0


def page_out_to_host_swap(cfg: Config, s: State, vm: int, ppn: int, name: str) -> State:
    """The host swap mechanism: the page's contents go to a host swap slot and its MPN back
    to the free pool (the effect of :func:`host_swap_out`, for any action that uses it)."""
    v = s.vms[vm]
    mpn = v.p2m[ppn]
    require(mpn != UNBACKED, name, "the page has no machine page to free")
    require(mpn not in s.host.cow, name, "shared pages are not swapped")
    require(len(s.host.swap) < cfg.host_swap_slots, name, "host swap is full")
    swap = tuple(sorted(s.host.swap + ((vm, ppn, s.host.content[mpn]),)))
    return unback(State(replace(s.host, swap=swap), s.vms), vm, ppn, by_balloon=False)


def _over_target_pages(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    if over_target(cfg, s, vm) and len(s.host.swap) < cfg.host_swap_slots:
        for ppn, mpn in enumerate(s.vms[vm].p2m):
            if mpn != UNBACKED and mpn not in s.host.cow:
                yield {"vm": vm, "ppn": ppn}


@action(Actor.VMM, vm_candidates=_over_target_pages,
        feature=lambda c: c.vmm_reclaims_over_target, names_guest_page=True)
def vmm_swap_over_target(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """The VMM pages out to host swap a page of a VM that holds more machine pages than the
    host allows it, without the guest's help: a hostile guest may touch pages beyond its
    target, pop its balloon or pin pages, and the host still gets the memory back.

    Like the host swap fallback it names a guest page itself (labelled as such in every
    trace), and only a page of the VM over its target: which page is the VMM's choice, any
    backed page of that VM that is not shared (a shared page frees no MPN)."""
    require(isinstance(ppn, int) and 0 <= ppn < cfg.guest_pages, "vmm_swap_over_target",
            f"no PPN {ppn}")
    require(over_target(cfg, s, vm) > 0, "vmm_swap_over_target",
            "the VM holds no more machine pages than the host allows it")
    return page_out_to_host_swap(cfg, s, vm, ppn, "vmm_swap_over_target")
