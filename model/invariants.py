"""Every safety property of the model, each defined once with its name and meaning.

Two kinds:

* **state invariants** ``(config, state) -> None | str`` hold in every reachable state;
* **step properties** ``(config, pre, action, post) -> None | str`` hold for every step.

A check returns ``None`` when the property holds and otherwise a one-line
explanation in domain words (which MPN, which PPN). Each property has a
*scope*: ``host`` properties protect the host and the other VMs and must hold
even when a guest is hostile; ``guest`` properties describe a guest that follows
the protocol and are checked only for VMs not listed in ``hostile_vms``.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config()
>>> [p.name for p in INVARIANTS.values() if p.check_state(cfg, initial_state(cfg))]
[]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

from ballast.model.actions import (ACTIONS, Action, ActionSpec, Actor, guest_free_pages,
                                   own_mpn, report_queue_bound, vmm_keeps_host_pages,
                                   whole_units)
from ballast.model.config import Config
from ballast.model.state import BALLOON, FREE, UNBACKED, State, VmState, swap_of

__all__ = ["INVARIANTS", "Property", "Scope", "accounting_pages", "accounting_sizes",
           "acts_for_a_vm", "clean_tokens", "honest_vms", "picks_no_guest_page",
           "taken_by_a_guest"]

Scope = str
StateCheck = Callable[[Config, State], str | None]
VmCheck = Callable[[Config, State, int], str | None]
StepCheck = Callable[[Config, State, Action, State], str | None]


@dataclass(frozen=True)
class Property:
    """A named safety property of the model."""

    name: str
    """snake_case name used in every report and every checker."""
    doc: str
    """One paragraph in domain words: what holds and why it matters."""
    scope: Scope
    """``host`` (holds against any guest) or ``guest`` (for guests that follow the protocol)."""
    state: StateCheck | None = None
    """State form of the property, if any."""
    step: StepCheck | None = None
    """Step form of the property, if any."""
    feature: Callable[[Config], bool] = lambda cfg: True
    """Whether the property means anything in a configuration."""
    per_vm: VmCheck | None = None
    """For a state form that is a check of each VM in turn (with the host as context):
    that check for one VM. ``state`` is then its first message over :meth:`checked_vms`."""

    def checked_vms(self, cfg: Config) -> Iterable[int]:
        """The VMs a per-VM check covers: every VM for a ``host`` property, the VMs
        that follow the protocol for a ``guest`` property."""
        return honest_vms(cfg) if self.scope == "guest" else range(cfg.vms)

    @property
    def summary(self) -> str:
        """The first line of the docstring."""
        return self.doc.splitlines()[0]

    def check_state(self, cfg: Config, s: State) -> str | None:
        """The violation message of the state form, or None."""
        return self.state(cfg, s) if self.state is not None else None

    def check_step(self, cfg: Config, pre: State, act: Action, post: State) -> str | None:
        """The violation message of the step form, or None."""
        return self.step(cfg, pre, act, post) if self.step is not None else None


INVARIANTS: dict[str, Property] = {}
"""Every safety property by name, in definition order."""


def _register(prop: Property) -> Property:
    if prop.per_vm is not None:
        prop = replace(prop, state=_each_vm(prop))
    INVARIANTS[prop.name] = prop
    return prop


def honest_vms(cfg: Config) -> Iterator[int]:
    """VMs whose guest follows the protocol."""
    return (v for v in range(cfg.vms) if v not in cfg.hostile_vms)


def _first(messages: Iterator[str]) -> str | None:
    return next(messages, None)


def _each_vm(prop: Property) -> StateCheck:
    """The state form of a per-VM check: its first message over the checked VMs, in order."""
    check = prop.per_vm
    assert check is not None

    def state(cfg: Config, s: State) -> str | None:
        for v in prop.checked_vms(cfg):
            msg = check(cfg, s, v)
            if msg is not None:
                return msg
        return None

    return state


# --------------------------------------------------------------------------


class _LastSeen:
    """The last arguments (by identity) and result of one check: consecutive states of a
    long trace share most of their frozen parts, so an unchanged part is not re-read."""

    __slots__ = ("key", "value")

    def __init__(self) -> None:
        self.key: tuple[object, ...] = ()
        self.value: object = None

    def hit(self, key: tuple[object, ...]) -> bool:
        return len(key) == len(self.key) and all(a is b for a, b in zip(key, self.key))


_BACKED = _LastSeen()
_CONSERVED = _LastSeen()


def _backed_mpns(s: State) -> list[int]:
    """Every MPN behind a guest page, once per guest page it backs."""
    key = tuple(vm.p2m for vm in s.vms)
    if _BACKED.hit(key):
        found: list[int] = _BACKED.value  # type: ignore[assignment]
        return found
    found = [m for p2m in key for m in p2m if m != UNBACKED]
    _BACKED.key, _BACKED.value = key, found
    return found


def _conservation(cfg: Config, s: State) -> str | None:
    key = (cfg, s.host.free, s.host.in_use, *(vm.p2m for vm in s.vms))
    if _CONSERVED.hit(key):
        return _CONSERVED.value  # type: ignore[return-value]
    found = _conservation_of(cfg, s)
    _CONSERVED.key, _CONSERVED.value = key, found
    return found


def _conservation_of(cfg: Config, s: State) -> str | None:
    free, used = s.host.free, s.host.in_use
    backed = set(_backed_mpns(s))
    # Quick pass: three sets whose sizes add up to the number of MPNs, each within every
    # MPN and no two sharing one, are exactly every MPN once (their union is every MPN and
    # they are disjoint), read without copying a host's free pool into a union.
    if len(free) + len(used) + len(backed) == cfg.machine_pages:
        every = set(range(cfg.machine_pages))
        if (every.issuperset(free) and every.issuperset(used) and every.issuperset(backed)
                and free.isdisjoint(used) and free.isdisjoint(backed)
                and used.isdisjoint(backed)):
            return None
    mapped = set(s.mappers())
    for m in range(cfg.machine_pages):
        places = [name for name, where in (("free", m in free), ("in host use", m in used),
                                           ("backing a guest page", m in mapped)) if where]
        if len(places) != 1:
            return f"MPN {m} is {' and '.join(places) if places else 'nowhere'}"
    extra = (set(free) | set(used) | mapped) - set(range(cfg.machine_pages))
    if extra:
        return f"MPNs {sorted(extra)} do not exist"
    return None


_register(Property(
    "memory_conservation",
    """Every machine page is in exactly one place: free, in host use, or backing guest pages.

    No MPN is lost or created: the host can always account for all of machine
    memory, whatever the guests do.""",
    "host", state=_conservation))


def _no_double_mapping(cfg: Config, s: State) -> str | None:
    backed = _backed_mpns(s)
    if not s.host.cow and len(set(backed)) == len(backed):
        return None  # quick pass: no MPN behind two guest pages, nothing marked shared
    for m, who in s.mappers().items():
        if len(who) > 1 and m not in s.host.cow:
            return f"MPN {m} backs {who} but is not shared read-only (copy-on-write)"
    mapped = set(s.mappers())
    stray = s.host.cow - mapped
    if stray:
        return f"MPNs {sorted(stray)} are marked copy-on-write but back no guest page"
    return None


_register(Property(
    "no_double_mapping",
    """An MPN backs at most one guest page, unless it is shared copy-on-write (read-only).

    A writable machine page behind two guest pages would let one write show
    up in two places.""",
    "host", state=_no_double_mapping))


_CHOSEN = _LastSeen()


def _guest_chooses_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    key = (cfg, v, vm.ballooned, vm.guest.ppn_use, vm.deflate_queue)
    if _CHOSEN.hit(key):
        return _CHOSEN.value  # type: ignore[return-value]
    found = _guest_chooses_of(vm, v)
    _CHOSEN.key, _CHOSEN.value = key, found
    return found


def _guest_chooses_of(vm: VmState, v: int) -> str | None:
    use = vm.guest.ppn_use
    suspects = [p for p in vm.ballooned if use[p] != BALLOON]  # quick pass: usually none
    # After a deflate the whole report is suspect until the VMM releases it: the queue is
    # taken off by one set difference, not scanned per page.
    unreported = set(suspects).difference(vm.deflate_queue) if suspects else set()
    if unreported:
        p = min(unreported)
        return (f"VM {v}: PPN {p} is ballooned but the guest's allocator never "
                f"gave it to the balloon module")
    return None


def picks_no_guest_page(spec: ActionSpec) -> bool:
    """Whether a step of action ``spec`` is the host's or the VMM's and names no guest page:
    the steps the step form of ``guest_chooses_pages`` constrains (host swap, which names
    its page, is the labelled fallback)."""
    return spec.actor in (Actor.HOST, Actor.VMM) and not spec.names_guest_page


def _guest_chooses_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    spec = ACTIONS.get(act.name)
    if spec is None or not picks_no_guest_page(spec):
        return None
    for v, (a, b) in enumerate(zip(pre.vms, post.vms)):
        if a is b:  # a VM the step left alone (no need to look inside it)
            continue
        chosen = b.ballooned - a.ballooned - set(a.inflate_queue)
        if chosen:
            return (f"{act.name} ballooned PPNs {sorted(chosen)} of VM {v} that the guest "
                    f"never reported")
    return None


_register(Property(
    "guest_chooses_pages",
    """Every ballooned PPN was chosen by that guest's own allocator and reported by the guest.

    The host asks for a quantity; no host or VMM action ever picks a guest page to
    take, except the host-swap fallback, which is labelled as such. (State form:
    for guests that follow the protocol; step form: for every guest.)""",
    "guest", per_vm=_guest_chooses_vm, step=_guest_chooses_step))


_UNBACKED = _LastSeen()


def _ballooned_unbacked_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    key = (cfg, v, vm.ballooned, vm.p2m, s.host.swap)
    if _UNBACKED.hit(key):
        return _UNBACKED.value  # type: ignore[return-value]
    found = _ballooned_unbacked_of(s, v)
    _UNBACKED.key, _UNBACKED.value = key, found
    return found


def _ballooned_unbacked_of(s: State, v: int) -> str | None:
    vm = s.vms[v]
    if not vm.ballooned:
        return None
    swapped = swap_of(s.host, v)
    p2m = vm.p2m
    suspects = [p for p in vm.ballooned if p2m[p] != UNBACKED or p in swapped]
    for p in sorted(suspects):  # quick pass: usually none
        if vm.p2m[p] != UNBACKED:
            return f"VM {v}: ballooned PPN {p} is still backed by MPN {vm.p2m[p]}"
        if p in swapped:
            return f"VM {v}: ballooned PPN {p} still holds a host swap slot"
    return None


_register(Property(
    "ballooned_pages_unbacked",
    """A PPN the VMM holds as ballooned has no machine page and no host swap slot behind it.

    That is the whole point of inflating: the machine page went back to the host.""",
    "host", per_vm=_ballooned_unbacked_vm))


def _accounting_vm(cfg: Config, s: State, v: int) -> str | None:
    return accounting_pages(s, v) or accounting_sizes(s, v)


def accounting_pages(s: State, v: int) -> str | None:
    """The page part: no page is ballooned for the module alone (checked page by page)."""
    vm = s.vms[v]
    lost = vm.module.balloon - vm.ballooned
    if lost:
        return f"VM {v}: the module holds {sorted(lost)} as ballooned but the VMM does not"
    return None


def accounting_sizes(s: State, v: int) -> str | None:
    """The size part: once every report is acknowledged, the three sizes agree."""
    vm = s.vms[v]
    m = vm.module
    quiet = not (vm.inflate_queue or vm.deflate_queue or vm.acked_inflate
                 or vm.acked_refused or vm.acked_deflate)
    if quiet and not m.actual == len(m.balloon) == len(vm.ballooned):
        return (f"VM {v}: actual={m.actual}, module balloon={len(m.balloon)}, "
                f"VMM ballooned={len(vm.ballooned)} after every report was acknowledged")
    return None


_register(Property(
    "balloon_accounting_exact",
    "After every report is acknowledged, ``actual`` = the module's balloon = the VMM's ballooned "
    """set.

    The module never believes a page is ballooned that the VMM does not hold, and the
    size it reports is exactly what the VMM has reclaimed.""",
    "guest", per_vm=_accounting_vm))


_ISOLATED = _LastSeen()


def _isolation_state(cfg: Config, s: State) -> str | None:
    key = (cfg, s.host.content, s.host.free, s.host.cow, *(vm.p2m for vm in s.vms))
    if _ISOLATED.hit(key):
        return _ISOLATED.value  # type: ignore[return-value]
    found = _isolation_of(s)
    _ISOLATED.key, _ISOLATED.value = key, found
    return found


def _isolation_of(s: State) -> str | None:
    backed = _backed_mpns(s)
    if len(set(backed)) != len(backed):  # some MPN backs two guest pages
        for m, who in s.mappers().items():
            vms = {v for v, _ in who}
            if len(vms) > 1 and m not in s.host.cow:
                return f"MPN {m} is writable by VMs {sorted(vms)}"
    if not any(s.host.content):  # quick pass: every machine page holds the zero page
        return None
    dirty = [m for m in sorted(s.host.free) if s.host.content[m] != 0]
    if dirty:
        return f"free MPN {dirty[0]} still holds data (token {s.host.content[dirty[0]]})"
    return None


def taken_by_a_guest(spec: ActionSpec) -> bool:
    """Whether a step of action ``spec`` is taken by a guest (its OS, its balloon module or
    a rogue guest): the steps the step form of ``isolation`` constrains."""
    return spec.actor in (Actor.GUEST, Actor.MODULE, Actor.ROGUE)


def _isolation_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    spec = ACTIONS.get(act.name)
    if spec is None or not taken_by_a_guest(spec):
        return None
    actor_vm = act.kwargs.get("vm")
    # Only machine pages whose contents changed can leak into another VM; most steps
    # change none, and then the other VMs' maps need not be read at all.
    changed = set() if pre.host is post.host or pre.host.content is post.host.content else {
        m for m, (x, y) in enumerate(zip(pre.host.content, post.host.content)) if x != y}
    for w, (a, b) in enumerate(zip(pre.vms, post.vms)):
        if w == actor_vm:
            continue
        if a is not b and a != b:
            return f"{act.name} by VM {actor_vm} changed the state of VM {w}"
        if changed:
            for p, m in enumerate(a.p2m):
                if m in changed:
                    return f"{act.name} by VM {actor_vm} changed VM {w}'s PPN {p} (MPN {m})"
    return None


_register(Property(
    "isolation",
    """No VM can reach a machine page that backs another VM's page, except read-only shares.

    A step taken by one guest (or its balloon module) changes nothing in another VM,
    writable MPNs are never shared across VMs, and freed MPNs are scrubbed before
    reuse, so no data leaks from one VM to another.""",
    "host", state=_isolation_state, step=_isolation_step))


def _module_pages_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    m = vm.module
    both = m.balloon & m.refused
    if both:
        return f"VM {v}: the module holds PPNs {sorted(both)} both as ballooned and as refused"
    use, size = vm.guest.ppn_use, cfg.guest_pages
    unpinned = [p for p in m.balloon | m.refused if not 0 <= p < size or use[p] != BALLOON]
    if unpinned:
        p = min(unpinned)
        kind = "ballooned" if p in m.balloon else "refused"
        return (f"VM {v}: the module holds PPN {p} as {kind} but the guest does not "
                f"have it pinned for the balloon")
    return None


_register(Property(
    "module_pages_pinned",
    "Every page the balloon module holds (in its balloon or refused) is pinned for it in the "
    """guest, once.

    The guest's own bookkeeping stays consistent whatever a hostile guest reports:
    a page the module holds is never also on the guest's free list or under a
    process page, so the module never frees a page that something else uses.""",
    "host", per_vm=_module_pages_vm))


def _data_intact_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    g = vm.guest
    if not g.expected and not g.disk and not g.lru:
        return None  # quick pass: a guest without processes has no data to lose
    swapped = swap_of(s.host, v)
    resident: dict[int, int] = {}
    for p, use in enumerate(g.ppn_use):
        if use < 0:
            continue
        resident[use] = p
        m = vm.p2m[p]
        where, token = (("MPN", s.host.content[m]) if m != UNBACKED else
                        ("host swap", swapped[p]) if p in swapped else ("nothing", 0))
        if token != g.expected[use]:
            return (f"VM {v}: VPN {use} at PPN {p} should hold {g.expected[use]} but "
                    f"{where} holds {token}")
    disk = dict(g.disk)
    for vpn, token in g.disk:
        if vpn in resident:
            return f"VM {v}: VPN {vpn} is both resident and on the guest's disk"
        if token != g.expected[vpn]:
            return f"VM {v}: VPN {vpn} on the guest's disk holds {token}, not {g.expected[vpn]}"
    for vpn, token in enumerate(g.expected):
        if token and vpn not in resident and vpn not in disk:
            return f"VM {v}: VPN {vpn} (holding {token}) is neither resident nor on disk"
    if len(g.disk) > cfg.guest_disk_slots or len(set(resident)) != len(
            [u for u in g.ppn_use if u >= 0]):
        return f"VM {v}: the guest's page tables are inconsistent"
    return None


_register(Property(
    "guest_data_intact",
    "Guest data is never lost or corrupted: every token lives in a backed page, the guest's disk, "
    """or host swap.

    Whatever ballooning, sharing and host swapping do underneath, a guest process
    reads back what it wrote.""",
    "guest", per_vm=_data_intact_vm))


def _whole_host_pages(cfg: Config, s: State) -> str | None:
    u = cfg.host_page_units
    used = s.host.in_use
    if u == 1 or not used:  # quick pass: a one-unit host page is always whole
        return None
    for hp in range(cfg.host_pages):
        units = set(range(hp * u, (hp + 1) * u))
        part = units & used
        if part and part != units:
            return (f"host page {hp}: the host uses units {sorted(part)} while "
                    f"{sorted(units - part)} are not released")
    return None


_register(Property(
    "host_pages_whole",
    """The host reuses a host page only once every balloon unit in it is released.

    With 64 KiB or 2 MiB host pages under 4 KiB balloon units, taking a partly
    ballooned host page would take memory a guest still uses.""",
    "host", state=_whole_host_pages))


def _processor_conservation(cfg: Config, s: State) -> str | None:
    if not cfg.processors:
        return None
    total = s.host.idle_pcpus + sum(len(vm.guest.vcpus) + len(vm.parked_vcpus) for vm in s.vms)
    if total != cfg.pcpus:
        return f"{total} physical processors accounted for, the host has {cfg.pcpus}"
    for v, vm in enumerate(s.vms):
        if vm.guest.vcpus & vm.parked_vcpus:
            return f"VM {v}: vCPUs {sorted(vm.guest.vcpus & vm.parked_vcpus)} online and parked"
        if s.host.idle_pcpus < 0:
            return "the host has a negative number of idle processors"
    return None


_register(Property(
    "processor_conservation",
    "Every physical processor is idle at the host, running a guest's online vCPU, or parked by a "
    """guest.

    The same mechanism for a second resource: the guest chooses which vCPU to give
    up, and no processor is counted twice.""",
    "host", state=_processor_conservation, feature=lambda cfg: cfg.processors))


def _balloon_tracked_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    if not vm.ballooned:
        return None
    m = vm.module
    lost = vm.ballooned - m.balloon - vm.acked_inflate - set(vm.deflate_queue)
    if lost:
        return (f"VM {v}: the VMM holds PPNs {sorted(lost)} as ballooned but the module neither "
                f"holds them, nor awaits their acknowledgement, nor reported them for deflation")
    return None


_register(Property(
    "migration_loses_nothing",
    "While a balloon page migrates, nothing is lost: every PPN the VMM holds as ballooned is the "
    """module's.

    A migration (``balloon_migrate``) has the new page on its way into the balloon and
    the old one on its way out at the same time; at every moment each PPN the VMM holds
    as ballooned is in the module's balloon, acknowledged to the module, or reported
    for deflation, so no page is leaked (pinned by nobody) and none is counted twice.""",
    "guest", per_vm=_balloon_tracked_vm, feature=lambda cfg: cfg.migration))


# --------------------------------------------------------------------------
# Free page reporting, page poisoning, the statistics queue, hostile floods


def _reported_not_reused_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    held = vm.module.reporting | vm.report_queue | vm.acked_report
    if not held:
        return None
    use = vm.guest.ppn_use
    for p in sorted(held):
        if 0 <= p < len(use) and use[p] != FREE:
            what = "the balloon" if use[p] == BALLOON else f"VPN {use[p]}"
            return (f"VM {v}: PPN {p} is on a free page report the module has not seen "
                    f"returned, yet the guest reused it for {what}")
    return None


_register(Property(
    "reported_pages_not_reused",
    "A page on a free page report is not reused by the guest before the device has returned the "
    """report.

    virtio 1.x section 5.5.6.6: the device may discard a reported page at any moment
    until it returns the report, so a page the guest reused early could lose its data.""",
    "guest", per_vm=_reported_not_reused_vm, feature=lambda cfg: cfg.free_page_reporting))


def clean_tokens(cfg: Config) -> frozenset[int]:
    """What a discarded page may read back as: the zero page, or with page poisoning
    ``poison_val``."""
    return frozenset({0, cfg.poison_val}) if cfg.page_poison else frozenset({0})


def _discarded_clean_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    if not vm.discarded:
        return None
    swapped = swap_of(s.host, v)
    allowed = clean_tokens(cfg)
    for p in sorted(vm.discarded):
        m = vm.p2m[p]
        where, token = (("host swap", swapped[p]) if p in swapped else
                        (f"MPN {m}", s.host.content[m]) if m != UNBACKED else ("", 0))
        if token not in allowed:
            return (f"VM {v}: PPN {p} was discarded after a free page report but reads back "
                    f"token {token} from {where}, old data instead of "
                    f"{' or '.join(map(str, sorted(allowed)))}")
    return None


_register(Property(
    "discarded_pages_read_clean",
    "A page the VMM discarded after a free page report reads back as zero (or as ``poison_val`` "
    """with page poisoning), never as old data.

    virtio 1.x sections 5.5.6.4 and 5.5.6.6: a reported page's contents are gone once the
    device discards it; with PAGE_POISON they read as the poison value the guest uses. Old
    data of any VM, from a machine page or a host swap slot, is a leak or stale memory.
    Checked for guests that follow the protocol: a hostile guest may write a page it has
    reported, and reads back its own data (data of other VMs is ``isolation``'s).""",
    "guest", per_vm=_discarded_clean_vm, feature=lambda cfg: cfg.free_page_reporting))


