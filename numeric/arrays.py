# mypy: disable-error-code="no-any-return"
"""The whole modelled system held in flat NumPy arrays, and its exact conversion to a model ``State``.

Per guest page (VM x PPN): the VMM's map ``p2m`` (MPN, ``UNBACKED_MPN`` when
none), the guest's use of the page ``use`` (``FREE``, ``BALLOON`` or a VPN)
and one byte of flags (VMM ballooned set, the report queues, the VMM's
acknowledgements, the module's balloon and refused sets). Per VPN: the token
the guest's process expects, the guest disk slot, the PPN holding it and an
LRU stamp. Per MPN: its token and host flags (free, in host use,
copy-on-write, reclaimed). Per VM: targets and counters. Rare, irregular parts
(host swap entries, queue entries out of range or reported twice, MPNs with
several mappers) live in small dictionaries.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=2, guest_pages=4, machine_pages=6)
>>> arr = SystemArrays.from_state(cfg, initial_state(cfg))
>>> arr.to_state() == initial_state(cfg)
True
>>> int(arr.p2m.dtype.itemsize)
4
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ballast.model.config import Config
from ballast.model.state import (
    BALLOON,
    FREE,
    UNBACKED,
    BalloonModule,
    GuestState,
    HostState,
    State,
    VmState,
    initial_state,
)

__all__ = [
    "AD", "AI", "AR", "BAL", "DQ", "IQ", "MB", "MR",
    "M_COW", "M_FREE", "M_RECL", "M_USE",
    "UNBACKED_MPN", "SystemArrays", "small_int_dtype",
]

UNBACKED_MPN = np.uint32(0xFFFFFFFF)
"""The p2m value of a PPN with no machine page (MPNs are below 2**32 - 1)."""

# Per guest page flags (one byte).
BAL = np.uint8(1)     # VMM: ballooned
AI = np.uint8(2)      # VMM -> guest: acked inflate
AR = np.uint8(4)      # VMM -> guest: acked refused
AD = np.uint8(8)      # VMM -> guest: acked deflate
MB = np.uint8(16)     # module: balloon
MR = np.uint8(32)     # module: refused
IQ = np.uint8(64)     # guest -> VMM: on the inflate queue
DQ = np.uint8(128)    # guest -> VMM: on the deflate queue

# Per MPN host flags (one byte).
M_FREE = np.uint8(1)
M_USE = np.uint8(2)
M_COW = np.uint8(4)
M_RECL = np.uint8(8)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Arr = npt.NDArray[Any]


def small_int_dtype(largest: int) -> np.dtype[Any]:
    """The smallest signed integer type holding -2 .. ``largest``.

    >>> small_int_dtype(100), small_int_dtype(40000)
    (dtype('int16'), dtype('int32'))
    """
    return np.dtype(np.int16) if largest < 2**15 - 1 else np.dtype(np.int32)


def _token_dtype(cfg: Config) -> np.dtype[Any]:
    # Disk slots store token + 1 (0 = empty), hence the margin.
    return np.dtype(np.uint8) if cfg.tokens < 254 else np.dtype(np.uint32)


@dataclass
class SystemArrays:
    """Every part of a model ``State`` as arrays (see the module docstring)."""

    cfg: Config
    p2m: Arr
    use: Arr
    pf: U8
    expected: Arr
    disk: Arr
    stamp: Arr
    vppn: Arr
    content: Arr
    mf: U8
    target: I64
    cpu_target: I64
    mtarget: I64
    mcpu_target: I64
    actual: I64
    vcpus: I64
    parked: I64
    idle_pcpus: int = 0
    clock: int = 0
    swap: dict[tuple[int, int], int] = field(default_factory=dict)
    refs: dict[int, int] = field(default_factory=dict)
    iq_extra: dict[int, list[int]] = field(default_factory=dict)
    dq_extra: dict[int, list[int]] = field(default_factory=dict)
    ar_extra: dict[int, set[int]] = field(default_factory=dict)

    # -- construction -------------------------------------------------------
    @classmethod
    def initial(cls, cfg: Config) -> "SystemArrays":
        """The model's initial state, built directly (no Python objects per page)."""
        V, P, D, M = cfg.vms, cfg.guest_pages, cfg.guest_data_pages, cfg.machine_pages
        tok = _token_dtype(cfg)
        vcpus = (1 << cfg.vcpus) - 1 if cfg.processors else 0
        return cls(
            cfg=cfg,
            p2m=np.full((V, P), UNBACKED_MPN, dtype=np.uint32),
            use=np.full((V, P), FREE, dtype=small_int_dtype(max(D, 1))),
            pf=np.zeros((V, P), dtype=np.uint8),
            expected=np.zeros((V, D), dtype=tok),
            disk=np.zeros((V, D), dtype=tok),
            stamp=np.zeros((V, D), dtype=np.uint32),
            vppn=np.full((V, D), -1, dtype=small_int_dtype(P)),
            content=np.zeros(M, dtype=tok),
            mf=np.full(M, M_FREE, dtype=np.uint8),
            target=np.zeros(V, dtype=np.int64),
            cpu_target=np.full(V, cfg.vcpus if cfg.processors else 0, dtype=np.int64),
            mtarget=np.zeros(V, dtype=np.int64),
            mcpu_target=np.full(V, cfg.vcpus if cfg.processors else 0, dtype=np.int64),
            actual=np.zeros(V, dtype=np.int64),
            vcpus=np.full(V, vcpus, dtype=np.int64),
            parked=np.zeros(V, dtype=np.int64),
            idle_pcpus=cfg.pcpus - cfg.vms * cfg.vcpus if cfg.processors else 0,
        )

    @classmethod
    def from_state(cls, cfg: Config, s: State) -> "SystemArrays":
        """Arrays holding exactly the model state ``s``."""
        a = cls.initial(cfg)
        h = s.host
        a.mf[:] = 0
        for m in h.free:
            a.mf[m] |= M_FREE
        for m in h.in_use:
            a.mf[m] |= M_USE
        for m in h.cow:
            a.mf[m] |= M_COW
        for m in h.reclaimed:
            a.mf[m] |= M_RECL
        a.content[:] = np.asarray(h.content, dtype=np.int64)
        a.swap = {(v, p): t for v, p, t in h.swap}
        a.idle_pcpus = h.idle_pcpus
        clock = 0
        for v, vm in enumerate(s.vms):
            a.p2m[v] = np.asarray([UNBACKED_MPN if m == UNBACKED else m for m in vm.p2m],
                                  dtype=np.uint32)
            a.use[v] = vm.guest.ppn_use
            for ppn, u in enumerate(vm.guest.ppn_use):
                if u >= 0:
                    a.vppn[v, u] = ppn
            for i, vpn in enumerate(vm.guest.lru):
                a.stamp[v, vpn] = clock + i + 1
            clock += len(vm.guest.lru)
            a.expected[v] = vm.guest.expected
            for vpn, tok in vm.guest.disk:
                a.disk[v, vpn] = tok + 1
            flags = np.zeros(cfg.guest_pages, dtype=np.uint8)
            for bit, items in ((BAL, vm.ballooned), (AI, vm.acked_inflate),
                               (AD, vm.acked_deflate), (MB, vm.module.balloon),
                               (MR, vm.module.refused)):
                for p in items:
                    flags[p] |= bit
            for p in vm.acked_refused:
                if 0 <= p < cfg.guest_pages:
                    flags[p] |= AR
                else:
                    a.ar_extra.setdefault(v, set()).add(p)
            for bit, queue, extra in ((IQ, vm.inflate_queue, a.iq_extra),
                                      (DQ, vm.deflate_queue, a.dq_extra)):
                for p in queue:
                    if 0 <= p < cfg.guest_pages and not flags[p] & bit:
                        flags[p] |= bit
                    else:
                        extra.setdefault(v, []).append(p)
            a.pf[v] = flags
            a.target[v], a.cpu_target[v] = vm.target, vm.cpu_target
            a.mtarget[v], a.mcpu_target[v] = vm.module.target, vm.module.cpu_target
            a.actual[v] = vm.module.actual
            a.vcpus[v] = sum(1 << c for c in vm.guest.vcpus)
            a.parked[v] = sum(1 << c for c in vm.parked_vcpus)
        a.clock = clock
        a.rebuild_refs()
        return a

    def rebuild_refs(self) -> None:
        """Recount the MPNs that back more than one guest page (from ``p2m``)."""
        flat = self.p2m.ravel()
        backed = flat[flat != UNBACKED_MPN]
        uniq, counts = np.unique(backed, return_counts=True)
        self.refs = {int(m): int(c) for m, c in zip(uniq[counts > 1], counts[counts > 1])}

    # -- conversion back ------------------------------------------------------
    def to_state(self) -> State:
        """The model ``State`` these arrays hold (exact inverse of :meth:`from_state`)."""
        cfg = self.cfg
        mf = self.mf

        def mpns(bit: np.uint8) -> frozenset[int]:
            return frozenset(int(m) for m in np.flatnonzero(mf & bit))

        host = HostState(
            free=mpns(M_FREE), in_use=mpns(M_USE),
            content=tuple(int(x) for x in self.content),
            cow=mpns(M_COW), reclaimed=mpns(M_RECL),
            swap=tuple(sorted((v, p, t) for (v, p), t in self.swap.items())),
            idle_pcpus=int(self.idle_pcpus))
        vms = []
        for v in range(cfg.vms):
            row = self.pf[v]

            def pages(bit: np.uint8) -> list[int]:
                return [int(p) for p in np.flatnonzero(row & bit)]

            stamps = self.stamp[v]
            resident = np.flatnonzero(stamps)
            lru = tuple(int(x) for x in resident[np.argsort(stamps[resident], kind="stable")])
            guest = GuestState(
                ppn_use=tuple(int(u) for u in self.use[v]),
                lru=lru,
                expected=tuple(int(t) for t in self.expected[v]),
                disk=tuple((int(vpn), int(self.disk[v, vpn]) - 1)
                           for vpn in np.flatnonzero(self.disk[v])),
                vcpus=_bits(int(self.vcpus[v])))
            module = BalloonModule(
                target=int(self.mtarget[v]), balloon=frozenset(pages(MB)),
                refused=frozenset(pages(MR)), actual=int(self.actual[v]),
                cpu_target=int(self.mcpu_target[v]))
            vms.append(VmState(
                p2m=tuple(UNBACKED if m == UNBACKED_MPN else int(m) for m in self.p2m[v]),
                ballooned=frozenset(pages(BAL)),
                target=int(self.target[v]), cpu_target=int(self.cpu_target[v]),
                inflate_queue=tuple(sorted(pages(IQ) + self.iq_extra.get(v, []))),
                deflate_queue=tuple(sorted(pages(DQ) + self.dq_extra.get(v, []))),
                acked_inflate=frozenset(pages(AI)),
                acked_refused=frozenset(pages(AR)) | frozenset(self.ar_extra.get(v, set())),
                acked_deflate=frozenset(pages(AD)),
                parked_vcpus=_bits(int(self.parked[v])),
                guest=guest, module=module))
        return State(host, tuple(vms))

    # -- sizes ---------------------------------------------------------------
    def nbytes(self) -> int:
        """Bytes held by the arrays (the dictionaries hold only rare entries)."""
        return sum(int(getattr(self, name).nbytes) for name in (
            "p2m", "use", "pf", "expected", "disk", "stamp", "vppn", "content", "mf",
            "target", "cpu_target", "mtarget", "mcpu_target", "actual", "vcpus", "parked"))

    def copy(self) -> "SystemArrays":
        """An independent copy (arrays and dictionaries)."""
        out = copy.copy(self)
        for name in ("p2m", "use", "pf", "expected", "disk", "stamp", "vppn", "content", "mf",
                     "target", "cpu_target", "mtarget", "mcpu_target", "actual", "vcpus",
                     "parked"):
            setattr(out, name, getattr(self, name).copy())
        out.swap = dict(self.swap)
        out.refs = dict(self.refs)
        out.iq_extra = {k: list(v) for k, v in self.iq_extra.items()}
        out.dq_extra = {k: list(v) for k, v in self.dq_extra.items()}
        out.ar_extra = {k: set(v) for k, v in self.ar_extra.items()}
        return out


def _bits(mask: int) -> frozenset[int]:
    return frozenset(i for i in range(mask.bit_length()) if mask >> i & 1)


def _check_initial(cfg: Config) -> bool:
    """True if :meth:`SystemArrays.initial` equals the model's initial state."""
    return SystemArrays.initial(cfg).to_state() == initial_state(cfg)
