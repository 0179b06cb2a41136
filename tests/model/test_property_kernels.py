"""The property kernels: one per state invariant, read alike by Z3, NumPy and the model."""

from __future__ import annotations

import numpy as np
import pytest
import z3

from ballast.model import PRESETS, BalloonModel
from ballast.model.config import Config
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.model.property_kernels import PROPERTY_KERNELS, PropertyKernel
from ballast.model.state import State, state_from_dict
from ballast.numeric.arrays import BALLOON_BIT, SystemArrays
from ballast.numeric.state_ops import property_holds
from ballast.numeric.invariants import NUMERIC_INVARIANTS
from ballast.proofs.encoding import encode
from ballast.proofs.interpret import property_formula
from ballast.proofs.properties import SAFETY
from ballast.simulation.randomwalk import random_run

WRITTEN_BY_HAND: set[str] = set()
"""State forms still written per backend (none: every one is a kernel)."""


def test_every_state_invariant_a_backend_checks_comes_from_its_kernel() -> None:
    state_forms = {n for n, p in INVARIANTS.items() if p.state is not None}
    assert set(PROPERTY_KERNELS) <= state_forms
    for name in set(SAFETY) | set(NUMERIC_INVARIANTS):
        assert (name in PROPERTY_KERNELS) != (name in WRITTEN_BY_HAND), name
    for name in PROPERTY_KERNELS:
        kernel = PROPERTY_KERNELS[name]
        part = kernel.host or kernel.each_vm
        assert part is not None and SAFETY[name].__qualname__ == part.__qualname__
        assert NUMERIC_INVARIANTS[name].__name__ == name


def _walk(cfg: Config, faults: tuple[str, ...], seed: int, steps: int) -> list[State]:
    """The states of a random run (up to its first violation, included)."""
    model = BalloonModel(cfg, faults)
    run = random_run(model, seed, steps)
    return model.init_states()[:1] + [state_from_dict(st.state or {}) for st in run.trace.steps]


def _z3_holds(kernel: PropertyKernel, cfg: Config, s: State) -> bool:
    return z3.is_true(z3.simplify(property_formula(kernel, encode(cfg, s))))


def _model_holds(name: str, cfg: Config, s: State, vm: int | None) -> bool:
    prop = INVARIANTS[name]
    if vm is not None and prop.per_vm is not None:
        return prop.per_vm(cfg, s, vm) is None
    return prop.check_state(cfg, s) is None


_CASES = [("default", None), ("hostile", None), ("default", "host_takes_partial_page"),
          ("default", "reclaim_keeps_mapping"), ("default", "share_without_cow"),
          ("qemu", None), ("qemu", "oom_deflate_without_report")]


@pytest.mark.parametrize(("preset", "fault"), _CASES)
def test_each_vm_and_the_host_agree_with_the_model(preset: str, fault: str | None) -> None:
    """Per VM, not only per state: the NumPy mask names the VMs the model names, and the
    Z3 formula of the whole state holds exactly when the model's check does."""
    faults = (fault,) if fault else ()
    cfg = PRESETS[preset].replace(**(FAULTS[fault].config if fault else {}))
    broken = 0
    for seed in range(2):
        for s in _walk(cfg, faults, seed, 55):
            arr = SystemArrays.from_state(cfg, s)
            for name, kernel in PROPERTY_KERNELS.items():
                prop = INVARIANTS[name]
                if not prop.feature(cfg):
                    continue
                if kernel.each_vm is not None and prop.per_vm is not None:
                    vms = np.fromiter(prop.checked_vms(cfg), dtype=np.int64)
                    mine = property_holds(kernel.each_vm, arr, vms).tolist()
                    assert mine == [_model_holds(name, cfg, s, v) for v in vms.tolist()], name
                whole = _model_holds(name, cfg, s, None)
                assert _z3_holds(kernel, cfg, s) == whole, name
                assert (NUMERIC_INVARIANTS[name](arr) is None) == whole, name
                broken += not whole
    assert broken or fault is None, "the fault's runs reached no violating state"


def test_the_mask_names_the_vm_that_breaks_a_per_vm_property() -> None:
    cfg = Config(vms=2, guest_pages=2, machine_pages=4)
    arr = SystemArrays.initial(cfg)
    arr.page_flags[1, 0] |= BALLOON_BIT  # VM 1's module holds PPN 0, neither pinned nor ballooned
    vms = np.arange(2)
    s = arr.to_state()
    for name in ("balloon_accounting_exact", "module_pages_pinned"):
        each_vm = PROPERTY_KERNELS[name].each_vm
        assert each_vm is not None
        assert property_holds(each_vm, arr, vms).tolist() == [True, False], name
        assert not _z3_holds(PROPERTY_KERNELS[name], cfg, s)
        assert NUMERIC_INVARIANTS[name](arr) == INVARIANTS[name].check_state(cfg, s), name


def test_a_kernel_only_reads() -> None:
    cfg = PRESETS["hostile"]
    for s in _walk(cfg, (), 1, 40):
        arr = SystemArrays.from_state(cfg, s)
        for check in NUMERIC_INVARIANTS.values():
            check(arr)
        assert arr.to_state() == s


def test_a_violation_is_worded_by_the_model() -> None:
    cfg = PRESETS["hostile"]
    arr = SystemArrays.initial(cfg)
    arr.content[0] = 2  # a free MPN with data
    assert NUMERIC_INVARIANTS["isolation"](arr) == "free MPN 0 still holds data (token 2)"
    assert not _z3_holds(PROPERTY_KERNELS["isolation"], cfg, arr.to_state())


def test_guest_data_intact_reads_each_page_through_its_mapping() -> None:
    """A resident page whose MPN holds another token breaks guest_data_intact for that VM
    alone, in the model, the NumPy mask and the Z3 formula alike."""
    cfg = PRESETS["default"]
    kernel = PROPERTY_KERNELS["guest_data_intact"]
    assert kernel.each_vm is not None
    corrupted = 0
    for s in _walk(cfg, (), 0, 60)[::4]:
        arr = SystemArrays.from_state(cfg, s)
        for v in range(cfg.vms):
            resident = [p for p, use in enumerate(s.vms[v].guest.ppn_use)
                        if use >= 0 and s.vms[v].p2m[p] >= 0]
            if not resident or v in cfg.hostile_vms:
                continue
            broken = arr.copy()
            m = s.vms[v].p2m[resident[0]]
            broken.content[m] = 0 if s.host.content[m] else 1
            bs = broken.to_state()
            vms = np.arange(cfg.vms)
            want = [_model_holds("guest_data_intact", cfg, bs, w) for w in range(cfg.vms)]
            assert not want[v]
            assert property_holds(kernel.each_vm, broken, vms).tolist() == want
            assert not _z3_holds(kernel, cfg, bs)
            corrupted += 1
    assert corrupted