def _stats_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    if act.name != "balloon_report_stats":
        return None
    v = act.kwargs.get("vm")
    if not isinstance(v, int) or v in cfg.hostile_vms or not 0 <= v < len(pre.vms):
        return None
    free = guest_free_pages(pre.vms[v])
    if post.vms[v].stats_free != free:
        return (f"VM {v}: the statistics report says {post.vms[v].stats_free} free pages but the "
                f"guest had {free} free when it reported")
    return None


_register(Property(
    "stats_match_guest",
    """A statistics report gives the guest's own free memory at the time of the report.

    virtio 1.x section 5.5.6.3: the host sizes balloons on these figures, so a guest that
    follows the protocol reports what it has (here: pages on its free list, not those in
    the balloon or on a free page report).""",
    "guest", step=_stats_step, feature=lambda cfg: cfg.stats_queue))


def _flood_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    if act.name != "rogue_report":
        return None
    v = act.kwargs.get("vm")
    if not isinstance(v, int) or not 0 <= v < len(pre.vms):
        return None
    a, b = pre.vms[v], post.vms[v]
    before = len(a.inflate_queue) + len(a.deflate_queue)
    after = len(b.inflate_queue) + len(b.deflate_queue)
    bound = report_queue_bound(cfg)
    if after > before and after > bound:
        return (f"VM {v}'s report flood grew its queues to {after} PPNs, beyond the VMM's "
                f"bound of {bound}")
    return None


