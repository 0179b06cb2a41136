"""Actions' guards and effects written once over :mod:`ballast.model.ops`.

Each kernel mirrors the step function of the same name in
:mod:`ballast.model.actions` (the readable reference) for one VM: guard first,
then effect, in the model's field names. The Z3 backend unrolls it
(:mod:`ballast.proofs.interpret`), the NumPy backend runs it over batches
(:mod:`ballast.numeric.interpret`); the agreement tests compare both with the
model on every reachable state of small configurations. Seeded faults that
break one of these actions are kernels too (:data:`FAULT_KERNELS`), changing the
same action the model's fault changes (:mod:`ballast.model.faults`).

>>> sorted(KERNELS)[:3]
['balloon_complete', 'balloon_cpu_offline', 'balloon_cpu_online']
>>> FAULT_KERNELS["release_keeps_balloon_set"][0]
'vmm_release'
"""

from __future__ import annotations

from ballast.model.config import GuestPolicyName, ModuleKind
from ballast.model.feature_kernels import (FEATURE_FAULT_KERNELS, FEATURE_KERNELS,
                                           guard_frozen, hint_dirty_log)
from ballast.model.granular_kernels import in_whole_units, target_in_units, whole_units
from ballast.model.kernel_registry import action_kernel, fault_kernel
from ballast.model.ops import Kernel, Ops, Value, memory
from ballast.model.over_target_kernels import (OVER_TARGET_FAULT_KERNELS, OVER_TARGET_KERNELS,
                                               page_out_to_host_swap)
from ballast.model.reporting_kernels import (REPORTING_FAULT_KERNELS, REPORTING_KERNELS,
                                             allocator_free, allocator_lowest_free, bound_flood)
from ballast.model.state import BALLOON, FREE, UNBACKED

__all__ = ["FAULT_KERNELS", "KERNELS", "MEMORY_KERNELS", "allocatable", "backable",
           "deflate_limit", "evictable", "inflate_limit", "inflate_room", "offlinable",
           "onlinable", "reclaim_room", "reclaim_valid"]

KERNELS: dict[str, Kernel] = {}
"""Every action written once, by the model's name."""

FAULT_KERNELS: dict[str, tuple[str, Kernel]] = {}
"""Seeded fault name -> (the action it replaces, its kernel)."""


_kernel = action_kernel(KERNELS)
_fault = fault_kernel(FAULT_KERNELS)


# --------------------------------------------------------------------------
# Host


@_kernel("host_set_target")
def host_set_target(o: Ops) -> None:
    """:func:`ballast.model.actions.host_set_target`: a quantity, never page numbers."""
    pages = o.arg("pages")
    o.require(o.and_(o.le(0, pages), o.le(pages, o.cfg.guest_pages),
                     o.ne(pages, o.vm("target"))))
    if o.cfg.balloon_unit_pages > 1:
        o.require(target_in_units(o, pages))
    o.set_vm("target", pages)


@_kernel("host_set_cpu_target")
def host_set_cpu_target(o: Ops) -> None:
    """:func:`ballast.model.actions.host_set_cpu_target`."""
    n = o.arg("vcpus")
    o.require(o.and_(o.le(1, n), o.le(n, o.cfg.vcpus), o.ne(n, o.vm("cpu_target"))))
    o.set_vm("cpu_target", n)


# --------------------------------------------------------------------------
# VMM


def reclaim_room(o: Ops, migration: bool) -> Value:
    """Pages the VMM may still accept (``_reclaim_choices``): the target's room, one
    more with ``migration`` (a migrating page's new PPN comes before the old one goes),
    every page with ``accept_beyond_target``."""
    if o.cfg.accept_beyond_target:
        return o.cfg.guest_pages
    ballooned = o.count(o.pages("ballooned"))
    return o.maximum(0, o.add(o.sub(o.vm("target"), ballooned), 1 if migration else 0))


def reclaim_valid(o: Ops) -> Value:
    """Reported PPNs the VMM may accept: on the inflate queue and not ballooned yet."""
    return o.and_(o.queued("inflate_queue"), o.not_(o.pages("ballooned")))


def _acknowledge_inflate(o: Ops, accepted: Value) -> None:
    """The VMM acknowledges every reported page: accepted ones as ballooned, the rest
    (PPNs out of range included) as refused; the report is consumed."""
    queued = o.queued("inflate_queue")
    o.set_add("ballooned", accepted)
    o.set_add("acked_inflate", accepted)
    o.set_add("acked_refused", o.and_(queued, o.not_(accepted)))
    o.carry_beyond("acked_refused", "inflate_queue")
    o.queue_clear("inflate_queue")


