"""Balloon units of several pages and the generic guest system written once over
:mod:`ballast.model.ops`.

With ``balloon_unit_pages`` above one (vmw_balloon's 2M commands, Hyper-V's 2 MiB units)
the module inflates and deflates whole units, aligned runs of that many PPNs, and the VMM
accepts whole units (:func:`ballast.model.actions.whole_units`). The action kernels
(:mod:`ballast.model.action_kernels`) take their whole-unit guards from the helpers here,
and the property ``balloon_units_whole`` is written here once, registered into
:data:`ballast.model.property_kernels.PROPERTY_KERNELS` like every feature's property. With
one page a unit every helper is a constant (the guard gains nothing, a count is its own).

In a generic guest system (``guest_system``) a guest's page is the machine's own page
(``actions.own_mpn``): the interpreters' ``touch`` backs it with that page, and the property
``guest_pages_are_machine_pages`` is written here.

With host pages of several balloon units shared by several VMs (the ``hugepages`` preset,
``actions.vmm_keeps_host_pages``) the VMM backs a page only with a free MPN of a host page
that backs no other VM's page (the interpreters' ``touch``, as ``actions._vm_free_mpn``),
and the host property ``host_page_backs_one_vm`` is written here
(:data:`GRANULAR_HOST_PROPERTIES`).

>>> sorted(GRANULAR_PROPERTIES)
['balloon_units_whole', 'guest_pages_are_machine_pages']
>>> sorted(GRANULAR_HOST_PROPERTIES)
['host_page_backs_one_vm']
"""

from __future__ import annotations

from typing import Callable

from ballast.model.actions import vmm_keeps_host_pages
from ballast.model.invariants import INVARIANTS
from ballast.model.ops import Ops, StateOps, Value
from ballast.model.state import UNBACKED

__all__ = ["GRANULAR_HOST_PROPERTIES", "GRANULAR_PROPERTIES", "balloon_units_whole",
           "guest_pages_are_machine_pages", "host_page_backs_one_vm", "in_whole_units",
           "target_in_units", "whole_units"]


def whole_units(o: Ops, mask: Value) -> Value:
    """VM truth value: the pages of ``mask`` are whole balloon units (``actions.whole_units``)."""
    if o.cfg.balloon_unit_pages == 1:
        return True
    return o.all(o.implies(mask, o.unit_whole(mask)))


def in_whole_units(o: Ops, n: Value, most: int) -> Value:
    """``n`` (a VM number between 0 and ``most``) rounded down to whole balloon units
    (``most - most % balloon_unit_pages`` in the model): a unit for each multiple of the
    unit's size that ``n`` reaches."""
    u = o.cfg.balloon_unit_pages
    if u == 1:
        return n
    out: Value = 0
    for k in range(u, most + 1, u):
        out = o.add(out, o.where(o.le(k, n), u, 0))
    return out


def target_in_units(o: Ops, pages: Value) -> Value:
    """VM truth value: a target of ``pages`` (between 0 and ``guest_pages``) is a number of
    whole balloon units (``host_set_target``'s guard)."""
    u = o.cfg.balloon_unit_pages
    if u == 1:
        return True
    return o.or_(*(o.eq(pages, k) for k in range(0, o.cfg.guest_pages + 1, u)))


def guest_pages_are_machine_pages(o: StateOps) -> Value:
    """In a generic guest system every backed page of the guest sits in its own machine page."""
    if not o.cfg.guest_system:
        return True
    p2m = o.pages("p2m")
    return o.all(o.implies(o.ne(p2m, UNBACKED), o.eq(p2m, o.own_mpns())))


def balloon_units_whole(o: StateOps) -> Value:
    """The VMM's ballooned set and the module's balloon are whole balloon units."""
    return o.and_(whole_units(o, o.pages("ballooned")),
                  whole_units(o, o.pages("module.balloon")))


GRANULAR_PROPERTIES: dict[str, Callable[[StateOps], Value]] = {
    "balloon_units_whole": balloon_units_whole,
    "guest_pages_are_machine_pages": guest_pages_are_machine_pages,
}
"""The per-VM state form of each property of these features, by the model's name."""


def host_page_backs_one_vm(o: StateOps) -> Value:
    """Where the VMM keeps host pages to one VM, no host page backs pages of two VMs."""
    if not vmm_keeps_host_pages(o.cfg):
        return True
    return o.all(o.not_(o.host_page_backs_two_vms()))


GRANULAR_HOST_PROPERTIES: dict[str, Callable[[StateOps], Value]] = {
    "host_page_backs_one_vm": host_page_backs_one_vm,
}
"""The host state form of each property of these features, by the model's name."""


for _name in (*GRANULAR_PROPERTIES, *GRANULAR_HOST_PROPERTIES):
    assert _name in INVARIANTS, _name