_register(Property(
    "vmm_refuses_report_floods",
    "The VMM itself refuses reports that would grow a VM's queues beyond its bound, whatever the "
    """guest sends.

    A hostile guest may send reports without end; the VMM's memory and work for one VM
    stay bounded because the VMM (not the guest's good manners) turns the excess away.""",
    "host", step=_flood_step,
    feature=lambda cfg: cfg.vmm_bounds_queues and bool(cfg.hostile_vms)))


# --------------------------------------------------------------------------
# Free page hinting and hibernation


def _hinted_not_lost_vm(cfg: Config, s: State, v: int) -> str | None:
    vm = s.vms[v]
    if not (vm.hinted or vm.hint_rewritten):
        return None
    use = vm.guest.ppn_use
    for p in sorted(vm.hinted):
        if 0 <= p < len(use) and use[p] >= 0:
            return (f"VM {v}: PPN {p} holds VPN {use[p]} yet the VMM may still skip it as "
                    f"hinted free: the guest's write after the hint was not logged")
    swapped = swap_of(s.host, v)
    for p in sorted(vm.hint_rewritten):
        if 0 <= p < len(use) and use[p] >= 0:
            m = vm.p2m[p]
            token = s.host.content[m] if m != UNBACKED else swapped.get(p, 0)
            want = vm.guest.expected[use[p]]
            if token != want:
                return (f"VM {v}: PPN {p}, written after it was hinted free, reads {token} "
                        f"instead of VPN {use[p]}'s {want}: the migration lost its new data")
    return None


