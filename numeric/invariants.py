# mypy: disable-error-code="no-any-return"
"""Every state invariant of the model, evaluated on :class:`SystemArrays` with whole-array operations.

Each property of ``ballast.model.invariants.INVARIANTS`` that has a kernel
(:data:`ballast.model.property_kernels.PROPERTY_KERNELS`) is checked by running
that kernel through the NumPy interpreter (:func:`ballast.numeric.interpret.property_holds`):
the system's host part once, the per-VM part for every covered VM at once. The
message of a violation is the model's own, for the first VM found (the arrays
are turned back into a state only then). ``guest_data_intact`` is still written
here (docs/one-description.md says why). Tests check each against the model's
own check on concrete states, violating ones included.

>>> from ballast.model.config import Config
>>> from ballast.numeric.arrays import SystemArrays
>>> arr = SystemArrays.initial(Config())
>>> violations(arr)
[]
>>> arr.mpn_flags[0] = 0  # MPN 0 is now nowhere
>>> violations(arr)
[('memory_conservation', 'MPN 0 is nowhere')]
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.property_kernels import PROPERTY_KERNELS
from ballast.numeric.arrays import UNBACKED_MPN, SystemArrays
from ballast.numeric.interpret import property_holds

__all__ = ["NUMERIC_INVARIANTS", "violations", "first_violation"]

Check = Callable[[SystemArrays], "str | None"]
Mask = npt.NDArray[np.bool_]


def _honest(cfg: Config) -> npt.NDArray[np.int64]:
    return np.array([v for v in range(cfg.vms) if v not in cfg.hostile_vms], dtype=np.int64)


def _explain(a: SystemArrays, name: str, vm: int | None) -> str:
    """The model's message for a violation the kernel found (of VM ``vm``, or of the host)."""
    prop, s = INVARIANTS[name], a.to_state()
    msg = (prop.per_vm(a.cfg, s, vm) if vm is not None and prop.per_vm is not None
           else prop.check_state(a.cfg, s))
    where = f"VM {vm}" if vm is not None else "the host"
    return msg or f"{where} breaks {name} by its kernel, yet the model's check passes"


def _kernel_check(name: str) -> Check:
    """The vector form of property ``name``: its kernel on the arrays."""
    kernel, prop = PROPERTY_KERNELS[name], INVARIANTS[name]

    def check(a: SystemArrays) -> str | None:
        if kernel.host is not None and not property_holds(kernel.host, a)[0]:
            return _explain(a, name, None)
        if kernel.each_vm is not None:
            vms = np.fromiter(prop.checked_vms(a.cfg), dtype=np.int64)
            bad = vms[~property_holds(kernel.each_vm, a, vms)]
            if len(bad):
                return _explain(a, name, int(bad[0]))
        return None

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"The kernel of {name}: {prop.summary}"
    return check


def guest_data_intact(a: SystemArrays) -> str | None:
    """Every token an honest guest wrote is where it expects it."""
    hv = _honest(a.cfg)
    if not len(hv):
        return None
    # Find the VMs with any problem with whole-array operations, then explain the first.
    use = a.ppn_use[hv].astype(np.int64)
    p2m = a.p2m[hv]
    res = use >= 0
    backed = p2m != UNBACKED_MPN
    tok = np.zeros(use.shape, dtype=np.int64)
    tok[backed] = a.content[p2m[backed]]
    for (v, p), t in a.swap.items():
        r = np.flatnonzero(hv == v)
        if len(r) and 0 <= p < a.cfg.guest_pages and not backed[r[0], p]:
            tok[r[0], p] = t
    exp = a.expected[hv].astype(np.int64)
    # Without VPNs (guest_data_pages=0) no page can hold one: nothing to look up.
    want = (np.take_along_axis(exp, np.where(res, use, 0), axis=1) if exp.shape[1]
            else np.zeros(use.shape, dtype=np.int64))
    bad = (res & (tok != want)).any(axis=1)
    # How many PPNs hold each (VM, VPN): one bincount over flat indices (np.add.at is slow).
    rows = np.broadcast_to(np.arange(len(hv))[:, None], use.shape)
    n_vpn = exp.shape[1]
    resident = np.bincount(rows[res] * n_vpn + use[res],
                           minlength=exp.size).reshape(exp.shape).astype(np.int64)
    ondisk = a.disk[hv] != 0
    bad |= (ondisk & (resident > 0)).any(axis=1)
    bad |= (ondisk & (a.disk[hv].astype(np.int64) - 1 != exp)).any(axis=1)
    bad |= ((exp != 0) & (resident == 0) & ~ondisk).any(axis=1)
    bad |= (ondisk.sum(axis=1) > a.cfg.guest_disk_slots) | (resident > 1).any(axis=1)
    for v in hv[bad].tolist():
        msg = _data_intact_vm(a, v)
        if msg is not None:
            return msg
    return None


