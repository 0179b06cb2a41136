"""Near-miss probes: the model's own next step with one limit relaxed.

Random arguments almost never hit the one wrong step that matters. A near-miss
probe is built from the model's state the way the model builds its own steps,
with exactly one limit taken away: the allocator's next free pages when the
balloon owes no page (the inflate limit is 0), a deflate when the balloon is
not above its target, a report processed when none is queued, the same target
set again. The model's guard refuses every near-miss probe it is given (a
candidate the guard would allow is no near miss and is not sent), so the
implementation under test must refuse it too.

>>> from ballast.model import initial_state, preset
>>> cfg = preset("virtio")
>>> near_miss(cfg, initial_state(cfg), 0, "inflate_over_limit")
Action(name='balloon_inflate', args=(('vm', 0), ('ppns', (0,))))
"""

from __future__ import annotations

from typing import Callable

from ballast.model.actions import (
    Action,
    balloon_view,
    inflate_limit,
    usable_free,
)
from ballast.model.config import Config
from ballast.model.policy import policy_for
from ballast.model.state import FREE, State
from ballast.model.system import BalloonModel

__all__ = ["NEAR_MISSES", "near_miss", "near_miss_for"]


def _inflate_over_limit(cfg: Config, s: State, vm: int) -> Action | None:
    """The allocator's next free page, when the balloon already holds or owes its target."""
    v = s.vms[vm]
    if inflate_limit(cfg, v) > 0 and usable_free(cfg, v) > 0:
        return None
    got = policy_for(cfg.guest_policy).allocation(balloon_view(v), 1)
    return Action.of("balloon_inflate", vm=vm, ppns=got) if got else None


def _inflate_used_page(cfg: Config, s: State, vm: int) -> Action | None:
    """A page a process is using, when the balloon does owe pages."""
    v = s.vms[vm]
    used = [p for p, u in enumerate(v.guest.ppn_use) if u >= 0]
    if inflate_limit(cfg, v) == 0 or not used:
        return None
    return Action.of("balloon_inflate", vm=vm, ppns=(used[0],))


def _deflate_not_above_target(cfg: Config, s: State, vm: int) -> Action | None:
    """The module's lowest balloon page, when the balloon is not above its target."""
    m = s.vms[vm].module
    if not m.balloon or len(m.balloon) > m.target:
        return None
    return Action.of("balloon_deflate", vm=vm, ppns=(min(m.balloon),))


def _deflate_unacknowledged(cfg: Config, s: State, vm: int) -> Action | None:
    """A page still waiting for the VMM's acknowledgement of its inflate."""
    v = s.vms[vm]
    waiting = sorted(set(v.inflate_queue) | v.acked_inflate)
    return Action.of("balloon_deflate", vm=vm, ppns=(waiting[0],)) if waiting else None


def _reclaim_nothing(cfg: Config, s: State, vm: int) -> Action | None:
    """The VMM processing an inflate report when none is queued."""
    return None if s.vms[vm].inflate_queue else Action.of("vmm_reclaim", vm=vm, refuse=())


def _reclaim_refusing(cfg: Config, s: State, vm: int) -> Action | None:
    """The VMM refusing a reported page when refusal is switched off."""
    q = s.vms[vm].inflate_queue
    if cfg.refusal or not q:
        return None
    return Action.of("vmm_reclaim", vm=vm, refuse=(q[0],))


def _release_nothing(cfg: Config, s: State, vm: int) -> Action | None:
    """The VMM processing a deflate report when none is queued."""
    return None if s.vms[vm].deflate_queue else Action.of("vmm_release", vm=vm)


def _complete_nothing(cfg: Config, s: State, vm: int) -> Action | None:
    """The module taking acknowledgements when none is waiting."""
    v = s.vms[vm]
    if v.acked_inflate or v.acked_refused or v.acked_deflate:
        return None
    return Action.of("balloon_complete", vm=vm)


def _poll_known(cfg: Config, s: State, vm: int) -> Action | None:
    """The module polling a target it already knows."""
    v = s.vms[vm]
    if v.module.target != v.target or v.module.cpu_target != v.cpu_target:
        return None
    return Action.of("balloon_poll", vm=vm)


def _target_unchanged(cfg: Config, s: State, vm: int) -> Action | None:
    """The host setting the target the VM already has."""
    return Action.of("host_set_target", vm=vm, pages=s.vms[vm].target)


def _read_without_room(cfg: Config, s: State, vm: int) -> Action | None:
    """A process touching a new page when the guest has no free page."""
    g = s.vms[vm].guest
    if FREE in g.ppn_use:
        return None
    fresh = [vpn for vpn in range(cfg.guest_data_pages) if vpn not in g.lru]
    return Action.of("guest_read", vm=vm, vpn=fresh[0]) if fresh else None


NearMiss = Callable[[Config, State, int], Action | None]

NEAR_MISSES: dict[str, NearMiss] = {
    "inflate_over_limit": _inflate_over_limit,
    "inflate_used_page": _inflate_used_page,
    "deflate_not_above_target": _deflate_not_above_target,
    "deflate_unacknowledged": _deflate_unacknowledged,
    "reclaim_nothing": _reclaim_nothing,
    "reclaim_refusing": _reclaim_refusing,
    "release_nothing": _release_nothing,
    "complete_nothing": _complete_nothing,
    "poll_known": _poll_known,
    "target_unchanged": _target_unchanged,
    "read_without_room": _read_without_room,
}
"""Every kind of near-miss probe by name, with the limit it relaxes in its docstring."""


def near_miss(cfg: Config, s: State, vm: int, which: str) -> Action | None:
    """The near-miss probe ``which`` for VM ``vm`` in ``s`` (None: none fits this state).

    Not checked against the guard: :func:`near_miss_for` does that.
    """
    if not 0 <= vm < cfg.vms:
        return None
    return NEAR_MISSES[which](cfg, s, vm)


def near_miss_for(model: BalloonModel, s: State, vm: int, which: str,
                  actions: frozenset[str] | set[str]) -> Action | None:
    """A near-miss probe the model's guard refuses, of an action in ``actions``; else None."""
    act = near_miss(model.cfg, s, vm, which)
    if act is None or act.name not in actions or not model.table[act.name].feature(model.cfg):
        return None
    return act if model.try_next_state(s, act) is None else None