_register(Property(
    "hinted_pages_not_lost",
    "A page hinted free and then reused by the guest is never lost or read as stale: the migration "
    """may skip only pages not written since their hint.

    virtio 1.x section 5.5.6.5: a hint says a page was free when hinted; the guest may
    write it afterwards, and the device must then treat it as in use (QEMU: KVM's dirty
    log marks it again, so the migration sends it). A page that holds a process page is
    never one the migration may skip, and a hinted page written since holds what the
    guest wrote.""",
    "guest", per_vm=_hinted_not_lost_vm, feature=lambda cfg: cfg.free_page_hint))


def _restore_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    if act.name != "balloon_restore":
        return None
    v = act.kwargs.get("vm")
    if not isinstance(v, int) or v in cfg.hostile_vms or not 0 <= v < len(post.vms):
        return None
    vm = post.vms[v]
    m = vm.module
    if m.balloon != vm.ballooned:
        return (f"VM {v}: after the restore the module's balloon holds {sorted(m.balloon)} "
                f"but the VMM holds {sorted(vm.ballooned)} as ballooned")
    if m.actual != len(m.balloon):
        return (f"VM {v}: after the restore the module tells the device actual={m.actual} "
                f"for a balloon of {len(m.balloon)} pages")
    loose = [p for p in sorted(m.balloon) if vm.guest.ppn_use[p] != BALLOON]
    if loose:
        return f"VM {v}: after the restore balloon pages {loose} are no longer pinned"
    return None


