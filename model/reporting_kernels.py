"""Free page reporting, page poisoning, the statistics queue and the VMM's flood bound,
written once over :mod:`ballast.model.ops`.

virtio 1.x section 5.5.6 adds to the balloon a reporting queue (F_REPORTING: the guest
reports free pages, the device discards them), page poisoning (F_PAGE_POISON: a reported
page holds ``poison_val``) and a statistics queue (F_STATS_VQ). Each kernel mirrors the
step function of the same name in :mod:`ballast.model.actions` (the readable reference),
each fault kernel the seeded fault of :mod:`ballast.model.faults`, each property kernel the
check of :mod:`ballast.model.invariants`; the Z3 and NumPy interpreters read them from the
same tables as every other action's (:data:`ballast.model.action_kernels.KERNELS`,
``FAULT_KERNELS``, :data:`ballast.model.property_kernels.PROPERTY_KERNELS`), which take
these in. The step forms of ``stats_match_guest`` and ``vmm_refuses_report_floods`` are
written here as well, as truth values over a pre-state and a post-state of one VM
(:func:`stats_report_matches`, :func:`flood_refused`), which each backend evaluates on its
own pair of states.

The helpers the guest's allocator and the module share with other actions are here too:
:func:`allocator_free` (a free page held by a report in flight is off the free list).

>>> sorted(REPORTING_KERNELS)
['balloon_report_done', 'balloon_report_free_pages', 'balloon_report_stats', 'vmm_discard_reported']
>>> REPORTING_FAULT_KERNELS["discard_keeps_swap_slot"][0]
'vmm_discard_reported'
"""

from __future__ import annotations

from typing import Callable

from ballast.model.actions import report_queue_bound
from ballast.model.feature_kernels import hint_dirty_log
from ballast.model.invariants import INVARIANTS, clean_tokens
from ballast.model.kernel_registry import action_kernel, fault_kernel
from ballast.model.ops import Kernel, Ops, StateOps, Value, memory
from ballast.model.state import BALLOON, FREE, UNBACKED

__all__ = ["REPORTING_FAULT_KERNELS", "REPORTING_KERNELS", "REPORTING_PROPERTIES",
           "allocator_free", "allocator_lowest_free", "bound_flood",
           "discarded_pages_read_clean", "flood_refused",
           "guest_free_pages", "queued_ppns", "reads_clean", "reportable",
           "reported_pages_not_reused",
           "stats_report_matches"]

REPORTING_KERNELS: dict[str, Kernel] = {}
"""The actions of virtio 1.x section 5.5.6 written once, by the model's name."""

REPORTING_FAULT_KERNELS: dict[str, tuple[str, Kernel]] = {}
"""Their seeded faults: fault name -> (the action it replaces, its kernel)."""


_kernel = action_kernel(REPORTING_KERNELS)
_fault = fault_kernel(REPORTING_FAULT_KERNELS)


def _none(o: Ops, vector: Value) -> Value:
    """A vector shaped like ``vector`` that holds nowhere (a constant)."""
    return o.and_(vector, False)


# --------------------------------------------------------------------------
# The guest's free list as the allocator and the statistics see it


def allocator_free(o: Ops) -> Value:
    """``actions.allocator_view``: free PPNs on the guest's free list; a free page the module
    holds for a free page report in flight is off it (Linux page_reporting isolates it)."""
    free = o.eq(o.pages("guest.ppn_use"), FREE)
    if not o.cfg.free_page_reporting:
        return free
    return o.and_(free, o.not_(o.pages("module.reporting")))


def allocator_lowest_free(o: Ops) -> tuple[Value, Value]:
    """The allocator's lowest free PPN (one-hot) and whether it has one: ``lowest`` and
    ``any`` of :func:`allocator_free` (the guest's allocator hands out its lowest free
    page; ``actions._access``)."""
    if not o.cfg.free_page_reporting:
        return memory(o).lowest_holding(FREE)
    free = allocator_free(o)
    return o.lowest(free, 1), o.any(free)


def guest_free_pages(o: Ops) -> Value:
    """``actions.guest_free_pages``: the guest's free memory in pages, as its statistics
    report it (VIRTIO_BALLOON_S_MEMFREE)."""
    return o.count(allocator_free(o))