def _vmm_reclaim(o: Ops, scrub: bool, host_picks: bool = False) -> None:
    cfg = o.cfg
    queued = o.queued("inflate_queue")
    refuse = o.arg_pages("refuse")
    refuse_beyond = o.arg_beyond("refuse")
    valid = reclaim_valid(o)
    accepted = o.and_(valid, o.not_(refuse))
    room = reclaim_room(o, cfg.migration)
    o.require(o.lt(0, o.queue_len("inflate_queue")))
    o.require(o.arg_distinct("refuse"))
    o.require(o.all(o.implies(refuse, queued)))
    o.require(o.arg_beyond_within("refuse", "inflate_queue"))
    o.require(o.le(o.count(accepted), room))
    if not cfg.refusal:
        # Without refusal the VMM names only valid pages and takes all it has room for.
        o.require(o.all(o.implies(refuse, valid)))
        o.require(o.not_(refuse_beyond))
        o.require(o.le(in_whole_units(o, o.minimum(o.count(valid), room), cfg.guest_pages),
                       o.count(accepted)))
    if cfg.balloon_unit_pages > 1:
        o.require(whole_units(o, accepted))
    o.unback(accepted, by_balloon=True, scrub=scrub)
    o.drop_swap(accepted)
    _acknowledge_inflate(o, accepted)
    if host_picks:
        # The broken VMM then balloons a page of its own choice: the lowest backed one.
        ballooned = o.pages("ballooned")
        pick = o.lowest(o.and_(o.ne(o.pages("p2m"), UNBACKED), o.not_(ballooned)), 1)
        o.unback(pick, by_balloon=True)
        o.set_add("ballooned", pick)


