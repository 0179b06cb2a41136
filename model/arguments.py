"""The arguments each action's backends enumerate or draw, described once per action.

:mod:`ballast.model.domains` gives every parameter its widest domain (what the
Hypothesis machine draws from). The Z3 proofs and the numeric workload need
each action's own values: a guest writes tokens ``1..tokens``, a hostile guest
also writes zeros; a host page is named without a VM; a rogue action belongs to a
hostile VM. :data:`ARGUMENTS` says that once per action, as integer ranges or
lists of values; ``proofs.transitions`` enumerates its instance lists from it
(a ``symbolic`` argument becomes one symbolic number) and
``numeric.workload`` draws every argument it gives an action from the same
description. Where the guard admits only some values and which depends on the
state (a free page to allocate, a reported page to accept, the LRU victim),
``choices`` names them with the guard's own kernel helpers
(:mod:`ballast.model.action_kernels`), and the workload draws among those. Where a
uniform draw would almost never reach a case worth running (a page the host paged
out for a free page report, a PFN far out of range, a target the guest can meet),
``prefer``, ``draws``, ``also`` and ``outlier`` say which values a workload leans to. The
model's candidates (``actions``) stay the reference: the agreement tests check
that every candidate the model enables is among these.

>>> from ballast.model.config import Config
>>> cfg = Config(vms=2, guest_pages=4, tokens=3)
>>> ARGUMENTS["guest_write"]["token"].values(cfg)
range(1, 4)
>>> [a for a in instances(cfg, "host_swap_out")][:2]
[{'vm': 0, 'ppn': 0}, {'vm': 0, 'ppn': 1}]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ballast.model import action_kernels as kernels
from ballast.model.actions import ACTIONS, ROGUE_ACTUAL_BOUND, Actor
from ballast.model.config import Config, GuestPolicyName
from ballast.model.feature_kernels import hintable
from ballast.model.ops import Ops, Value
from ballast.model.over_target_kernels import over_target_pages
from ballast.model.reporting_kernels import reportable
from ballast.model.state import FREE, UNBACKED

__all__ = ["ARGUMENTS", "Argument", "instances", "vms_of"]


@dataclass(frozen=True)
class Argument:
    """The values one argument of one action takes in a configuration."""

    values: Callable[[Config], Sequence[Any]]
    symbolic: bool = False
    """The proofs keep it symbolic: one query covers every value of its range."""
    kind: str = "int"
    """``int``, or ``refuse`` for vmm_reclaim's refused PPNs as a bit mask (bit ``q`` for
    PPN ``q``, bit ``guest_pages`` for a PPN out of range)."""
    choices: Callable[[Ops], Value] | None = None
    """Where the guard admits only some values and which depends on the state: those values
    of one VM, as a vector over them (PPNs, VPNs, vCPUs), from the guard's own kernel
    helpers. Random workloads draw among them (``values`` is what the proofs enumerate)."""
    most: Callable[[Ops], Value] | None = None
    """For a set of PPNs: how many of ``choices`` the actor may take at once (for
    ``refuse``: how many it may accept; it refuses the rest)."""
    lowest: Callable[[Config], bool] = lambda c: False
    """The actor takes the lowest of ``choices``, not any (the guest's allocator under the
    ``lowest`` policy)."""
    draw_when_none: bool = False
    """Where ``choices`` admit no value for a VM, a workload still draws one uniformly from
    ``values`` (the operation fails its guard and is not logged) rather than naming the
    first; this only moves the random stream of the draws that follow."""
    prefer: Callable[[Config], Sequence[Callable[[Ops], Value]]] = lambda c: ()
    """Values of one VM a workload leans to, as vectors like ``choices``, each in turn half
    the time where the VM has any: for a set of PPNs the actor takes its pages among them,
    for one value it names one of them instead of its uniform draw."""
    draws: Callable[[Config], range] | None = None
    """The range a workload draws a number from where it is narrower than ``values``
    (``None``: ``values``)."""
    also: tuple[float, Callable[[Config], range]] | None = None
    """A share of a workload's batches draws the number from this range instead of
    ``draws`` (one draw decides for the whole batch)."""
    outlier: tuple[float, Callable[[Config], range]] | None = None
    """A share of a workload's numbers, each decided on its own after it is drawn, is drawn
    again from this range (values far outside those the proofs enumerate)."""
    whole_units: bool = False
    """For a set of PPNs: the actor takes them in whole balloon units (``balloon_unit_pages``),
    as the balloon's own actions do; a free page report names single pages."""