_register(Property(
    "balloon_agrees_after_restore",
    "After a restore from hibernation the balloon and the VMM agree: the module holds exactly the "
    """pages the VMM holds as ballooned, pinned, and reports their number.

    Linux ``virtballoon_restore`` tells the device the balloon's size again and QEMU has
    kept the device's state across the hibernation; a driver that comes back without its
    balloon leaks the pages (pinned by nobody) and tells the host a size that is not
    true, so the host sizes memory on a wrong figure.""",
    "guest", step=_restore_step, feature=lambda cfg: cfg.hibernation))


# --------------------------------------------------------------------------
# Hostile guests: processors, resets racing reports


def _vcpus_within_target_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    for v, (a, b) in enumerate(zip(pre.vms, post.vms)):
        running = len(b.guest.vcpus)
        if running > len(a.guest.vcpus) and running > b.cpu_target:
            return (f"VM {v} now runs {running} vCPUs, beyond the host's CPU target of "
                    f"{b.cpu_target}")
    return None


_register(Property(
    "vcpus_within_cpu_target",
    "No step brings a VM's running vCPUs above the host's CPU target for it, whatever its guest "
    """does.

    The VMM grants processors against the host's own target, not the target the guest's
    module read or claims (``vmm_enforces_cpu_target``): a hostile guest that unparks the
    vCPUs it parked, claims processors or falsely reports vCPUs parked gains none beyond
    it. A VM may still run more vCPUs than a target the host has just lowered, until its
    guest parks them or the VMM stops them (``vmm_enforce_cpu_target``); from then on it
    stays within it.""",
    "host", step=_vcpus_within_target_step,
    feature=lambda cfg: cfg.processors and cfg.vmm_enforces_cpu_target))


