"""Symmetry reduction: one canonical representative per class of equivalent states.

Two states are equivalent when one is the other with

* **VMs renumbered** among VMs that are configured alike (honest VMs among
  themselves, hostile VMs among themselves): VMs start identical and every
  action is defined for each VM in the same way;
* **machine pages (MPNs) renumbered** when a host page is one balloon unit: the
  host and the VMM treat MPNs only as interchangeable containers (the VMM takes
  "a free MPN"), so what matters is which guest page an MPN backs, what it
  holds and which flags it carries, not its number.

Canonicalisation *sorts* instead of enumerating permutations: VMs are ordered
by a signature that does not mention MPN numbers, then MPNs are renumbered in
the order guest pages first mention them, then host-used MPNs, then free ones
(each group sorted by contents and flags). The result may miss a few
equivalences (ties between VMs are broken by their original order), which costs
only reduction, never soundness of what is reported: the explorer expands real
states and only uses the canonical form as the key of the visited set, and every
counterexample is replayed concretely.

Guest pages (PPNs) are not renumbered: the guest's allocator hands out the
lowest free PPN, and queues, reports and traces name PPNs, so renumbering them
would not be a symmetry of the model.

Liveness over a symmetry-reduced graph is not sound in general (a cycle of
representatives need not be a cycle of real states); :func:`liveness_warning`
says so and the explorer asks for a full graph for liveness.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.model.actions import Action, apply
>>> cfg = Config(vms=2, guest_pages=2, machine_pages=3)
>>> s = initial_state(cfg)
>>> a = apply(cfg, s, Action.of("host_set_target", vm=0, pages=1))
>>> b = apply(cfg, s, Action.of("host_set_target", vm=1, pages=1))
>>> a == b, canonical(cfg, a) == canonical(cfg, b)
(False, True)
"""

from __future__ import annotations

from dataclasses import replace

from ballast.model.config import Config
from ballast.model.state import UNBACKED, State, VmState

__all__ = ["canonical", "liveness_warning", "mpn_symmetry", "vm_groups"]


def vm_groups(cfg: Config) -> list[list[int]]:
    """The classes of VMs that are interchangeable (configured alike); none in a generic
    guest system, where each guest's pages are machine pages of its own."""
    if cfg.guest_system:
        return []
    honest = [v for v in range(cfg.vms) if v not in cfg.hostile_vms]
    hostile = [v for v in range(cfg.vms) if v in cfg.hostile_vms]
    return [g for g in (honest, hostile) if len(g) > 1]


def mpn_symmetry(cfg: Config) -> bool:
    """Whether MPNs are renumbered: only when a host page is a single balloon unit,
    because the host takes and returns whole host pages at fixed MPN ranges, and not in a
    generic guest system, whose pages are fixed machine pages."""
    return bool(cfg.host_page_units == 1 and not cfg.guest_system)


def liveness_warning(symmetry: bool) -> str | None:
    """The warning to show when liveness is checked with symmetry reduction on."""
    if not symmetry:
        return None
    return ("symmetry reduction is not sound for liveness (a cycle of representatives "
            "need not be a cycle of real states); liveness is checked on the full graph")


def _vm_signature(s: State, v: int) -> tuple[object, ...]:
    """What VM ``v`` looks like without naming MPNs (or its own VM number)."""
    vm = s.vms[v]
    host = s.host
    backing = tuple(
        (-1, 0, 0) if m == UNBACKED else (host.content[m], m in host.cow, 1)
        for m in vm.p2m)
    swapped = tuple((p, t) for (w, p, t) in host.swap if w == v)
    return (backing, swapped, vm.replace(p2m=()))


def _sort_vms(cfg: Config, s: State) -> State:
    order = list(range(cfg.vms))
    for group in vm_groups(cfg):
        ranked = sorted(group, key=lambda v: repr(_vm_signature(s, v)))
        for slot, v in zip(group, ranked):
            order[slot] = v
    if order == list(range(cfg.vms)):
        return s
    where = {old: new for new, old in enumerate(order)}
    swap = tuple(sorted((where[w], p, t) for (w, p, t) in s.host.swap))
    return State(replace(s.host, swap=swap), tuple(s.vms[v] for v in order))


def _renumber_mpns(cfg: Config, s: State) -> State:
    host = s.host
    new_of: dict[int, int] = {}
    for vm in s.vms:
        for m in vm.p2m:
            if m != UNBACKED and m not in new_of:
                new_of[m] = len(new_of)

    def flags(m: int) -> tuple[int, bool, int]:
        # The number last: a set's iteration order must not decide between equal flags.
        return host.content[m], m in host.reclaimed, m

    for group in (host.in_use, host.free):
        for m in sorted(group, key=flags):
            if m not in new_of:
                new_of[m] = len(new_of)
    for m in range(cfg.machine_pages):  # MPNs in no place at all (a broken model)
        if m not in new_of:
            new_of[m] = len(new_of)
    if all(k == v for k, v in new_of.items()):
        return s
    content = [0] * cfg.machine_pages
    for m, n in new_of.items():
        content[n] = host.content[m]

    def ren(ms: frozenset[int]) -> frozenset[int]:
        return frozenset(new_of[m] for m in ms)

    new_host = replace(host, free=ren(host.free), in_use=ren(host.in_use),
                       content=tuple(content), cow=ren(host.cow),
                       reclaimed=ren(host.reclaimed))
    vms: tuple[VmState, ...] = tuple(
        vm.replace(p2m=tuple(UNBACKED if m == UNBACKED else new_of[m] for m in vm.p2m))
        for vm in s.vms)
    return State(new_host, vms)


def canonical(cfg: Config, s: State) -> State:
    """The representative of ``s``'s symmetry class (``s`` itself if it already is one)."""
    if vm_groups(cfg):
        s = _sort_vms(cfg, s)
    if mpn_symmetry(cfg):
        s = _renumber_mpns(cfg, s)
    return s