def _subsets(n: int, most: int) -> list[tuple[int, ...]]:
    return [t for k in range(1, min(n, most) + 1) for t in itertools.combinations(range(n), k)]


_PPN = Argument(lambda c: range(c.guest_pages))
_VPN = Argument(lambda c: range(c.guest_data_pages))
_PPNS = Argument(lambda c: _subsets(c.guest_pages, c.balloon_report_pages))


def _pages(field: str) -> Callable[[Ops], Value]:
    return lambda o: o.pages(field)


def _at_most_batch(choices: Callable[[Ops], Value]) -> Callable[[Ops], Value]:
    """Up to one report of ``choices``: how many of them an actor may take at once."""
    return lambda o: o.minimum(o.count(choices(o)), o.cfg.batch)


def _backed(o: Ops) -> Value:
    """The VM's PPNs an MPN backs."""
    return o.ne(o.pages("p2m"), UNBACKED)


def _cold_free(o: Ops) -> Value:
    """Backed PPNs the guest holds free: a page the host pages out that a free page report
    may then ask the VMM to discard."""
    return o.and_(o.eq(o.pages("guest.ppn_use"), FREE), _backed(o))


def _reportable_swapped(o: Ops) -> Value:
    """Reportable PPNs the host paged out (a report then discards a host swap slot)."""
    return o.and_(reportable(o), o.pages("host.swap"))


def _reportable_backed(o: Ops) -> Value:
    """Reportable PPNs an MPN backs (a report then frees an MPN)."""
    return o.and_(reportable(o), _backed(o))


_BALLOON = _pages("module.balloon")
_LOWEST_POLICY: Callable[[Config], bool] = lambda c: c.guest_policy is GuestPolicyName.LOWEST
_VCPU = Argument(lambda c: range(c.vcpus))
_HOST_PAGE = Argument(lambda c: range(c.host_pages))