def _stale_reports_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    if act.name == "guest_reset":  # a new reset replaces the reports in flight
        return None
    for v, (a, b) in enumerate(zip(pre.vms, post.vms)):
        if len(b.stale_inflate) + len(b.stale_deflate) >= len(a.stale_inflate) + len(
                a.stale_deflate):
            continue
        changed = [name for name in ("p2m", "ballooned", "inflate_queue", "deflate_queue",
                                     "acked_inflate", "acked_refused", "acked_deflate")
                   if getattr(a, name) != getattr(b, name)]
        if changed:
            return (f"VM {v}: the VMM applied reports of the guest's previous incarnation to "
                    f"the new one (its {', '.join(changed)} changed)")
    return None


_register(Property(
    "stale_reports_not_applied",
    "A report queued before a guest reset and processed after it changes nothing of the new "
    """incarnation.

    With ``reset_races_reports`` reports in flight outlive a device reset (virtio 1.x
    section 2.4: a reset device no longer uses buffers made available before it). When the
    VMM takes them, the VM's machine pages, ballooned set, queues and acknowledgements are
    those of the new incarnation and must stay as they are: applying a stale inflate would
    take a page the new guest never gave, a stale deflate give back one it never had.""",
    "host", step=_stale_reports_step,
    feature=lambda cfg: cfg.reset and cfg.reset_races_reports))