@_kernel("vmm_reclaim")
def vmm_reclaim(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_reclaim`: validate the inflate report, unmap
    the accepted PPNs (``refuse`` names the valid ones refused), acknowledge each."""
    _vmm_reclaim(o, scrub=True)


@_fault("free_without_scrub")
def _free_without_scrub(o: Ops) -> None:
    """``vmm_reclaim`` that returns reclaimed MPNs to the free pool without zeroing them."""
    _vmm_reclaim(o, scrub=False)


@_fault("vmm_reclaims_host_choice")
def _vmm_reclaims_host_choice(o: Ops) -> None:
    """``vmm_reclaim`` that also balloons the lowest backed page the guest never offered."""
    _vmm_reclaim(o, scrub=True, host_picks=True)


@_fault("vmm_accepts_partial_unit")
def _vmm_accepts_partial_unit(o: Ops) -> None:
    """``vmm_reclaim`` that accepts only the first page of each balloon unit reported, as
    many as the target leaves room for, and refuses the rest (whatever ``refuse`` says), as
    if each page were a unit of its own."""
    accepted = o.and_(reclaim_valid(o), o.unit_first())
    o.require(o.lt(0, o.queue_len("inflate_queue")))
    o.require(o.le(o.count(accepted), reclaim_room(o, o.cfg.migration)))
    o.unback(accepted, by_balloon=True)
    o.drop_swap(accepted)
    _acknowledge_inflate(o, accepted)


@_fault("reclaim_keeps_mapping")
def _reclaim_keeps_mapping(o: Ops) -> None:
    """``vmm_reclaim`` that marks the lowest valid reported pages ballooned (whatever
    ``refuse`` says) but never unmaps their machine pages."""
    valid = reclaim_valid(o)
    o.require(o.lt(0, o.queue_len("inflate_queue")))
    _acknowledge_inflate(o, o.lowest(valid, reclaim_room(o, migration=False)))


def _vmm_release(o: Ops, clear_balloon: bool) -> None:
    o.require(o.lt(0, o.queue_len("deflate_queue")))
    reported = o.queued("deflate_queue")
    if clear_balloon:
        o.set_remove("ballooned", reported)
    o.set_add("acked_deflate", reported)
    o.queue_clear("deflate_queue")


@_kernel("vmm_release")
def vmm_release(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_release`: reported PPNs leave the VMM's balloon
    set (those never ballooned change nothing); the report is acknowledged."""
    _vmm_release(o, clear_balloon=True)


@_fault("release_keeps_balloon_set")
def _release_keeps_balloon_set(o: Ops) -> None:
    """``vmm_release`` that acknowledges the pages but leaves them in the balloon set."""
    _vmm_release(o, clear_balloon=False)


def _vmm_cpu_reclaim(o: Ops, clear_parked: bool) -> None:
    parked = o.vcpus("parked_vcpus")
    o.require(o.any(parked))
    o.give("idle_pcpus", o.count(parked))
    if clear_parked:
        o.set_vcpus("parked_vcpus", o.and_(parked, False))


@_kernel("vmm_cpu_reclaim")
def vmm_cpu_reclaim(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_cpu_reclaim`: parked vCPUs' processors go idle."""
    _vmm_cpu_reclaim(o, clear_parked=True)


@_fault("cpu_reclaim_keeps_parked")
def _cpu_reclaim_keeps_parked(o: Ops) -> None:
    """``vmm_cpu_reclaim`` that hands the processors back but keeps them parked."""
    _vmm_cpu_reclaim(o, clear_parked=False)


# --------------------------------------------------------------------------
# Balloon module


@_kernel("balloon_poll")
def balloon_poll(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_poll`: the module reads both targets."""
    target, cpu_target = o.vm("target"), o.vm("cpu_target")
    o.require(o.or_(o.cfg.reread_target, o.ne(o.vm("module.target"), target),
                    o.ne(o.vm("module.cpu_target"), cpu_target)))
    o.set_vm("module.target", target)
    o.set_vm("module.cpu_target", cpu_target)


def allocatable(o: Ops) -> Value:
    """Free PPNs as the module's allocations see them (``actions.balloon_view``): a free
    page whose deflate report the VMM has not processed is not handed out again, nor one
    a free page report holds (``reporting_kernels.allocator_free``)."""
    return o.and_(allocator_free(o), o.not_(o.queued("deflate_queue")))


def _usable_free(o: Ops, free: Value) -> Value:
    """``actions.usable_free``: the driver leaves the kernel's reserve, the application
    stays within its pin limit."""
    n = o.count(free)
    if o.cfg.module is ModuleKind.DRIVER:
        return o.maximum(0, o.sub(n, o.cfg.kernel_reserve))
    pinned = o.count(o.eq(o.pages("guest.ppn_use"), BALLOON))
    return o.maximum(0, o.minimum(n, o.sub(o.cfg.pin_limit, pinned)))


def balloon_lock_free(o: Ops) -> Value:
    """``actions.balloon_lock_free``: no balloon page migration holds the module's lock."""
    return o.eq(o.vm("module.migrating"), 0) if o.cfg.migration else True


def inflate_limit(o: Ops) -> Value:
    """``actions.inflate_limit``: the target minus pages held or in flight, one report;
    none while a page migration holds the balloon lock."""
    held = o.add(o.add(o.count(o.pages("module.balloon")), o.queue_len("inflate_queue")),
                 o.count(o.pages("acked_inflate")))
    batch = o.cfg.balloon_report_pages
    most = o.maximum(0, o.minimum(batch, o.sub(o.vm("module.target"), held)))
    if o.cfg.migration:
        most = o.where(balloon_lock_free(o), most, 0)
    return in_whole_units(o, most, batch)


def inflate_room(o: Ops) -> Value:
    """Most pages the module may report for inflation now (what the workload draws from)."""
    return o.minimum(inflate_limit(o), _usable_free(o, allocatable(o)))


@_kernel("balloon_inflate")
def balloon_inflate(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_inflate`: the guest's allocator hands out
    ``ppns``; the module pins them and reports them for inflation."""
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    free = allocatable(o)
    o.require(o.and_(o.arg_distinct("ppns"), o.not_(o.arg_beyond("ppns")), o.le(1, n)))
    o.require(o.le(n, inflate_limit(o)))
    o.require(o.le(n, _usable_free(o, free)))
    o.require(o.all(o.implies(chosen, free)))
    if o.cfg.guest_policy is GuestPolicyName.LOWEST:
        # The lowest free PPNs: no free page below the highest one chosen is left out.
        o.require(o.not_(o.any(o.and_(free, o.not_(chosen), o.up_to_last(chosen)))))
    if o.cfg.balloon_unit_pages > 1:
        o.require(whole_units(o, chosen))
    o.set_at("guest.ppn_use", chosen, BALLOON)
    o.queue_add("inflate_queue", chosen)


def _under_pressure(o: Ops) -> Value:
    """``actions.under_pressure``: no free PPN, and no room on the disk or nothing to evict."""
    no_free = o.not_(o.any(o.eq(o.pages("guest.ppn_use"), FREE)))
    disk_full = o.le(o.cfg.guest_disk_slots, o.count(o.vpns("guest.disk")))
    lru_empty = o.not_(o.any(o.vpns("guest.lru")))
    return o.and_(no_free, o.or_(disk_full, lru_empty))


def deflate_limit(o: Ops) -> Value:
    """``actions._deflate_limit``: the balloon's excess over the target (a whole report
    when the guest is out of memory, with ``deflate_on_oom``), one report at most."""
    batch = o.cfg.balloon_report_pages
    size = o.count(o.pages("module.balloon"))
    excess = o.sub(size, o.vm("module.target"))
    if o.cfg.deflate_on_oom:
        excess = o.where(_under_pressure(o), o.maximum(excess, batch), excess)
    most = o.maximum(0, o.minimum(o.minimum(batch, excess), size))
    if o.cfg.migration:  # the migration holds the balloon lock: leak_balloon waits
        most = o.where(balloon_lock_free(o), most, 0)
    return in_whole_units(o, most, batch)


def _report_deflate(o: Ops, chosen: Value) -> None:
    """``actions.report_deflate``: the pages leave the module's balloon for the deflate
    queue; without ``must_tell_host`` only those still pinned go back to the guest at once."""
    if not o.cfg.must_tell_host:
        pinned = o.eq(o.pages("guest.ppn_use"), BALLOON)
        o.set_at("guest.ppn_use", o.and_(chosen, pinned), FREE)
    o.set_remove("module.balloon", chosen)
    o.queue_add("deflate_queue", chosen)


@_kernel("balloon_deflate")
def balloon_deflate(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_deflate` and its shared effect
    ``report_deflate``: acknowledged balloon pages go on the deflate queue."""
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    balloon = o.pages("module.balloon")
    o.require(o.and_(o.arg_distinct("ppns"), o.not_(o.arg_beyond("ppns")), o.le(1, n)))
    o.require(o.all(o.implies(chosen, balloon)))
    o.require(o.le(n, deflate_limit(o)))
    if o.cfg.balloon_unit_pages > 1:
        o.require(whole_units(o, chosen))
    _report_deflate(o, chosen)


@_kernel("balloon_complete")
def balloon_complete(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_complete`: the module takes the VMM's
    acknowledgements and reports the balloon's size as ``actual``."""
    ai, ar, ad = o.pages("acked_inflate"), o.pages("acked_refused"), o.pages("acked_deflate")
    o.require(o.or_(o.any(ai), o.any(ar), o.beyond("acked_refused"), o.any(ad)))
    if o.cfg.migration:
        # A migrating page's acknowledgement waits for the old page's release; a migration
        # whose new page the VMM refused ends here.
        migrating = o.ne(o.vm("module.migrating"), 0)
        o.require(o.not_(o.and_(migrating, o.any(ai))))
        o.set_vm("module.migrating",
                 o.where(o.and_(migrating, o.lt(0, o.queue_len("inflate_queue"))), 1, 0))
    use = o.pages("guest.ppn_use")
    mine = o.eq(use, BALLOON)
    balloon = o.or_(o.pages("module.balloon"), o.and_(ai, mine))
    refused = o.and_(o.or_(o.pages("module.refused"), o.and_(ar, mine)), o.not_(balloon))
    if o.cfg.must_tell_host:
        back = o.and_(ad, mine, o.not_(balloon), o.not_(refused))
        o.set_at("guest.ppn_use", back, FREE)
    o.set_pages("module.balloon", balloon)
    o.set_pages("module.refused", refused)
    for field in ("acked_inflate", "acked_refused", "acked_deflate"):
        o.set_pages(field, o.and_(ai, False))
    o.clear_beyond("acked_refused")
    o.set_vm("module.actual", o.count(balloon))


def _balloon_free_refused(o: Ops, release: bool) -> None:
    refused = o.pages("module.refused")
    o.require(o.any(refused))
    o.set_at("guest.ppn_use", refused, FREE)
    if release:
        o.set_pages("module.refused", o.and_(refused, False))


@_kernel("balloon_free_refused")
def balloon_free_refused(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_free_refused`."""
    _balloon_free_refused(o, release=True)


@_fault("free_refused_keeps_held")
def _free_refused_keeps_held(o: Ops) -> None:
    """``balloon_free_refused`` that frees the pages but keeps holding them."""
    _balloon_free_refused(o, release=False)


def offlinable(o: Ops) -> Value:
    """The vCPUs ``balloon_cpu_offline``'s guard admits: online, not the boot vCPU (0)."""
    online = o.vcpus("guest.vcpus")
    return o.and_(online, o.not_(o.lowest(o.filled("vcpus", True), 1)))


def _cpu_busy(o: Ops) -> Value:
    """vCPUs that cannot come online: online already, or parked."""
    return o.or_(o.vcpus("guest.vcpus"), o.vcpus("parked_vcpus"))


def onlinable(o: Ops) -> Value:
    """The vCPUs ``balloon_cpu_online``'s guard admits: neither online nor parked."""
    return o.not_(_cpu_busy(o))


@_kernel("balloon_cpu_offline")
def balloon_cpu_offline(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_cpu_offline`: any online vCPU but the boot one."""
    online, which = o.vcpus("guest.vcpus"), o.arg_vcpu("vcpu")
    o.require(o.lt(o.vm("module.cpu_target"), o.count(online)))
    o.require(o.and_(o.any(o.and_(which, online)), o.ne(o.arg("vcpu"), 0)))
    o.set_vcpus("guest.vcpus", o.and_(online, o.not_(which)))
    o.set_vcpus("parked_vcpus", o.or_(o.vcpus("parked_vcpus"), which))


@_kernel("balloon_cpu_online")
def balloon_cpu_online(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_cpu_online`: an offline, unparked vCPU comes
    back with an idle physical processor of the host."""
    online, which = o.vcpus("guest.vcpus"), o.arg_vcpu("vcpu")
    o.require(o.lt(o.count(online), o.vm("module.cpu_target")))
    o.require(o.any(which))
    o.require(o.not_(o.any(o.and_(which, _cpu_busy(o)))))
    if o.cfg.vmm_enforces_cpu_target:  # ``actions.vcpu_grant_limit``: the host's own target
        o.require(o.lt(o.count(online), o.vm("cpu_target")))
    o.claim("idle_pcpus", 1)
    o.set_vcpus("guest.vcpus", o.or_(online, which))


# --------------------------------------------------------------------------
# Memory: host pages, host swap, the guest's accesses and disk, content sharing,
# a hostile guest. These use the memory operations (``ops.MemoryOps``).

_WITHOUT_MEMORY = frozenset(KERNELS) | frozenset(FAULT_KERNELS)


def _host_take_page(o: Ops, how: str) -> None:
    m = memory(o)
    free = m.units("host.free")
    if how == "whole":  # every unit: none stays free or reclaimed, each is in use
        o.require(o.all(free))
        for field, value in (("host.reclaimed", False), ("host.free", False),
                             ("host.in_use", True)):
            m.set_units(field, o.filled("units", value))
        return
    if how == "partial":
        o.require(o.any(free))
        taken = o.filled("units", True)
    else:
        o.require(o.any(free))
        taken = o.lowest(free, 1)
    m.set_units("host.free", o.and_(free, o.not_(taken)))
    m.set_units("host.in_use", o.or_(m.units("host.in_use"), taken))


@_kernel("host_take_page")
def host_take_page(o: Ops) -> None:
    """:func:`ballast.model.actions.host_take_page`: every unit of the host page is free."""
    _host_take_page(o, "whole")


@_fault("host_takes_partial_page")
def _host_takes_partial_page(o: Ops) -> None:
    """``host_take_page`` that takes a host page when some unit of it is free."""
    _host_take_page(o, "partial")


@_fault("host_takes_single_unit")
def _host_takes_single_unit(o: Ops) -> None:
    """``host_take_page`` that takes only the lowest free unit of the host page."""
    _host_take_page(o, "single")


@_kernel("host_return_page")
def host_return_page(o: Ops) -> None:
    """:func:`ballast.model.actions.host_return_page`."""
    m = memory(o)
    in_use = m.units("host.in_use")
    o.require(o.all(in_use))
    m.set_units("host.free", o.filled("units", True))
    m.set_units("host.in_use", o.filled("units", False))


def _host_swap_out(o: Ops, keep_data: bool) -> None:
    page_out_to_host_swap(o, memory(o).arg_page("ppn"), keep_data)


@_kernel("host_swap_out")
def host_swap_out(o: Ops) -> None:
    """:func:`ballast.model.actions.host_swap_out`: the host pages a guest page out."""
    _host_swap_out(o, keep_data=True)


@_fault("host_swap_loses_data")
def _host_swap_loses_data(o: Ops) -> None:
    """``host_swap_out`` that stores zeros instead of the page's contents."""
    _host_swap_out(o, keep_data=False)


def _vmm_share(o: Ops, cow: bool) -> None:
    m = memory(o)
    at, other_at = m.arg_page("ppn"), m.arg_page("other_ppn")
    other_vm = o.arg("other_vm")
    o.require(o.and_(o.le(0, other_vm), o.lt(other_vm, o.cfg.vms), o.any(at), o.any(other_at)))
    vm = m.this_vm()
    o.require(o.or_(o.lt(vm, other_vm),
                    o.and_(o.eq(vm, other_vm), o.lt(o.arg("ppn"), o.arg("other_ppn")))))
    keep, drop = m.pick(o.pages("p2m"), at), m.other_mpn(other_vm, other_at)
    o.require(o.and_(o.ne(keep, UNBACKED), o.ne(drop, UNBACKED), o.ne(keep, drop)))
    o.require(o.eq(m.at_mpn("host.content", keep), m.at_mpn("host.content", drop)))
    m.share(at, other_vm, other_at, cow=cow)


@_kernel("vmm_share")
def vmm_share(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_share`: two pages with equal contents, one MPN."""
    _vmm_share(o, cow=True)


@_fault("share_without_cow")
def _share_without_cow(o: Ops) -> None:
    """``vmm_share`` that maps the shared MPN writable (no copy-on-write mark left)."""
    _vmm_share(o, cow=False)


def _undiscard(o: Ops, written: Value) -> None:
    """Pages the guest wrote are no longer discarded (``actions.write_page``)."""
    o.set_remove("discarded", written)


def _access(o: Ops, token: Value | None, cow: bool = True, lowest: bool = False) -> None:
    """``actions._access`` (and with ``token`` ``guest_write``): the guest makes the VPN
    resident (its allocator's lowest free PPN, filled from its disk or with zeros), the VMM
    backs it (and writes ``token``), the VPN becomes the most recently used."""
    m = memory(o)
    which, vpn = m.arg_vpn("vpn"), o.arg("vpn")
    holds, (fresh_at, has_free) = m.holding(vpn), allocator_lowest_free(o)
    resident = o.any(holds)
    o.require(o.any(which))
    if token is not None:
        o.require(o.and_(o.le(1, token), o.le(token, o.cfg.tokens)))
    o.require(o.or_(resident, has_free))
    at = o.where(resident, o.lowest(holds, 1), fresh_at)
    fresh = o.not_(resident)
    if token is None:  # a fresh page is filled from the guest's disk (or with zeros)
        m.touch(at, m.token_at("guest.disk", which), fresh, cow=cow, lowest=lowest)
    else:
        m.touch(at, token, True, cow=cow, lowest=lowest)
    if o.cfg.free_page_reporting or o.cfg.free_page_hint:
        written = o.and_(at, True if token is not None else fresh)
        if o.cfg.free_page_reporting:
            # The guest's write makes a discarded page its own data again (``write_page``).
            _undiscard(o, written)
        hint_dirty_log(o, written)
    m.lru_use(which, resident)
    o.set_at("guest.ppn_use", o.and_(fresh_at, fresh), vpn)
    m.drop_tokens("guest.disk", o.and_(which, fresh))
    if token is not None:
        o.set_at("guest.expected", which, token)


@_kernel("guest_read")
def guest_read(o: Ops) -> None:
    """:func:`ballast.model.actions.guest_read`."""
    _access(o, None)


@_fault("manager_backs_any_page")
def _manager_backs_any_page(o: Ops) -> None:
    """``guest_read`` whose resource manager, in a generic guest system, backs the page with
    the lowest free machine page instead of the guest's own."""
    _access(o, None, lowest=True)


@_fault("vmm_maps_foreign_host_page")
def _vmm_maps_foreign_host_page(o: Ops) -> None:
    """``guest_read`` whose VMM backs the page with the lowest free MPN, a unit of a host
    page that may already back another VM's pages."""
    _access(o, None, lowest=True)


@_kernel("guest_write")
def guest_write(o: Ops) -> None:
    """:func:`ballast.model.actions.guest_write`: a write to a shared page copies it first."""
    _access(o, o.arg("token"))


@_fault("cow_write_in_place")
def _cow_write_in_place(o: Ops) -> None:
    """``guest_write`` that writes a shared page in place (its other mappers see it)."""
    _access(o, o.arg("token"), cow=False)


def evictable(o: Ops) -> Value:
    """The VPNs ``guest_evict``'s guard admits (the guest's disk full or not): resident,
    and under the LRU and lowest policies the least recently used. The guard states the
    same two conjuncts in line: built through a helper, the Z3 terms of its queries come
    out in another order and cost Z3 more work."""
    if o.cfg.guest_policy in (GuestPolicyName.LRU, GuestPolicyName.LOWEST):
        return o.and_(o.vpns("guest.lru"), memory(o).lru_victim())
    return o.vpns("guest.lru")


@_kernel("guest_evict")
def guest_evict(o: Ops) -> None:
    """:func:`ballast.model.actions.guest_evict`: the guest's policy pages a VPN out to the
    guest's own disk (reading it through the VMM) and frees its PPN."""
    m = memory(o)
    which, vpn = m.arg_vpn("vpn"), o.arg("vpn")
    holds = m.holding(vpn)
    o.require(o.any(o.and_(which, o.vpns("guest.lru"))))
    if o.cfg.guest_policy in (GuestPolicyName.LRU, GuestPolicyName.LOWEST):
        o.require(o.any(o.and_(which, m.lru_victim())))
    o.require(o.lt(o.count(o.vpns("guest.disk")), o.cfg.guest_disk_slots))
    o.require(o.any(holds))
    at = o.lowest(holds, 1)
    mpn = m.touch(at, 0, False)
    m.set_tokens("guest.disk", which, m.at_mpn("host.content", mpn))
    o.set_at("guest.ppn_use", at, FREE)
    m.lru_remove(which)


@_kernel("guest_reset")
def guest_reset(o: Ops) -> None:
    """:func:`ballast.model.actions.guest_reset`: the guest reboots; the balloon device is
    reset and the host forgets the VM's swapped pages."""
    m = memory(o)
    if o.cfg.reset_races_reports:  # the reports in flight outlive the reset
        m.queue_copy("stale_inflate", "inflate_queue")
        m.queue_copy("stale_deflate", "deflate_queue")
    pages, none = o.filled("pages", True), o.filled("pages", False)
    vpns = o.filled("vpns", True)
    o.set_pages("guest.ppn_use", o.filled("pages", FREE))
    for field in ("module.balloon", "module.refused", "ballooned", "acked_inflate",
                  "acked_refused", "acked_deflate"):
        o.set_pages(field, none)
    o.clear_beyond("acked_refused")
    o.queue_clear("inflate_queue")
    o.queue_clear("deflate_queue")
    m.lru_remove(vpns)
    m.drop_tokens("guest.disk", vpns)
    m.set_vpns("guest.expected", o.filled("vpns", 0))
    o.set_vm("module.target", 0)
    o.set_vm("module.actual", 0)
    if o.cfg.migration:  # a migration under way ends with the balloon it moved a page of
        o.set_vm("module.migrating", 0)
    o.drop_swap(pages)
    if o.cfg.free_page_reporting:
        # The device's reset drops the free page report in flight.
        for field in ("module.reporting", "report_queue", "acked_report"):
            o.set_pages(field, none)


@_kernel("rogue_report")
def rogue_report(o: Ops) -> None:
    """:func:`ballast.model.actions.rogue_report`: any PPN, on either queue."""
    m = memory(o)
    inflate, deflate = m.arg_is("queue", "inflate"), m.arg_is("queue", "deflate")
    o.require(m.hostile())
    o.require(o.or_(inflate, deflate))
    queued = bound_flood(o, inflate)
    m.queue_add_ppn("inflate_queue", o.arg("ppn"), o.and_(inflate, queued))
    m.queue_add_ppn("deflate_queue", o.arg("ppn"), o.and_(deflate, queued))


def backable(o: Ops) -> Value:
    """Pages the VMM may back eagerly: unbacked and not in the balloon."""
    return o.and_(o.eq(o.pages("p2m"), UNBACKED), o.not_(o.pages("ballooned")))


def _vmm_back_page(o: Ops, keep_swapped: bool) -> None:
    m = memory(o)
    at = m.arg_page("ppn")
    o.require(o.any(at))
    o.require(o.any(o.and_(at, backable(o))))
    # Backing is an access by the VMM: from host swap if the host paged it out, else zeros.
    # The fault then overwrites whatever came back with zeros, which is the same as
    # dropping the swapped data first.
    m.touch(at, 0, not keep_swapped)


@_kernel("vmm_back_page")
def vmm_back_page(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_back_page`: eager backing of a page outside the balloon."""
    _vmm_back_page(o, keep_swapped=True)


@_fault("eager_backing_drops_swap")
def _eager_backing_drops_swap(o: Ops) -> None:
    """``vmm_back_page`` that fills the page with zeros even when the host swapped it out."""
    _vmm_back_page(o, keep_swapped=False)


@_kernel("rogue_touch")
def rogue_touch(o: Ops) -> None:
    """:func:`ballast.model.actions.rogue_touch`: a write to any own PPN (a ballooned one pops)."""
    m = memory(o)
    at, token = m.arg_page("ppn"), o.arg("token")
    o.require(m.hostile())
    o.require(o.and_(o.any(at), o.le(0, token), o.le(token, o.cfg.tokens)))
    m.touch(at, token, True)
    if o.cfg.free_page_reporting:
        _undiscard(o, at)
    hint_dirty_log(o, at)


@_kernel("rogue_set_actual")
def rogue_set_actual(o: Ops) -> None:
    """:func:`ballast.model.actions.rogue_set_actual`: a balloon size that is not true."""
    actual = o.arg("actual")
    o.require(memory(o).hostile())
    o.require(o.and_(o.le(0, actual), o.ne(actual, o.vm("module.actual"))))
    o.set_vm("module.actual", actual)


# --------------------------------------------------------------------------
# Real drivers: balloon page migration (memory compaction) and deflate on OOM


def _migration_in_flight(o: Ops) -> Value:
    """``actions._migration_in_flight``: pages the module holds or awaits beyond the target
    it read (a migrating new page)."""
    held = o.add(o.add(o.count(o.pages("module.balloon")), o.queue_len("inflate_queue")),
                 o.count(o.pages("acked_inflate")))
    return o.sub(held, o.vm("module.target"))


@_kernel("balloon_migrate")
def balloon_migrate(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_migrate`: the guest's allocator hands the module a
    free page ``new``, reported for inflation one page beyond the target."""
    new = memory(o).arg_page("new")
    free = allocatable(o)
    o.require(o.any(o.pages("module.balloon")))
    o.require(o.and_(balloon_lock_free(o), o.eq(_migration_in_flight(o), 0)))
    o.require(o.and_(o.le(1, _usable_free(o, free)), o.any(o.and_(new, free))))
    if o.cfg.guest_policy is GuestPolicyName.LOWEST:
        o.require(o.not_(o.any(o.and_(free, o.not_(new), o.up_to_last(new)))))
    o.set_at("guest.ppn_use", new, BALLOON)
    o.queue_add("inflate_queue", new)
    o.set_vm("module.migrating", 1)


def _balloon_migrate_release(o: Ops, report: bool) -> None:
    old = memory(o).arg_page("old")
    o.require(o.any(o.pages("acked_inflate")))
    o.require(o.ne(o.vm("module.migrating"), 0))
    o.require(o.any(o.and_(old, o.pages("module.balloon"))))
    o.set_vm("module.migrating", 0)
    if report:
        _report_deflate(o, old)
    else:
        o.set_remove("module.balloon", old)


@_kernel("balloon_migrate_release")
def balloon_migrate_release(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_migrate_release`: once the new page is
    acknowledged, the old page ``old`` is reported for deflation."""
    _balloon_migrate_release(o, report=True)


@_fault("migrate_forgets_old_page")
def _migrate_forgets_old_page(o: Ops) -> None:
    """``balloon_migrate_release`` that drops the old page from the module's balloon
    without reporting it (the VMM keeps it ballooned)."""
    _balloon_migrate_release(o, report=False)


def _balloon_oom_deflate(o: Ops, report: bool, split: bool = False) -> None:
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    balloon = o.pages("module.balloon")
    o.require(o.and_(o.not_(o.arg_beyond("ppns")), o.le(1, n)))
    o.require(balloon_lock_free(o))
    if report:
        o.require(o.and_(o.arg_distinct("ppns"), o.le(n, o.cfg.batch)))
        if o.cfg.balloon_unit_pages > 1:
            o.require(whole_units(o, chosen))
    o.require(o.all(o.implies(chosen, balloon)))
    if split:  # the seeded fault: only the first page of each unit leaves the balloon
        chosen = o.and_(chosen, o.unit_first())
    if report:
        _report_deflate(o, chosen)
    else:
        o.set_at("guest.ppn_use", chosen, FREE)
        o.set_remove("module.balloon", chosen)


@_kernel("balloon_oom_deflate")
def balloon_oom_deflate(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_oom_deflate`: up to one report of balloon pages,
    whatever the target."""
    _balloon_oom_deflate(o, report=True)


@_fault("oom_deflate_without_report")
def _oom_deflate_without_report(o: Ops) -> None:
    """``balloon_oom_deflate`` that frees the pages in the guest without telling the VMM."""
    _balloon_oom_deflate(o, report=False)


@_fault("oom_deflate_splits_unit")
def _oom_deflate_splits_unit(o: Ops) -> None:
    """``balloon_oom_deflate`` that gives back only the first page of each unit it picks."""
    _balloon_oom_deflate(o, report=True, split=True)

# Free page reporting, page poisoning and the statistics queue: their own module
# (ballast.model.reporting_kernels), read from the same tables.
KERNELS.update(REPORTING_KERNELS)
FAULT_KERNELS.update(REPORTING_FAULT_KERNELS)
# Rogue processors, reports racing a reset, free page hinting and hibernation: their own
# module too (ballast.model.feature_kernels).
KERNELS.update(FEATURE_KERNELS)
FAULT_KERNELS.update(FEATURE_FAULT_KERNELS)
# The VMM paging out a VM over its target (ballast.model.over_target_kernels).
KERNELS.update(OVER_TARGET_KERNELS)
FAULT_KERNELS.update(OVER_TARGET_FAULT_KERNELS)
# A hibernated guest runs nothing: one guard of every guest-side kernel, as in the model.
guard_frozen(KERNELS, FAULT_KERNELS)

MEMORY_KERNELS: frozenset[str] = (frozenset(KERNELS) | frozenset(FAULT_KERNELS)) - _WITHOUT_MEMORY
"""Actions and seeded faults whose kernels use the memory operations: an interpretation
runs them only through a store that provides those (the numeric engine's and the frontier
explorer's rows do; where a store lacks one a feature needs, it takes the model's step)."""
