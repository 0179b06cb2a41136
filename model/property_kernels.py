"""The model's safety properties written once over :mod:`ballast.model.ops`.

Each kernel says when the property of the same name in
:data:`ballast.model.invariants.INVARIANTS` (the readable reference, which also
words the messages) holds in one state, as a truth value the backends compute
in their own terms: the Z3 interpreter (:mod:`ballast.proofs.interpret`) makes it
a formula over a symbolic state, the NumPy interpreter
(:mod:`ballast.numeric.interpret`) a mask of the VMs (or the systems) that break
it. A property has up to two parts, and holds when both do:

* ``host``: one truth value of the whole state (machine pages, processors);
* ``each_vm``: a truth value of one VM, required of every VM the property covers
  (:meth:`~ballast.model.invariants.Property.checked_vms`: every VM for a ``host``
  property, the VMs that follow the protocol for a ``guest`` one).

Kernels only read: the reads over one VM are those of :class:`~ballast.model.ops.Ops`,
the reads over the host those of :class:`~ballast.model.ops.StateOps`.

The step form of a property (:data:`STEP_KERNELS`) is a truth value of one VM over two
interpretations of the operations, the pre-state's and the post-state's, with the steps it
constrains (a predicate of the action's :class:`~ballast.model.actions.ActionSpec`) and the
VMs it covers: the VM that acts, every VM, or every VM but the one that acts. A step form
that covers VMs other than the actor holds of a VM the step left alone (its records and the
machine pages behind its pages as they were), so a backend that knows which VMs a step
changed need not evaluate it on the others.

>>> sorted(PROPERTY_KERNELS)[:2]
['balloon_accounting_exact', 'balloon_units_whole']
>>> PROPERTY_KERNELS["no_double_mapping"].each_vm is None
True
>>> STEP_KERNELS["isolation"].covers, STEP_KERNELS["isolation"].vms(Config(vms=3), 1)
('others', [0, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ballast.model.actions import ActionSpec
from ballast.model.config import Config
from ballast.model.invariants import (INVARIANTS, acts_for_a_vm, picks_no_guest_page,
                                      taken_by_a_guest)
from ballast.model.ops import StateOps, Value, memory
from ballast.model.feature_kernels import FEATURE_PROPERTIES, FEATURE_STEPS
from ballast.model.over_target_kernels import honest_memory_kept
from ballast.model.granular_kernels import GRANULAR_HOST_PROPERTIES, GRANULAR_PROPERTIES
from ballast.model.reporting_kernels import (REPORTING_PROPERTIES, flood_refused,
                                             stats_report_matches)
from ballast.model.state import BALLOON, UNBACKED

__all__ = ["PROPERTY_KERNELS", "PropertyKernel", "STEP_KERNELS", "StateCheck", "StepCheck",
           "StepKernel", "guest_chooses_step", "isolation_step"]

StateCheck = Callable[[StateOps], Value]
"""A truth value of one state (``host``) or of one VM of it (``each_vm``)."""


@dataclass(frozen=True)
class PropertyKernel:
    """The state form of one property written once: a host part, a per-VM part, or both."""

    name: str
    """The property's name in :data:`~ballast.model.invariants.INVARIANTS`."""
    host: StateCheck | None = None
    """Holds for the whole state."""
    each_vm: StateCheck | None = None
    """Holds for one VM (the ops read that VM); required of every VM the property covers."""


PROPERTY_KERNELS: dict[str, PropertyKernel] = {}
"""The state form of every property written once, by the model's name."""


def _property(name: str, host: StateCheck | None = None,
              each_vm: StateCheck | None = None) -> None:
    assert name in INVARIANTS and INVARIANTS[name].state is not None, name
    PROPERTY_KERNELS[name] = PropertyKernel(name, host, each_vm)


def _exactly_one(o: StateOps, a: Value, b: Value, c: Value) -> Value:
    """Elementwise: exactly one of three truth values holds."""
    return o.and_(o.or_(a, b, c), o.not_(o.and_(a, b)), o.not_(o.and_(a, c)),
                  o.not_(o.and_(b, c)))


def memory_conservation_host(o: StateOps) -> Value:
    """Every MPN is exactly one of free, in host use, backing guest pages."""
    return o.all(_exactly_one(o, o.mpns("free"), o.mpns("in_use"), o.mapped()))


def memory_conservation_vm(o: StateOps) -> Value:
    """The VM's pages are backed by MPNs that exist (or by none)."""
    return o.all(o.lt(o.pages("p2m"), o.cfg.machine_pages))


_property("memory_conservation", host=memory_conservation_host,
          each_vm=memory_conservation_vm)


def no_double_mapping(o: StateOps) -> Value:
    """An MPN behind two guest pages is copy-on-write; a copy-on-write MPN backs a page."""
    cow = o.mpns("cow")
    return o.all(o.and_(o.implies(o.shared(across_vms=False), cow),
                        o.implies(cow, o.mapped())))


