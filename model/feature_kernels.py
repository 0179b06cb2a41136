"""Rogue processors, reports racing a reset, free page hinting and hibernation, written once
over :mod:`ballast.model.ops`.

Each kernel mirrors the step function of the same name in :mod:`ballast.model.actions` (the
readable reference), each fault kernel the seeded fault of :mod:`ballast.model.faults`, each
property kernel the check of :mod:`ballast.model.invariants`. The Z3 and NumPy interpreters
read them from the same tables as every other action's
(:data:`ballast.model.action_kernels.KERNELS`, ``FAULT_KERNELS``,
:data:`ballast.model.property_kernels.PROPERTY_KERNELS`), which take these in. Step forms are
truth values of one VM over its pre- and post-state (:data:`FEATURE_STEPS`), which each
backend evaluates on its own pair of states.

>>> sorted(FEATURE_KERNELS)[:3]
['balloon_freeze', 'balloon_hint_free_pages', 'balloon_hint_start']
>>> FEATURE_FAULT_KERNELS["vmm_trusts_guest_cpus"][0]
'rogue_cpu_online'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from ballast.model.actions import ACTIONS, HINT_DONE, HINT_STOP, Actor
from ballast.model.invariants import INVARIANTS
from ballast.model.kernel_registry import action_kernel, fault_kernel
from ballast.model.ops import Kernel, Ops, StateOps, Value, memory
from ballast.model.state import BALLOON

__all__ = ["FEATURE_FAULT_KERNELS", "FEATURE_KERNELS", "FEATURE_PROPERTIES", "FEATURE_STEPS",
           "StepKernel", "hinted_pages_not_lost",
           "cpus_within_target", "frozen_guard_applies", "guard_frozen", "hint_cycle_running",
           "hint_dirty_log", "hintable", "quiescent", "restore_agrees", "stale_not_applied"]

FEATURE_KERNELS: dict[str, Kernel] = {}
"""The actions of these features written once, by the model's name."""

FEATURE_FAULT_KERNELS: dict[str, tuple[str, Kernel]] = {}
"""Their seeded faults: fault name -> (the action it replaces, its kernel)."""


@dataclass(frozen=True)
class StepKernel:
    """The step form of a property written once: ``check(pre, post)``, a truth value of one
    VM over its pre- and post-state operations, required of the VM that takes one of
    ``actions`` (the actions whose steps can break it), only of an honest one with
    ``honest_only``."""

    check: Callable[[Ops, Ops], Value]
    actions: tuple[str, ...]
    honest_only: bool = False


FEATURE_STEPS: dict[str, StepKernel] = {}
"""The step forms of these features' properties, by the model's name."""


_kernel = action_kernel(FEATURE_KERNELS)
_fault = fault_kernel(FEATURE_FAULT_KERNELS)


# --------------------------------------------------------------------------
# Rogue processors: the VMM enforces the host's CPU target (``vmm_enforces_cpu_target``)


def _rogue_cpu_park(o: Ops, stop: bool) -> None:
    online, which = o.vcpus("guest.vcpus"), o.arg_vcpu("vcpu")
    o.require(o.any(o.and_(which, online)))
    if stop:
        o.set_vcpus("guest.vcpus", o.and_(online, o.not_(which)))
    o.set_vcpus("parked_vcpus", o.or_(o.vcpus("parked_vcpus"), which))


@_kernel("rogue_cpu_park")
def rogue_cpu_park(o: Ops) -> None:
    """:func:`ballast.model.actions.rogue_cpu_park`: the VMM stops and parks a reported vCPU
    that is running; a report of any other vCPU is no step."""
    _rogue_cpu_park(o, stop=True)


@_fault("vmm_trusts_park_report")
def _vmm_trusts_park_report(o: Ops) -> None:
    """``rogue_cpu_park`` whose VMM counts the vCPU parked and leaves it running."""
    _rogue_cpu_park(o, stop=False)


def _rogue_cpu_online(o: Ops, within_target: bool) -> None:
    online, which = o.vcpus("guest.vcpus"), o.arg_vcpu("vcpu")
    o.require(o.any(which))
    o.require(o.not_(o.any(o.and_(which, online))))
    if within_target:
        o.require(o.lt(o.count(online), o.vm("cpu_target")))
    parked = o.vcpus("parked_vcpus")
    # ``actions.vcpu_granted``: a parked vCPU runs on the processor the VM still holds.
    o.claim("idle_pcpus", o.where(o.any(o.and_(which, parked)), 0, 1))
    o.set_vcpus("guest.vcpus", o.or_(online, which))
    o.set_vcpus("parked_vcpus", o.and_(parked, o.not_(which)))


