"""Checking every property after a step by looking only at what the step can change.

:meth:`BalloonModel.step_violations <ballast.model.system.BalloonModel.step_violations>`
re-reads every property over the whole state after every step. On a real guest (131,072
PPNs, a balloon of tens of thousands of pages) that is most of the work of judging a long
trace, although a protocol step moves at most one report's worth of pages. A
:class:`StepChecker` gives the same verdicts from the same property definitions
(:data:`~ballast.model.invariants.INVARIANTS`), reading only the step's *footprint*:

* **frame** -- the actions of :data:`FRAMED_ACTIONS` change the per-page records of the
  VM they name (``ppn_use``, ``p2m``, ``ballooned``, the module's ``balloon`` and
  ``refused``, the queues, the acknowledgements, its host swap entries) only at the
  pages of the step's footprint (:func:`footprint`: the pages the action names and the
  pages on that VM's queues, acknowledgements and refused set before or after it), and
  change no other VM;
* **locality** -- the properties of :data:`PAGE_LOCAL` say "every page of the VM is
  fine", each page judged by its own records only. When the state before the step
  satisfied them, the state after does exactly when the footprint's pages do, and the
  first page reported (properties report the lowest bad PPN) is the same; so they are
  evaluated on the VM *projected* onto the footprint (:func:`project`), whose page sets
  have a few hundred members instead of tens of thousands. A property with a part that
  counts (``balloon_accounting_exact``) has its page part read on the projection and its
  size part on the whole state (sizes are free).

Every other property, every action not in :data:`FRAMED_ACTIONS`, a model with seeded
faults (a fault may break the frame), and any step from a state not known to satisfy
every property, are checked in full. Both claims are checked by
``tests/model/test_incremental.py`` on random walks of every preset (unchanged records
outside the footprint; the same violations as the full check, also on states corrupted
at a footprint page).

>>> from ballast.model.actions import Action
>>> from ballast.model.config import Config
>>> from ballast.model.system import BalloonModel
>>> m = BalloonModel(Config(vms=1, guest_pages=4, machine_pages=4))
>>> checker = StepChecker(m)
>>> s0 = m.init_states()[0]
>>> s1 = m.next_state(s0, Action.of("host_set_target", vm=0, pages=2))
>>> checker.check(s0, Action.of("host_set_target", vm=0, pages=2), s1)
[]
>>> sorted(footprint(s0, Action.of("balloon_inflate", vm=0, ppns=(1, 3)), s0, 0))
[1, 3]
"""

from __future__ import annotations

from typing import Any

from ballast.model.actions import Action
from ballast.model.invariants import INVARIANTS, Property, accounting_pages, accounting_sizes
from ballast.model.state import State, VmState, replace_fields
from ballast.model.system import BalloonModel, Violation

__all__ = ["FRAMED_ACTIONS", "PAGE_LOCAL", "StepChecker", "footprint", "project"]

FRAMED_ACTIONS: dict[str, tuple[str, ...]] = {
    "host_set_target": (),
    "balloon_poll": (),
    "balloon_inflate": ("ppns",),
    "vmm_reclaim": ("refuse",),
    "balloon_complete": (),
    "balloon_deflate": ("ppns",),
    "vmm_release": (),
    "balloon_migrate": ("new",),
    "balloon_migrate_release": ("old",),
    "balloon_oom_deflate": ("ppns",),
}
"""Actions whose changes to per-page records stay inside the footprint of the VM they name,
each with its arguments that name guest pages."""

PAGE_LOCAL: frozenset[str] = frozenset({
    "guest_chooses_pages", "ballooned_pages_unbacked", "module_pages_pinned",
    "migration_loses_nothing",
})
"""Properties whose per-VM state form and step form judge each page by its own records."""

_SPLIT = {"balloon_accounting_exact": (accounting_pages, accounting_sizes)}
"""A property with a page part (read on the projection) and a size part (read whole)."""


