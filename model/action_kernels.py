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

from typing import Callable

from ballast.model.actions import ACTIONS
from ballast.model.config import GuestPolicyName, ModuleKind
from ballast.model.faults import FAULTS
from ballast.model.ops import Kernel, Ops, Value
from ballast.model.state import BALLOON, FREE

__all__ = ["FAULT_KERNELS", "KERNELS", "allocatable", "deflate_limit", "inflate_room", "reclaim_room"]

KERNELS: dict[str, Kernel] = {}
"""Every action written once, by the model's name."""

FAULT_KERNELS: dict[str, tuple[str, Kernel]] = {}
"""Seeded fault name -> (the action it replaces, its kernel)."""


def _kernel(name: str) -> Callable[[Kernel], Kernel]:
    assert name in ACTIONS, name

    def register(fn: Kernel) -> Kernel:
        KERNELS[name] = fn
        return fn
    return register


def _fault(name: str) -> Callable[[Kernel], Kernel]:
    fault = FAULTS[name]

    def register(fn: Kernel) -> Kernel:
        FAULT_KERNELS[name] = (fault.action, fn)
        return fn
    return register


def _batch(o: Ops) -> int:
    """Pages one report may carry (the application module reports one at a time)."""
    return 1 if o.cfg.module is ModuleKind.APPLICATION else o.cfg.batch


# --------------------------------------------------------------------------
# Host


