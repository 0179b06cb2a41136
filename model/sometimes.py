""""Sometimes" properties: scenarios that must be reachable, so that no check is vacuous.

A safety property that holds because the model never gets anywhere interesting
proves nothing. Each scenario here is a predicate over one step
``(config, pre, action, post)``; a checker reports every scenario it never saw.

>>> sorted(SOMETIMES)[:2]
['balloon_pops', 'balloon_reaches_target']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ballast.model.actions import (Action, host_page_units, inflate_limit, report_queue_bound,
                                   under_pressure, vmm_keeps_host_pages, within_allowance)
from ballast.model.config import Config
from ballast.model.state import FREE, UNBACKED, State

__all__ = ["SOMETIMES", "Scenario"]

Witness = Callable[[Config, State, Action, State], bool]


@dataclass(frozen=True)
class Scenario:
    """A behaviour the model must be able to show."""

    name: str
    doc: str
    witness: Witness
    feature: Callable[[Config], bool] = lambda cfg: True


SOMETIMES: dict[str, Scenario] = {}
"""Every scenario by name."""


def _arg(act: Action, name: str) -> int:
    value = act.kwargs[name]
    assert isinstance(value, int)
    return value


def _vm(act: Action) -> int:
    return _arg(act, "vm")


def _scenario(name: str, doc: str, feature: Callable[[Config], bool] = lambda cfg: True
              ) -> Callable[[Witness], Witness]:
    def register(fn: Witness) -> Witness:
        SOMETIMES[name] = Scenario(name, doc, fn, feature)
        return fn
    return register


@_scenario("balloon_reaches_target",
           "A balloon reaches a non-zero target: actual = target = pages the VMM reclaimed.")
def _reaches(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return any(vm.target > 0 and vm.module.actual == vm.target == len(vm.ballooned)
               for vm in post.vms)


@_scenario("deflate_under_memory_pressure",
           "The module deflates because the guest is out of memory, not because the target "
           "dropped.",
           feature=lambda cfg: cfg.deflate_on_oom)
def _oom(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "balloon_deflate":
        return False
    vm = pre.vms[_vm(act)]
    return len(vm.module.balloon) <= vm.module.target and under_pressure(cfg, vm.guest)


@_scenario("host_reuses_reclaimed_page",
           "The host takes into its own use a machine page that a balloon gave back.",
           feature=lambda cfg: cfg.host_use)
def _reuse(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "host_take_page":
        return False
    return bool(host_page_units(cfg, _arg(act, "host_page")) & pre.host.reclaimed)


@_scenario("partial_fill",
           "The guest gives the balloon fewer pages than asked because it has no more free pages.",
           # At least one unit given and fewer than asked: a report carries two units or more
           # (an application's report, one page, is never partial).
           feature=lambda cfg: cfg.balloon_report_pages >= 2 * cfg.balloon_unit_pages)
def _partial(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "balloon_inflate":
        return False
    vm = pre.vms[_vm(act)]
    asked = act.kwargs["ppns"]
    return isinstance(asked, tuple) and len(asked) < inflate_limit(cfg, vm)


@_scenario("guest_pages_out_for_balloon",
           "The guest pages a process page out to its own disk while its balloon still wants "
           "pages.")
def _pageout(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "guest_evict":
        return False
    vm = pre.vms[_vm(act)]
    return inflate_limit(cfg, vm) > 0 and FREE not in vm.guest.ppn_use


@_scenario("host_refuses_page", "The VMM refuses a page of an inflate report.",
           feature=lambda cfg: cfg.refusal or bool(cfg.hostile_vms))
def _refuse(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_reclaim" and any(
        b.acked_refused - a.acked_refused for a, b in zip(pre.vms, post.vms))


@_scenario("host_swap_fallback", "The host pages a guest page out itself (the fallback path).",
           feature=lambda cfg: cfg.host_swap)
def _swap(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "host_swap_out"


@_scenario("page_shared", "Two guest pages with the same contents come to share one MPN.",
           feature=lambda cfg: cfg.sharing)
def _shared(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_share"


@_scenario("copy_on_write_break", "A write to a shared page gives the writer its own copy.",
           feature=lambda cfg: cfg.sharing)
def _cow_break(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name not in ("guest_write", "rogue_touch"):
        return False
    before, after = pre.mappers(), post.mappers()
    return any(len(after.get(m, ())) < len(before.get(m, ())) for m in pre.host.cow)


# Only a hostile guest touches a page the VMM holds as ballooned and has not been told
# about: an honest guest reuses a page only after reporting it for deflation (with or
# without MUST_TELL_HOST), so without a hostile VM this is not a behaviour to expect.
@_scenario("balloon_pops", "A guest touches a ballooned page and the VMM backs it again.",
           feature=lambda cfg: bool(cfg.hostile_vms))
def _pops(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name != "guest_reset" and any(
        a is not b and a.ballooned - b.ballooned - set(a.deflate_queue)
        for a, b in zip(pre.vms, post.vms))


@_scenario("reset_with_balloon", "A guest reboots while pages are in its balloon.",
           feature=lambda cfg: cfg.reset)
def _reset(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "guest_reset" and bool(pre.vms[_vm(act)].ballooned)


@_scenario("processor_given_back", "A guest gives a physical processor back to the host.",
           feature=lambda cfg: cfg.processors)
def _cpu(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_cpu_reclaim"


@_scenario("reported_page_discarded",
           "The VMM discards a free page the guest reported, and its machine page goes back to "
           "the host.",
           feature=lambda cfg: cfg.free_page_reporting and not (cfg.page_poison and cfg.poison_val))
def _discarded(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_discard_reported" and len(post.host.free) > len(pre.host.free)


@_scenario("reported_page_reused",
           "The guest reuses a page after its free page report came back discarded.",
           feature=lambda cfg: cfg.free_page_reporting)
def _reused(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name in ("guest_read", "guest_write") and any(
        b.discarded < a.discarded for a, b in zip(pre.vms, post.vms))


@_scenario("poisoned_page_reported",
           "The guest reports a free page it filled with poison_val, and the VMM keeps it.",
           feature=lambda cfg: cfg.free_page_reporting and cfg.page_poison and cfg.poison_val != 0)
def _poisoned(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "vmm_discard_reported":
        return False
    v = _vm(act)
    return any(post.vms[v].p2m[p] != UNBACKED for p in post.vms[v].discarded - pre.vms[v].discarded)


@_scenario("stats_reported",
           "The guest reports its free memory on the statistics queue while its balloon holds "
           "pages.",
           feature=lambda cfg: cfg.stats_queue)
def _stats(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "balloon_report_stats" and bool(pre.vms[_vm(act)].module.balloon)


@_scenario("report_flood_refused",
           "The VMM refuses a report that a hostile guest sends on full queues.",
           feature=lambda cfg: cfg.vmm_bounds_queues and bool(cfg.hostile_vms))
def _flood(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "rogue_report":
        return False
    a = pre.vms[_vm(act)]
    return len(a.inflate_queue) + len(a.deflate_queue) >= report_queue_bound(cfg)


@_scenario("hinted_page_skipped",
           "A migration skips a page the guest hinted free, and its machine page goes back to "
           "the host.", feature=lambda cfg: cfg.free_page_hint)
def _hint_skipped(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_skip_hinted" and len(post.host.free) > len(pre.host.free)


@_scenario("hinted_page_rewritten",
           "The guest writes a page it hinted free in the hint cycle under way.",
           feature=lambda cfg: cfg.free_page_hint)
def _hint_rewritten(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return any(b.hint_rewritten > a.hint_rewritten for a, b in zip(pre.vms, post.vms))


@_scenario("stale_hint_ignored",
           "The module hints pages tagged with the id of a cycle that has ended.",
           feature=lambda cfg: cfg.free_page_hint)
def _stale_hint(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "balloon_hint_free_pages":
        return False
    v = pre.vms[_vm(act)]
    return v.module.hinting_for != v.hint_cmd_id


@_scenario("restored_with_balloon",
           "A guest resumes from hibernation with pages in its balloon.",
           feature=lambda cfg: cfg.hibernation)
def _restored(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "balloon_restore" and bool(pre.vms[_vm(act)].module.balloon)


@_scenario("target_changed_while_frozen",
           "The host changes a balloon's target while its guest is hibernated.",
           feature=lambda cfg: cfg.hibernation)
def _target_while_frozen(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "host_set_target" and bool(pre.vms[_vm(act)].module.frozen)
@_scenario("hostile_vcpu_unparked",
           "A hostile guest brings a vCPU online again that it had reported parked.",
           feature=lambda cfg: cfg.processors and cfg.vmm_enforces_cpu_target
           and bool(cfg.hostile_vms))
def _unparked(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "rogue_cpu_online" and _arg(act, "vcpu") in pre.vms[_vm(act)].parked_vcpus


@_scenario("vmm_stops_excess_vcpus",
           "The VMM stops vCPUs a VM runs beyond the host's CPU target, without the guest.",
           feature=lambda cfg: cfg.processors and cfg.vmm_enforces_cpu_target)
def _stopped(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_enforce_cpu_target"


@_scenario("stale_report_dropped",
           "The VMM takes an inflate report the guest queued before it reset, and drops it.",
           feature=lambda cfg: cfg.reset and cfg.reset_races_reports)
def _stale(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_drop_stale_reports" and bool(pre.vms[_vm(act)].stale_inflate)


@_scenario("over_target_page_recovered",
           "The VMM pages out a page of a VM over its target while another VM has pages backed "
           "that it could have taken instead.",
           feature=lambda cfg: cfg.vmm_reclaims_over_target)
def _recovered(cfg: Config, pre: State, act: Action, post: State) -> bool:
    if act.name != "vmm_swap_over_target":
        return False
    return any(m != UNBACKED for w, v in enumerate(pre.vms) if w != _vm(act) for m in v.p2m)
@_scenario("over_target_vm_recovered",
           "The VMM pages out the last page a VM held beyond its target: the host has it back "
           "within what it allows, without the guest.",
           feature=lambda cfg: cfg.vmm_reclaims_over_target)
def _within_again(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_swap_over_target" and within_allowance(cfg, post, _vm(act))


@_scenario("host_page_kept_from_other_vm",
           "The VMM backs a page beyond the lowest free MPN, which lies in a host page of another "
           "VM.",
           feature=vmm_keeps_host_pages)
def _kept(cfg: Config, pre: State, act: Action, post: State) -> bool:
    taken = pre.host.free - post.host.free
    return bool(taken) and min(pre.host.free) not in taken and act.name != "host_take_page"


@_scenario("guest_system_page_comes_back",
           "In a generic guest system a page the manager freed from the balloon is used again, in "
           "its own machine page.",
           feature=lambda cfg: cfg.guest_system)
def _comes_back(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return bool((pre.host.free - post.host.free) & pre.host.reclaimed)


@_scenario("whole_unit_ballooned",
           "The VMM accepts a whole balloon unit of several pages at once.",
           feature=lambda cfg: cfg.balloon_unit_pages > 1)
def _whole_unit(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_reclaim" and any(
        len(b.ballooned - a.ballooned) >= cfg.balloon_unit_pages
        for a, b in zip(pre.vms, post.vms))


@_scenario("whole_unit_returned",
           "The module gives a whole balloon unit of several pages back to the guest.",
           feature=lambda cfg: cfg.balloon_unit_pages > 1)
def _unit_back(cfg: Config, pre: State, act: Action, post: State) -> bool:
    return act.name == "vmm_release" and any(
        len(a.ballooned - b.ballooned) >= cfg.balloon_unit_pages
        for a, b in zip(pre.vms, post.vms))