_property("no_double_mapping", host=no_double_mapping)


def guest_chooses_pages(o: StateOps) -> Value:
    """(State form) every ballooned PPN is pinned for the balloon or reported for deflation."""
    return o.all(o.implies(o.pages("ballooned"),
                           o.or_(o.eq(o.pages("guest.ppn_use"), BALLOON),
                                 o.queued("deflate_queue"))))


_property("guest_chooses_pages", each_vm=guest_chooses_pages)


def ballooned_pages_unbacked(o: StateOps) -> Value:
    """A ballooned PPN has no MPN and no host swap slot."""
    return o.all(o.implies(o.pages("ballooned"),
                           o.and_(o.eq(o.pages("p2m"), UNBACKED), o.not_(o.swapped()))))


_property("ballooned_pages_unbacked", each_vm=ballooned_pages_unbacked)


def balloon_accounting_exact(o: StateOps) -> Value:
    """The module's balloon is within the VMM's ballooned set; sizes agree once quiet."""
    balloon, ballooned = o.pages("module.balloon"), o.pages("ballooned")
    reports = [o.queued("inflate_queue"), o.queued("deflate_queue"), o.pages("acked_inflate"),
               o.pages("acked_deflate"), o.pages("acked_refused")]
    quiet = o.and_(*[o.not_(o.any(r)) for r in reports],
                   *[o.not_(o.beyond(f))
                     for f in ("inflate_queue", "deflate_queue", "acked_refused")])
    size = o.count(balloon)
    return o.and_(o.all(o.implies(balloon, ballooned)),
                  o.implies(quiet, o.and_(o.eq(o.vm("module.actual"), size),
                                          o.eq(size, o.count(ballooned)))))


_property("balloon_accounting_exact", each_vm=balloon_accounting_exact)


def module_pages_pinned(o: StateOps) -> Value:
    """A page the module holds is held once (balloon or refused) and pinned for the balloon."""
    balloon, refused = o.pages("module.balloon"), o.pages("module.refused")
    return o.all(o.and_(o.not_(o.and_(balloon, refused)),
                        o.implies(o.or_(balloon, refused),
                                  o.eq(o.pages("guest.ppn_use"), BALLOON))))


_property("module_pages_pinned", each_vm=module_pages_pinned)


def isolation(o: StateOps) -> Value:
    """(State form) no MPN writable by two VMs; free MPNs hold the zero page."""
    return o.all(o.and_(o.implies(o.shared(across_vms=True), o.mpns("cow")),
                        o.implies(o.mpns("free"), o.eq(o.mpns("content"), 0))))


_property("isolation", host=isolation)


def migration_loses_nothing(o: StateOps) -> Value:
    """Every ballooned PPN is the module's: in its balloon, acknowledged to it, or reported
    for deflation."""
    return o.all(o.implies(o.pages("ballooned"),
                           o.or_(o.pages("module.balloon"), o.pages("acked_inflate"),
                                 o.queued("deflate_queue"))))


_property("migration_loses_nothing", each_vm=migration_loses_nothing)


def guest_data_intact(o: StateOps) -> Value:
    """Each resident VPN's PPN holds its expected token (through ``p2m`` to the MPN's
    contents, or in host swap); a VPN on the guest's disk is not resident and its token
    there is the expected one; a VPN holding data is resident or on disk; no VPN is
    resident twice; the disk holds no more than its slots."""
    m = memory(o)
    use = o.pages("guest.ppn_use")
    token = m.at_mpn("host.content", o.pages("p2m"), otherwise=m.tokens("host.swap"))
    expected, disk = o.vpns("guest.expected"), o.vpns("guest.disk")
    resident = o.held(once=False)
    each_vpn = o.and_(o.implies(disk, o.and_(o.not_(resident),
                                             o.eq(m.tokens("guest.disk"), expected))),
                      o.implies(o.ne(expected, 0), o.or_(resident, disk)),
                      o.held(once=True))
    return o.and_(o.all(o.matches_vpn(token, expected, use)), o.all(each_vpn),
                  o.le(o.count(disk), o.cfg.guest_disk_slots))


_property("guest_data_intact", each_vm=guest_data_intact)


def host_pages_whole(o: StateOps) -> Value:
    """The host uses every balloon unit of a host page or none."""
    used = o.mpns("in_use")
    return o.all(o.or_(o.host_page_all(used), o.not_(o.host_page_any(used))))


_property("host_pages_whole", host=host_pages_whole)


def processor_conservation_host(o: StateOps) -> Value:
    """Idle, online and parked processors add up to the host's."""
    if not o.cfg.processors:
        return True
    idle = o.host("idle_pcpus")
    total = o.add(idle, o.add(o.vms_count("guest.vcpus"), o.vms_count("parked_vcpus")))
    return o.and_(o.eq(total, o.cfg.pcpus), o.le(0, idle))