@_kernel("rogue_cpu_online")
def rogue_cpu_online(o: Ops) -> None:
    """:func:`ballast.model.actions.rogue_cpu_online`: any offline vCPU, granted only within
    the host's CPU target."""
    _rogue_cpu_online(o, within_target=True)


@_fault("vmm_trusts_guest_cpus")
def _vmm_trusts_guest_cpus(o: Ops) -> None:
    """``rogue_cpu_online`` whose VMM grants a processor whatever the host's CPU target."""
    _rogue_cpu_online(o, within_target=False)


@_kernel("vmm_enforce_cpu_target")
def vmm_enforce_cpu_target(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_enforce_cpu_target`: the VMM stops the vCPUs beyond
    the host's CPU target (the highest-numbered ones) and gives their processors back."""
    online, target = o.vcpus("guest.vcpus"), o.vm("cpu_target")
    running = o.count(online)
    o.require(o.lt(target, running))
    o.set_vcpus("guest.vcpus", o.lowest(online, target))
    o.give("idle_pcpus", o.sub(running, target))


def cpus_within_target(pre: Ops, post: Ops) -> Value:
    """Step form of ``vcpus_within_cpu_target`` for one VM: its running vCPUs grow only up
    to the host's CPU target."""
    before, after = pre.count(pre.vcpus("guest.vcpus")), post.count(post.vcpus("guest.vcpus"))
    return pre.not_(pre.and_(pre.lt(before, after), pre.lt(post.vm("cpu_target"), after)))


FEATURE_STEPS["vcpus_within_cpu_target"] = StepKernel(
    cpus_within_target, ("balloon_cpu_online", "rogue_cpu_online", "balloon_cpu_offline",
                         "rogue_cpu_park", "vmm_enforce_cpu_target"))
"""The model checks every VM after every step; a step changes the vCPUs of the VM that
takes it only, and only these actions' kernels write ``guest.vcpus``."""


# --------------------------------------------------------------------------
# Reports in flight across a guest reset (``reset_races_reports``)


def _stale_queued(o: Ops) -> Value:
    """How many reports of the guest's previous incarnation are in flight."""
    return o.add(o.queue_len("stale_inflate"), o.queue_len("stale_deflate"))


def _drop_stale(o: Ops) -> None:
    o.queue_clear("stale_inflate")
    o.queue_clear("stale_deflate")


@_kernel("vmm_drop_stale_reports")
def vmm_drop_stale_reports(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_drop_stale_reports`: the VMM drops the reports of
    the guest's previous incarnation unapplied."""
    o.require(o.lt(0, _stale_queued(o)))
    _drop_stale(o)


@_fault("vmm_applies_stale_reports")
def _vmm_applies_stale_reports(o: Ops) -> None:
    """``vmm_drop_stale_reports`` whose VMM applies a stale inflate report to the new
    incarnation: it balloons the reported pages in range that are not ballooned."""
    o.require(o.lt(0, _stale_queued(o)))
    ballooned = o.pages("ballooned")
    taken = o.and_(o.queued("stale_inflate"), o.not_(ballooned))
    o.unback(taken, by_balloon=True)
    o.set_pages("ballooned", o.or_(ballooned, taken))
    o.set_add("acked_inflate", taken)
    _drop_stale(o)


_APPLIED = ("p2m", "ballooned", "acked_inflate", "acked_refused", "acked_deflate")
"""The VM's page fields a report applied to it would change (with its queues)."""


def stale_not_applied(pre: Ops, post: Ops) -> Value:
    """Step form of ``stale_reports_not_applied`` for one VM: a step that takes reports of
    the previous incarnation off the stale queues leaves the new incarnation's machine
    pages, ballooned set, queues and acknowledgements as they were."""
    took = pre.lt(_stale_queued(post), _stale_queued(pre))
    same = [pre.all(pre.eq(pre.pages(f), post.pages(f))) for f in _APPLIED]
    same.append(pre.eq(pre.beyond("acked_refused"), post.beyond("acked_refused")))
    for q in ("inflate_queue", "deflate_queue"):
        same += [pre.all(pre.eq(pre.queued(q), post.queued(q))),
                 pre.eq(pre.queue_len(q), post.queue_len(q)),
                 pre.eq(pre.beyond(q), post.beyond(q))]
    return pre.implies(took, pre.and_(*same))


FEATURE_STEPS["stale_reports_not_applied"] = StepKernel(
    stale_not_applied, ("vmm_drop_stale_reports",))
"""The model checks every step but a reset (which replaces the stale queues); only the
VMM's taking of stale reports shrinks them otherwise."""


# --------------------------------------------------------------------------
# Hibernation (``hibernation``): Linux virtballoon_freeze / virtballoon_restore


def frozen_guard_applies(name: str) -> bool:
    """Whether action ``name`` takes no step while its guest is hibernated: every action of
    an actor inside the guest but the restore (``actions.apply``)."""
    return (ACTIONS[name].actor in (Actor.GUEST, Actor.MODULE, Actor.ROGUE)
            and name != "balloon_restore")


def _awake(kernel: Kernel) -> Kernel:
    """``kernel`` with the guard every guest-side action has under ``hibernation``: the
    guest is not hibernated."""
    @functools.wraps(kernel)
    def guarded(o: Ops) -> None:
        if o.cfg.hibernation:
            o.require(o.eq(o.vm("module.frozen"), 0))
        kernel(o)
    return guarded


def guard_frozen(kernels: dict[str, Kernel], faults: dict[str, tuple[str, Kernel]]) -> None:
    """Give every guest-side action's kernel (and its faults') the hibernated guest's guard,
    in place: the model's one guard of them in ``actions.apply``."""
    for name, kernel in list(kernels.items()):
        if frozen_guard_applies(name):
            kernels[name] = _awake(kernel)
    for fault, (action, kernel) in list(faults.items()):
        if frozen_guard_applies(action):
            faults[fault] = (action, _awake(kernel))


def quiescent(o: Ops) -> Value:
    """``actions.quiescent``: no report of the VM is in flight."""
    sets = ("acked_inflate", "acked_refused", "acked_deflate", "report_queue", "acked_report",
            "module.reporting")
    queues = [o.lt(0, o.queue_len(q)) for q in ("inflate_queue", "deflate_queue")]
    return o.not_(o.or_(*queues, *[o.any(o.pages(f)) for f in sets],
                        o.beyond("acked_refused")))


@_kernel("balloon_freeze")
def balloon_freeze(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_freeze`: the driver freezes with no report in
    flight, its balloon kept."""
    o.require(o.eq(o.vm("module.frozen"), 0))
    o.require(quiescent(o))
    o.set_vm("module.frozen", 1)


def _restore(o: Ops, keep_balloon: bool) -> None:
    o.require(o.ne(o.vm("module.frozen"), 0))
    o.set_vm("module.frozen", 0)
    balloon = o.pages("module.balloon")
    if keep_balloon:
        o.set_vm("module.actual", o.count(balloon))
    else:
        o.set_pages("module.balloon", o.and_(balloon, False))
        o.set_vm("module.actual", 0)


@_kernel("balloon_restore")
def balloon_restore(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_restore`: the driver comes back with its balloon
    and tells the device its size again."""
    _restore(o, keep_balloon=True)


@_fault("restore_forgets_balloon")
def _restore_forgets_balloon(o: Ops) -> None:
    """``balloon_restore`` whose driver comes back with no balloon and ``actual = 0``."""
    _restore(o, keep_balloon=False)


def restore_agrees(pre: Ops, post: Ops) -> Value:
    """Step form of ``balloon_agrees_after_restore`` for one honest VM's restore: the
    module's balloon is the VMM's ballooned set, pinned, and ``actual`` is its size."""
    balloon = post.pages("module.balloon")
    return pre.and_(pre.all(pre.eq(balloon, post.pages("ballooned"))),
                    pre.eq(post.vm("module.actual"), post.count(balloon)),
                    pre.all(pre.implies(balloon, pre.eq(post.pages("guest.ppn_use"), BALLOON))))


FEATURE_STEPS["balloon_agrees_after_restore"] = StepKernel(
    restore_agrees, ("balloon_restore",), honest_only=True)


# --------------------------------------------------------------------------
# Free page hinting (virtio 1.x section 5.5.6.5, ``free_page_hint``)

_HINT_IDS = (2, 3)
"""``actions._HINT_IDS``: the two alternating ids of hint cycles (0 is STOP, 1 DONE)."""


def hint_cycle_running(o: Ops) -> Value:
    """``actions.hint_cycle_running``: the device shows the id of a hint cycle."""
    cmd = o.vm("hint_cmd_id")
    return o.or_(*[o.eq(cmd, i) for i in _HINT_IDS])


def hint_dirty_log(o: Ops, written: Value) -> None:
    """``actions.write_page``: a hinted page the guest writes is marked again by the dirty
    log: the migration must send it."""
    if not o.cfg.free_page_hint:
        return
    hinted = o.pages("hinted")
    o.set_add("hint_rewritten", o.and_(written, hinted))
    o.set_pages("hinted", o.and_(hinted, o.not_(written)))


def _no_hints(o: Ops) -> None:
    none = o.and_(o.pages("hinted"), False)
    o.set_pages("hinted", none)
    o.set_pages("hint_rewritten", none)


@_kernel("vmm_request_hints")
def vmm_request_hints(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_request_hints`: a new command id, one the driver has
    not read last."""
    o.require(o.not_(hint_cycle_running(o)))
    first, second = _HINT_IDS
    o.set_vm("hint_cmd_id", o.where(o.eq(o.vm("module.hinting_for"), first), second, first))
    _no_hints(o)


@_kernel("vmm_stop_hints")
def vmm_stop_hints(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_stop_hints`: STOP or DONE ends the cycle."""
    m = memory(o)
    stop, done = m.arg_is("command", "stop"), m.arg_is("command", "done")
    o.require(o.or_(stop, done))
    o.require(hint_cycle_running(o))
    o.set_vm("hint_cmd_id", o.where(stop, HINT_STOP, HINT_DONE))
    _no_hints(o)


@_kernel("balloon_hint_start")
def balloon_hint_start(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_hint_start`: the module reads the new id."""
    cmd = o.vm("hint_cmd_id")
    o.require(o.and_(hint_cycle_running(o), o.ne(o.vm("module.hinting_for"), cmd)))
    o.set_vm("module.hinting_for", cmd)


def hintable(o: Ops) -> Value:
    """``actions._hintable``: free PPNs the module may hint (on the allocator's free list,
    not ballooned); what the numeric workload draws a hint from."""
    from ballast.model.reporting_kernels import reportable
    return reportable(o)


@_kernel("balloon_hint_free_pages")
def balloon_hint_free_pages(o: Ops) -> None:
    """:func:`ballast.model.actions.balloon_hint_free_pages`: free pages hinted with the id
    the module read; the device takes hints of the cycle under way only."""
    chosen, n = o.arg_pages("ppns"), o.arg_size("ppns")
    tag = o.vm("module.hinting_for")
    o.require(o.or_(*[o.eq(tag, i) for i in _HINT_IDS]))
    o.require(o.and_(o.arg_distinct("ppns"), o.not_(o.arg_beyond("ppns")), o.le(1, n),
                     o.le(n, o.cfg.batch)))
    o.require(o.all(o.implies(chosen, hintable(o))))
    taken = o.and_(chosen, o.eq(tag, o.vm("hint_cmd_id")))
    o.set_add("hinted", taken)
    o.set_remove("hint_rewritten", taken)


def _skip_hinted(o: Ops, rewritten_too: bool) -> None:
    hinted = o.pages("hinted")
    skipped = o.or_(hinted, o.pages("hint_rewritten")) if rewritten_too else hinted
    o.require(hint_cycle_running(o))
    o.require(o.any(skipped))
    # ``actions.skip_pages``: unmapped and scrubbed, lowest first; host swap slots dropped.
    o.unback(skipped, by_balloon=False)
    o.drop_swap(skipped)
    o.set_pages("hinted", o.and_(hinted, False))


@_kernel("vmm_skip_hinted")
def vmm_skip_hinted(o: Ops) -> None:
    """:func:`ballast.model.actions.vmm_skip_hinted`: the migration skips the pages hinted
    in this cycle and not written since."""
    _skip_hinted(o, rewritten_too=False)


@_fault("hint_skips_rewritten_page")
def _hint_skips_rewritten_page(o: Ops) -> None:
    """``vmm_skip_hinted`` that ignores the dirty log: it skips the rewritten pages too."""
    _skip_hinted(o, rewritten_too=True)


def hinted_pages_not_lost(o: StateOps) -> Value:
    """A page the migration may still skip as hinted holds no process page, and a hinted
    page written since holds what the guest wrote (through ``p2m`` to the MPN's contents,
    or its host swap token)."""
    m = memory(o)
    use = o.pages("guest.ppn_use")
    token = m.at_mpn("host.content", o.pages("p2m"), otherwise=m.tokens("host.swap"))
    return o.and_(o.all(o.implies(o.pages("hinted"), o.lt(use, 0))),
                  o.all(o.implies(o.pages("hint_rewritten"),
                                  o.matches_vpn(token, o.vpns("guest.expected"), use))))


FEATURE_PROPERTIES: dict[str, Callable[[StateOps], Value]] = {
    "hinted_pages_not_lost": hinted_pages_not_lost,
}
"""The per-VM state form of each property of these features, by the model's name."""


for _name in [*FEATURE_STEPS, *FEATURE_PROPERTIES]:
    assert _name in INVARIANTS, _name
