# mypy: disable-error-code="no-any-return"
"""Every action of the model, applied to many VMs at once on :class:`SystemArrays`.

Each method takes the action's arguments as arrays, one entry per operation,
for operations on *distinct* VMs listed in ascending order (host-page actions:
distinct host pages). The batch has exactly the effect of applying the model's
action to each VM in turn: shared resources (free MPNs, host swap slots, idle
processors) are handed out in VM order, and an operation whose guard fails
changes nothing. Each method returns the mask of operations that took effect.
Where the order inside a batch would matter in a way the vector form cannot
express (writes to shared copy-on-write pages, page sharing itself), the batch
is applied one operation at a time through the same code.

Every action runs its kernel (:mod:`ballast.model.action_kernels`) through the NumPy
interpreter; the engine provides the VMM underneath (its allocation of free MPNs,
copy-on-write and sharing, :meth:`Engine.vmm_touch`). Seeded faults (``FAULTS`` of the
model) are switched on by name and run the fault's kernel in place of the action's.

>>> from ballast.model.config import Config
>>> from ballast.model.actions import Action
>>> eng = Engine(Config(vms=1, guest_pages=2, machine_pages=2))
>>> eng.apply(Action.of("guest_write", vm=0, vpn=0, token=1))
>>> eng.arr.to_state().vms[0].p2m
(0, -1)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence, cast

import numpy as np
import numpy.typing as npt

from ballast.errors import GuardError, InputError, UsageError
from ballast.model import action_kernels as kernels
from ballast.model import reporting_kernels as reporting
from ballast.model.action_kernels import FAULT_KERNELS, KERNELS
from ballast.model.actions import ACTIONS, Action, Actor, vmm_keeps_host_pages
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.property_kernels import STEP_KERNELS, StepKernel
from ballast.model.state import State
from ballast.numeric.allocator import reuse_freed_memory
from ballast.numeric.arrays import (
    BALLOONED_BIT, COW_BIT, FREE_BIT, RECLAIMED_BIT, UNBACKED_MPN, SystemArrays,
)
from ballast.numeric.interpret import NumpyOps, hostile_vms, run_kernel
from ballast.numeric.rows import int_vector
from ballast.numeric.state_ops import NumpyStateOps
from ballast.numeric.vm_rows import VmRows, WriteLog

__all__ = ["Engine", "StepViolation", "ENGINE_FAULTS", "STEP_CHECKS", "engine_actions",
           "popcount"]

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

ENGINE_FAULTS: frozenset[str] = frozenset(FAULT_KERNELS)
"""The model's seeded faults the engine implements (by the same names): every fault written as
a kernel (:data:`~ballast.model.action_kernels.FAULT_KERNELS`), which the engine runs in place
of its action's kernel. A fault without a kernel is a declared gap of the NumPy core."""

_OTHERS = "VMs behind a shared MPN it wrote or whose page it paged out"
"""The VMs a step can reach beyond its own (:meth:`Engine._check_others`,
:meth:`Engine._check_taken`)."""

STEP_CHECKS: dict[str, str] = {
    k.name: f"Engine._kernel: {k.check.__module__.rsplit('.', 1)[-1]}.{k.check.__qualname__} "
            f"over the {_OTHERS if k.covers == 'others' else 'rows'}"
    for k in STEP_KERNELS.values()}
"""The step forms of the model's properties the engine checks after each kernel, from their
kernels (:data:`~ballast.model.property_kernels.STEP_KERNELS`); the state forms are
:data:`~ballast.numeric.invariants.NUMERIC_INVARIANTS`."""


def engine_actions() -> list[str]:
    """The model's actions the engine implements: a method of :class:`Engine` by that name."""
    return [name for name in ACTIONS if callable(getattr(Engine, name, None))]


@dataclass(frozen=True)
class StepViolation:
    """A step form of a property broken by one operation of a batch."""

    index: int
    """Position of the operation in its batch."""
    property: str
    message: str


class _Sequential(Exception):
    """The batch must be applied one operation at a time."""


def _from_kernel(vms: Ints, **args: Any) -> Mask:
    """A marker in :attr:`Engine._enabled`, never called (see :data:`_FROM_KERNEL`)."""
    raise AssertionError("a marker, never called")


_FROM_KERNEL: Callable[..., Mask] = _from_kernel
"""In :attr:`Engine._enabled`, an action whose method only runs its kernel: ``apply_batch``
calls :meth:`Engine._kernel` itself (one call fewer per batch, and no keyword arguments
unpacked and packed again)."""


def popcount(x: Ints) -> Ints:
    """Set bits of each (small, non-negative) integer.

    >>> popcount(np.array([0, 5, 255])).tolist()
    [0, 2, 8]
    """
    x = x.astype(np.int64)
    out = np.zeros_like(x)
    while bool(x.any()):
        out += x & 1
        x = x >> 1
    return out




