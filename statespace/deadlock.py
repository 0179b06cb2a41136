"""Deadlock: a state where the balloon protocol is stuck although it has work to do.

The host's own actions (changing a target, taking or returning a free host
page) are enabled in almost every state, so "no action at all is enabled"
almost never happens and says little. What matters is whether the *protocol
actors* of a VM (its balloon module and the VMM acting for it) can still move
when that VM's balloon is not settled. The definitions used here:

* a **total deadlock** is a state with no enabled action at all;
* a VM that follows the protocol is **unsettled** when the module has not read
  the current target, a report or acknowledgement is in flight, the module
  holds refused pages, the balloon is larger than the module's target, or it is
  smaller and the guest still has pages it may give (``balloon_inflate`` could
  make progress);
* a **protocol stall** of that VM is a state where it is unsettled and no
  ``module`` or ``vmm`` action for it is enabled.

Intended final states are the others: a balloon at its target with nothing in
flight, and a balloon below its target because the guest has no free page it
may give (a partial fill: the guest must page out first, which is the guest's
decision and not the protocol's). Hostile VMs are not examined: they owe the
protocol nothing.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.model.system import BalloonModel
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> m = BalloonModel(cfg)
>>> s = initial_state(cfg)
>>> stalled_vms(cfg, s, [a for a, _ in m.successors(s)])
[]
"""

from __future__ import annotations

from typing import Callable, Container, Sequence

from ballast.model.action_kernels import inflate_room
from ballast.model.actions import ACTIONS, Action, Actor, inflate_limit, usable_free
from ballast.model.config import Config
from ballast.model.ops import StateOps, Value
from ballast.model.invariants import honest_vms
from ballast.model.state import State
from ballast.model.system import BalloonModel

__all__ = ["DEADLOCK", "ProtocolMoves", "is_total_deadlock", "protocol_vm", "stalled_among",
           "stalled_vms", "unsettled", "unsettled_kernel"]

DEADLOCK = "deadlock_free"
"""Name under which deadlock freedom is reported."""

_PROTOCOL = (Actor.MODULE, Actor.VMM)


def unsettled(cfg: Config, s: State, vm: int) -> bool:
    """Whether VM ``vm``'s balloon still has protocol work to do (see the module text)."""
    v = s.vms[vm]
    m = v.module
    if m.target != v.target:
        return True
    if (v.inflate_queue or v.deflate_queue or v.acked_inflate or v.acked_refused
            or v.acked_deflate or m.refused):
        return True
    if len(m.balloon) > m.target:
        return True
    if cfg.balloon_unit_pages > 1:
        # The module inflates whole free units only: no work until the guest frees one.
        inflations = ACTIONS["balloon_inflate"].vm_candidates
        assert inflations is not None
        return next(iter(inflations(cfg, s, vm)), None) is not None
    return bool(min(inflate_limit(cfg, v), usable_free(cfg, v)) > 0)


def unsettled_kernel(cfg: Config) -> Callable[[StateOps], Value] | None:
    """:func:`unsettled` written over the operations of one VM (:mod:`ballast.model.ops`), for
    a backend that judges whole batches of states at once; None where only the readable
    form answers: with balloon units of several pages, whether the module can inflate is
    whether the guest has a whole free unit, which the inflate action's candidates say.
    The two forms are shown equal on every reachable state of the pinned configurations
    (``tests/statespace/test_deadlock.py``).

    >>> from ballast.model.config import Config
    >>> unsettled_kernel(Config()) is not None, unsettled_kernel(Config(guest_pages=4, batch=2,
    ...                                                                balloon_unit_pages=2))
    (True, None)
    """
    return _unsettled_ops if cfg.balloon_unit_pages == 1 else None


def _unsettled_ops(o: StateOps) -> Value:
    """One VM's balloon has protocol work to do: :func:`unsettled`, clause for clause."""
    return o.or_(
        o.ne(o.vm("module.target"), o.vm("target")),
        o.lt(0, o.queue_len("inflate_queue")), o.lt(0, o.queue_len("deflate_queue")),
        o.any(o.pages("acked_inflate")), o.any(o.pages("acked_refused")),
        o.beyond("acked_refused"), o.any(o.pages("acked_deflate")),
        o.any(o.pages("module.refused")),
        o.lt(o.vm("module.target"), o.count(o.pages("module.balloon"))),
        o.lt(0, inflate_room(o)))


def is_total_deadlock(enabled: int) -> bool:
    """No action of any actor is enabled (``enabled``: how many steps are)."""
    return enabled == 0


def protocol_vm(act: Action) -> int | None:
    """The VM a protocol actor (the module, or the VMM) moves for in ``act``, else None."""
    spec = ACTIONS.get(act.name)
    if spec is None or spec.actor not in _PROTOCOL:
        return None
    vm = act.kwargs.get("vm")
    return vm if isinstance(vm, int) else None


def stalled_vms(cfg: Config, s: State, enabled: Sequence[Action]) -> list[int]:
    """The honest VMs whose protocol is stalled in ``s`` (``enabled``: every enabled action)."""
    return stalled_among(cfg, {protocol_vm(act) for act in enabled},
                         lambda v: unsettled(cfg, s, v))


def stalled_among(cfg: Config, moving: Container[int | None],
                  is_unsettled: Callable[[int], bool]) -> list[int]:
    """The honest VMs not in ``moving`` (VMs a protocol actor can move for) that are
    unsettled: :func:`stalled_vms` for a caller that knows these already."""
    return [v for v in honest_vms(cfg) if is_unsettled(v) and v not in moving]


class ProtocolMoves(Container[int | None]):
    """The VMs a protocol actor can move for in one state, each asked only when needed
    and answered at its first enabled step: :func:`stalled_vms` without every enabled
    step listed first (on a large guest the module alone may choose its pages in billions
    of ways; the first one its guard admits is enough).

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=2, guest_pages=2, machine_pages=4)
    >>> moves = ProtocolMoves(BalloonModel(cfg), initial_state(cfg))
    >>> 0 in moves, moves.any_step() is not None
    (False, True)
    """

    def __init__(self, model: BalloonModel, s: State) -> None:
        self.model, self.state = model, s
        self._known: dict[int, bool] = {}

    def __contains__(self, vm: object) -> bool:
        if not isinstance(vm, int):
            return False
        got = self._known.get(vm)
        if got is None:
            got = self._known[vm] = self._moves_for(vm)
        return got

    def _moves_for(self, vm: int) -> bool:
        cfg, s = self.model.cfg, self.state
        for spec in self.model.action_specs():
            if spec.actor not in _PROTOCOL:
                continue
            cands = (spec.vm_candidates(cfg, s, vm) if spec.vm_candidates is not None else
                     (a for a in spec.candidates(cfg, s) if a.get("vm") == vm))
            for args in cands:
                act = Action.of(spec.name, **args)
                if protocol_vm(act) == vm and self.model.try_next_state(s, act) is not None:
                    return True
        return False

    def any_step(self) -> Action | None:
        """An enabled step of any actor (the first in the model's order), or None."""
        return next((act for act, _ in self.model.successors(self.state)), None)