def reportable(o: Ops) -> Value:
    """``actions._reportable``: free PPNs the module may report (on the free list, not
    ballooned); what the numeric workload draws a report from."""
    return o.and_(allocator_free(o), o.not_(o.pages("ballooned")))


# --------------------------------------------------------------------------
# Free page reporting (section 5.5.6.6) and page poisoning (section 5.5.6.4)


def _poisons(o: Ops) -> bool:
    """Whether the guest fills the pages it reports with a poison value other than zero."""
    return bool(o.cfg.page_poison and o.cfg.poison_val)


def _report_free_pages(o: Ops, poison: bool, isolate: bool) -> None:
    m = memory(o)
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    o.require(o.not_(o.any(o.pages("module.reporting"))))
    o.require(o.and_(o.arg_distinct("ppns"), o.not_(o.arg_beyond("ppns")), o.le(1, n),
                     o.le(n, o.cfg.report_limit)))
    o.require(o.all(o.implies(chosen, reportable(o))))
    discarded = o.pages("discarded")
    if poison and _poisons(o):
        # ``actions._poison``: a page that holds anything (backed, or paged out by the
        # host) is written with poison_val, which makes it the guest's own data again.
        held = o.and_(chosen, o.or_(o.ne(o.pages("p2m"), UNBACKED), o.pages("host.swap")))
        m.write_pages(held, o.cfg.poison_val)
        hint_dirty_log(o, held)
        discarded = o.and_(discarded, o.not_(held))
        o.set_pages("discarded", discarded)
    o.set_add("report_queue", chosen)
    o.set_pages("module.reporting", chosen if isolate else _none(o, chosen))