@functools.lru_cache(maxsize=64)
def _step_kernels_of(cfg: Config) -> Mapping[str, list[StepKernel]]:
    """Per action that names a VM, the step forms that constrain it under ``cfg``'s
    features (the same for every engine of one configuration, so computed once)."""
    return MappingProxyType({
        name: [k for k in STEP_KERNELS.values()
               if k.constrains(spec) and INVARIANTS[k.name].feature(cfg)]
        for name, spec in ACTIONS.items() if "vm" in spec.params})


class Engine:
    """The numeric core: the model's actions on arrays, optionally with seeded faults."""

    def __init__(self, cfg: Config, faults: Sequence[str] = (),
                 arr: SystemArrays | None = None) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise InputError("<fault>", None, f"unknown fault {unknown[0]!r}")
        missing = [f for f in faults if f not in ENGINE_FAULTS]
        if missing:
            raise InputError("<fault>", None,
                             f"fault {missing[0]!r} has no numeric variant")
        # Each kernel run makes temporaries the size of the system: they reuse freed memory
        # rather than fresh pages (numeric/allocator.py).
        reuse_freed_memory()
        self.cfg = cfg
        self.faults = frozenset(faults)
        self.arr = arr if arr is not None else SystemArrays.initial(cfg)
        self.hint = 0
        self.step_violations: list[StepViolation] = []
        self._kernels = dict(KERNELS)
        for fault in self.faults:
            if fault in FAULT_KERNELS:
                action, kernel = FAULT_KERNELS[fault]
                self._kernels[action] = kernel
        self._methods: dict[str, Callable[..., Mask]] = {
            name: getattr(self, name) for name in engine_actions()}
        self._enabled: dict[str, Callable[..., Mask]] = {}
        """The methods of the actions met so far whose feature the configuration has
        (:data:`_FROM_KERNEL` for a method that only runs the action's kernel)."""
        self._hostile = hostile_vms(cfg)
        learned = _learned(cfg, self.faults)
        self._read_sets = learned.read_sets
        self._writes = learned.writes
        self._own = learned.own
        self._before: SystemArrays | None = None
        """The arrays of the last snapshot taken before a batch (lent to the next one)."""
        self._shared_writes: dict[int, tuple[int, int]] = {}
        """MPNs a step wrote that back other pages too: their contents before, the VM."""
        self._taken: dict[int, tuple[int, SystemArrays]] = {}
        """VMs whose page a step for another VM paged out (a seeded fault): that VM, the
        arrays before."""
        self._steps: Mapping[str, list[StepKernel]] = _step_kernels_of(cfg)

    @classmethod
    def from_state(cls, cfg: Config, s: State, faults: Sequence[str] = ()) -> "Engine":
        """An engine holding the model state ``s``."""
        return cls(cfg, faults, SystemArrays.from_state(cfg, s))

    # -- entry points ----------------------------------------------------------
    def apply_batch(self, name: str, vms: Any, **args: Any) -> Mask:
        """Apply action ``name`` once per entry of ``vms`` (ascending, distinct)."""
        fn = self._enabled.get(name)
        if fn is None:
            spec = ACTIONS.get(name)
            if spec is None or not spec.feature(self.cfg):
                return np.zeros(len(int_vector(vms)), dtype=bool)
            fn = self._method(name)
            if getattr(type(self), name) is _KERNEL_METHODS.get(name):
                fn = _FROM_KERNEL
            self._enabled[name] = fn
        v = int_vector(vms)
        try:
            if fn is _FROM_KERNEL:  # straight to the kernel, past the method's own call
                return self._kernel(name, v, args)
            return fn(v, **args)
        except _Sequential:
            fn = self._method(name)
            ok = np.zeros(len(v), dtype=bool)
            for k in range(len(v)):
                one = {key: (val[k:k + 1] if not isinstance(val, list) else val[k:k + 1])
                       for key, val in args.items()}
                before = len(self.step_violations)
                ok[k] = bool(fn(v[k:k + 1], **one)[0])
                for j in range(before, len(self.step_violations)):
                    sv = self.step_violations[j]
                    self.step_violations[j] = StepViolation(k, sv.property, sv.message)
            return ok

    def apply(self, act: Action) -> None:
        """Apply one model action; raise GuardError where the model would."""
        spec = ACTIONS.get(act.name)
        if spec is None:
            raise GuardError(act.name, "no such action in the model")
        if not spec.feature(self.cfg):
            raise GuardError(act.name, "this action is switched off in the configuration")
        kw = act.kwargs
        if set(kw) != set(spec.params):
            raise GuardError(act.name, f"expected arguments {', '.join(spec.params)}")
        vm = kw.pop("vm", None)
        if "host_page" in kw:
            vm = kw.pop("host_page")
            if not isinstance(vm, int) or not 0 <= vm < self.cfg.host_pages:
                raise GuardError(act.name, f"no host page {vm}")
        elif not (isinstance(vm, int) and 0 <= vm < self.cfg.vms):
            raise GuardError(act.name, f"no VM {vm}")
        if spec.actor is Actor.ROGUE and vm not in self.cfg.hostile_vms:
            raise GuardError(act.name, f"VM {vm} is not configured as hostile")
        args: dict[str, Any] = {}
        for k, val in kw.items():
            if isinstance(val, (tuple, str)):
                args[k] = [val]
            else:
                args[k] = np.array([val], dtype=np.int64)
        fn = self._method(act.name)
        # Straight to the action's method: apply_batch's checks were made above, and one
        # operation never needs its one-at-a-time retry (_Sequential: batches of two or more).
        if not bool(fn(np.array([vm], dtype=np.int64), **args)[0]):
            raise GuardError(act.name, "not allowed here")

    # -- shared machinery ------------------------------------------------------
    def _method(self, name: str) -> Callable[..., Mask]:
        """The engine's method running action ``name``."""
        fn = self._methods.get(name)
        if fn is None:
            raise UsageError(f"the numeric core has no NumPy encoding of action {name}")
        return fn

    def _fault(self, name: str) -> bool:
        return name in self.faults

    def _unback_rows(self, vms: Ints, ppns: Ints, by_balloon: bool, scrub: bool) -> None:
        self._unback(vms, ppns, by_balloon=by_balloon, scrub=scrub)

    def _ops(self, vms: Ints) -> NumpyOps:
        """The kernels' operations over VMs ``vms``, to evaluate their helpers."""
        return NumpyOps(VmRows(self.arr, vms), {})

    def _kernel(self, name: str, vms: Ints, args: Mapping[str, Any]) -> Mask:
        """Run action ``name``'s kernel (or its seeded fault's) on VMs ``vms``, and the step
        forms that constrain it (:data:`~ballast.model.property_kernels.STEP_KERNELS`)."""
        kernel = self._kernels[name]
        known = name in self._writes
        rows = (VmRows if known else WriteLog)(self.arr, vms, self._unback_rows, vmm=self,
                                               name=name)
        if self._shared_writes:
            self._shared_writes = {}
        if self._taken:
            self._taken = {}
        steps = self._steps.get(name, ())
        if not steps:
            ok = run_kernel(kernel, rows, args, scalars=True)
        elif known and not self._own.get(name, True):  # no step form of its own rows
            ok = run_kernel(kernel, rows, args, scalars=True)
            self._check_beside(name, vms, steps)
        else:
            ok = self._checked(name, vms, ok_rows=rows, args=args,
                               writes=self._writes[name] if known else None)
        if not known:
            writes = cast(WriteLog, rows).writes
            found = None if writes is None else frozenset(writes)
            self._writes[name] = found
        return ok

    def _checked(self, name: str, vms: Ints, ok_rows: VmRows, args: Mapping[str, Any],
                 writes: frozenset[str] | None) -> Mask:
        """Run action ``name``'s kernel on ``ok_rows`` and check the step forms that constrain
        it, but those that cover every VM and read nothing the kernel may write
        (``writes``, from an earlier run: None where not known): no VM's part they read
        changes, so they hold of every row as of a step that leaves the VM alone."""
        steps = self._steps.get(name, ())
        own = self._own.get(name) if writes is not None else None
        if own is None:
            own = [k for k in steps if k.covers != "others" and not self._untouched(k, writes)]
            if writes is not None:
                self._own[name] = own
        before = None
        if own:
            before = self._before = self.arr.snapshot(vms, into=self._before,
                                                      only=self._reads(own))
        ok = run_kernel(self._kernels[name], ok_rows, args, scalars=True)
        if before is not None:
            self._check_rows(name, vms, ok, own, before)
        self._check_beside(name, vms, steps)
        return ok

    def _check_beside(self, name: str, vms: Ints, steps: Sequence[StepKernel]) -> None:
        """The step forms of other VMs than the rows' that action ``name`` on VMs ``vms``
        changed: those that share a machine page a step wrote, or whose page it took."""
        if self._shared_writes:
            self._check_others(name, vms, [k for k in steps if k.covers == "others"])
        if self._taken:
            self._check_taken(name, vms, [k for k in steps if k.covers == "others"])

    def _untouched(self, kernel: StepKernel, writes: frozenset[str] | None) -> bool:
        """Whether step form ``kernel`` covers every VM and reads nothing of ``writes``: then
        the step leaves every VM as the form reads it, and it holds of each (a dictionary
        it reads other than the queues' rare entries counts as written wherever it is not
        empty)."""
        if kernel.covers != "every" or writes is None:
            return False
        reads = self._reads([kernel])
        if reads is None or reads & writes:
            return False
        return not any(isinstance(getattr(self.arr, r, None), dict) and not r.endswith("_extra")
                       for r in reads)

    def _reads(self, kernels: list[StepKernel]) -> frozenset[str] | None:
        """The arrays the step forms ``kernels`` read (None: every one), found once by
        evaluating them on one VM of these arrays and noting what they read: the kernels
        branch on the configuration only, never on the state."""
        names = tuple(k.name for k in kernels)
        if names not in self._read_sets:
            probe = _Reads(self.arr)
            one = np.zeros(1, dtype=np.int64)
            for kernel in kernels:
                kernel.check(NumpyStateOps(cast(SystemArrays, probe), one),
                             NumpyStateOps(self.arr, one))
            self._read_sets[names] = None if probe.opaque else frozenset(probe.names)
        return self._read_sets[names]

    def _check_rows(self, name: str, vms: Ints, ok: Mask, kernels: list[StepKernel],
                    before: SystemArrays) -> None:
        """The step forms that cover the VM that acts (or every VM) on the rows that took
        the step. A kernel writes the rows of its own VM only (``share``, which writes
        another VM's page, names guest pages: no such step form constrains it), so these
        are the only VMs whose records changed."""
        hostile = self._hostile[vms]
        for kernel in kernels:
            # A form that covers every VM holds of a VM the step left alone, so the rows
            # that took the step are all it needs. Narrowing them to the rows whose records
            # changed is not worth it: finding those reads the same records before and
            # after as the form does (measured: 0.37 ms of a 1 ms vmm_reclaim batch), and a
            # row that took the step has nearly always changed.
            rows = ok & ~hostile if kernel.honest_only else ok
            idx = np.flatnonzero(rows)
            if not len(idx):
                continue
            holds = self._step_holds(kernel, before, self.arr, vms[idx])
            for k in idx[~holds].tolist():
                self._step_violation(name, int(k), int(vms[k]), kernel, int(vms[k]))

    def _check_others(self, name: str, vms: Ints, kernels: list[StepKernel]) -> None:
        """The step forms that cover the VMs other than the one that acts, on the VMs behind
        an MPN the step wrote that backs other pages too (the engine's count of shared
        MPNs): the one way a step reaches them. Their pre-state is the arrays with those
        MPNs' contents as they were (their records are written by their own steps only)."""
        written = self._shared_writes
        for kernel in kernels:
            before = self.arr.copy_dicts()
            before.content = self.arr.content.copy()
            for x, (old, _) in written.items():
                before.content[x] = old
            for x, (_, actor) in written.items():
                others = np.unique(np.nonzero(self.arr.p2m == x)[0])
                covered = set(kernel.vms(self.cfg, actor))
                others = np.array([w for w in others.tolist() if w in covered], dtype=np.int64)
                if not len(others):
                    continue
                holds = self._step_holds(kernel, before, self.arr, others)
                row = int(np.flatnonzero(vms == actor)[0])
                for w in others[~holds].tolist():
                    self._step_violation(name, row, actor, kernel, int(w))

    def _check_taken(self, name: str, vms: Ints, kernels: list[StepKernel]) -> None:
        """The step forms that cover the VMs other than the one that acts, on the VMs whose
        page the step paged out (:meth:`vmm_swap_out_oldest`), against the arrays before."""
        for w, (actor, before) in self._taken.items():
            row = int(np.flatnonzero(vms == actor)[0])
            for kernel in kernels:
                if w not in kernel.vms(self.cfg, actor):
                    continue
                one = np.array([w], dtype=np.int64)
                if not bool(self._step_holds(kernel, before, self.arr, one)[0]):
                    self._step_violation(name, row, actor, kernel, w)

    def _step_holds(self, kernel: StepKernel, before: SystemArrays, after: SystemArrays,
                    vms: Ints) -> Mask:
        out = kernel.check(NumpyStateOps(before, vms), NumpyStateOps(after, vms))
        return np.broadcast_to(np.asarray(out, dtype=bool), (len(vms),))

    def _step_violation(self, name: str, row: int, actor: int, kernel: StepKernel,
                        vm: int) -> None:
        self.step_violations.append(StepViolation(
            row, kernel.name, f"{name} by VM {actor} breaks the step form of {kernel.name} "
                              f"for VM {vm} ({kernel.check.__qualname__})"))

    def _lowest_free(self, k: int) -> Ints:
        """Up to ``k`` lowest free MPNs, in ascending order (the VMM's choice)."""
        mf = self.arr.mpn_flags
        out: list[Ints] = []
        # The scan starts at the hint (no free MPN below it) with a window a few times the
        # pages wanted, doubled while it finds too few: free MPNs are usually dense there.
        got, start, chunk = 0, self.hint, max(256, 4 * k)
        while got < k and start < len(mf):
            idx = (mf[start:start + chunk] & FREE_BIT).nonzero()[0] + start
            if got == 0:
                self.hint = int(idx[0]) if len(idx) else start + chunk
            out.append(idx[:k - got])
            got += len(out[-1])
            start += chunk
            chunk *= 2
        if got == 0 and k > 0:
            self.hint = min(self.hint, len(mf))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _free_in_own_host_pages(self, vm: int) -> Ints:
        """The lowest free MPN (none: empty) in a host page that backs no page of a VM
        but ``vm`` (``actions._vm_free_mpn`` where the VMM keeps host pages to one VM)."""
        a, u = self.arr, self.cfg.host_page_units
        M = len(a.mpn_flags)
        others = np.ones(len(a.p2m), dtype=bool)
        others[vm] = False
        theirs = a.p2m[others]
        foreign = np.zeros(M // u, dtype=bool)
        foreign[theirs[theirs < M].astype(np.int64) // u] = True
        free = ((a.mpn_flags & FREE_BIT) != 0) & ~np.repeat(foreign, u)
        return np.flatnonzero(free)[:1]

    def _mark_free(self, mpns: Ints) -> None:
        if len(mpns):
            self.hint = min(self.hint, int(mpns.min()))

    def _take(self, mpns: Ints) -> None:
        self.arr.mpn_flags[mpns] &= ~(FREE_BIT | RECLAIMED_BIT)

    def _unback(self, vms: Ints, ppns: Ints, by_balloon: bool, scrub: bool = True) -> None:
        """The model's ``unback`` for many (VM, PPN) pairs, in order."""
        a = self.arr
        if len(vms) == 1:  # one page (one op per call): in Python numbers, as below
            vm, ppn = int(vms[0]), int(ppns[0])
            x = int(a.p2m[vm, ppn])
            if x == int(UNBACKED_MPN):
                return
            a.p2m[vm, ppn] = UNBACKED_MPN
            if x in a.refs:
                a.refs[x] -= 1
                if a.refs[x] == 1:
                    del a.refs[x]
                    a.mpn_flags[x] &= ~COW_BIT
                return
            if scrub:
                a.content[x] = 0
            a.mpn_flags[x] = ((a.mpn_flags[x] & ~COW_BIT) | FREE_BIT
                              | (RECLAIMED_BIT if by_balloon else 0))
            self.hint = min(self.hint, x)
            return
        m = a.p2m[vms, ppns].astype(np.int64)
        backed = m != int(UNBACKED_MPN)
        vms, ppns, m = vms[backed], ppns[backed], m[backed]
        if not len(m):
            return
        a.p2m[vms, ppns] = UNBACKED_MPN
        # In order: a shared MPN whose last other mapper goes in the same batch is freed.
        shared = np.zeros(len(m), dtype=bool)
        for k, x in enumerate(m.tolist() if a.refs else []):
            if x not in a.refs:
                continue
            shared[k] = True
            a.refs[x] -= 1
            if a.refs[x] == 1:
                del a.refs[x]
                a.mpn_flags[x] &= ~COW_BIT
        alone = m[~shared]
        if scrub:
            a.content[alone] = 0
        a.mpn_flags[alone] = ((a.mpn_flags[alone] & ~COW_BIT) | FREE_BIT
                              | (RECLAIMED_BIT if by_balloon else 0))
        self._mark_free(alone)

    def vmm_touch(self, vms: Ints, ppns: Ints, tokens: Ints, write: Mask | None, cow: bool,
                  name: str, lowest: bool = False) -> tuple[Mask, Ints]:
        """The kernels' ``touch``: :meth:`_host_touch` of rows that passed their guard."""
        return self._host_touch(vms, ppns, tokens, actors=True, name=name, write=write, cow=cow,
                                lowest=lowest)

    def vmm_swap_out_oldest(self, actor: int) -> None:
        """The kernels' ``swap_out_oldest`` for VM ``actor``: the guest page behind the lowest
        MPN that backs an unshared page, whichever VM's, goes to host swap (the slot claimed
        by the kernel) and its MPN back to the free pool. A page of another VM is noted for
        the step forms that cover the other VMs (:meth:`_check_taken`)."""
        a = self.arr
        M = len(a.mpn_flags)
        p2m = a.p2m.astype(np.int64)
        held = (p2m != int(UNBACKED_MPN)) & (p2m < M)
        held[held] = (a.mpn_flags[p2m[held]] & COW_BIT) == 0
        if not held.any():
            return
        w, q = (int(x) for x in np.unravel_index(int(np.argmin(np.where(held, p2m, M))),
                                                 p2m.shape))
        if w != actor and w not in self._taken:
            self._taken[w] = (actor, a.copy())
        a.swap[(w, q)] = int(a.content[p2m[w, q]])
        self._unback(int_vector([w]), int_vector([q]), by_balloon=False)

    def vmm_mark_free(self, mpns: Ints) -> None:
        """MPNs back in the free pool (the hint of :meth:`_lowest_free`)."""
        self._mark_free(np.asarray(mpns, dtype=np.int64).ravel())

    def vmm_share_pages(self, vm: int, ppn: int, other_vm: int, other_ppn: int,
                        cow: bool) -> None:
        """The model's ``vmm_share`` effect: ``other_ppn`` maps ``ppn``'s MPN, copy-on-write
        (``cow=False``: the seeded fault that loses every copy-on-write mark)."""
        a = self.arr
        keep = int(a.p2m[vm, ppn])
        self._unback(int_vector([other_vm]), int_vector([other_ppn]), by_balloon=False)
        a.p2m[other_vm, other_ppn] = keep
        a.refs[keep] = a.refs.get(keep, 1) + 1
        a.mpn_flags[keep] |= COW_BIT
        if not cow:
            a.mpn_flags &= ~COW_BIT

    def vmm_write_pages(self, vm: int, ppns: list[int], token: int, name: str) -> bool:
        """The kernels' ``write_pages``: the model's ``write_page`` of each page in order, or
        of none when the free MPNs they need are not there (counted first: a page paged out
        by the host needs one, a shared page one unless its other mappers are gone)."""
        a = self.arr
        need, mappers = 0, dict(a.refs)
        for p in ppns:
            m = int(a.p2m[vm, p])
            if m == int(UNBACKED_MPN):
                need += 1
            elif a.mpn_flags[m] & COW_BIT and mappers.get(m, 1) > 1:
                need += 1
                mappers[m] = mappers.get(m, 1) - 1
        if need > int(np.count_nonzero(a.mpn_flags & FREE_BIT)):
            return False
        for p in ppns:
            self._host_touch(int_vector([vm]), int_vector([p]), int_vector([token]),
                             actors=True, name=name)
        return True

    def _host_touch(self, vms: Ints, ppns: Ints, tokens: Ints | None, actors: bool,
                    name: str, gate: Mask | None = None,
                    write: Mask | None = None, cow: bool = True,
                    lowest: bool = False) -> tuple[Mask, Ints]:
        """Plan then apply the model's ``fault_in`` (and ``write_page`` when ``tokens``).

        Returns the ops that succeeded (a free MPN was found where needed) and the
        MPN each op ends on. ``gate`` excludes ops that fail their own guard.
        Raises _Sequential before changing anything if order would matter."""
        a = self.arr
        n = len(vms)
        if n == 1:
            return self._touch_one(int(vms[0]), int(ppns[0]),
                                   None if tokens is None else int(tokens[0]), actors,
                                   True if gate is None else bool(gate[0]),
                                   True if write is None else bool(write[0]), cow, lowest)
        gate = np.ones(n, dtype=bool) if gate is None else gate
        if tokens is None:
            write = np.zeros(n, dtype=bool)
        # (``write`` None: every op writes, and no mask of them is made.)
        m = a.p2m[vms, ppns].astype(np.int64)
        unb = m == int(UNBACKED_MPN)
        backed = ~unb
        # Copy on write only where a write meets a page already backed (a batch of writes
        # to fresh pages, the usual one, has none to look at).
        cow_mask = None
        if tokens is not None and backed.any():
            if cow:
                shared = np.zeros(n, dtype=bool)
                shared[backed] = (a.mpn_flags[m[backed]] & COW_BIT) != 0
                cow_mask = shared & gate if write is None else shared & gate & write
            written = gate & backed if write is None else gate & backed & write
            if n > 1 and a.refs and any(int(x) in a.refs for x in m[written]):
                raise _Sequential
        # With that fault a mapped MPN can come back to the free pool: keep the
        # mapper counts exact by going one operation at a time and recounting.
        recount = self._fault("host_takes_partial_page")
        if recount and n > 1:
            raise _Sequential
        need = (unb if cow_mask is None else unb | cow_mask) & gate
        ok, new = self._backing(vms, ppns, m, gate, need, lowest)
        take = need & ok
        self._fault_in(vms, ppns, new, take & unb, recount)
        if cow_mask is not None:
            self._copy_on_write(vms, ppns, m, new, take & cow_mask, recount)
        if tokens is not None:
            self._write_tokens(vms, tokens, new, ok if write is None else ok & write, actors)
        return ok, new

    def _backing(self, vms: Ints, ppns: Ints, m: Ints, gate: Mask, need: Mask,
                 lowest: bool) -> tuple[Mask, Ints]:
        """The ops that may go on (a free MPN found where ``need`` asks one) and the MPN
        each ends on: its own ``m``, or the one the VMM chose (with ``lowest``, the lowest
        free MPN whatever the VMM's rule)."""
        a = self.arr
        if self.cfg.guest_system and not lowest:
            # A generic guest system's page is its own machine page (actions.own_mpn).
            own = vms.astype(np.int64) * self.cfg.guest_pages + ppns
            ok = gate & (~need | ((a.mpn_flags[own] & FREE_BIT) != 0))
            return ok, np.where(need & ok, own, m)
        wanted = int(need.sum())
        if vmm_keeps_host_pages(self.cfg) and not lowest:
            # Which host pages are another VM's depends on the rows before: one at a time.
            if wanted > 1:
                raise _Sequential
            got = self._free_in_own_host_pages(int(vms[need][0])) if need.any() else \
                np.zeros(0, dtype=np.int64)
        else:
            got = self._lowest_free(wanted)
        if len(got) == wanted:  # an MPN for each that needs one (nearly always)
            new = m.copy()
            new[need] = got
            return gate.copy(), new
        rank = np.cumsum(need)
        ok = gate & (~need | (rank <= len(got)))
        take = need & ok
        return ok, np.where(
            take, got[np.minimum(rank, max(len(got), 1)) - 1] if len(got) else 0, m)

    def _fault_in(self, vms: Ints, ppns: Ints, new: Ints, fi: Mask, recount: bool) -> None:
        """The model's ``fault_in`` of the ops ``fi``: the page filled from host swap or
        zeros on its new MPN; a touched ballooned page pops."""
        if not fi.any():
            return
        a = self.arr
        fv, fp, fm = (vms, ppns, new) if fi.all() else (vms[fi], ppns[fi], new[fi])
        if not a.swap:  # no page on host swap: each filled with zeros
            a.content[fm] = 0
        else:
            self._fill_from_swap(fv, fp, fm)
        self._take(fm)
        a.p2m[fv, fp] = fm
        flags = a.page_flags[fv, fp]
        if (flags & BALLOONED_BIT).any():  # rarely: a ballooned page touched pops
            a.page_flags[fv, fp] = flags & ~flags.dtype.type(BALLOONED_BIT)
        if recount:
            a.rebuild_refs()

    def _fill_from_swap(self, fv: Ints, fp: Ints, fm: Ints) -> None:
        """The contents of pages faulted in onto MPNs ``fm``: each page's from host swap
        (its slot freed), zeros where it has none."""
        a = self.arr
        toks = np.zeros(len(fv), dtype=np.int64)
        if a.swap and len(a.swap) <= 8 < len(fv):
            # A few pages on host swap (it is small): each looked for among the pages.
            P = self.cfg.guest_pages
            keys = fv * P + fp
            for v, p in list(a.swap):
                at = (keys == v * P + p).nonzero()[0]
                if len(at):
                    toks[at[0]] = a.swap.pop((v, p))
        elif a.swap and len(fv) <= 256:
            # A few pages: each looked up in the host's swap entries.
            for k, key in enumerate(zip(fv.tolist(), fp.tolist())):
                if key in a.swap:
                    toks[k] = a.swap.pop(key)
        elif a.swap:
            # Few pages are on host swap: look up only the pages found there.
            P = self.cfg.guest_pages
            slots = np.fromiter((v * P + p for v, p in a.swap), dtype=np.int64,
                                count=len(a.swap))
            for k in np.flatnonzero(np.isin(fv * P + fp, slots)).tolist():
                toks[k] = a.swap.pop((int(fv[k]), int(fp[k])), 0)
        a.content[fm] = toks

    def _copy_on_write(self, vms: Ints, ppns: Ints, m: Ints, new: Ints, cw: Mask,
                       recount: bool) -> None:
        """Copy on write of the ops ``cw``: each page moves to its new MPN and the shared
        MPN ``m`` keeps its other mappers."""
        if not cw.any():
            return
        a = self.arr
        for x in m[cw]:
            x = int(x)
            a.refs[x] -= 1
            if a.refs[x] <= 1:
                del a.refs[x]
                a.mpn_flags[x] &= ~COW_BIT
        self._take(new[cw])
        a.p2m[vms[cw], ppns[cw]] = new[cw]
        if recount:
            a.rebuild_refs()

    def _write_tokens(self, vms: Ints, tokens: Ints, new: Ints, w: Mask,
                      actors: bool) -> None:
        """The model's ``write_page`` of the ops ``w``: each token into its MPN."""
        a = self.arr
        every = bool(w.all())  # every op writes (a batch of writes): no selection
        at = new if every else new[w]
        old = a.content[at].astype(np.int64) if actors and a.refs else None
        a.content[at] = tokens if every else tokens[w]
        if old is not None:
            # A write through an MPN that backs other pages too: the one way a step
            # reaches another VM's memory (see _check_others).
            for j, k in enumerate(np.flatnonzero(w).tolist()):
                x = int(new[k])
                if x in a.refs:
                    self._shared_writes.setdefault(x, (int(old[j]), int(vms[k])))

    def _touch_one(self, vm: int, ppn: int, token: int | None, actors: bool, gate: bool,
                   write: bool, cow: bool, lowest: bool) -> tuple[Mask, Ints]:
        """:meth:`_host_touch` of one page, in Python numbers: one operation pays for no
        array of its own (shrinking and replay go one operation at a time)."""
        a = self.arr
        unbacked = int(UNBACKED_MPN)
        m = int(a.p2m[vm, ppn])
        unb = m == unbacked
        if token is None:
            write = False
        need = gate and (unb or (token is not None and cow and write
                                 and bool(a.mpn_flags[m] & COW_BIT)))
        recount = self._fault("host_takes_partial_page")
        new, ok = m, gate
        if need:
            if self.cfg.guest_system and not lowest:
                # A generic guest system's page is its own machine page (actions.own_mpn).
                own = vm * self.cfg.guest_pages + ppn
                ok = bool(a.mpn_flags[own] & FREE_BIT)
                got = [own] if ok else []
            elif vmm_keeps_host_pages(self.cfg) and not lowest:
                got = self._free_in_own_host_pages(vm).tolist()
            else:
                got = self._lowest_free(1).tolist()
            ok = bool(got)
            new = int(got[0]) if ok else m
        if need and ok:
            if unb:
                # fault_in: fill from host swap or zeros; a touched ballooned page pops.
                a.content[new] = a.swap.pop((vm, ppn), 0) if a.swap else 0
                a.page_flags[vm, ppn] &= ~BALLOONED_BIT
            else:
                # copy on write: the shared MPN keeps its other mappers.
                a.refs[m] -= 1
                if a.refs[m] <= 1:
                    del a.refs[m]
                    a.mpn_flags[m] &= ~COW_BIT
            a.mpn_flags[new] &= ~(FREE_BIT | RECLAIMED_BIT)
            a.p2m[vm, ppn] = new
            if recount:
                a.rebuild_refs()
        if token is not None and ok and write:
            old = int(a.content[new])
            a.content[new] = token
            if actors and new in a.refs:
                self._shared_writes.setdefault(new, (old, vm))
        return np.array([ok]), np.array([new], dtype=np.int64)

    # -- VMM -----------------------------------------------------------------------
    def vmm_reclaim(self, vms: Ints, refuse: list[tuple[int, ...]] | None = None) -> Mask:
        """The model's ``vmm_reclaim`` (its kernel); ``refuse`` names the PPNs each VMM
        refuses (a set).

        The default (``None``) is the VMM that accepts the lowest valid PPNs it has room
        for and refuses the rest: one of the choices the model admits.
        """
        if refuse is None:
            o = self._ops(vms)
            valid = kernels.reclaim_valid(o)
            keep = o.lowest(valid, kernels.reclaim_room(o, self.cfg.migration))
            refuse = [tuple(np.flatnonzero(valid[k] & ~keep[k]).tolist())
                      for k in range(len(vms))]
        return self._kernel("vmm_reclaim", vms, {"refuse": refuse})

    def vmm_swap_over_target(self, vms: Ints, ppn: Ints) -> Mask:
        """The model's ``vmm_swap_over_target`` (its kernel). With the seeded fault whose VMM
        pages out another VM's page, one VM at a time: a step may change whether the next
        VM is over its target."""
        if len(vms) != 1 and self._fault("vmm_swaps_honest_page"):
            raise _Sequential
        return self._kernel("vmm_swap_over_target", vms, {"ppn": int_vector(ppn)})

    def vmm_share(self, vms: Ints, ppn: Ints, other_vm: Ints, other_ppn: Ints) -> Mask:
        """The model's ``vmm_share`` (its kernel), one pair at a time: order matters."""
        if len(vms) != 1:
            raise _Sequential
        return self._kernel("vmm_share", vms, {"ppn": int_vector(ppn),
                                               "other_vm": int_vector(other_vm),
                                               "other_ppn": int_vector(other_ppn)})


    # -- free page reporting and the statistics queue ------------------------------------
    def reportable(self, vms: Ints) -> Mask:
        """Free PPNs each VM's module may report (the kernels' ``reportable``)."""
        return np.asarray(reporting.reportable(self._ops(vms)), dtype=bool)

class _Learned:
    """What the engines of one configuration and set of faults learn of their kernels as
    they first run them, and keep for the next engine (constants of the two)."""

    def __init__(self) -> None:
        self.writes: dict[str, frozenset[str] | None] = {}
        """Per action, what its kernel may write (None: not known), from
        :class:`~ballast.numeric.vm_rows.WriteLog` on its first run."""
        self.own: dict[str, list[StepKernel]] = {}
        """Per action, the step forms that cover the VM that acts or every VM, less those
        whose reads its kernel never writes (:meth:`Engine._untouched`)."""
        self.read_sets: dict[tuple[str, ...], frozenset[str] | None] = {}
        """Per list of step forms, the arrays they read (:meth:`Engine._reads`)."""


@functools.lru_cache(maxsize=64)
def _learned(cfg: Config, faults: frozenset[str]) -> _Learned:
    """The one :class:`_Learned` of the engines of ``cfg`` with ``faults``."""
    return _Learned()



class _Reads:
    """A view of :class:`SystemArrays` that notes the attributes read through it; a method
    read through it (whose reads it cannot see) makes it ``opaque``."""

    def __init__(self, arr: SystemArrays) -> None:
        self.arr = arr
        self.names: set[str] = set()
        self.opaque = False

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.arr, name)
        if callable(value):
            self.opaque = True
        self.names.add(name)
        return value


def _step_message(cfg: Config, prop: str, pre: SystemArrays, post: SystemArrays, name: str,
                  vm: int) -> str:
    """The model's own words for property ``prop`` broken by action ``name`` of VM ``vm``."""
    act = Action.of(name, vm=vm) if "vm" in ACTIONS[name].params else Action.of(name)
    step = INVARIANTS[prop].step
    assert step is not None
    said = step(cfg, pre.to_state(), act, post.to_state())
    return said or f"VM {vm}: {name} broke {prop}"


def _kernel_method(name: str) -> Callable[..., Mask]:
    """An :class:`Engine` method running action ``name`` from its kernel."""

    def method(self: Engine, vms: Ints, **args: Any) -> Mask:
        return self._kernel(name, vms, args)
    method.__name__, method.__qualname__ = name, f"Engine.{name}"
    method.__doc__ = (f"The model's ``{name}``, run from its kernel "
                      f"(:mod:`ballast.model.action_kernels`).")
    return method


_KERNEL_METHODS: dict[str, Callable[..., Mask]] = {
    name: _kernel_method(name) for name in KERNELS if not hasattr(Engine, name)}
"""The methods of :class:`Engine` that only run their action's kernel."""
for _name, _fn in _KERNEL_METHODS.items():
    setattr(Engine, _name, _fn)