@_kernel("host_set_target")
def host_set_target(o: Ops) -> None:
    """:func:`ballast.model.actions.host_set_target`: a quantity, never page numbers."""
    pages = o.arg("pages")
    o.require(o.and_(o.le(0, pages), o.le(pages, o.cfg.guest_pages),
                     o.ne(pages, o.vm("target"))))
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
    more with ``migration`` (a migrating page's new PPN comes before the old one goes)."""
    ballooned = o.count(o.pages("ballooned"))
    return o.maximum(0, o.add(o.sub(o.vm("target"), ballooned), 1 if migration else 0))


def _acknowledge_inflate(o: Ops, accepted: Value) -> None:
    """The VMM acknowledges every reported page: accepted ones as ballooned, the rest
    (PPNs out of range included) as refused; the report is consumed."""
    queued = o.queued("inflate_queue")
    o.set_pages("ballooned", o.or_(o.pages("ballooned"), accepted))
    o.set_pages("acked_inflate", o.or_(o.pages("acked_inflate"), accepted))
    o.set_pages("acked_refused", o.or_(o.pages("acked_refused"),
                                       o.and_(queued, o.not_(accepted))))
    o.carry_beyond("acked_refused", "inflate_queue")
    o.queue_clear("inflate_queue")


def _vmm_reclaim(o: Ops, scrub: bool) -> None:
    cfg = o.cfg
    queued = o.queued("inflate_queue")
    refuse = o.arg_pages("refuse")
    refuse_beyond = o.arg_beyond("refuse")
    valid = o.and_(queued, o.not_(o.pages("ballooned")))
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
        o.require(o.le(o.minimum(o.count(valid), room), o.count(accepted)))
    o.unback(accepted, by_balloon=True, scrub=scrub)
    o.drop_swap(accepted)
    _acknowledge_inflate(o, accepted)


@_kernel("vmm_reclaim")
def vmm_reclaim(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_reclaim`: validate the inflate report, unmap
    the accepted PPNs (``refuse`` names the valid ones refused), acknowledge each."""
    _vmm_reclaim(o, scrub=True)


@_fault("free_without_scrub")
def _free_without_scrub(o: Ops) -> None:
    """``vmm_reclaim`` that returns reclaimed MPNs to the free pool without zeroing them."""
    _vmm_reclaim(o, scrub=False)


@_fault("reclaim_keeps_mapping")
def _reclaim_keeps_mapping(o: Ops) -> None:
    """``vmm_reclaim`` that marks the lowest valid reported pages ballooned (whatever
    ``refuse`` says) but never unmaps their machine pages."""
    valid = o.and_(o.queued("inflate_queue"), o.not_(o.pages("ballooned")))
    o.require(o.lt(0, o.queue_len("inflate_queue")))
    _acknowledge_inflate(o, o.lowest(valid, reclaim_room(o, migration=False)))


def _vmm_release(o: Ops, clear_balloon: bool) -> None:
    o.require(o.lt(0, o.queue_len("deflate_queue")))
    reported = o.queued("deflate_queue")
    if clear_balloon:
        o.set_pages("ballooned", o.and_(o.pages("ballooned"), o.not_(reported)))
    o.set_pages("acked_deflate", o.or_(o.pages("acked_deflate"), reported))
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
    page whose deflate report the VMM has not processed is not handed out again."""
    return o.and_(o.eq(o.pages("guest.ppn_use"), FREE), o.not_(o.queued("deflate_queue")))


def _usable_free(o: Ops, free: Value) -> Value:
    """``actions.usable_free``: the driver leaves the kernel's reserve, the application
    stays within its pin limit."""
    n = o.count(free)
    if o.cfg.module is ModuleKind.DRIVER:
        return o.maximum(0, o.sub(n, o.cfg.kernel_reserve))
    pinned = o.count(o.eq(o.pages("guest.ppn_use"), BALLOON))
    return o.maximum(0, o.minimum(n, o.sub(o.cfg.pin_limit, pinned)))


def _inflate_limit(o: Ops) -> Value:
    """``actions.inflate_limit``: the target minus pages held or in flight, one report."""
    held = o.add(o.add(o.count(o.pages("module.balloon")), o.queue_len("inflate_queue")),
                 o.count(o.pages("acked_inflate")))
    return o.maximum(0, o.minimum(_batch(o), o.sub(o.vm("module.target"), held)))


def inflate_room(o: Ops) -> Value:
    """Most pages the module may report for inflation now (what the workload draws from)."""
    return o.minimum(_inflate_limit(o), _usable_free(o, allocatable(o)))


@_kernel("balloon_inflate")
def balloon_inflate(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_inflate`: the guest's allocator hands out
    ``ppns``; the module pins them and reports them for inflation."""
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    free = allocatable(o)
    o.require(o.and_(o.arg_distinct("ppns"), o.not_(o.arg_beyond("ppns")), o.le(1, n)))
    o.require(o.le(n, _inflate_limit(o)))
    o.require(o.le(n, _usable_free(o, free)))
    o.require(o.all(o.implies(chosen, free)))
    if o.cfg.guest_policy is GuestPolicyName.LOWEST:
        # The lowest free PPNs: no free page below the highest one chosen is left out.
        o.require(o.not_(o.any(o.and_(free, o.not_(chosen), o.up_to_last(chosen)))))
    use = o.pages("guest.ppn_use")
    o.set_pages("guest.ppn_use", o.where(chosen, BALLOON, use))
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
    size = o.count(o.pages("module.balloon"))
    excess = o.sub(size, o.vm("module.target"))
    if o.cfg.deflate_on_oom:
        excess = o.where(_under_pressure(o), o.maximum(excess, _batch(o)), excess)
    return o.maximum(0, o.minimum(o.minimum(_batch(o), excess), size))


@_kernel("balloon_deflate")
def balloon_deflate(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_deflate` and its shared effect
    ``report_deflate``: acknowledged balloon pages go on the deflate queue."""
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    balloon = o.pages("module.balloon")
    o.require(o.and_(o.arg_distinct("ppns"), o.not_(o.arg_beyond("ppns")), o.le(1, n)))
    o.require(o.all(o.implies(chosen, balloon)))
    o.require(o.le(n, deflate_limit(o)))
    if not o.cfg.must_tell_host:
        # Only pages the module still holds pinned go back to the guest at once.
        use = o.pages("guest.ppn_use")
        o.set_pages("guest.ppn_use", o.where(o.and_(chosen, o.eq(use, BALLOON)), FREE, use))
    o.set_pages("module.balloon", o.and_(balloon, o.not_(chosen)))
    o.queue_add("deflate_queue", chosen)


@_kernel("balloon_complete")
def balloon_complete(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_complete`: the module takes the VMM's
    acknowledgements and reports the balloon's size as ``actual``."""
    ai, ar, ad = o.pages("acked_inflate"), o.pages("acked_refused"), o.pages("acked_deflate")
    o.require(o.or_(o.any(ai), o.any(ar), o.beyond("acked_refused"), o.any(ad)))
    use = o.pages("guest.ppn_use")
    mine = o.eq(use, BALLOON)
    balloon = o.or_(o.pages("module.balloon"), o.and_(ai, mine))
    refused = o.and_(o.or_(o.pages("module.refused"), o.and_(ar, mine)), o.not_(balloon))
    if o.cfg.must_tell_host:
        back = o.and_(ad, mine, o.not_(balloon), o.not_(refused))
        o.set_pages("guest.ppn_use", o.where(back, FREE, use))
    o.set_pages("module.balloon", balloon)
    o.set_pages("module.refused", refused)
    for field in ("acked_inflate", "acked_refused", "acked_deflate"):
        o.set_pages(field, o.and_(ai, False))
    o.clear_beyond("acked_refused")
    o.set_vm("module.actual", o.count(balloon))


def _balloon_free_refused(o: Ops, release: bool) -> None:
    refused = o.pages("module.refused")
    o.require(o.any(refused))
    o.set_pages("guest.ppn_use", o.where(refused, FREE, o.pages("guest.ppn_use")))
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
    o.require(o.not_(o.any(o.and_(which, o.or_(online, o.vcpus("parked_vcpus"))))))
    o.claim("idle_pcpus", 1)
    o.set_vcpus("guest.vcpus", o.or_(online, which))