@_kernel("balloon_report_free_pages")
def balloon_report_free_pages(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_report_free_pages`: the module takes free pages
    off the free list (poisoned with page poisoning) and reports them, one report at a time."""
    _report_free_pages(o, poison=True, isolate=True)


@_fault("report_without_isolation")
def _report_without_isolation(o: Ops) -> None:
    """``balloon_report_free_pages`` that leaves the reported pages on the free list."""
    _report_free_pages(o, poison=True, isolate=False)


@_fault("report_skips_poison")
def _report_skips_poison(o: Ops) -> None:
    """``balloon_report_free_pages`` that never fills the pages with ``poison_val``."""
    _report_free_pages(o, poison=False, isolate=True)


def _discard_reported(o: Ops, drop_swap: bool) -> None:
    queue = o.pages("report_queue")
    o.require(o.any(queue))
    valid = o.and_(queue, o.not_(o.pages("ballooned")))
    if not _poisons(o):
        # With a non-zero poison_val the VMM keeps the pages the guest filled with poison
        # (QEMU skips the discard then); otherwise they are unmapped and scrubbed.
        o.unback(valid, by_balloon=False)
        if drop_swap:
            o.drop_swap(valid)
    o.set_pages("report_queue", _none(o, queue))
    o.set_add("discarded", valid)
    o.set_add("acked_report", queue)


@_kernel("vmm_discard_reported")
def vmm_discard_reported(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_discard_reported`: the VMM discards the reported
    pages (unmapped, scrubbed, host swap slots dropped) and returns the report."""
    _discard_reported(o, drop_swap=True)


@_fault("discard_keeps_swap_slot")
def _discard_keeps_swap_slot(o: Ops) -> None:
    """``vmm_discard_reported`` that forgets to drop the pages' host swap slots."""
    _discard_reported(o, drop_swap=False)


@_kernel("balloon_report_done")
def balloon_report_done(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_report_done`: the module takes the returned
    report; its pages go back on the guest's free list."""
    acked = o.pages("acked_report")
    o.require(o.any(acked))
    o.set_remove("module.reporting", acked)
    o.set_pages("acked_report", _none(o, acked))


# --------------------------------------------------------------------------
# The statistics queue (section 5.5.6.3)


def _report_stats(o: Ops, count_balloon: bool) -> None:
    free = guest_free_pages(o)
    if count_balloon:
        free = o.add(free, o.count(o.eq(o.pages("guest.ppn_use"), BALLOON)))
    o.require(o.ne(free, o.vm("stats_free")))
    o.set_vm("stats_free", o.minimum(free, o.cfg.guest_pages) if count_balloon else free)


@_kernel("balloon_report_stats")
def balloon_report_stats(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_report_stats`: the guest's free memory, read
    from its own state at the time of the report."""
    _report_stats(o, count_balloon=False)


@_fault("stats_count_balloon_as_free")
def _stats_count_balloon_as_free(o: Ops) -> None:
    """``balloon_report_stats`` that counts the balloon's pages as free memory."""
    _report_stats(o, count_balloon=True)


# --------------------------------------------------------------------------
# A hostile guest's report floods


def bound_flood(o: Ops, inflate: Value) -> Value:
    """``actions.rogue_report``'s bound on the queues, and where its report is queued.

    Without ``vmm_bounds_queues`` the model caps the flood (a guard). With it the VMM
    itself refuses a report that arrives on full queues (``actions.vmm_refuse_flood``): an
    inflate of a PPN up to one past the last is acknowledged as refused, anything else
    dropped; nothing is queued."""
    full = o.le(report_queue_bound(o.cfg), queued_ppns(o))
    if not o.cfg.vmm_bounds_queues:
        o.require(o.not_(full))
        return True
    ppn = o.arg("ppn")
    refused = o.and_(full, inflate, o.le(0, ppn), o.le(ppn, o.cfg.guest_pages))
    memory(o).set_add_ppn("acked_refused", ppn, refused)
    return o.not_(full)


@_fault("vmm_accepts_flood")
def _vmm_accepts_flood(o: Ops) -> None:
    """``rogue_report`` whose VMM queues every report, however many are waiting."""
    m = memory(o)
    inflate, deflate = m.arg_is("queue", "inflate"), m.arg_is("queue", "deflate")
    o.require(m.hostile())
    o.require(o.or_(inflate, deflate))
    m.queue_add_ppn("inflate_queue", o.arg("ppn"), inflate)
    m.queue_add_ppn("deflate_queue", o.arg("ppn"), deflate)


# --------------------------------------------------------------------------
# Properties: state forms (per VM) and step forms (one VM, a pre- and a post-state)


def reported_pages_not_reused(o: StateOps) -> Value:
    """A page on a free page report in flight (held by the module, on the queue, returned
    but not yet seen) is on the guest's free list."""
    held = o.or_(o.pages("module.reporting"), o.pages("report_queue"), o.pages("acked_report"))
    return o.all(o.implies(held, o.eq(o.pages("guest.ppn_use"), FREE)))


def reads_clean(o: StateOps) -> Value:
    """Page vector: the page reads back (from host swap, its MPN, or the zero page when it
    has neither) as zero, or as ``poison_val`` with page poisoning."""
    m = memory(o)
    token = o.where(o.swapped(), m.tokens("host.swap"), m.at_mpn("host.content", o.pages("p2m")))
    return o.or_(*[o.eq(token, t) for t in sorted(clean_tokens(o.cfg))])


def discarded_pages_read_clean(o: StateOps) -> Value:
    """A discarded page reads back as zero, or as ``poison_val`` with page poisoning."""
    return o.all(o.implies(o.pages("discarded"), reads_clean(o)))


REPORTING_PROPERTIES: dict[str, Callable[[StateOps], Value]] = {
    "reported_pages_not_reused": reported_pages_not_reused,
    "discarded_pages_read_clean": discarded_pages_read_clean,
}
"""The per-VM state form of each property of free page reporting, by the model's name."""


def stats_report_matches(pre: Ops, post: Ops) -> Value:
    """Step form of ``stats_match_guest`` for one honest VM's ``balloon_report_stats``: the
    free memory the report gives is the guest's own before it."""
    return pre.eq(post.vm("stats_free"), guest_free_pages(pre))


def queued_ppns(o: Ops) -> Value:
    """How many PPNs the VM's inflate and deflate queues hold together."""
    return o.add(o.queue_len("inflate_queue"), o.queue_len("deflate_queue"))


def flood_refused(pre: Ops, post: Ops) -> Value:
    """Step form of ``vmm_refuses_report_floods`` for one VM's ``rogue_report``: the queues
    grow only while they stay within :func:`~ballast.model.actions.report_queue_bound`."""
    before, after = queued_ppns(pre), queued_ppns(post)
    return pre.not_(pre.and_(pre.lt(before, after), pre.lt(report_queue_bound(pre.cfg), after)))


for _name in REPORTING_PROPERTIES:
    assert _name in INVARIANTS, _name
