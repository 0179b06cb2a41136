# mypy: disable-error-code="no-any-return"
"""Every state invariant of the model, evaluated on :class:`SystemArrays` with whole-array operations.

Each function mirrors the property of the same name in
``ballast.model.invariants.INVARIANTS`` and returns ``None`` or a message in
the same domain words. Tests check each against the model's own check on
concrete states, violating ones included.

>>> from ballast.model.config import Config
>>> from ballast.numeric.arrays import SystemArrays
>>> arr = SystemArrays.initial(Config())
>>> violations(arr)
[]
>>> arr.mpn_flags[0] = 0  # MPN 0 is now nowhere
>>> [name for name, _ in violations(arr)]
['memory_conservation']
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.model.invariants import INVARIANTS
from ballast.model.state import BALLOON
from ballast.numeric.arrays import (
    BALLOON_BIT, BALLOONED_BIT, COW_BIT, DEFLATE_QUEUE_BIT, FREE_BIT, IN_USE_BIT, REFUSED_BIT,
    UNBACKED_MPN, SystemArrays,
)
from ballast.numeric.engine import popcount

__all__ = ["NUMERIC_INVARIANTS", "violations", "first_violation"]

Check = Callable[[SystemArrays], "str | None"]
Mask = npt.NDArray[np.bool_]


def _honest(cfg: Config) -> npt.NDArray[np.int64]:
    return np.array([v for v in range(cfg.vms) if v not in cfg.hostile_vms], dtype=np.int64)


def _mapper_counts(a: SystemArrays) -> npt.NDArray[np.int64]:
    flat = a.p2m.ravel()
    backed = flat[flat != UNBACKED_MPN]
    return np.bincount(backed, minlength=len(a.mpn_flags)).astype(np.int64)


def memory_conservation(a: SystemArrays) -> str | None:
    """Each MPN is exactly one of free, in host use, backing a guest page."""
    flat = a.p2m.ravel()
    backed = flat[flat != UNBACKED_MPN]
    M = len(a.mpn_flags)
    if len(backed) and int(backed.max()) >= M:
        return f"MPNs {sorted(set(backed[backed >= M].tolist()))} do not exist"
    mapped = np.zeros(M, dtype=bool)
    mapped[backed] = True
    places = ((a.mpn_flags & FREE_BIT) != 0).astype(np.int8) + ((a.mpn_flags & IN_USE_BIT) != 0) + mapped
    bad = np.flatnonzero(places != 1)
    if len(bad):
        m = int(bad[0])
        names = [n for n, w in (("free", a.mpn_flags[m] & FREE_BIT), ("in host use", a.mpn_flags[m] & IN_USE_BIT),
                                ("backing a guest page", mapped[m])) if w]
        return f"MPN {m} is {' and '.join(names) if names else 'nowhere'}"
    return None


def no_double_mapping(a: SystemArrays) -> str | None:
    """An MPN backs at most one guest page unless it is copy-on-write."""
    counts = _mapper_counts(a)
    cow = (a.mpn_flags & COW_BIT) != 0
    bad = np.flatnonzero((counts > 1) & ~cow)
    if len(bad):
        return f"MPN {int(bad[0])} backs {int(counts[bad[0]])} guest pages but is not shared " \
               f"read-only (copy-on-write)"
    stray = np.flatnonzero(cow & (counts == 0))
    if len(stray):
        return f"MPNs {stray.tolist()} are marked copy-on-write but back no guest page"
    return None


def guest_chooses_pages(a: SystemArrays) -> str | None:
    """(State form) every ballooned PPN of an honest VM is held by its balloon module."""
    hv = _honest(a.cfg)
    pf = a.page_flags[hv]
    bad = ((pf & BALLOONED_BIT) != 0) & (a.ppn_use[hv] != BALLOON) & ((pf & DEFLATE_QUEUE_BIT) == 0)
    if bad.any():
        r, p = np.argwhere(bad)[0]
        return (f"VM {int(hv[r])}: PPN {int(p)} is ballooned but the guest's allocator never "
                f"gave it to the balloon module")
    return None


def ballooned_pages_unbacked(a: SystemArrays) -> str | None:
    """A ballooned PPN has no MPN and no host swap slot."""
    bad = ((a.page_flags & BALLOONED_BIT) != 0) & (a.p2m != UNBACKED_MPN)
    if bad.any():
        v, p = np.argwhere(bad)[0]
        return f"VM {int(v)}: ballooned PPN {int(p)} is still backed by MPN {int(a.p2m[v, p])}"
    for v, p in sorted(a.swap):
        if 0 <= p < a.cfg.guest_pages and a.page_flags[v, p] & BALLOONED_BIT:
            return f"VM {v}: ballooned PPN {p} still holds a host swap slot"
    return None


def balloon_accounting_exact(a: SystemArrays) -> str | None:
    """The module's balloon is within the VMM's ballooned set; sizes agree when quiet."""
    hv = _honest(a.cfg)
    pf = a.page_flags[hv]
    mb = (pf & BALLOON_BIT) != 0
    bal = (pf & BALLOONED_BIT) != 0
    lost = mb & ~bal
    if lost.any():
        r = int(np.flatnonzero(lost.any(axis=1))[0])
        return (f"VM {int(hv[r])}: the module holds {np.flatnonzero(lost[r]).tolist()} as "
                f"ballooned but the VMM does not")
    busy = (pf & ~(BALLOONED_BIT | BALLOON_BIT | REFUSED_BIT)) != 0  # queues and acknowledgements
    quiet = ~busy.any(axis=1)
    for extra in (a.inflate_queue_extra, a.deflate_queue_extra, a.acked_refused_extra):
        for v in extra:
            quiet[hv == v] = False
    nmb, nbal, act = mb.sum(axis=1), bal.sum(axis=1), a.actual[hv]
    bad = np.flatnonzero(quiet & ((act != nmb) | (nmb != nbal)))
    if len(bad):
        r = int(bad[0])
        return (f"VM {int(hv[r])}: actual={int(act[r])}, module balloon={int(nmb[r])}, "
                f"VMM ballooned={int(nbal[r])} after every report was acknowledged")
    return None


def module_pages_pinned(a: SystemArrays) -> str | None:
    """Pages the module holds (balloon or refused) are pinned for it, and held once."""
    mb, mr = (a.page_flags & BALLOON_BIT) != 0, (a.page_flags & REFUSED_BIT) != 0
    bad = (mb & mr) | ((mb | mr) & (a.ppn_use != BALLOON))
    if not bad.any():
        return None
    v, p = (int(x) for x in np.argwhere(bad)[0])
    if mb[v, p] and mr[v, p]:
        return f"VM {v}: the module holds PPNs [{p}] both as ballooned and as refused"
    kind = "ballooned" if mb[v, p] else "refused"
    return (f"VM {v}: the module holds PPN {p} as {kind} but the guest does not "
            f"have it pinned for the balloon")


def isolation(a: SystemArrays) -> str | None:
    """(State form) no writable MPN is mapped by two VMs; free MPNs are scrubbed."""
    flat = a.p2m.ravel()
    counts = _mapper_counts(a)
    multi = counts > 1
    if multi.any():
        idx = np.flatnonzero((flat != UNBACKED_MPN))
        idx = idx[multi[flat[idx]]]
        m = flat[idx].astype(np.int64)
        vm = idx // a.cfg.guest_pages
        pairs = np.unique(np.stack([m, vm]), axis=1)
        mm, nvm = np.unique(pairs[0], return_counts=True)
        cow = (a.mpn_flags[mm] & COW_BIT) != 0
        bad = mm[(nvm > 1) & ~cow]
        if len(bad):
            x = int(bad[0])
            return f"MPN {x} is writable by VMs {sorted(set(pairs[1][pairs[0] == x].tolist()))}"
    dirty = np.flatnonzero(((a.mpn_flags & FREE_BIT) != 0) & (a.content != 0))
    if len(dirty):
        return f"free MPN {int(dirty[0])} still holds data (token {int(a.content[dirty[0]])})"
    return None


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


def host_pages_whole(a: SystemArrays) -> str | None:
    """The host uses only whole host pages."""
    u = a.cfg.host_page_units
    used = ((a.mpn_flags & IN_USE_BIT) != 0).reshape(-1, u)
    part = np.flatnonzero(used.any(axis=1) & ~used.all(axis=1))
    if len(part):
        hp = int(part[0])
        units = np.arange(hp * u, (hp + 1) * u)
        return (f"host page {hp}: the host uses units {units[used[hp]].tolist()} while "
                f"{units[~used[hp]].tolist()} are not released")
    return None


def processor_conservation(a: SystemArrays) -> str | None:
    """Every physical processor is idle, online in a guest, or parked."""
    cfg = a.cfg
    if not cfg.processors:
        return None
    total = a.idle_pcpus + int(popcount(a.vcpus).sum() + popcount(a.parked_vcpus).sum())
    if total != cfg.pcpus:
        return f"{total} physical processors accounted for, the host has {cfg.pcpus}"
    both = np.flatnonzero(a.vcpus & a.parked_vcpus)
    if len(both):
        return f"VM {int(both[0])}: vCPUs online and parked"
    if a.idle_pcpus < 0:
        return "the host has a negative number of idle processors"
    return None


NUMERIC_INVARIANTS: dict[str, Check] = {
    "memory_conservation": memory_conservation,
    "no_double_mapping": no_double_mapping,
    "guest_chooses_pages": guest_chooses_pages,
    "ballooned_pages_unbacked": ballooned_pages_unbacked,
    "balloon_accounting_exact": balloon_accounting_exact,
    "isolation": isolation,
    "module_pages_pinned": module_pages_pinned,
    "guest_data_intact": guest_data_intact,
    "host_pages_whole": host_pages_whole,
    "processor_conservation": processor_conservation,
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
