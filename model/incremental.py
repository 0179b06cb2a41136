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
  size part on the whole state (sizes are free);
* **reads** -- a property's state form depends only on the records its kernel reads
  (:func:`~ballast.model.kernel_reads.state_form_reads`, derived from
  :data:`~ballast.model.property_kernels.PROPERTY_KERNELS`). When the state before the step
  satisfied it and the step left each of those records as it was (the same object, told
  by identity: :meth:`StepChecker.changed`), the state after satisfies it too, and it is not
  read again; a step that changes no page record reads no footprint at all.

Every other property, every action not in :data:`FRAMED_ACTIONS`, a model with seeded
faults (a fault may break the frame), and any step from a state not known to satisfy
every property, are checked in full. The claims are checked by
``tests/model/test_incremental.py`` on random walks of every preset (unchanged records
outside the footprint; the same violations as the full check, also on states corrupted
at a footprint page, and on states corrupted in one record at a time, which catch read sets
seeded with a missing record).

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

from itertools import repeat
from operator import attrgetter
from typing import Any, Callable, NamedTuple

from ballast.model.actions import Action, ActionSpec
from ballast.model.invariants import Property, StepCheck, accounting_pages, accounting_sizes
from ballast.model.kernel_reads import state_form_reads
from ballast.model.property_kernels import STEP_KERNELS
from ballast.model.state import State, VmState, replace_fields
from ballast.model.system import BalloonModel, Violation
from ballast.model.tables import TableReads, cut_set, same_view

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
            # A report names hundreds of pages: checked and added by loops in C.
            if all(map(isinstance, value, repeat(int))):
                pages.update(value)
            else:
                pages.update([p for p in value if isinstance(p, int)])
    for v in (pre.vms[vm], post.vms[vm]):
        pages.update(v.inflate_queue)
        pages.update(v.deflate_queue)
        pages |= v.acked_inflate
        pages |= v.acked_refused
        pages |= v.acked_deflate
        pages |= v.module.refused
    return pages


def project(s: State, vm: int, pages: set[int], read: TableReads | None = None) -> State:
    """``s`` with VM ``vm``'s page sets cut down to ``pages`` (the queues and the
    acknowledgements are inside the footprint already; per-page tuples are read by index).
    With ``read`` (kept for one ``pages``), each table under a view is read once for the
    states before and after a step (:func:`~ballast.model.tables.cut_set`)."""
    v: VmState = s.vms[vm]
    m = v.module
    cut = v.replace(ballooned=cut_set(v.ballooned, pages, read),
                    module=replace_fields(m, balloon=cut_set(m.balloon, pages, read),
                                          refused=cut_set(m.refused, pages, read)))
    return s.with_vm(vm, cut)


def _part(path: str) -> str:
    """The part of a state that holds the record at ``path``: "" (the VM's own records),
    "guest", "module" or "host"."""
    head, _, rest = path.partition(".")
    return head if rest else ""


_MOST_STATE_PLANS = 1024
"""Most sets of changed records whose state plans :class:`StepChecker` keeps (a trace's
steps change a few dozen different sets)."""


class _Read(NamedTuple):
    """How :class:`StepChecker` reads one property, worked out once (a long trace checks it
    per step)."""

    prop: Property
    local: bool
    """Whether it is page-local (:data:`PAGE_LOCAL`): read on the VM projected onto the
    footprint."""
    split: tuple[Any, Any] | None
    """Its page part (read on the projection) and size part (read whole), if it has both."""
    vms: frozenset[int]
    """The VMs its per-VM form covers."""
    reads: frozenset[str] | None
    """The records its state form reads (:func:`~ballast.model.kernel_reads.state_form_reads`),
    or None when that is not known."""
    constrains: Callable[[ActionSpec], bool] | None
    """The actions its step form constrains (its step kernel's), or None when not known."""


