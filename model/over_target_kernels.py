"""The VMM paging out a VM over its target, and the starvation property, written once over
:mod:`ballast.model.ops` (``vmm_reclaims_over_target``, the ``hostile`` preset).

Each kernel mirrors the function of the same name in :mod:`ballast.model.actions` (the
readable reference), the fault kernel the seeded fault of :mod:`ballast.model.faults`, the
step form the check of :mod:`ballast.model.invariants`. The Z3 and NumPy interpreters read
them from the same tables as every other action's
(:data:`ballast.model.action_kernels.KERNELS`, ``FAULT_KERNELS``,
:data:`ballast.model.property_kernels.STEP_KERNELS`), which take these in.

Which page the VMM pages out is its own choice: the kernel admits any backed, unshared page
of the VM over its target (:func:`over_target_pages`, the argument's ``choices`` in
:mod:`ballast.model.arguments`), as the model's candidates do.

>>> sorted(OVER_TARGET_KERNELS)
['vmm_swap_over_target']
>>> OVER_TARGET_FAULT_KERNELS["vmm_swaps_honest_page"][0]
'vmm_swap_over_target'
"""

from __future__ import annotations

from ballast.model.invariants import INVARIANTS
from ballast.model.kernel_registry import action_kernel, fault_kernel
from ballast.model.ops import Kernel, Ops, StateOps, Value, memory
from ballast.model.state import UNBACKED

__all__ = ["OVER_TARGET_FAULT_KERNELS", "OVER_TARGET_KERNELS", "held_pages",
           "honest_memory_kept", "over_target", "over_target_pages", "page_out_to_host_swap"]

OVER_TARGET_KERNELS: dict[str, Kernel] = {}
"""The actions of this feature written once, by the model's name."""

OVER_TARGET_FAULT_KERNELS: dict[str, tuple[str, Kernel]] = {}
"""Its seeded faults: fault name -> (the action it replaces, its kernel)."""


_kernel = action_kernel(OVER_TARGET_KERNELS)
_fault = fault_kernel(OVER_TARGET_FAULT_KERNELS)


def page_out_to_host_swap(o: Ops, at: Value, keep_data: bool = True) -> None:
    """``actions.page_out_to_host_swap`` of the one-hot page ``at``: it has an MPN that is
    not shared, a host swap slot is free; the page's contents go to the slot (zeros without
    ``keep_data``, a seeded fault of ``host_swap_out``) and its MPN back to the free pool."""
    m = memory(o)
    mpn = m.pick(o.pages("p2m"), at)  # the page's MPN: read once, not the VM's every MPN
    o.require(o.and_(o.any(at), o.ne(mpn, UNBACKED), o.not_(m.at_mpn("host.cow", mpn))))
    o.claim("host.swap_room", 1)
    m.set_tokens("host.swap", at, m.at_mpn("host.content", mpn) if keep_data else 0)
    o.unback(at, by_balloon=False)


def held_pages(o: Ops) -> Value:
    """``actions.held_pages`` as a page vector: the VM's pages backed by an MPN of their own
    (not shared copy-on-write: a shared page costs the host one MPN whoever drops out)."""
    mpn = o.pages("p2m")
    return o.and_(o.ne(mpn, UNBACKED), o.not_(memory(o).at_mpn("host.cow", mpn)))


def over_target(o: Ops, held: Value) -> Value:
    """``actions.over_target > 0``: the VM holds more machine pages (``held``, from
    :func:`held_pages`) than the host allows it (its guest pages less its target)."""
    return o.lt(o.sub(o.cfg.guest_pages, o.vm("target")), o.count(held))


def over_target_pages(o: Ops) -> Value:
    """The pages the VMM may page out of a VM over its target: every page it holds (none
    when it is within its target); what the numeric workload draws from."""
    held = held_pages(o)
    return o.and_(held, over_target(o, held))


@_kernel("vmm_swap_over_target")
def vmm_swap_over_target(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_swap_over_target`: the VMM pages out to host swap a
    page of its choice of a VM that holds more machine pages than the host allows it."""
    o.require(over_target(o, held_pages(o)))
    page_out_to_host_swap(o, memory(o).arg_page("ppn"))


@_fault("vmm_swaps_honest_page")
def _vmm_swaps_honest_page(o: Ops) -> None:
    """``vmm_swap_over_target`` whose VMM, pressed by a VM over its target, pages out the
    oldest page on the host (the lowest MPN behind an unshared guest page), whichever VM's
    it is. A VM over its target holds such a page, so one is always there."""
    o.require(over_target(o, held_pages(o)))
    o.claim("host.swap_room", 1)
    memory(o).swap_out_oldest()


def honest_memory_kept(pre: StateOps, post: StateOps) -> Value:
    """Step form of ``honest_memory_not_taken`` for one honest VM other than the one the
    step is taken for: every page of it that was backed is still backed and reads the
    same (its MPN's contents before and after)."""
    before, after = pre.pages("p2m"), post.pages("p2m")
    read_before = memory(pre).at_mpn("host.content", before)
    read_after = memory(post).at_mpn("host.content", after)
    kept = pre.and_(pre.ne(after, UNBACKED), pre.eq(read_before, read_after))
    return pre.all(pre.implies(pre.ne(before, UNBACKED), kept))


assert "honest_memory_not_taken" in INVARIANTS