def footprint(pre: State, act: Action, post: State, vm: int) -> set[int]:
    """The pages of VM ``vm`` a framed step may change: the pages it names, and those on
    the VM's queues, acknowledgements and refused set before or after it."""
    pages: set[int] = set()
    for name in FRAMED_ACTIONS.get(act.name, ()):
        value = act.kwargs.get(name)
        if isinstance(value, int):
            pages.add(value)
        elif isinstance(value, (tuple, list)):
            pages.update([p for p in value if isinstance(p, int)])
    for v in (pre.vms[vm], post.vms[vm]):
        pages.update(v.inflate_queue)
        pages.update(v.deflate_queue)
        pages |= v.acked_inflate
        pages |= v.acked_refused
        pages |= v.acked_deflate
        pages |= v.module.refused
    return pages


def project(s: State, vm: int, pages: set[int]) -> State:
    """``s`` with VM ``vm``'s page sets cut down to ``pages`` (the queues and the
    acknowledgements are inside the footprint already; per-page tuples are read by index)."""
    v: VmState = s.vms[vm]
    m = v.module
    cut = v.replace(ballooned=v.ballooned & pages,
                    module=replace_fields(m, balloon=m.balloon & pages, refused=m.refused & pages))
    return s.with_vm(vm, cut)


class StepChecker:
    """The violations of a step, as :meth:`BalloonModel.step_violations` gives them, read
    from the step's footprint when the state before it is known to satisfy every property."""

    def __init__(self, model: BalloonModel) -> None:
        self.model = model
        self.properties: list[Property] = model.properties()
        self.framed = not model.faults
        self.good: State | None = None
        """The last state known to satisfy every state invariant."""
        cfg = model.cfg
        # How each property is read, worked out once (a long trace checks it per step):
        # (property, page-local, its page and size parts or None, the VMs its per-VM form covers).
        self.plan: list[tuple[Property, bool, tuple[Any, Any] | None, frozenset[int]]] = [
            (p, p.name in PAGE_LOCAL, _SPLIT.get(p.name), frozenset(p.checked_vms(cfg)))
            for p in self.properties]

    def check(self, pre: State, act: Action, post: State) -> list[Violation]:
        """Every property the step breaks: step forms first, then state forms on ``post``."""
        vm = act.kwargs.get("vm")
        if pre is not self.good and self.framed and act.name in FRAMED_ACTIONS:
            if not self.model.violations(pre):
                self.good = pre
        if (pre is not self.good or not self.framed or act.name not in FRAMED_ACTIONS
                or not isinstance(vm, int) or not 0 <= vm < len(pre.vms)):
            out = self.model.step_violations(pre, act, post)
        else:
            out = self._incremental(pre, act, post, vm)
        self.good = None if out else post
        return out

    def same_state(self, post: State, same: State) -> None:
        """``same`` is ``post`` again, as another value of it (a state committed to tables,
        :class:`ballast.model.tables.StateTables`): it is known good when ``post`` is."""
        if self.good is post:
            self.good = same

    def _incremental(self, pre: State, act: Action, post: State, vm: int) -> list[Violation]:
        cfg = self.model.cfg
        pages = footprint(pre, act, post, vm)
        small_pre, small_post = project(pre, vm, pages), project(post, vm, pages)
        steps: list[Violation] = []
        states: list[Violation] = []
        for p, local, split, vms in self.plan:
            if p.step is not None:
                msg = (p.step(cfg, small_pre, act, small_post) if local
                       else p.step(cfg, pre, act, post))
                if msg is not None:
                    steps.append(Violation(p.name, msg, "step"))
            if split is not None:
                msg = (split[0](small_post, vm) or split[1](post, vm)) if vm in vms else None
            elif local and p.per_vm is not None:
                msg = p.per_vm(cfg, small_post, vm) if vm in vms else None
            else:
                msg = p.check_state(cfg, post)
            if msg is not None:
                states.append(Violation(p.name, msg, "state"))
        return steps + states