# --------------------------------------------------------------------------
# Hostile guests: memory the host promised to the other VMs


def _reads(s: State, v: int, p: int) -> tuple[bool, int | None]:
    """Whether PPN ``p`` of VM ``v`` is backed, and what a read of it finds (its MPN's
    contents, its host swap token, or None for nothing)."""
    m = s.vms[v].p2m[p]
    if m != UNBACKED:
        return True, s.host.content[m]
    return False, swap_of(s.host, v).get(p)


def acts_for_a_vm(spec: ActionSpec) -> bool:
    """Whether a step of action ``spec`` is taken on behalf of one VM (its guest, its
    module, a rogue guest, or the VMM for it): every actor's but the host's own, the steps
    the step form of ``honest_memory_not_taken`` constrains."""
    return spec.actor is not Actor.HOST


def _honest_memory_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    spec = ACTIONS.get(act.name)
    actor_vm = act.kwargs.get("vm")
    if spec is None or not acts_for_a_vm(spec) or not isinstance(actor_vm, int):
        return None
    for w in honest_vms(cfg):
        if w == actor_vm or pre.vms[w].p2m is post.vms[w].p2m and pre.host is post.host:
            continue
        for p, m in enumerate(pre.vms[w].p2m):
            if m == UNBACKED:
                continue
            backed, token = _reads(post, w, p)
            if not backed:
                return (f"{act.name} for VM {actor_vm} took the machine page (MPN {m}) "
                        f"backing honest VM {w}'s PPN {p}")
            if token != pre.host.content[m]:
                return (f"{act.name} for VM {actor_vm} changed what honest VM {w}'s PPN {p} "
                        f"reads ({pre.host.content[m]} -> {token})")
    return None


