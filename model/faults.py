"""Seeded faults: deliberately broken variants of the model's actions.

Each checker must show that it *catches* these, not only that it passes on the
correct model. A fault replaces one action's step function and names the
property it is expected to break. Faults are selected by name
(``ballast check --fault NAME``) and recorded in every trace they produce.

>>> sorted(FAULTS)[:2]
['cow_write_in_place', 'cpu_reclaim_keeps_parked']
>>> FAULTS["reclaim_keeps_mapping"].breaks
'ballooned_pages_unbacked'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from ballast.errors import InputError
from ballast.model import actions as A
from ballast.model.actions import ACTIONS, ActionSpec, require
from ballast.model.config import Config, GuestPolicyName, ModuleKind
from ballast.model.recovery import RECOVERY
from ballast.model.state import BALLOON, UNBACKED, State, sorted_tuple

__all__ = ["FAULTS", "Fault", "action_table", "with_fault_needs"]


@dataclass(frozen=True)
class Fault:
    """A broken variant of one action."""

    name: str
    doc: str
    action: str
    """The action whose step function is replaced."""
    effect: A.Effect
    """The broken step function."""
    breaks: str
    """The property this fault is expected to violate."""
    config: Mapping[str, Any]
    """Configuration changes the fault needs to show (for example larger host pages)."""
    caught_as: tuple[str, ...] = ()
    """Every property a checker may name when it catches the fault, ``breaks`` first: the
    others break in the same step or, on some runs, first (a checker reports the first
    violation it meets, in the model's property order)."""
    missed_by: Mapping[str, str] = field(default_factory=dict)
    """Checker -> why it is not expected to catch the fault within its default budget."""


FAULTS: dict[str, Fault] = {}
"""Every seeded fault by name."""


def _fault(name: str, action: str, breaks: str, *, also: tuple[str, ...] = (),
           missed_by: Mapping[str, str] | None = None,
           **config: Any) -> Callable[[A.Effect], A.Effect]:
    def register(fn: A.Effect) -> A.Effect:
        FAULTS[name] = Fault(name, (fn.__doc__ or "").strip(), action, fn, breaks, config,
                             (breaks, *also), dict(missed_by or {}))
        return fn
    return register


def action_table(faults: tuple[str, ...] | list[str] = ()) -> dict[str, ActionSpec]:
    """The model's action table with the named faults seeded in."""
    table = dict(ACTIONS)
    for name in faults:
        fault = FAULTS.get(name)
        if fault is None:
            raise InputError("<fault>", None, f"unknown fault {name!r}; expected one of "
                             f"{', '.join(sorted(FAULTS))}")
        table[fault.action] = replace(table[fault.action], effect=fault.effect)
    return table


def with_fault_needs(cfg: Config, faults: Sequence[str]) -> Config:
    """``cfg`` with what the seeded faults need to show: each switch a fault names set
    as it says, each size raised to at least the fault's (a larger configuration shows
    the fault as well, and keeps the VMs its hostile guests name), and host memory
    rounded up to whole host pages (and, in a generic guest system, to every guest's pages; a
    fault that needs content sharing or host use is shown on virtual machines instead, and one
    that needs what balloon units of several pages are not modelled with, on one-page units).

    >>> from ballast.model.config import preset
    >>> big = with_fault_needs(preset("large"), ["free_without_scrub"])
    >>> big.vms, sorted(big.hostile_vms)
    (8, [7])
    >>> small = with_fault_needs(preset("core"), ["host_takes_partial_page"])
    >>> small.host_page_units, small.machine_pages
    (2, 6)
    """
    for name in faults:
        fault = FAULTS.get(name)
        if fault is None:
            raise InputError("<fault>", None, f"unknown fault {name!r}; expected one of "
                             f"{', '.join(sorted(FAULTS))}")
        changes = {k: max(v, getattr(cfg, k)) if type(v) is int else v
                   for k, v in fault.config.items()}
        if "hostile_vms" in changes and cfg.hostile_vms:
            del changes["hostile_vms"]  # a hostile guest the configuration has already serves
        units = changes.get("host_page_units", cfg.host_page_units)
        memory = changes.get("machine_pages", cfg.machine_pages)
        if "balloon_unit_pages" not in changes and (
                changes.get("migration")
                or changes.get("module", ModuleKind.DRIVER) is not ModuleKind.DRIVER
                or changes.get("guest_policy") is GuestPolicyName.LOWEST):
            changes["balloon_unit_pages"] = 1  # shown with one page a unit, as it needs
        if changes.get("sharing") or changes.get("host_use"):
            changes["guest_system"] = False  # shown on virtual machines: a guest system has neither
        if changes.get("guest_system", cfg.guest_system):  # the guests' pages are the machine's
            memory = max(memory, changes.get("vms", cfg.vms) * changes.get(
                "guest_pages", cfg.guest_pages))
        changes["machine_pages"] = -(-memory // units) * units
        cfg = cfg.replace(**changes)
    return cfg


@_fault("vmm_reclaims_host_choice", "vmm_reclaim", "guest_chooses_pages")
def _vmm_picks(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> State:
    """The VMM also balloons a backed page it picked itself, as if the host chose pages."""
    s = A.vmm_reclaim(cfg, s, vm, refuse)
    v = s.vms[vm]
    for p, m in enumerate(v.p2m):
        if m != UNBACKED and p not in v.ballooned:
            s = A.unback(s, vm, p, by_balloon=True)
            return s.with_vm(vm, s.vms[vm].replace(ballooned=v.ballooned | {p}))
    return s


@_fault("release_keeps_balloon_set", "vmm_release", "balloon_accounting_exact",
        also=("guest_chooses_pages",),
        missed_by={"hypothesis": "its runs rarely deflate and release a report; random runs "
                                 "and the explorer catch it",
                   "prove": "its shortest run (a whole inflate-deflate round trip) is longer than "
                            "the 6 steps within which `ballast check`'s proofs decide whether a "
                            "broken induction step is reachable on the default preset, whose "
                            "reachable states are too many (over 50,000) to decide it exactly: the "
                            "checker reports it inconclusive, never a pass; the proofs' own tests "
                            "refute it with a search 12 steps deep on one VM "
                            "(tests/proofs/test_proof_faults.py)"})
def _release_forgets(cfg: Config, s: State, vm: int) -> State:
    """A deflate that acknowledges the pages but forgets to clear them from the balloon set."""
    v = s.vms[vm]
    require(bool(v.deflate_queue), "vmm_release", "no deflate report")
    reported = {p for p in v.deflate_queue if 0 <= p < cfg.guest_pages}
    return s.with_vm(vm, v.replace(deflate_queue=(), acked_deflate=v.acked_deflate | reported))


@_fault("host_takes_partial_page", "host_take_page", "memory_conservation", host_page_units=2,
        machine_pages=6)
def _take_partial(cfg: Config, s: State, host_page: int) -> State:
    """The host takes a host page when any one of its units is free, even if others back guests."""
    units = A.host_page_units(cfg, host_page)
    require(bool(units & s.host.free), "host_take_page", "no unit of this host page is free")
    host = replace(s.host, free=s.host.free - units, in_use=s.host.in_use | units)
    return State(host, s.vms)


@_fault("host_takes_single_unit", "host_take_page", "host_pages_whole", host_page_units=2,
        machine_pages=6)
def _take_unit(cfg: Config, s: State, host_page: int) -> State:
    """The host takes one free balloon unit of a host page instead of the whole host page."""
    free = sorted(A.host_page_units(cfg, host_page) & s.host.free)
    require(bool(free), "host_take_page", "no unit of this host page is free")
    host = replace(s.host, free=s.host.free - {free[0]}, in_use=s.host.in_use | {free[0]})
    return State(host, s.vms)


@_fault("reclaim_keeps_mapping", "vmm_reclaim", "ballooned_pages_unbacked")
def _reclaim_keeps(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> State:
    """The VMM marks reported pages ballooned but never unmaps their machine pages."""
    v = s.vms[vm]
    require(bool(v.inflate_queue), "vmm_reclaim", "no inflate report")
    ok = {p for p in v.inflate_queue if 0 <= p < cfg.guest_pages and p not in v.ballooned}
    ok = set(sorted(ok)[:max(0, v.target - len(v.ballooned))])
    return s.with_vm(vm, v.replace(ballooned=v.ballooned | ok, inflate_queue=(),
                                   acked_inflate=v.acked_inflate | ok,
                                   acked_refused=v.acked_refused | (set(v.inflate_queue) - ok)))


@_fault("free_refused_keeps_held", "balloon_free_refused", "module_pages_pinned",
        refusal=True)
def _free_refused_keeps(cfg: Config, s: State, vm: int) -> State:
    """The module gives refused pages back to the guest's free list but keeps holding them."""
    refused = s.vms[vm].module.refused
    s = A.balloon_free_refused(cfg, s, vm)
    v = s.vms[vm]
    return s.with_vm(vm, v.replace(module=replace(v.module, refused=refused)))


@_fault("share_without_cow", "vmm_share", "no_double_mapping", also=("isolation",),
        sharing=True)
def _share_rw(cfg: Config, s: State, vm: int, ppn: int, other_vm: int, other_ppn: int) -> State:
    """Page sharing that maps two guest pages to one MPN but leaves it writable."""
    s = A.vmm_share(cfg, s, vm, ppn, other_vm, other_ppn)
    return State(replace(s.host, cow=frozenset()), s.vms)


@_fault("free_without_scrub", "vmm_reclaim", "isolation", vms=2)
def _no_scrub(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> State:
    """The VMM returns reclaimed machine pages to the free pool without zeroing them."""
    before = s
    s = A.vmm_reclaim(cfg, s, vm, refuse)
    content = list(s.host.content)
    for p in s.vms[vm].ballooned - before.vms[vm].ballooned:
        m = before.vms[vm].p2m[p]
        if m != UNBACKED and m in s.host.free:
            content[m] = before.host.content[m]
    return State(replace(s.host, content=tuple(content)), s.vms)


@_fault("cow_write_in_place", "guest_write", "isolation", also=("guest_data_intact",),
        sharing=True)
def _cow_in_place(cfg: Config, s: State, vm: int, vpn: int, token: int) -> State:
    """A write to a shared page lands in the shared MPN instead of a private copy."""
    cow = s.host.cow
    s = State(replace(s.host, cow=frozenset()), s.vms)
    s = A.guest_write(cfg, s, vm, vpn, token)
    return State(replace(s.host, cow=cow & set(s.mappers())), s.vms)


@_fault("host_swap_loses_data", "host_swap_out", "guest_data_intact", host_swap=True)
def _swap_loses(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """Host swap writes the zero page to its swap slot instead of the guest's data."""
    s = A.host_swap_out(cfg, s, vm, ppn)
    swap = tuple((v, p, 0 if (v, p) == (vm, ppn) else t) for v, p, t in s.host.swap)
    return State(replace(s.host, swap=swap), s.vms)


@_fault("eager_backing_drops_swap", "vmm_back_page", "guest_data_intact",
        eager_backing=True, host_swap=True)
def _back_drops_swap(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """Eager backing fills the page with zeros even when the host had paged the guest's
    data out, and drops the data in host swap (a populate that ignores host paging)."""
    swap = tuple(e for e in s.host.swap if (e[0], e[1]) != (vm, ppn))
    return A.vmm_back_page(cfg, State(replace(s.host, swap=swap), s.vms), vm, ppn)


@_fault("cpu_reclaim_keeps_parked", "vmm_cpu_reclaim", "processor_conservation",
        processors=True)
def _cpu_double(cfg: Config, s: State, vm: int) -> State:
    """The VMM hands parked processors back to the host but keeps them counted as parked."""
    v = s.vms[vm]
    require(bool(v.parked_vcpus), "vmm_cpu_reclaim", "nothing parked")
    return State(replace(s.host, idle_pcpus=s.host.idle_pcpus + len(v.parked_vcpus)), s.vms)


@_fault("migrate_forgets_old_page", "balloon_migrate_release", "migration_loses_nothing",
        missed_by={"prove": "its shortest run (an inflate round trip, then a migrated page's) is "
                            "longer than the 6 steps within which `ballast check`'s proofs decide "
                            "whether a broken induction step is reachable on the default preset, "
                            "whose reachable states are too many (over 50,000) to decide it "
                            "exactly: the checker reports it inconclusive, never a pass; the "
                            "proofs' own tests refute it with a search 8 steps deep on one VM "
                            "(tests/proofs/test_proof_faults.py)"},
        migration=True, must_tell_host=False, deflate_on_oom=True)
def _migrate_forgets(cfg: Config, s: State, vm: int, old: int) -> State:
    """A migration that drops the old page from the module's balloon without reporting it:
    the VMM keeps it ballooned and no one will ever give it back."""
    v = s.vms[vm]
    require(bool(v.acked_inflate) and bool(v.module.migrating), "balloon_migrate_release",
            "no migrating page acknowledged")
    require(old in v.module.balloon, "balloon_migrate_release", "not a balloon page")
    return s.with_vm(vm, v.replace(module=replace(v.module, balloon=v.module.balloon - {old},
                                                  migrating=0)))


@_fault("oom_deflate_without_report", "balloon_oom_deflate", "guest_chooses_pages",
        also=("balloon_accounting_exact",), deflate_on_oom=True, oom_notifier=True,
        must_tell_host=False)
def _oom_unreported(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The OOM notifier hands balloon pages back to the guest without telling the VMM."""
    v = s.vms[vm]
    m = v.module
    require(A.balloon_lock_free(v), "balloon_oom_deflate", "a page migration holds the lock")
    require(bool(ppns) and set(ppns) <= m.balloon, "balloon_oom_deflate", "not balloon pages")
    use = list(v.guest.ppn_use)
    for p in ppns:
        use[p] = -1
    return s.with_vm(vm, v.replace(guest=replace(v.guest, ppn_use=tuple(use)),
                                   module=replace(m, balloon=m.balloon - set(ppns))))


@_fault("report_without_isolation", "balloon_report_free_pages", "reported_pages_not_reused",
        also=("guest_data_intact",), free_page_reporting=True)
def _report_unisolated(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The module reports free pages but leaves them on the guest's free list, so the guest
    may allocate one while the device can still discard it."""
    s = A.balloon_report_free_pages(cfg, s, vm, ppns)
    v = s.vms[vm]
    return s.with_vm(vm, v.replace(module=replace(v.module, reporting=frozenset())))


@_fault("discard_keeps_swap_slot", "vmm_discard_reported", "discarded_pages_read_clean",
        free_page_reporting=True, host_swap=True, host_swap_slots=1,
        missed_by={"hypothesis": "its runs rarely have the host swap a page out that the guest "
                                 "then frees, reports and has discarded: `ballast check --fault "
                                 "discard_keeps_swap_slot --checkers hypothesis` ran 108 runs "
                                 "(5,887 steps) without it and is inconclusive (exit 3, never a "
                                 "pass), and 400 runs of 40 steps miss it too; random runs catch "
                                 "it"})
def _discard_keeps_swap(cfg: Config, s: State, vm: int) -> State:
    """The VMM discards reported pages but forgets their host swap slots: a discarded page
    the host had swapped out reads back its old contents from swap."""
    swap = s.host.swap
    s = A.vmm_discard_reported(cfg, s, vm)
    return State(replace(s.host, swap=swap), s.vms)


@_fault("report_skips_poison", "balloon_report_free_pages", "discarded_pages_read_clean",
        free_page_reporting=True, page_poison=True, poison_val=1, tokens=2)
def _report_unpoisoned(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """With page poisoning negotiated the guest reports free pages it never filled with
    ``poison_val``; the VMM, trusting the poison, keeps them, and they read back old data."""
    return A.balloon_report_free_pages(cfg.replace(page_poison=False), s, vm, ppns)


@_fault("stats_count_balloon_as_free", "balloon_report_stats", "stats_match_guest",
        stats_queue=True)
def _stats_balloon_free(cfg: Config, s: State, vm: int) -> State:
    """The statistics report counts the balloon's pages as free memory."""
    v = s.vms[vm]
    free = A.guest_free_pages(v) + v.guest.ppn_use.count(BALLOON)
    require(free != v.stats_free, "balloon_report_stats", "the VMM already has these statistics")
    return s.with_vm(vm, v.replace(stats_free=min(free, cfg.guest_pages)))


@_fault("vmm_accepts_flood", "rogue_report", "vmm_refuses_report_floods",
        vmm_bounds_queues=True, hostile_vms=frozenset({0}))
def _accepts_flood(cfg: Config, s: State, vm: int, queue: str, ppn: int) -> State:
    """The VMM queues every report a hostile guest sends, however many are waiting."""
    require(queue in ("inflate", "deflate"), "rogue_report", "queue is inflate or deflate")
    v = s.vms[vm]
    if queue == "inflate":
        return s.with_vm(vm, v.replace(inflate_queue=sorted_tuple(v.inflate_queue + (ppn,))))
    return s.with_vm(vm, v.replace(deflate_queue=sorted_tuple(v.deflate_queue + (ppn,))))


# --------------------------------------------------------------------------
# Free page hinting and hibernation


@_fault("hint_skips_rewritten_page", "vmm_skip_hinted", "hinted_pages_not_lost",
        also=("guest_data_intact",), free_page_hint=True)
def _skip_rewritten(cfg: Config, s: State, vm: int) -> State:
    """The migration skips every page hinted in the cycle, also those the guest wrote after
    hinting them (it ignores the dirty log): their new data is lost."""
    v = s.vms[vm]
    require(A.hint_cycle_running(v), "vmm_skip_hinted", "no hint cycle is under way")
    pages = v.hinted | v.hint_rewritten
    require(bool(pages), "vmm_skip_hinted", "no page was hinted")
    s = A.skip_pages(s, vm, pages)
    return s.with_vm(vm, s.vms[vm].replace(hinted=frozenset()))


@_fault("restore_forgets_balloon", "balloon_restore", "balloon_agrees_after_restore",
        also=("balloon_accounting_exact",),
        missed_by={"hypothesis": "its runs are too short: the fault needs an honest VM's "
                                 "balloon filled, every acknowledgement taken, a freeze and a "
                                 "restore, which the model's own random runs on the default "
                                 "preset first reach after 45 to 141 steps (6 of 60 runs of 200 "
                                 "steps, seeds 0-59), while Hypothesis's default budget there "
                                 "runs 121 runs of 46 steps on average (5,555 steps, the "
                                 "profile's 100 steps a run at most); random runs and the "
                                 "explorer catch it",
                   "prove": "its shortest run (an inflate round trip, then a freeze and a restore) "
                            "is longer than the 6 steps within which `ballast check`'s proofs "
                            "decide whether a broken induction step is reachable on the default "
                            "preset, whose reachable states are too many (over 50,000) to decide "
                            "it exactly: the checker reports it inconclusive, never a pass; the "
                            "proofs' own tests refute it with a search 8 steps deep on one VM "
                            "(tests/proofs/test_proof_faults.py)"},
        hibernation=True)
def _restore_forgets(cfg: Config, s: State, vm: int) -> State:
    """The driver comes back from hibernation without its balloon: it holds no page and
    tells the device ``actual = 0``, while the VMM still holds the pages as ballooned."""
    v = s.vms[vm]
    require(bool(v.module.frozen), "balloon_restore", "the driver is not frozen")
    module = replace(v.module, frozen=0, balloon=frozenset(), actual=0)
    return s.with_vm(vm, v.replace(module=module))
@_fault("vmm_trusts_guest_cpus", "rogue_cpu_online", "vcpus_within_cpu_target",
        processors=True, vmm_enforces_cpu_target=True, hostile_vms=frozenset({0}))
def _trusts_cpus(cfg: Config, s: State, vm: int, vcpu: int) -> State:
    """The VMM grants a processor to any vCPU the guest brings online, trusting the guest
    to stay within its CPU target: a hostile guest unparks or claims vCPUs beyond it."""
    v = s.vms[vm]
    require(isinstance(vcpu, int) and 0 <= vcpu < cfg.vcpus and vcpu not in v.guest.vcpus,
            "rogue_cpu_online", f"vCPU {vcpu} is not an offline vCPU of this VM")
    return A.vcpu_granted(s, vm, vcpu, "rogue_cpu_online")


@_fault("vmm_trusts_park_report", "rogue_cpu_park", "processor_conservation",
        processors=True, vmm_enforces_cpu_target=True, hostile_vms=frozenset({0}))
def _trusts_park(cfg: Config, s: State, vm: int, vcpu: int) -> State:
    """The VMM takes a parked-vCPU report at its word and leaves the vCPU running: its
    processor is counted as parked (and then given back) while the guest still runs on it."""
    v = s.vms[vm]
    require(isinstance(vcpu, int) and vcpu in v.guest.vcpus, "rogue_cpu_park",
            "the VMM ignores a report of a vCPU that is not running: nothing changes")
    return s.with_vm(vm, v.replace(parked_vcpus=v.parked_vcpus | {vcpu}))


@_fault("vmm_applies_stale_reports", "vmm_drop_stale_reports", "stale_reports_not_applied",
        also=("guest_chooses_pages", "guest_data_intact"), reset=True,
        reset_races_reports=True)
def _applies_stale(cfg: Config, s: State, vm: int) -> State:
    """The VMM cannot tell the reports of the guest's previous incarnation from the new
    one's: it applies a stale inflate report, taking pages the new guest never gave."""
    v = s.vms[vm]
    require(bool(v.stale_inflate or v.stale_deflate), "vmm_drop_stale_reports",
            "no report of an earlier incarnation is in flight")
    taken = {p for p in v.stale_inflate if 0 <= p < cfg.guest_pages and p not in v.ballooned}
    for p in sorted(taken):
        s = A.unback(s, vm, p, by_balloon=True)
    v = s.vms[vm]
    return s.with_vm(vm, v.replace(ballooned=v.ballooned | taken,
                                   acked_inflate=v.acked_inflate | taken,
                                   stale_inflate=(), stale_deflate=()))


@_fault("vmm_swaps_honest_page", "vmm_swap_over_target", "honest_memory_not_taken",
        vms=2, vmm_reclaims_over_target=True)
def _swaps_honest(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """Pressed by a VM that holds more than the host allows it, the VMM pages out the
    oldest page on the host (the lowest MPN behind an unshared guest page), whichever VM's
    it is: a guest touching pages beyond its target takes memory promised to another VM.
    (Any guest may be over its target for a while, so no hostile guest is needed.)"""
    require(A.over_target(cfg, s, vm) > 0, "vmm_swap_over_target",
            "the VM holds no more machine pages than the host allows it")
    owners = {m: (v, p) for v, vm_state in enumerate(s.vms)
              for p, m in enumerate(vm_state.p2m) if m != UNBACKED and m not in s.host.cow}
    require(bool(owners), "vmm_swap_over_target", "no unshared page is backed")
    victim_vm, victim_ppn = owners[min(owners)]
    return A.page_out_to_host_swap(cfg, s, victim_vm, victim_ppn, "vmm_swap_over_target")
@_fault("vmm_stops_one_page_over", "vmm_swap_over_target", RECOVERY,
        missed_by={"random": "a property over runs: a finite run shows no state from which the "
                             "host can never recover, the explorer's whole graph does",
                   "hypothesis": "a property over runs: a finite run shows no state from which "
                                 "the host can never recover, the explorer's whole graph does"},
        vmm_reclaims_over_target=True, host_swap_slots=1)
def _stops_one_over(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """The VMM stops paging a VM out while it still holds one page more than the host allows
    it (it waits for two): a guest that touches one page beyond its target keeps it."""
    require(A.over_target(cfg, s, vm) > 1, "vmm_swap_over_target",
            "the VM holds at most one page more than the host allows it")
    return A.page_out_to_host_swap(cfg, s, vm, ppn, "vmm_swap_over_target")


@_fault("vmm_maps_foreign_host_page", "guest_read", "host_page_backs_one_vm",
        vms=2, host_page_units=2, machine_pages=6, sharing=False)
def _maps_foreign(cfg: Config, s: State, vm: int, vpn: int) -> State:
    """On the guest's page fault the VMM backs the page with the lowest free MPN, a unit of
    a host page that already backs another VM's pages."""
    s, _ = A.access_page(cfg, s, vm, vpn, "guest_read", lowest_mpn=True)
    return s


@_fault("manager_backs_any_page", "guest_read", "guest_pages_are_machine_pages",
        guest_system=True, sharing=False, host_use=False, machine_pages=8)
def _backs_any(cfg: Config, s: State, vm: int, vpn: int) -> State:
    """In a generic guest system the resource manager gives a guest's page fault the lowest
    free machine page, as a VMM would, instead of the guest's own page."""
    s, _ = A.access_page(cfg, s, vm, vpn, "guest_read", lowest_mpn=True)
    return s


@_fault("oom_deflate_splits_unit", "balloon_oom_deflate", "balloon_units_whole",
        balloon_unit_pages=2, batch=2, guest_pages=4, deflate_on_oom=True, oom_notifier=True,
        migration=False, module=ModuleKind.DRIVER, guest_policy=GuestPolicyName.LRU)
def _oom_splits_unit(cfg: Config, s: State, vm: int, ppns: tuple[int, ...]) -> State:
    """The OOM notifier gives back only the first page of each balloon unit it picks, as a
    driver that frees a unit's pages one at a time and stops early would: the module's
    balloon keeps half a unit, which the VMM can neither take back nor hand out whole."""
    A.balloon_oom_deflate(cfg, s, vm, ppns)  # the notifier picks as the action's guard allows
    u = cfg.balloon_unit_pages
    return A.report_deflate(cfg, s, vm, tuple(p for p in ppns if p % u == 0))


@_fault("vmm_accepts_partial_unit", "vmm_reclaim", "balloon_units_whole",
        balloon_unit_pages=2, batch=2, guest_pages=4, refusal=False, migration=False,
        oom_notifier=False, free_page_reporting=False, free_page_hint=False,
        module=ModuleKind.DRIVER, guest_policy=GuestPolicyName.LRU)
def _accepts_partial(cfg: Config, s: State, vm: int, refuse: tuple[int, ...]) -> State:
    """The VMM accepts only the first page of each balloon unit reported, and refuses the
    rest, as if each page were a unit of its own."""
    v = s.vms[vm]
    require(bool(v.inflate_queue), "vmm_reclaim", "the guest has reported no page for inflation")
    u = cfg.balloon_unit_pages
    rest = tuple(sorted(p for p in set(v.inflate_queue) if p % u))
    return A.vmm_reclaim(cfg.replace(balloon_unit_pages=1, refusal=True, batch=1), s, vm, rest)