class _Cut:
    """A step's footprint in VM ``vm`` and the states before and after it projected onto it,
    each made when a property first reads it (a step whose page-local properties all read
    records it left alone needs none)."""

    __slots__ = ("pre", "act", "post", "vm", "_pages", "_small_pre", "_small_post", "_read")

    def __init__(self, pre: State, act: Action, post: State, vm: int) -> None:
        self.pre, self.act, self.post, self.vm = pre, act, post, vm
        self._pages: set[int] | None = None
        self._small_pre: State | None = None
        self._small_post: State | None = None
        self._read: TableReads = {}
        """The footprint's pages of each table read so far (both states are views of the
        same tables)."""

    def pages(self) -> set[int]:
        """The footprint (:func:`footprint`)."""
        if self._pages is None:
            self._pages = footprint(self.pre, self.act, self.post, self.vm)
        return self._pages

    def small_pre(self) -> State:
        """The state before the step, projected (:func:`project`)."""
        if self._small_pre is None:
            self._small_pre = project(self.pre, self.vm, self.pages(), self._read)
        return self._small_pre

    def small_post(self) -> State:
        """The state after the step, projected (:func:`project`)."""
        if self._small_post is None:
            self._small_post = project(self.post, self.vm, self.pages(), self._read)
        return self._small_post


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
        self.plan = [
            _Read(p, p.name in PAGE_LOCAL, _SPLIT.get(p.name), frozenset(p.checked_vms(cfg)),
                  state_form_reads(p.name, cfg),
                  STEP_KERNELS[p.name].constrains if p.name in STEP_KERNELS else None)
            for p in self.properties]

    @property
    def plan(self) -> list[_Read]:
        """How each property is read (in the order of :attr:`properties`)."""
        return self._plan

    @plan.setter
    def plan(self, plan: list[_Read]) -> None:
        # What is worked out of the plan once, not per step, is worked out again of a new one.
        self._plan = plan
        watched = set().union(*(r.reads for r in plan if r.reads is not None))
        self.watched: dict[str, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}
        """Each record some property reads, by the part of the state that holds it (the VM
        itself, its guest, its module, the host): their paths, and how to read them all of
        that part (in one call)."""
        for part in ("", "guest", "module", "host"):
            paths = tuple(path for path in sorted(watched) if _part(path) == part)
            self.watched[part] = (paths, _reader([p.removeprefix(part + ".") for p in paths]))
        self._step_plans: dict[str, list[tuple[str, StepCheck, bool]]] = {}
        """By action name: each property with a step form (its name, its step form), and
        whether that is read on the states projected onto the footprint."""
        self._state_plans: dict[frozenset[str], list[_Read]] = {}
        """By the records a step changed: the properties whose state form is read again
        after it (in plan order)."""

    def _step_plan(self, name: str) -> list[tuple[str, StepCheck, bool]]:
        found = self._step_plans.get(name)
        if found is None:
            spec = self.model.table.get(name)
            found = self._step_plans[name] = [
                (r.prop.name, r.prop.step,
                 r.local and (spec is None or r.constrains is None or r.constrains(spec)))
                for r in self._plan if r.prop.step is not None]
        return found

    def _state_plan(self, changed: frozenset[str]) -> list[_Read]:
        found = self._state_plans.get(changed)
        if found is None:
            if len(self._state_plans) >= _MOST_STATE_PLANS:
                self._state_plans.clear()
            # A property that held before the step and reads nothing it changed holds after it.
            found = self._state_plans[changed] = [
                r for r in self._plan if r.reads is None or not r.reads.isdisjoint(changed)]
        return found

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

    def changed(self, pre: State, post: State, vm: int) -> set[str] | None:
        """The records some property reads that the step changed (those of VM ``vm`` and of
        the host, by the paths of :data:`~ballast.model.kernel_reads.FIELD_PATHS`), told by
        identity (a record the step left alone is the same object, or a view of the same
        table: :func:`~ballast.model.tables.same_view`); None when it changed another VM."""
        a, b = pre.vms[vm], post.vms[vm]
        if len(pre.vms) > 1 and any(x is not y for w, (x, y) in enumerate(zip(pre.vms, post.vms))
                                    if w != vm):
            return None
        out: set[str] = set()
        for part, x, y in (("", a, b), ("guest", a.guest, b.guest),
                           ("module", a.module, b.module), ("host", pre.host, post.host)):
            if x is not y:  # a record left alone is the same object: so are its fields
                paths, read = self.watched[part]
                out.update([path for path, old, new in zip(paths, read(x), read(y))
                            if old is not new and not same_view(old, new)])
        return out

    def _incremental(self, pre: State, act: Action, post: State, vm: int) -> list[Violation]:
        cfg = self.model.cfg
        cut = _Cut(pre, act, post, vm)
        out: list[Violation] = []
        for name, step, small in self._step_plan(act.name):
            if small:
                msg = step(cfg, cut.small_pre(), act, cut.small_post())
            else:  # the whole states: the full check's own call (it returns at once
                # for an action its kernel does not constrain)
                msg = step(cfg, pre, act, post)
            if msg is not None:
                out.append(Violation(name, msg, "step"))
        changed = self.changed(pre, post, vm)
        for r in self._plan if changed is None else self._state_plan(frozenset(changed)):
            p = r.prop
            if r.split is not None:
                msg = ((r.split[0](cut.small_post(), vm) or r.split[1](post, vm))
                       if vm in r.vms else None)
            elif r.local and p.per_vm is not None:
                msg = p.per_vm(cfg, cut.small_post(), vm) if vm in r.vms else None
            else:
                msg = p.check_state(cfg, post)
            if msg is not None:
                out.append(Violation(p.name, msg, "state"))
        return out


def _reader(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the fields ``names`` of a record, as a tuple (read in C)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    return lambda record: ()