ARGUMENTS: dict[str, dict[str, Argument]] = {
    # Mostly a target the guest can meet (at most half its pages), a fifth of the time any.
    "host_set_target": {"pages": Argument(
        lambda c: range(c.guest_pages + 1),
        draws=lambda c: range(max(1, c.guest_pages // 2) + 1),
        also=(0.2, lambda c: range(c.guest_pages + 1)))},
    "host_set_cpu_target": {"vcpus": Argument(lambda c: range(1, c.vcpus + 1))},
    "host_take_page": {"host_page": _HOST_PAGE},
    "host_return_page": {"host_page": _HOST_PAGE},
    # With free page reporting, half the time a free page the guest may then report.
    "host_swap_out": {"ppn": Argument(
        _PPN.values, prefer=lambda c: (_cold_free,) if c.free_page_reporting else ())},
    "vmm_back_page": {"ppn": Argument(_PPN.values, choices=kernels.backable,
                                      draw_when_none=True)},
    "vmm_reclaim": {"refuse": Argument(lambda c: range(2 ** (c.guest_pages + 1)), True,
                                       "refuse", choices=kernels.reclaim_valid,
                                       most=lambda o: kernels.reclaim_room(o, o.cfg.migration),
                                       whole_units=True)},
    "vmm_release": {},
    "vmm_cpu_reclaim": {},
    "guest_read": {"vpn": _VPN},
    "guest_write": {"vpn": _VPN, "token": Argument(lambda c: range(1, c.tokens + 1), True)},
    "guest_evict": {"vpn": Argument(_VPN.values, choices=kernels.evictable)},
    "guest_reset": {},
    "balloon_poll": {},
    "balloon_inflate": {"ppns": Argument(
        _PPNS.values, choices=kernels.allocatable, most=kernels.inflate_room,
        lowest=_LOWEST_POLICY, whole_units=True)},
    "balloon_deflate": {"ppns": Argument(_PPNS.values, choices=_pages("module.balloon"),
                                         most=kernels.deflate_limit, whole_units=True)},
    "balloon_complete": {},
    "balloon_free_refused": {},
    "balloon_cpu_offline": {"vcpu": Argument(_VCPU.values, choices=kernels.offlinable)},
    "balloon_cpu_online": {"vcpu": Argument(_VCPU.values, choices=kernels.onlinable)},
    # One past the last PPN: a hostile guest may report a page that does not exist.
    # A tenth of the reports name a PFN at or above 2**31, far past every PPN.
    "rogue_report": {"queue": Argument(lambda c: ("inflate", "deflate")),
                     "ppn": Argument(lambda c: range(c.guest_pages + 1),
                                     outlier=(0.1, lambda c: range(2 ** 31, 2 ** 32)))},
    "rogue_touch": {"ppn": _PPN, "token": Argument(lambda c: range(c.tokens + 1), True)},
    "rogue_set_actual": {"actual": Argument(
        lambda c: range(c.guest_pages + ROGUE_ACTUAL_BOUND + 1), True)},
    # The guest's allocator hands out a free page (the lowest under ``lowest``); any balloon
    # page goes (one migrated away, or up to a report on OOM).
    "balloon_migrate": {"new": Argument(_PPN.values, choices=kernels.allocatable,
                                        lowest=_LOWEST_POLICY)},
    "balloon_migrate_release": {"old": Argument(_PPN.values, choices=_BALLOON)},
    "balloon_oom_deflate": {"ppns": Argument(lambda c: _subsets(c.guest_pages, c.batch),
                                             choices=_BALLOON, most=_at_most_batch(_BALLOON),
                                             whole_units=True)},
    # Free page reporting and the statistics queue (virtio 1.x section 5.5.6).
    # Any free pages off the free list, up to one report; half the time those the host
    # paged out, else those backed, where there are any.
    "balloon_report_free_pages": {"ppns": Argument(
        lambda c: _subsets(c.guest_pages, c.report_limit), choices=reportable,
        most=lambda o: o.minimum(o.count(reportable(o)), o.cfg.report_limit),
        prefer=lambda c: (_reportable_swapped, _reportable_backed))},
    "vmm_discard_reported": {},
    "balloon_report_done": {},
    "balloon_report_stats": {},
    # Rogue processors (a hostile guest; the VMM enforces the host's CPU target). One past
    # the last vCPU: a hostile guest may report a vCPU the VM does not have.
    "rogue_cpu_park": {"vcpu": Argument(lambda c: range(c.vcpus + 1))},
    "rogue_cpu_online": {"vcpu": _VCPU},
    "vmm_enforce_cpu_target": {},
    "vmm_drop_stale_reports": {},
    # Free page hinting (virtio 1.x section 5.5.6.5) and hibernation.
    "vmm_request_hints": {},
    "vmm_stop_hints": {"command": Argument(lambda c: ("stop", "done"))},
    "balloon_hint_start": {},
    "balloon_hint_free_pages": {"ppns": Argument(
        lambda c: _subsets(c.guest_pages, c.batch), choices=hintable,
        most=_at_most_batch(hintable))},
    "vmm_skip_hinted": {},
    "balloon_freeze": {},
    "balloon_restore": {},
    # The VMM pages out a VM over its target: any page that VM holds is the VMM's choice.
    "vmm_swap_over_target": {"ppn": Argument(_PPN.values, choices=over_target_pages)},
}
"""Action -> its arguments but the VM (in the action's parameter order). ``vmm_share``
names two pages at once: :func:`instances` pairs them."""


def vms_of(cfg: Config, name: str) -> list[int]:
    """The VMs an action is taken for: none for a host page, the hostile VMs for a rogue
    guest's action, else every VM."""
    spec = ACTIONS[name]
    if "vm" not in spec.params:
        return []
    if spec.actor is Actor.ROGUE:
        return sorted(cfg.hostile_vms)
    return list(range(cfg.vms))


def _share_pairs(cfg: Config) -> Iterator[dict[str, Any]]:
    pages = [(v, p) for v in range(cfg.vms) for p in range(cfg.guest_pages)]
    for (va, pa), (vb, pb) in itertools.combinations(pages, 2):
        yield {"vm": va, "ppn": pa, "other_vm": vb, "other_ppn": pb}


def instances(cfg: Config, name: str,
              symbolic: Callable[[Argument, Sequence[Any]], Any] | None = None
              ) -> Iterator[dict[str, Any]]:
    """Every argument tuple of action ``name`` in ``cfg``, VM first; ``symbolic(arg,
    values)`` stands for every value of a symbolic argument at once (default: enumerate)."""
    if name == "vmm_share":
        yield from _share_pairs(cfg)
        return
    args = ARGUMENTS[name]
    vms: list[dict[str, Any]] = ([{"vm": v} for v in vms_of(cfg, name)]
                                 if "vm" in ACTIONS[name].params else [{}])
    columns: list[list[tuple[str, Any]]] = []
    for key, arg in args.items():
        values = arg.values(cfg)
        if arg.symbolic and symbolic is not None:
            columns.append([(key, symbolic(arg, values))])
        else:
            columns.append([(key, x) for x in values])
    for head in vms:
        for row in itertools.product(*columns):
            yield {**head, **dict(row)}