def processor_conservation_vm(o: StateOps) -> Value:
    """No vCPU of the VM is both online and parked."""
    if not o.cfg.processors:
        return True
    return o.not_(o.any(o.and_(o.vcpus("guest.vcpus"), o.vcpus("parked_vcpus"))))


_property("processor_conservation", host=processor_conservation_host,
          each_vm=processor_conservation_vm)


# Free page reporting and page poisoning: written in ballast.model.reporting_kernels.
for _name, _check in REPORTING_PROPERTIES.items():
    _property(_name, each_vm=_check)

# Free page hinting: written in ballast.model.feature_kernels.
for _name, _check in FEATURE_PROPERTIES.items():
    _property(_name, each_vm=_check)

# Balloon units of several pages: written in ballast.model.granular_kernels.
for _name, _check in GRANULAR_PROPERTIES.items():
    _property(_name, each_vm=_check)
for _name, _check in GRANULAR_HOST_PROPERTIES.items():
    _property(_name, host=_check)

# --------------------------------------------------------------------------
# Step forms: a truth value of one VM over its pre-state and its post-state.

StepCheck = Callable[[StateOps, StateOps], Value]
"""A truth value of one VM over the pre-state's operations and the post-state's."""

COVERS = ("actor", "every", "others")
"""The VMs a step form covers: the VM that acts, every VM, every VM but the one that acts."""


@dataclass(frozen=True)
class StepKernel:
    """The step form of one property written once."""

    name: str
    """The property's name in :data:`~ballast.model.invariants.INVARIANTS`."""
    check: StepCheck
    """Holds for one VM over ``(pre, post)``."""
    constrains: Callable[[ActionSpec], bool]
    """Whether the steps of an action are constrained at all."""
    covers: str
    """Which VMs (:data:`COVERS`), relative to the step's ``vm`` argument."""
    honest_only: bool = False
    """Only VMs whose guest follows the protocol."""

    def vms(self, cfg: Config, actor: object) -> list[int]:
        """The VMs the step form covers for a step whose ``vm`` argument is ``actor`` (not a
        VM number for the host-page actions: then none acts)."""
        every = [v for v in range(cfg.vms) if not (self.honest_only and v in cfg.hostile_vms)]
        if self.covers == "every":
            return every
        acts = actor if isinstance(actor, int) and not isinstance(actor, bool) else None
        if self.covers == "actor":
            return [v for v in every if v == acts]
        return [v for v in every if v != acts]


STEP_KERNELS: dict[str, StepKernel] = {}
"""The step form of every property written once, by the model's name."""


def _step(name: str, check: StepCheck, constrains: Callable[[ActionSpec], bool], covers: str,
          honest_only: bool = False) -> None:
    assert name in INVARIANTS and INVARIANTS[name].step is not None, name
    assert covers in COVERS, covers
    STEP_KERNELS[name] = StepKernel(name, check, constrains, covers, honest_only)


def guest_chooses_step(pre: StateOps, post: StateOps) -> Value:
    """(Step form) a PPN the step balloons was on the VM's inflate queue before it."""
    taken = pre.and_(post.pages("ballooned"), pre.not_(pre.pages("ballooned")))
    return pre.all(pre.implies(taken, pre.queued("inflate_queue")))


_step("guest_chooses_pages", guest_chooses_step, picks_no_guest_page, "every")


def isolation_step(pre: StateOps, post: StateOps) -> Value:
    """(Step form, for a VM other than the one that acts) the VM's records are as they were,
    and so is every machine page behind its pages."""
    p2m = pre.pages("p2m")
    before = memory(pre).at_mpn("host.content", p2m)
    after = memory(post).at_mpn("host.content", p2m)
    return pre.and_(post.unchanged(pre), pre.all(pre.eq(before, after)))


_step("isolation", isolation_step, taken_by_a_guest, "others")

# Free page reporting and the statistics queue: written in ballast.model.reporting_kernels.
_step("stats_match_guest", stats_report_matches,
      lambda spec: spec.name == "balloon_report_stats", "actor", honest_only=True)
_step("vmm_refuses_report_floods", flood_refused,
      lambda spec: spec.name == "rogue_report", "actor")

# Rogue processors, reports racing a reset and hibernation: written in
# ballast.model.feature_kernels, each required of the VM that takes one of its actions.
def _taken_by(actions: tuple[str, ...]) -> Callable[[ActionSpec], bool]:
    """Whether an action is one of ``actions`` (the actions whose steps can break a form)."""
    return lambda spec: spec.name in actions


for _name, _feature in FEATURE_STEPS.items():
    _step(_name, _feature.check, _taken_by(_feature.actions), "actor", _feature.honest_only)

# The starvation property of the VMM paging out a VM over its target: written in
# ballast.model.over_target_kernels, required of every honest VM but the one a step is for.
_step("honest_memory_not_taken", honest_memory_kept, acts_for_a_vm, "others", honest_only=True)