def _data_intact_vm(a: SystemArrays, v: int) -> str | None:
    cfg = a.cfg
    D = cfg.guest_data_pages
    if True:  # one VM of the model's loop
        use = a.ppn_use[v].astype(np.int64)
        res = np.flatnonzero(use >= 0)
        vpn = use[res]
        m = a.p2m[v, res]
        backed = m != UNBACKED_MPN
        tok = np.zeros(len(res), dtype=np.int64)
        tok[backed] = a.content[m[backed]]
        if a.swap:
            for k in np.flatnonzero(~backed).tolist():
                tok[k] = a.swap.get((v, int(res[k])), 0)
        exp = a.expected[v].astype(np.int64)
        wrong = np.flatnonzero(tok != exp[vpn])
        if len(wrong):
            k = int(wrong[0])
            return (f"VM {v}: VPN {int(vpn[k])} at PPN {int(res[k])} should hold "
                    f"{int(exp[vpn[k]])} but holds {int(tok[k])}")
        resident = np.zeros(D, dtype=bool)
        resident[vpn] = True
        ondisk = a.disk[v] != 0
        both = np.flatnonzero(ondisk & resident)
        if len(both):
            return f"VM {v}: VPN {int(both[0])} is both resident and on the guest's disk"
        disk_tok = a.disk[v].astype(np.int64) - 1
        wrongd = np.flatnonzero(ondisk & (disk_tok != exp))
        if len(wrongd):
            x = int(wrongd[0])
            return f"VM {v}: VPN {x} on the guest's disk holds {int(disk_tok[x])}, not {int(exp[x])}"
        lost = np.flatnonzero((exp != 0) & ~resident & ~ondisk)
        if len(lost):
            x = int(lost[0])
            return f"VM {v}: VPN {x} (holding {int(exp[x])}) is neither resident nor on disk"
        if int(ondisk.sum()) > cfg.guest_disk_slots or len(np.unique(vpn)) != len(vpn):
            return f"VM {v}: the guest's page tables are inconsistent"
    return None


NUMERIC_INVARIANTS: dict[str, Check] = {
    name: guest_data_intact if name == "guest_data_intact" else _kernel_check(name)
    for name in ("memory_conservation", "no_double_mapping", "guest_chooses_pages",
                 "ballooned_pages_unbacked", "balloon_accounting_exact", "isolation",
                 "module_pages_pinned", "guest_data_intact", "host_pages_whole",
                 "processor_conservation", "reported_pages_not_reused",
                 "discarded_pages_read_clean")
}
"""The vector form of every state invariant, by the model's property name (one missing is
reported as a gap by :mod:`ballast.numeric.encodes`, and its verdict is never a pass)."""


def violations(a: SystemArrays) -> list[tuple[str, str]]:
    """(property, message) for every state invariant ``a`` breaks, in the model's order."""
    out = []
    for name, prop in INVARIANTS.items():
        fn = NUMERIC_INVARIANTS.get(name)
        if fn is None or not prop.feature(a.cfg):
            continue
        msg = fn(a)
        if msg is not None:
            out.append((name, msg))
    return out


def first_violation(a: SystemArrays) -> tuple[str, str] | None:
    """The first broken invariant (model order), or None."""
    for name, prop in INVARIANTS.items():
        fn = NUMERIC_INVARIANTS.get(name)
        if fn is not None and prop.feature(a.cfg):
            msg = fn(a)
            if msg is not None:
                return name, msg
    return None