_register(Property(
    "honest_memory_not_taken",
    "No step on behalf of one VM takes a machine page from an honest VM: starvation is the host's "
    """choice, never another guest's.

    Whatever a VM's guest does (touch pages beyond its target, pop or pin its balloon, send
    any report) and whatever the VMM does for it (process its reports, page it out when it
    holds more than the host allows, ``vmm_swap_over_target``), every page of a VM that
    follows the protocol that was backed stays backed and reads the same. Assumptions:
    the honest VM is one not listed in ``hostile_vms``; only the host's own steps
    (``host_swap_out``, ``host_take_page``, its targets) may take or withhold memory from
    it, and those the host chooses knowingly; a page the host did swap out comes back on
    the honest guest's next touch when an MPN is free, which the host can always bring
    about by paging out a VM over its target. Checked where the VMM reclaims memory by
    itself (``vmm_reclaims_over_target``), the one VMM step that takes a page for a
    guest's behaviour; a guest's own steps changing another VM are ``isolation``.""",
    "host", step=_honest_memory_step, feature=lambda cfg: cfg.vmm_reclaims_over_target))


# --------------------------------------------------------------------------
# Host pages of several balloon units


def _host_page_one_vm(cfg: Config, s: State) -> str | None:
    if not vmm_keeps_host_pages(cfg):
        return None
    u = cfg.host_page_units
    owner: dict[int, tuple[int, int, int]] = {}
    for v, vm in enumerate(s.vms):
        for p, m in enumerate(vm.p2m):
            if m == UNBACKED:
                continue
            first = owner.setdefault(m // u, (v, p, m))
            if first[0] != v:
                return (f"host page {m // u} backs pages of two VMs: VM {first[0]}'s PPN "
                        f"{first[1]} (MPN {first[2]}) and VM {v}'s PPN {p} (MPN {m})")
    return None


_register(Property(
    "host_page_backs_one_vm",
    """A host page of several balloon units backs pages of at most one VM.

    A host page (64 KiB, 2 MiB) is what the host maps, reclaims and hands out as one
    (QEMU's partially ballooned host pages are given back only once every unit is
    ballooned; a 2 MiB page is one entry of the EPT): units of one host page backing two
    VMs would keep one VM's memory pinned by another's use, and a mapping of the whole host
    page would show one VM the other's data. Which free MPN backs a page stays the VMM's
    choice; this constrains it. Not checked with content sharing, which maps one machine
    page for several VMs by design (a host that merges pages works in balloon units).""",
    "host", state=_host_page_one_vm, feature=vmm_keeps_host_pages))


# --------------------------------------------------------------------------
# A generic guest system (not a virtual machine)


def _own_pages_vm(cfg: Config, s: State, v: int) -> str | None:
    if not cfg.guest_system:  # a VM's pages are translated: any MPN may back them
        return None
    for p, m in enumerate(s.vms[v].p2m):
        if m != UNBACKED and m != own_mpn(cfg, v, p):
            return (f"guest {v}'s page {p} sits in machine page {m}, not its own machine page "
                    f"{own_mpn(cfg, v, p)}")
    return None


_register(Property(
    "guest_pages_are_machine_pages",
    "In a generic guest system every page of a guest in use sits in its own machine page: there is "
    """no translation to redirect it.

    A container or process group (``guest_system``) addresses machine memory directly; the
    host's resource manager frees the pages the guest's balloon gives it and hands the same
    pages back, never another one (which would be another guest's memory or the host's).""",
    "host", per_vm=_own_pages_vm, feature=lambda cfg: cfg.guest_system))


# --------------------------------------------------------------------------
# Balloon units of several pages


def _units_whole_vm(cfg: Config, s: State, v: int) -> str | None:
    if cfg.balloon_unit_pages == 1:
        return None
    vm = s.vms[v]
    for name, pages in (("the VMM's ballooned set", vm.ballooned),
                        ("the module's balloon", vm.module.balloon)):
        if not whole_units(cfg, pages):
            return (f"VM {v}: {name} {sorted(pages)} holds part of a balloon unit of "
                    f"{cfg.balloon_unit_pages} pages")
    return None


_register(Property(
    "balloon_units_whole",
    "A balloon unit of several pages is ballooned whole or not at all, in the VMM's records and in "
    """the module's balloon.

    vmw_balloon's 2M commands and Hyper-V's 2 MiB units move aligned runs of 4 KiB pages
    as one: the host frees the whole run and the guest gets it back whole. A run ballooned in
    part would leave the host a partial large page it cannot reuse, and the guest a run its
    allocator no longer holds whole.""",
    "guest", per_vm=_units_whole_vm, feature=lambda cfg: cfg.balloon_unit_pages > 1))
